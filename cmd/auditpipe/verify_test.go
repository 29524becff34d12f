package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/forwarder"
	"github.com/auditpipe/auditpipe/indexer"
	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/queryapi"
	"github.com/auditpipe/auditpipe/schemas"
	"github.com/auditpipe/auditpipe/verify"
)

// Regression: `auditpipe verify --server URL` sent no credentials, so
// against the authenticated endpoint of an all-in-one it could only ever
// get 401. It now takes --token-file (or $AUDITPIPE_TOKEN) as query does,
// and reports an intact trail as intact and a changed row as a finding.
func TestVerifyServer(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	ctx := context.Background()
	if _, err := clickhouse.Migrate(ctx, eng, 0, nil); err != nil {
		t.Fatal(err)
	}
	var in strings.Builder
	for _, e := range clickhousetest.ChainedEvents(t, "cell01", 20, 5, nil) {
		in.Write(e.AppendJSON(nil))
		in.WriteByte('\n')
	}
	if st, err := indexer.Load(ctx, eng, strings.NewReader(in.String()), indexer.LoadOptions{}); err != nil || st.Rejected > 0 {
		t.Fatalf("load: %+v %v", st, err)
	}
	tok, entry, err := auth.NewToken("auditor", auth.RoleAuditor)
	if err != nil {
		t.Fatal(err)
	}
	authn, err := auth.New([]auth.Token{entry}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(authn.Require(queryapi.NewQueryHandler(eng, nil, queryapi.QueryHandlerOptions{}), auth.RoleAuditor))
	defer srv.Close()
	tokFile := filepath.Join(t.TempDir(), "auditor.token")
	if err := os.WriteFile(tokFile, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := runCmd(t, "", "verify", "--server", srv.URL, "--token-file", tokFile)
	if code != 0 || !strings.Contains(out, "host cell01: 20 events") || !strings.Contains(out, "1 intact") {
		t.Fatalf("intact trail: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	t.Setenv("AUDITPIPE_TOKEN", "")
	if code, _, errOut := runCmd(t, "", "verify", "--server", srv.URL); code == 0 || !strings.Contains(errOut, "401") {
		t.Errorf("without a token: exit %d, stderr %q; want a 401", code, errOut)
	}
	t.Setenv("AUDITPIPE_TOKEN", tok)
	if err := eng.Exec(ctx, "ALTER TABLE audit_events UPDATE title = 'ls' WHERE seq = 7 SETTINGS mutations_sync = 1"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, out, errOut = runCmd(t, "", "verify", "--server", srv.URL)
		if code == 1 && strings.Contains(out, "seq 7") || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code != 1 || !strings.Contains(out, "seq 7") || !strings.Contains(out, "1 with findings") {
		t.Errorf("changed row: exit %d, stdout %q, stderr %q; want the finding at seq 7", code, out, errOut)
	}
}

// TestVerifySyslogOverlongLine: a line of the SIEM's file over 16 MiB
// (which ended verify --from-syslog with "token too long", issue 9
// review) is skipped, and its number is named on stderr.
func TestVerifySyslogOverlongLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "siem.log")
	long := "<14>1 2026-03-02T09:00:00Z web01 other - - - " + strings.Repeat("x", verify.MaxSyslogLine)
	if err := os.WriteFile(path, []byte("not syslog\n"+long+"\nnot syslog\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCmd(t, "", "verify", "--from-syslog", path)
	if code != 0 || !strings.Contains(out, "verify: 0 hosts") || !strings.Contains(errOut, "1 line(s) over 16 MiB skipped") || !strings.Contains(errOut, "line 2") {
		t.Errorf("exit %d, stdout %q, stderr %q; want 0, line 2 named as skipped", code, out, errOut)
	}
}

// TestVerifyKeysAndExitStatus: verify's --pubkey (one key for every host:
// said in the output), --pubkey-dir (each host's own key, issue 9 review
// F8: a checkpoint signed by another host's key is a finding) and its exit
// statuses: 0 intact, 1 changed, 3 unproven (issue 9 review F1: the forged
// events of a host that has no collector exited 0).
func TestVerifyKeysAndExitStatus(t *testing.T) {
	dir := t.TempDir()
	pubA, keyA, _ := ed25519.GenerateKey(rand.Reader)
	pubB, _, _ := ed25519.GenerateKey(rand.Reader)
	pubFile := filepath.Join(dir, "chain.key.pub")
	if err := sign.SavePublicKey(pubFile, pubA); err != nil {
		t.Fatal(err)
	}
	own, other := filepath.Join(dir, "own"), filepath.Join(dir, "other")
	if _, err := sign.Enroll(own, "web01", pubA); err != nil {
		t.Fatal(err)
	}
	if _, err := sign.Enroll(other, "web01", pubB); err != nil {
		t.Fatal(err)
	}
	evs := clickhousetest.ChainedEvents(t, "web01", 20, 10, keyA)
	clean := siemFile(t, filepath.Join(dir, "clean.log"), evs)
	var forged []schemas.Event
	for _, e := range clickhousetest.ChainedEvents(t, "db07", 3, 10, nil) {
		if e.Event != schemas.KindChain {
			forged = append(forged, e)
		}
	}
	withForged := siemFile(t, filepath.Join(dir, "forged.log"), append(evs, forged...))
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		want     string // in stdout, or stderr for a failure
	}{
		{name: "one key", args: []string{"--from-syslog", clean, "--pubkey", pubFile}, wantCode: 0,
			want: "one keyring of 1 key(s) for every host: a checkpoint of any host signed by any of them is accepted"},
		{name: "own key", args: []string{"--from-syslog", clean, "--pubkey-dir", own}, wantCode: 0, want: "host web01: 20 events"},
		{name: "another host's key", args: []string{"--from-syslog", clean, "--pubkey-dir", other}, wantCode: 1,
			want: "web01 seq 10: wrong_host_key: checkpoint 1..10 is signed by key " + sign.KeyID(pubA)},
		{name: "forged host", args: []string{"--from-syslog", withForged, "--pubkey", pubFile}, wantCode: exitUnproven,
			want: "db07 seq 1: no_signed_checkpoint"},
		{name: "forged host, per-host keys", args: []string{"--from-syslog", withForged, "--pubkey-dir", own}, wantCode: exitUnproven,
			want: "db07 seq 1: no_host_key"},
		{name: "forged host, no key", args: []string{"--from-syslog", withForged}, wantCode: 0, want: "signatures: not checked"},
		{name: "both flags", args: []string{"--from-syslog", clean, "--pubkey", pubFile, "--pubkey-dir", own}, wantCode: 1, want: "--pubkey excludes --pubkey-dir"},
		{name: "no such directory", args: []string{"--from-syslog", clean, "--pubkey-dir", filepath.Join(dir, "none")}, wantCode: 1, want: "--pubkey-dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, "", append([]string{"verify"}, tc.args...)...)
			if code != tc.wantCode || !strings.Contains(out+errOut, tc.want) {
				t.Errorf("exit %d, want %d with %q\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, tc.want, out, errOut)
			}
		})
	}
}

// siemFile writes evs to path as rsyslog writes the forwarder's messages
// at its defaults (one a line, control characters as #ooo) and returns path.
func siemFile(t *testing.T, path string, evs []schemas.Event) string {
	t.Helper()
	f := forwarder.Format{AppName: "opctl", SDName: "opctl", EnterpriseID: 32473, Facility: 10, MaxSize: 8192}
	var b strings.Builder
	for i := range evs {
		frames, err := forwarder.Frames(f, &evs[i])
		if err != nil {
			t.Fatal(err)
		}
		for _, fr := range frames {
			_, msg, _ := strings.Cut(string(fr), " ")
			for j := 0; j < len(msg); j++ {
				if c := msg[j]; c < 0x20 {
					fmt.Fprintf(&b, "#%03o", c)
				} else {
					b.WriteByte(c)
				}
			}
			b.WriteByte('\n')
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
