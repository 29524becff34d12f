package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
)

// secureConfig writes a configuration file connecting to the secured
// broker e as user with password (inline) or passwordFile.
func secureConfig(t *testing.T, e *kafka.Embedded, user, password, passwordFile string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "c.yaml")
	cfg := "kafka:\n  brokers: [" + e.Brokers()[0] + "]\n  tls: {enabled: true, ca_file: " + e.CAFile() + "}\n" +
		"  sasl: {username: " + user
	if password != "" {
		cfg += ", password: '" + password + "'"
	} else {
		cfg += ", password_file: " + passwordFile
	}
	if err := os.WriteFile(f, []byte(cfg+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestGrantPublishToTheSecuredBroker: `grant publish` reaches the secured
// embedded broker as the policy service's principal (its password file,
// as the all-in-one keeps it in DATA/kafka-credentials); as the
// collector's it is refused with the broker's reason, and nothing lands.
func TestGrantPublishToTheSecuredBroker(t *testing.T) {
	e := kafkatest.StartSecure(t, 1)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "policy.key")
	if code, _, errOut := runCmd(t, "", "grant", "keygen", "--key", keyFile, "--pub", keyFile+".pub"); code != 0 {
		t.Fatalf("keygen: %s", errOut)
	}
	publish := func(cfg string) (int, string) {
		code, _, errOut := runCmd(t, "", "grant", "publish", "--config", cfg, "--key", keyFile, "--login", "op", "--req-auth-id", "req1")
		return code, errOut
	}
	if code, errOut := publish(secureConfig(t, e, "collector", "", e.PasswordFile(kafka.RoleCollector))); code == 0 || !strings.Contains(errOut, "TOPIC_AUTHORIZATION_FAILED") {
		t.Fatalf("as the collector: exit %d, %q; want refused, TOPIC_AUTHORIZATION_FAILED", code, errOut)
	}
	if code, errOut := publish(secureConfig(t, e, "policy", "", e.PasswordFile(kafka.RolePolicy))); code != 0 {
		t.Fatalf("as the policy service: exit %d, %q", code, errOut)
	}
	if recs := readGrants(t, e.Admin(), 1); string(recs[0].Key) != "op" {
		t.Fatalf("grant key %q", recs[0].Key)
	}
}

// TestKafkaEnsureACLs: `kafka ensure-acls` creates every role's ACLs as
// the file's (administrator) principal and prints them; existing ones are
// left alone, so a second run succeeds too. A bad --user is a usage error.
func TestKafkaEnsureACLs(t *testing.T) {
	e := kafkatest.StartSecure(t, 1)
	adm := e.Admin()
	cfg := secureConfig(t, e, adm.SASL.Username, adm.SASL.Password.Reveal(), "")
	for range 2 {
		code, out, errOut := runCmd(t, "", "kafka", "ensure-acls", "--config", cfg, "--user", "collector=collector")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, want := range []string{"User:collector\tWrite Topic opctl.audit.v1", "User:indexer\tRead Group auditpipe-indexer*", "User:policy\tWrite Topic opctl.grants.v1"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	}
	if code, _, _ := runCmd(t, "", "kafka", "ensure-acls", "--config", cfg, "--user", "nobody=x"); code != 2 {
		t.Errorf("--user nobody=x: exit %d, want 2", code)
	}
	// Not an administrator: refused with the reason.
	code, _, errOut := runCmd(t, "", "kafka", "ensure-acls", "--config", secureConfig(t, e, "collector", "", e.PasswordFile(kafka.RoleCollector)))
	if code == 0 || !strings.Contains(errOut, "AUTHORIZATION_FAILED") {
		t.Errorf("as the collector: exit %d, %q", code, errOut)
	}
}
