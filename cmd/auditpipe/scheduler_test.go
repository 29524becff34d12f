package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/auth"
)

// TestSchedulerCLI walks the scheduler's CLI against the real API:
// instances and a group, a recurring security-update job, its upcoming
// executions, skip, run-now and the work request it made, cancel, the
// job's history and deletion; tables and JSON; the errors a caller sees.
func TestSchedulerCLI(t *testing.T) {
	admin := auth.Identity{Name: "admin", Role: auth.RoleAdmin}
	auditor := auth.Identity{Name: "carol", Role: auth.RoleAuditor}
	op := auth.Identity{Name: "oracle-op-1", Role: auth.RoleOperator}
	url, tokens := policyServer(t, admin, auditor, op)
	// Tomorrow 02:00 UTC, and the two days after.
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(24*time.Hour + 2*time.Hour)
	at := func(d int) string { return day.Add(time.Duration(d) * 24 * time.Hour).Format(time.RFC3339) }
	vars := map[string]string{"first": at(0)}
	steps := []struct {
		who      string
		args     string
		code     int
		contains []string
		capture  string // with --output json: the id (or, for run-now, the execution's id) into vars[capture]
	}{
		{"admin", "compartment create --id root --name root", 0, nil, ""},
		{"admin", "instance create --id cell01 --host cell01.example.com --compartment root", 0, []string{"host cell01.example.com", "display_name cell01.example.com"}, ""},
		{"admin", "instance create --id cell02 --host cell02.example.com --compartment root", 0, nil, ""},
		{"admin", "instance create --id cell03 --host cell01.example.com --compartment root", 1, []string{"409 Conflict"}, ""},
		{"admin", "instance list --compartment root", 0, []string{"ID NAME HOST COMPARTMENT RESOURCE ETAG", "cell02 cell02.example.com cell02.example.com root 1"}, ""},
		{"admin", "instancegroup create --id cells --name cells --compartment root --instance cell01", 0, []string{"managed_instances cell01"}, ""},
		{"admin", "instancegroup members cells --instance cell02,cell01", 0, []string{"managed_instances cell02,cell01", "version 2"}, ""},
		{"admin", "instancegroup members cells --instance cell01 --if-match 1", 1, []string{"412 PreconditionFailed"}, ""},
		{"carol", "instancegroup list", 0, []string{"cells cells root cell02,cell01 2"}, ""},
		{"admin", "job create --name nightly --compartment root --first {first} --every 1 --unit DAY --operation UPDATEALL --update-type SECURITY --group cells --max-concurrency 1 --output json", 0, []string{`"schedule_type": "RECURRING"`}, "job"},
		{"admin", "job create --name bad --compartment root --first {first} --instance cell01 --group cells", 1, []string{"400 InvalidParameter"}, ""},
		{"oracle-op-1", "job list", 1, []string{"403 NotAuthorized", "may not call ListScheduledJobs"}, ""},
		{"carol", "job list", 0, []string{"{job} nightly ACTIVE every 1 DAY UPDATEALL SECURITY", "groups:cells 1"}, ""},
		{"carol", "job upcoming {job} --count 3", 0, []string{at(0) + " {job} nightly", at(1), at(2)}, ""},
		{"carol", "job upcoming --until 72h", 0, []string{at(0) + " {job} nightly", at(1)}, ""},
		{"carol", "job run-now {job}", 1, []string{"403 NotAuthorized"}, ""},
		{"admin", "job skip {job}", 0, []string{"time_next_execution " + at(1)}, ""},
		{"admin", "job run-now {job} --output json", 0, []string{`"trigger": "RUN_NOW"`, `"targets": 2`}, "exec"},
		{"carol", "workrequest list --execution {exec} --status IN_PROGRESS --output json", 0, []string{`"host": "cell02.example.com"`}, "wr"},
		{"carol", "workrequest list --execution {exec}", 0, []string{"cell02.example.com IN_PROGRESS 0%", "cell01.example.com ACCEPTED 0%"}, ""},
		{"carol", "workrequest show {wr}", 0, []string{"status IN_PROGRESS", "operation_type UPDATEALL"}, ""},
		{"carol", "workrequest logs {wr}", 0, []string{"TIME CODE MESSAGE", "dispatched to cell02.example.com"}, ""},
		{"carol", "workrequest errors {wr}", 0, []string{"TIME CODE MESSAGE"}, ""},
		{"admin", "workrequest cancel {wr}", 0, []string{"status CANCELING"}, ""},
		{"admin", "workrequest cancel {wr}", 1, []string{"409 IncorrectState"}, ""},
		{"admin", "instancegroup delete cells", 1, []string{"409 Conflict"}, ""},
		{"admin", "job delete {job}", 0, []string{"lifecycle_state DELETED"}, ""},
		{"carol", "job history {job}", 0, []string{"TIME ACTOR ACTION FROM TO COMMENT", "admin"}, ""},
		{"carol", "job show {job} --output json", 0, []string{`"lifecycle_state": "DELETED"`}, ""},
		{"admin", "instance delete cell03", 1, []string{"404 NotAuthorizedOrNotFound"}, ""},
		{"admin", "job upcoming a b", 2, nil, ""},
		{"admin", "workrequest nothing", 2, nil, ""},
	}
	expand := func(s string) string {
		for k, v := range vars {
			s = strings.ReplaceAll(s, "{"+k+"}", v)
		}
		return s
	}
	spaces := regexp.MustCompile(`[ \t]+`)
	for _, st := range steps {
		args := strings.Fields(expand(st.args))
		args = append(args, "--server", url, "--token-file", tokens[st.who])
		code, out, errOut := runCmd(t, "", args...)
		if code != st.code {
			t.Fatalf("%s: %s: exit %d, want %d\nstdout %s\nstderr %s", st.who, strings.Join(args, " "), code, st.code, out, errOut)
		}
		text := out
		if code != 0 {
			text = errOut
		}
		text = spaces.ReplaceAllString(text, " ")
		for _, c := range st.contains {
			if c = spaces.ReplaceAllString(expand(c), " "); !strings.Contains(text, c) {
				t.Errorf("%s: %s: output lacks %q:\n%s", st.who, st.args, c, text)
			}
		}
		if st.capture != "" {
			var obj struct {
				ID    string `json:"id"`
				Items []struct {
					ID string `json:"id"`
				} `json:"items"`
			}
			if err := json.Unmarshal([]byte(out), &obj); err != nil {
				// A list as JSON is an array.
				var items []struct {
					ID string `json:"id"`
				}
				if err := json.Unmarshal([]byte(out), &items); err != nil || len(items) == 0 {
					t.Fatalf("%s: no id in %s (%v)", st.args, out, err)
				}
				obj.ID = items[0].ID
			}
			if obj.ID == "" {
				t.Fatalf("%s: no id in %s", st.args, out)
			}
			vars[st.capture] = obj.ID
		}
	}
}
