package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/chdb"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/testenv"
	"github.com/auditpipe/auditpipe/queryapi"
)

// TestReportCompliance: inventory rows stored in a chDB directory through
// the migrations, then `report compliance` read from it with each scope
// flag, as table and json, and through a query endpoint.
func TestReportCompliance(t *testing.T) {
	if _, err := chdb.FindLibrary(""); err != nil {
		testenv.SkipOrFail(t, testenv.CHDB, "needs libchdb.so (run 'make deps'): %v", err)
	}
	dir := filepath.Join(t.TempDir(), "chdb")
	ctx := context.Background()
	eng, err := clickhouse.OpenEmbedded("", dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clickhouse.Migrate(ctx, eng, 0, nil); err != nil {
		t.Fatal(err)
	}
	err = eng.Exec(ctx, `INSERT INTO instance_inventory
(time, instance_id, instance_name, compartment_id, compartment_path, group_ids, package, update_version, update_type, cves) VALUES
('2026-12-01 10:00:00', 'i-a', 'a', 'web', ['root','web'], ['g'], '', '', '', []),
('2026-12-01 10:00:00', 'i-a', 'a', 'web', ['root','web'], ['g'], 'sudo', '1.9.13p3-1+deb12u2', 'SECURITY', ['CVE-2025-32462','CVE-2025-32463']),
('2026-12-01 10:00:00', 'i-b', 'b', 'root', ['root'], [], '', '', '', [])`)
	if cerr := eng.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	const details = `
 Patch Compliance Report Sample
 ==============================


Detected out of 2 managed instances, 1 is missing security patches!

Managed Instance a (i-a)
 has the following outstanding security patches:
 sudo 1.9.13p3-1+deb12u2
 CVEs: CVE-2025-32462,   CVE-2025-32463

`
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--compartment", "root", "--recursive", "--details"}, details},
		{[]string{"--details"}, details},
		{[]string{"--compartment", "root"}, "Detected out of 1 managed instance, None is missing security patches!\n\n"},
		{[]string{"--group", "g"}, "Managed Instance Group ID: g\n\nDetected out of 1 managed instance, 1 is missing security patches!\n\n"},
	}
	for _, tc := range tests {
		args := append([]string{"report", "compliance", "--embedded", dir}, tc.args...)
		code, out, errOut := runCmd(t, "", args...)
		if code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", tc.args, code, errOut)
		}
		if !strings.HasSuffix(out, tc.want) || !strings.HasPrefix(out, "\n Patch Compliance Report Sample\n") {
			t.Errorf("%v:\n%s\nwant it to end with:\n%s", tc.args, out, tc.want)
		}
	}

	// Through an auditor's query endpoint over the same directory: the
	// scope's value travels as a query parameter.
	func() {
		eng := clickhousetest.OpenEmbedded(t, dir)
		defer eng.Close()
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
		code, out, errOut := runCmd(t, "", "report", "compliance", "--compartment", "root", "--recursive", "--details", "--server", srv.URL, "--token-file", tokFile)
		if code != 0 {
			t.Fatalf("server: exit %d, stderr %q", code, errOut)
		}
		if !strings.HasSuffix(out, details) {
			t.Errorf("server:\n%s\nwant it to end with:\n%s", out, details)
		}
	}()

	code, out, errOut := runCmd(t, "", "report", "compliance", "--embedded", dir, "--output", "json", "--details", "--group", "g")
	if code != 0 {
		t.Fatalf("json: exit %d, stderr %q", code, errOut)
	}
	var rep struct {
		Total     int `json:"total_instances"`
		Count     int `json:"vulnerable_instance_count"`
		Instances []struct {
			ID      string `json:"id"`
			Updates []struct {
				CVEs []string `json:"related_cves"`
			} `json:"security_updates"`
		} `json:"vulnerable_instances"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if rep.Total != 1 || rep.Count != 1 || len(rep.Instances) != 1 || rep.Instances[0].ID != "i-a" || len(rep.Instances[0].Updates[0].CVEs) != 2 {
		t.Errorf("json: %s", out)
	}
}

func TestReportComplianceUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"report"}, 2, "usage: auditpipe report <subcommand>"},
		{[]string{"report", "-h"}, 0, "compliance"},
		{[]string{"report", "complaince"}, 2, `unknown subcommand "complaince"`},
		{[]string{"report", "compliance", "x"}, 2, "usage: auditpipe report compliance"},
		{[]string{"report", "compliance", "--compartment", "c", "--group", "g", "--embedded", "/nonexistent"}, 1, "exclude each other"},
		{[]string{"report", "compliance", "--recursive", "--embedded", "/nonexistent"}, 1, "--recursive needs --compartment"},
		{[]string{"report", "compliance", "--output", "csv"}, 1, "want table or json"},
		{[]string{"report", "compliance"}, 1, "--server URL"},
	}
	for _, tc := range tests {
		code, _, errOut := runCmd(t, "", tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d with %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
}
