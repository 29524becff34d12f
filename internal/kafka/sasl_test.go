package kafka

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/internal/tlsconfig"
)

// TestSASLValidate: each bad combination is refused naming its field;
// PLAIN only over TLS.
func TestSASLValidate(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		sasl SASLConfig
		tls  bool
		want string // "" valid
	}{
		{"off", SASLConfig{}, false, ""},
		{"scram-512 default", SASLConfig{Username: "u", Password: "p"}, false, ""},
		{"scram-256", SASLConfig{Mechanism: MechanismSCRAMSHA256, Username: "u", PasswordFile: pwFile}, true, ""},
		{"plain over tls", SASLConfig{Mechanism: MechanismPlain, Username: "u", Password: "p"}, true, ""},
		{"plain in the clear", SASLConfig{Mechanism: MechanismPlain, Username: "u", Password: "p"}, false, "kafka.sasl.mechanism: PLAIN"},
		{"unknown mechanism", SASLConfig{Mechanism: "GSSAPI", Username: "u", Password: "p"}, true, "kafka.sasl.mechanism"},
		{"no password", SASLConfig{Username: "u"}, true, "kafka.sasl.password: required"},
		{"both passwords", SASLConfig{Username: "u", Password: "p", PasswordFile: pwFile}, true, "password and password_file"},
		{"missing password file", SASLConfig{Username: "u", PasswordFile: pwFile + ".missing"}, true, "kafka.sasl.password_file"},
		{"empty password file", SASLConfig{Username: "u", PasswordFile: empty}, true, "kafka.sasl.password_file: empty"},
		{"password without user", SASLConfig{Password: "p"}, true, "kafka.sasl.username"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Brokers: []string{"k:9093"}, SASL: tc.sasl, TLS: tlsconfig.Config{Enabled: tc.tls}}.WithDefaults()
			err := c.Validate("kafka")
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
			if tc.want == "" {
				if _, err := c.transport(); err != nil {
					t.Fatalf("transport: %v", err)
				}
			}
		})
	}
}

// TestSASLPasswordNeverPrints: the configuration, printed or logged, does
// not show the password.
func TestSASLPasswordNeverPrints(t *testing.T) {
	c := Config{Brokers: []string{"k:9093"}, SASL: SASLConfig{Username: "u", Password: "hunter2-secret"}}
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("config", "kafka", c, "sasl", c.SASL, "password", c.SASL.Password)
	for _, s := range []string{fmt.Sprintf("%v %+v %#v %s", c, c, c, c.SASL.Password), b.String()} {
		if strings.Contains(s, "hunter2") {
			t.Fatalf("the password printed: %s", s)
		}
	}
}
