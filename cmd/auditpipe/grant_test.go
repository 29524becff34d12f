package main

import (
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

// TestGrantPublish: keygen makes a key pair; publish and revoke put
// records on opctl.grants.v1 that verify with the public key, carry the
// flags' grant and its revocation, and verify with no other key.
func TestGrantPublish(t *testing.T) {
	kcfg, _ := kafkatest.Start(t, 1)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfgFile, []byte("kafka: {brokers: ["+kcfg.Brokers[0]+"]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keyFile, pubFile := filepath.Join(dir, "policy.key"), filepath.Join(dir, "policy.pub")
	code, out, errOut := runCmd(t, "", "grant", "keygen", "--key", keyFile, "--pub", pubFile)
	if code != 0 {
		t.Fatalf("keygen: exit %d, %s", code, errOut)
	}
	pub, err := sign.LoadPublicKey(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	if id := sign.KeyID(pub); !strings.Contains(out, id) {
		t.Errorf("keygen printed %q, not the key id %s", out, id)
	}
	if code, _, _ := runCmd(t, "", "grant", "keygen", "--key", keyFile, "--pub", pubFile+"2"); code != 1 {
		t.Errorf("keygen replaced an existing key: exit %d", code)
	}

	code, out, errOut = runCmd(t, "", "grant", "publish", "--config", cfgFile, "--key", keyFile,
		"--login", "op", "--req-auth-id", "req1", "--audit-type", schemas.AuditCommand, "--resource", "cell01",
		"--action", "INFRA_DIAG", "--action", "INFRA_UPDATE_RESTART", "--expires", "2030-01-02T03:04:05Z")
	if code != 0 || !strings.Contains(out, "signed by key "+sign.KeyID(pub)) {
		t.Fatalf("publish: exit %d, %q %q", code, out, errOut)
	}
	if code, out, errOut = runCmd(t, "", "grant", "revoke", "--config", cfgFile, "--key", keyFile, "--login", "op"); code != 0 {
		t.Fatalf("revoke: exit %d, %q %q", code, out, errOut)
	}
	recs := readGrants(t, kcfg, 2)
	kr := sign.NewKeyring(pub)
	g, err := grants.Decode(recs[0].Key, recs[0].Value, kr)
	if err != nil {
		t.Fatal(err)
	}
	want := schemas.Grant{LoginID: "op", ReqAuthID: "req1", AuditType: schemas.AuditCommand, Resource: "cell01",
		Actions: []string{"INFRA_DIAG", "INFRA_UPDATE_RESTART"}, Expires: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	if g.Grant.LoginID != want.LoginID || g.Grant.ReqAuthID != want.ReqAuthID || g.Grant.AuditType != want.AuditType ||
		g.Grant.Resource != want.Resource || strings.Join(g.Grant.Actions, ",") != strings.Join(want.Actions, ",") || !g.Grant.Expires.Equal(want.Expires) || g.Grant.Revoked {
		t.Errorf("published %+v, want %+v", g.Grant, want)
	}
	r, err := grants.Decode(recs[1].Key, recs[1].Value, kr)
	if err != nil || !r.Grant.Revoked || r.Grant.LoginID != "op" {
		t.Errorf("revocation %+v, %v", r.Grant, err)
	}
	// Numbered by the clock: the revocation outnumbers the grant, so that
	// a consumer refuses the grant written again after it.
	if g.Grant.PublishSeq < 1 || r.Grant.PublishSeq <= g.Grant.PublishSeq {
		t.Errorf("publish_seq of the grant %d, of its revocation %d: want increasing from 1", g.Grant.PublishSeq, r.Grant.PublishSeq)
	}
	if code, out, errOut = runCmd(t, "", "grant", "revoke", "--config", cfgFile, "--key", keyFile, "--login", "op2", "--seq", "7"); code != 0 || !strings.Contains(out, "publish_seq 7") {
		t.Fatalf("revoke --seq 7: exit %d, %q %q", code, out, errOut)
	}
	third := readGrants(t, kcfg, 3)[2]
	if m, err := grants.Decode(third.Key, third.Value, kr); err != nil || m.Grant.PublishSeq != 7 {
		t.Errorf("revoke --seq 7 published %+v, %v", m.Grant, err)
	}
	other, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := grants.Decode(recs[0].Key, recs[0].Value, sign.NewKeyring(other.Public().(ed25519.PublicKey))); err == nil {
		t.Error("the published grant verifies with another key")
	}
}

// TestGrantPublishRefuses: what publish will not do, before it connects.
func TestGrantPublishRefuses(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfgFile, []byte("kafka: {brokers: ['127.0.0.1:9']}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "k.key")
	if code, _, errOut := runCmd(t, "", "grant", "keygen", "--key", keyFile, "--pub", filepath.Join(dir, "k.pub")); code != 0 {
		t.Fatal(errOut)
	}
	loose := filepath.Join(dir, "loose.key")
	b, _ := os.ReadFile(keyFile)
	if err := os.WriteFile(loose, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"grant", "publish", "--config", cfgFile, "--timeout", "1s"}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no login", append(base, "--key", keyFile, "--req-auth-id", "r"), 2, "usage: auditpipe grant publish"},
		{"no request", append(base, "--key", keyFile, "--login", "op"), 2, "usage: auditpipe grant publish"},
		{"a key others may read", append(base, "--key", loose, "--login", "op", "--req-auth-id", "r"), 1, "chmod 600"},
		{"an unknown audit type", append(base, "--key", keyFile, "--login", "op", "--req-auth-id", "r", "--audit-type", "NONE"), 1, "unknown audit_type"},
		{"a bad expiry", append(base, "--key", keyFile, "--login", "op", "--req-auth-id", "r", "--expires", "soon"), 1, "--expires"},
		// Regression (review): --seq took any number, and one above the
		// clock froze the login: its later grants and revocation, numbered
		// by the clock, were refused as replayed.
		{"a publish_seq far above the clock", append(base, "--key", keyFile, "--login", "op", "--req-auth-id", "r", "--seq", "9223372036854775807"), 1, "--seq 9223372036854775807"},
		{"a negative publish_seq", append(base, "--key", keyFile, "--login", "op", "--req-auth-id", "r", "--seq", "-5"), 1, "--seq -5"},
		{"no subcommand", []string{"grant"}, 2, "usage: auditpipe grant publish|revoke|keygen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCmd(t, "", tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errOut, tt.code, tt.want)
			}
			if strings.Contains(errOut, "PRIVATE KEY") {
				t.Errorf("the key is in the output: %q", errOut)
			}
		})
	}
}

func TestParseExpires(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                          {},
		"8h":                        now.Add(8 * time.Hour),
		"2d":                        now.Add(48 * time.Hour),
		"2030-01-02T03:04:05+09:00": time.Date(2030, 1, 1, 18, 4, 5, 0, time.UTC),
	} {
		got, err := parseExpires(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"soon", "-1h", "0"} {
		if _, err := parseExpires(bad, now); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// readGrants reads the grants topic until it holds n records.
func readGrants(t *testing.T, kc kafka.Config, n int) []kafka.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	var recs []kafka.Record
	f, err := kc.NewFollower(kafka.FollowerConfig{Topic: schemas.TopicGrants, MaxWait: 50 * time.Millisecond, Apply: func(r kafka.Record) error {
		mu.Lock()
		defer mu.Unlock()
		if recs = append(recs, r); len(recs) >= n {
			cancel()
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Run(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(recs) < n {
		t.Fatalf("%d grant records, want %d", len(recs), n)
	}
	return recs
}
