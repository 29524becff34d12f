package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/app"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/schemas"
)

// TestPolicyRequestCommands: `auditpipe policy show|history|revoke` on
// an all-in-one's data directory (its SQLite store and key), as make run
// uses them: the seeded request shown, revoked through the service (its
// history, and the grant's signed revocation in the outbox for the
// running relay), in tables and JSON.
func TestPolicyRequestCommands(t *testing.T) {
	data := t.TempDir()
	keyFile := filepath.Join(data, app.GrantsKeyName)
	signer, _, err := sign.EnsureKeyPair(keyFile, filepath.Join(data, app.GrantsPublicKeyName))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cfg := policy.DefaultStoreConfig()
	cfg.Path = filepath.Join(data, "policy.db")
	st, err := policy.OpenStore(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cat, _ := policy.DefaultCatalog()
	svc, err := policy.NewService(st, cat, signer, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	seed, err := policy.LoadSeed("../../deploy/sample/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res, err := policy.ApplySeed(ctx, svc, seed)
	if err != nil {
		t.Fatal(err)
	}
	id := res.Requests[0].ID

	code, out, errOut := runCmd(t, "", "policy", "show", "--data", data, id)
	if code != 0 || !strings.Contains(out, "PREAPPROVED") || !strings.Contains(out, "830916abb78e4157b9e45b641e34fcf6") {
		t.Fatalf("show: exit %d, %q %q", code, out, errOut)
	}
	code, out, errOut = runCmd(t, "", "policy", "revoke", "--data", data, "--as", "bob", "--comment", "done", id)
	if code != 0 || !strings.Contains(out, "REVOKED") {
		t.Fatalf("revoke: exit %d, %q %q", code, out, errOut)
	}
	code, out, errOut = runCmd(t, "", "policy", "history", "--data", data, "--output", "json", id)
	var h []policy.HistoryEntry
	if code != 0 || json.Unmarshal([]byte(out), &h) != nil || len(h) != 3 || h[2].Actor != "bob" || h[2].To != "REVOKED" || h[2].Comment != "done" {
		t.Fatalf("history: exit %d, %q %q", code, out, errOut)
	}
	pending, err := st.PendingOutbox(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	last := pending[len(pending)-1]
	if last.Topic == schemas.TopicLifecycle {
		last = pending[len(pending)-2]
	}
	m, err := grants.Decode(last.Key, last.Value, sign.NewKeyring(signer.PublicKey()))
	if err != nil || !m.Grant.Revoked || m.Grant.LoginID != "830916abb78e4157b9e45b641e34fcf6" {
		t.Errorf("the revocation in the outbox: %+v %v", m, err)
	}

	for _, tt := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"policy", "show", "--data", data, "ocid1.accessrequest.none"}, 1, `access_request "ocid1.accessrequest.none" not found`},
		{[]string{"policy", "revoke", "--data", data, id}, 1, "is REVOKED: action revoke is not allowed"},
		{[]string{"policy", "show", id}, 2, "usage: auditpipe policy show"},
		{[]string{"policy", "history", "--data", data, "--output", "yaml", id}, 2, "usage: auditpipe policy history"},
	} {
		code, _, errOut := runCmd(t, "", tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.err) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tt.args, code, errOut, tt.code, tt.err)
		}
	}
}
