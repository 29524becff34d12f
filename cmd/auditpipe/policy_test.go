package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/policy/api"
	"github.com/auditpipe/auditpipe/policy/scheduler"
)

// policyServer runs the real policy API over httptest on a real SQLite
// store, behind the real authentication, and returns its URL and a
// token file per identity name.
func policyServer(t *testing.T, ids ...auth.Identity) (string, map[string]string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	cfg := policy.DefaultStoreConfig()
	cfg.Path = filepath.Join(dir, "policy.db")
	st, err := policy.OpenStore(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cat, err := policy.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := sign.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := policy.NewService(st, cat, signer, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sched, err := scheduler.New(svc, signer, scheduler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(svc, api.Options{Scheduler: sched})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	var toks []auth.Token
	for _, id := range ids {
		tok, entry, err := auth.NewToken(id.Name, id.Role)
		if err != nil {
			t.Fatal(err)
		}
		entry.Groups = id.Groups
		toks = append(toks, entry)
		f := filepath.Join(dir, id.Name+".token")
		if err := os.WriteFile(f, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		files[id.Name] = f
	}
	authn, err := auth.New(toks, nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", authn.Require(h, auth.Roles()...))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL, files
}

// TestPolicyCLI walks the CLI through the seed's example 1-1 against the
// real API: inventory, a control and its assignment, a request that
// waits, a question and its answer, approval, extension, revoke; tables
// and JSON; read-then-act etags and a stale --if-match; the errors a
// caller sees.
func TestPolicyCLI(t *testing.T) {
	admin := auth.Identity{Name: "admin", Role: auth.RoleAdmin}
	alice := auth.Identity{Name: "alice", Role: auth.RoleApprover, Groups: []string{"EXPLICIT_APPROVED_POLICY_USERS"}}
	op := auth.Identity{Name: "oracle-op-1", Role: auth.RoleOperator}
	url, tokens := policyServer(t, admin, alice, op)
	vars := map[string]string{}
	steps := []struct {
		who      string // token file's identity; "" sends none
		args     string // {name} is a value captured earlier
		code     int
		contains []string // in stdout, or stderr when code != 0
		capture  string   // with --output json: the id into vars[capture]
	}{
		{"admin", "compartment create --id root --name root", 0, []string{"id                    root", "name                  root"}, ""},
		{"admin", "compartment create --id child --name child --parent root", 0, []string{"parent_id"}, ""},
		{"admin", "compartment list --parent root", 0, []string{"ID     NAME   PARENT  ETAG", "child  child  root    1"}, ""},
		{"admin", "compartment update child --description moved", 0, []string{"description           moved", "version               2"}, ""},
		{"admin", "resource create --id exa1 --name exa1 --type EXADATAINFRASTRUCTURE --compartment root --host exa1-cps01=CPS --host exa1-db01=HOST --host exa1-cel01=CELL --output json", 0, []string{`"hosts"`}, "res"},
		{"admin", "resource list --compartment root --subtree", 0, []string{"exa1  exa1  EXADATAINFRASTRUCTURE  root         exa1-cps01=CPS,exa1-db01=HOST,exa1-cel01=CELL  1"}, ""},
		{"admin", "resource update exa1 --name exadata-1", 0, []string{"exadata-1"}, ""},
		{"admin", "control create --name system_main --compartment root --type EXADATAINFRASTRUCTURE --approver-group EXPLICIT_APPROVED_POLICY_USERS --pre-approved INFRA_CPS_ONLY --approval-required INFRA_DIAG,INFRA_UPDATE_RESTART --output json", 0, []string{`"lifecycle_state": "CREATED"`}, "ctl"},
		{"admin", "control update {ctl} --max-duration 8", 0, []string{"max_duration_hours                8", "version                           2", "approval_required_op_action_list  INFRA_DIAG,INFRA_UPDATE_RESTART"}, ""},
		{"admin", "control update {ctl} --max-duration 9 --if-match 1", 1, []string{"412 PreconditionFailed", "is at version 2, not 1"}, ""},
		{"admin", "assignment create --control {ctl} --resource exa1 --always --output json", 0, []string{`"lifecycle_state": "APPLIED"`}, "asg"},
		{"admin", "control list --state ASSIGNED", 0, []string{"system_main  EXADATAINFRASTRUCTURE  ASSIGNED  INFRA_CPS_ONLY  INFRA_DIAG,INFRA_UPDATE_RESTART  EXPLICIT_APPROVED_POLICY_USERS  1  3"}, ""},
		{"admin", "assignment list --resource exa1", 0, []string{"system_main  exa1      APPLIED  always"}, ""},
		{"oracle-op-1", "control list", 1, []string{"403 NotAuthorized", "oracle-op-1 (role operator) may not call ListOperatorControls"}, ""},
		{"", "request list", 1, []string{"401"}, ""},

		{"oracle-op-1", "request create --resource exa1 --action INFRA_CPS_ONLY --reason SR-1 --severity S3 --duration 1 --output json", 0, []string{`"lifecycle_state": "PREAPPROVED"`, `"is_auto_approved": true`}, "auto"},
		{"oracle-op-1", "request create --resource exa1 --action INFRA_DIAG --reason SR-2 --severity S2 --duration 4 --output json", 0, []string{`"lifecycle_state": "APPROVALWAITING"`}, "req"},
		// The operator's SSH key (a file, comments and blank lines skipped)
		// and keystroke audit asked for; a file that holds no key is refused.
		{"oracle-op-1", "request create --resource exa1 --action INFRA_CPS_ONLY --reason SR-4 --severity S3 --duration 1 --audit-type COMMAND_KEYSTROKE_AUDIT --ssh-key {keyfile} --output json", 0,
			[]string{`"audit_type": "COMMAND_KEYSTROKE_AUDIT"`, `"ssh_public_keys": [`, `"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHh0ZXN0 op@laptop"`}, ""},
		{"oracle-op-1", "request create --resource exa1 --action INFRA_CPS_ONLY --reason SR-5 --severity S3 --duration 1 --ssh-key {badkeyfile}", 1, []string{"400 InvalidParameter", "ssh_public_keys", "not an authorized_keys line"}, ""},
		{"alice", "request list --state APPROVALWAITING", 0, []string{"{req}  APPROVALWAITING  oracle-op-1  exa1      INFRA_DIAG  4h"}, ""},
		{"oracle-op-1", "request approve {req}", 1, []string{"403 NotAuthorized"}, ""},
		{"alice", "request ask {req} which cell?", 2, nil, ""},
		{"alice", "request ask {req} which-cell", 0, []string{"lifecycle_state                   MOREINFO"}, ""},
		{"oracle-op-1", "request answer {req} exa1-cel01", 0, []string{"lifecycle_state                   APPROVALWAITING"}, ""},
		{"alice", "request approve {req} --audit-type COMMAND_KEYSTROKE_AUDIT --duration 2 --comment ok", 0, []string{"lifecycle_state                   APPROVED", "COMMAND_KEYSTROKE_AUDIT"}, ""},
		{"oracle-op-1", "request extend {req} --hours 1 --comment more", 0, []string{"lifecycle_state                   EXTENDING"}, ""},
		{"alice", "request approve {req}", 0, []string{"lifecycle_state                   EXTENDED", "extended_hours                    1"}, ""},
		{"alice", "request revoke {req} --comment done", 0, []string{"lifecycle_state                   REVOKED", "closure_comment                   done"}, ""},
		{"alice", "request revoke {req}", 1, []string{"409 IncorrectState", "REVOKED"}, ""},
		{"alice", "request history {req}", 0, []string{"alice        ask", "oracle-op-1  answer", "alice        revoke", "MOREINFO", "REVOKED", "CUSTOMER  which-cell", "OPERATOR  exa1-cel01"}, ""},
		// Two requests made in one millisecond list in id order, so the
		// filter, not creation order, picks the one row.
		{"oracle-op-1", "request list --limit 1 --state REVOKED", 0, []string{"{req}"}, ""},
		{"oracle-op-1", "request list --all --output json", 0, []string{`"id": "{req}"`, `"id": "{auto}"`}, ""},
		{"oracle-op-1", "request complete {auto}", 0, []string{"COMPLETED"}, ""},
		{"oracle-op-1", "request create --resource exa1 --action INFRA_UPDATE_RESTART --reason SR-3 --severity S1 --duration 2 --output json", 0, nil, "rej"},
		{"admin", "request reject {rej}", 1, []string{"400 InvalidParameter", "approver_comment"}, ""},
		{"admin", "request reject {rej} --comment no-SR", 0, []string{"REJECTED"}, ""},
		{"admin", "request show {rej} --output json", 0, []string{`"approver_comment": "no-SR"`}, ""},

		{"admin", "assignment show {asg}", 0, []string{"APPLIED"}, ""},
		{"admin", "control delete {ctl}", 1, []string{"409 Conflict", "unassign it first"}, ""},
		{"admin", "assignment delete {asg} --description done", 0, []string{"deleted assignment {asg}"}, ""},
		{"admin", "control delete {ctl}", 0, []string{"deleted operator control {ctl}"}, ""},
		{"admin", "control show {ctl}", 0, []string{"DELETED"}, ""},
		{"admin", "resource delete exa1", 1, []string{"409 Conflict"}, ""},
		{"admin", "compartment delete child", 0, []string{"deleted compartment child"}, ""},
		{"admin", "compartment show child", 1, []string{"404 NotAuthorizedOrNotFound"}, ""},
		{"admin", "request show", 2, nil, ""},
		{"admin", "request nothing", 2, nil, ""},
		{"admin", "control list --output yaml", 1, []string{"--output \"yaml\""}, ""},
	}
	keyDir := t.TempDir()
	vars["keyfile"], vars["badkeyfile"] = filepath.Join(keyDir, "id_ed25519.pub"), filepath.Join(keyDir, "bad.pub")
	if err := os.WriteFile(vars["keyfile"], []byte("# my laptop\n\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHh0ZXN0 op@laptop\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vars["badkeyfile"], []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	expand := func(s string) string {
		for k, v := range vars {
			s = strings.ReplaceAll(s, "{"+k+"}", v)
		}
		return s
	}
	for _, st := range steps {
		args := strings.Fields(expand(st.args))
		args = append(args, "--server", url)
		if st.who != "" {
			args = append(args, "--token-file", tokens[st.who])
		}
		code, out, errOut := runCmd(t, "", args...)
		if code != st.code {
			t.Fatalf("%s: %s: exit %d, want %d\nstdout %s\nstderr %s", st.who, strings.Join(args, " "), code, st.code, out, errOut)
		}
		text := out
		if code != 0 {
			text = errOut
		}
		// Columns compared as words: their widths are the table's.
		spaces := regexp.MustCompile(` +`)
		text = spaces.ReplaceAllString(text, " ")
		for _, c := range st.contains {
			c = spaces.ReplaceAllString(expand(c), " ")
			if !strings.Contains(text, c) {
				t.Errorf("%s: %s: output lacks %q:\n%s", st.who, st.args, c, text)
			}
		}
		if st.capture != "" {
			var obj struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal([]byte(out), &obj); err != nil || obj.ID == "" {
				t.Fatalf("%s: no id in %s (%v)", st.args, out, err)
			}
			vars[st.capture] = obj.ID
		}
	}
}

// TestPolicyCLITables: list tables are aligned columns under a header.
func TestPolicyCLITables(t *testing.T) {
	admin := auth.Identity{Name: "admin", Role: auth.RoleAdmin}
	url, tokens := policyServer(t, admin)
	for _, args := range [][]string{
		{"compartment", "create", "--id", "a", "--name", "short"},
		{"compartment", "create", "--id", "a-much-longer-id", "--name", "a much longer name"},
	} {
		if code, _, errOut := runCmd(t, "", append(args, "--server", url, "--token-file", tokens["admin"])...); code != 0 {
			t.Fatal(errOut)
		}
	}
	_, out, _ := runCmd(t, "", "compartment", "list", "--server", url, "--token-file", tokens["admin"])
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("%q", out)
	}
	col := regexp.MustCompile(`\S+(?: \S+)*`)
	starts := func(l string) []int {
		var s []int
		for _, m := range col.FindAllStringIndex(l, -1) {
			s = append(s, m[0])
		}
		return s
	}
	head := starts(lines[0])
	for _, l := range lines[1:] {
		got := starts(l)
		if len(got) != 3 || got[0] != head[0] || got[1] != head[1] { // the PARENT column is empty
			t.Errorf("not aligned under %v: %q %v", head, l, got)
		}
	}
}
