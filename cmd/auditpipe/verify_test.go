package main

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/indexer"
	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/queryapi"
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
