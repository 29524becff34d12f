package main

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/clickhouse/chdb"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/testenv"
	"github.com/auditpipe/auditpipe/policy/auditreport"
	"github.com/auditpipe/auditpipe/queryapi"
)

// generatedLine is the report's line that holds the time it was made.
var generatedLine = regexp.MustCompile(`(?m)^generated [^:]+:[^:]+:[^:]+: `)

// TestRequestReport: the bundled sample and the report package's second
// session, parsed and indexed by the CLI into chDB, then `request report`
// read from the directory and through an authenticated query endpoint:
// the text is the report package's golden file, and --output json its tree.
func TestRequestReport(t *testing.T) {
	if _, err := chdb.FindLibrary(""); err != nil {
		testenv.SkipOrFail(t, testenv.CHDB, "needs libchdb.so (run 'make deps'): %v", err)
	}
	log := mustRead(t, "../../deploy/sample/audit.log") + mustRead(t, "../../policy/auditreport/testdata/second-session.log")
	code, events, errOut := runCmd(t, log, "parse", "--host", "cell01",
		"--passwd", "../../deploy/sample/passwd", "--group", "../../deploy/sample/group",
		"--grant", "830916abb78e4157b9e45b641e34fcf6=req1", "--grant", "5f1c0e9d2a7b4c3e8d6f0a1b2c3d4e5f=req2", "-")
	if code != 0 || errOut != "" {
		t.Fatalf("parse: exit %d, stderr %q", code, errOut)
	}
	dir := filepath.Join(t.TempDir(), "chdb")
	if code, _, errOut := runCmd(t, events, "index", "--embedded", dir, "-"); code != 0 {
		t.Fatalf("index: exit %d, stderr %q", code, errOut)
	}
	want := mustRead(t, "../../policy/auditreport/testdata/req1.txt")
	same := func(t *testing.T, got string) {
		t.Helper()
		g := generatedLine.ReplaceAllString(got, "generated TIME: ")
		w := generatedLine.ReplaceAllString(want, "generated TIME: ")
		if g != w {
			t.Errorf("report:\n%s\nwant (but the time it was made):\n%s", got, want)
		}
	}

	t.Run("embedded", func(t *testing.T) {
		code, out, errOut := runCmd(t, "", "request", "report", "req1", "--keystrokes", "--embedded", dir)
		if code != 0 {
			t.Fatalf("exit %d, stderr %q", code, errOut)
		}
		same(t, out)
		code, out, errOut = runCmd(t, "", "request", "report", "--output", "json", "--embedded", dir, "req1")
		if code != 0 {
			t.Fatalf("json: exit %d, stderr %q", code, errOut)
		}
		var rep auditreport.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("json: %v\n%s", err, out)
		}
		if rep.Commands != 16 || len(rep.Sessions) != 2 || len(rep.Sessions[0].Processes) != 7 ||
			rep.Sessions[0].Processes[3].UserChange == nil || rep.Sessions[0].Processes[3].UserChange.To != "celladmin" ||
			len(rep.Sessions[0].KeystrokeEvents) != 0 {
			t.Errorf("json: %d commands, %d sessions; want the fixture's tree without keystrokes listed:\n%s", rep.Commands, len(rep.Sessions), out)
		}
	})

	t.Run("through the query endpoint", func(t *testing.T) {
		eng := clickhousetest.OpenEmbedded(t, dir)
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
		code, out, errOut := runCmd(t, "", "request", "report", "req1", "--keystrokes", "--server", srv.URL, "--token-file", tokFile)
		if code != 0 {
			t.Fatalf("exit %d, stderr %q", code, errOut)
		}
		same(t, out)
		t.Setenv("AUDITPIPE_TOKEN", "")
		if code, _, errOut := runCmd(t, "", "request", "report", "req1", "--server", srv.URL); code != 1 || !strings.Contains(errOut, "401") {
			t.Errorf("without a token: exit %d, stderr %q; want a 401", code, errOut)
		}
	})
}

// TestRequestReportUsage: what a wrong command line gets.
func TestRequestReportUsage(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{"request"}, 2, "usage: auditpipe request <subcommand>"},
		{[]string{"request", "-h"}, 0, "report"},
		{[]string{"request", "raport", "x"}, 2, `unknown subcommand "raport"`},
		{[]string{"request", "report"}, 2, "usage: auditpipe request report ID"},
		{[]string{"request", "report", "a", "b"}, 2, "usage: auditpipe request report ID"},
		{[]string{"request", "report", "--outptu", "json", "x"}, 2, "did you mean --output?"},
		{[]string{"request", "report", "--output", "xml", "x"}, 1, "want text or json"},
		{[]string{"request", "report", "x"}, 1, "--server URL"},
		{[]string{"request", "report", "x", "--server", "http://127.0.0.1:1/", "--embedded", "d"}, 1, "--server excludes"},
		{[]string{"help", "request"}, 0, "usage: auditpipe request"},
	}
	for _, tt := range tests {
		code, _, errOut := runCmd(t, "", tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.contains) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tt.args, code, errOut, tt.code, tt.contains)
		}
	}
}
