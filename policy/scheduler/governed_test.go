package scheduler

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/schemas"
)

// governedResource creates an EXACC resource with one host on the HOST
// layer, the control ctl assigned to it always (none when ctl is nil),
// and a managed instance on its host.
func (f *fixture) governedResource(id string, ctl *policy.ControlInput) Instance {
	f.t.Helper()
	host := id + "-db01"
	must[policy.Resource](f.t)(f.pol.CreateResource(f.ctx, admin, policy.ResourceInput{ID: id, Name: id, ResourceType: policy.ResourceExaCC, CompartmentID: "tenancy",
		Hosts: []policy.Host{{Name: id + "-cps01", Layer: "CPS"}, {Name: host, Layer: "HOST"}}}))
	if ctl != nil {
		ctl.CompartmentID, ctl.ResourceType = "tenancy", policy.ResourceExaCC
		c := must[policy.Control](f.t)(f.pol.CreateControl(f.ctx, admin, *ctl))
		must[policy.Assignment](f.t)(f.pol.CreateAssignment(f.ctx, admin, policy.AssignmentInput{OperatorControlID: c.ID, ResourceID: id,
			AssignmentWindow: policy.AssignmentWindow{IsEnforcedAlways: true}}))
	}
	return must[Instance](f.t)(f.svc.CreateInstance(f.ctx, admin, InstanceInput{ID: host, DisplayName: host, Host: host, CompartmentID: "tenancy", ResourceID: id}))
}

// grantsOf returns the grant messages of the outbox for login.
func (f *fixture) grantsOf(login string) (issued, revoked int) {
	f.t.Helper()
	recs, err := f.store.Outbox(f.ctx, 0, 100000)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, r := range recs {
		if r.Topic != schemas.TopicGrants {
			continue
		}
		m, err := grants.Decode(r.Key, r.Value, f.keys)
		if err != nil {
			f.t.Fatal(err)
		}
		if m.Grant.LoginID == login {
			if m.Grant.Revoked {
				revoked++
			} else {
				issued++
			}
		}
	}
	return issued, revoked
}

// TestGovernedPatchRun: a job on an instance of a resource under an
// operator control gets an access request for INFRA_UPDATE_RESTART from
// the policy service under the scheduler's machine identity, and its
// work request waits in ACCEPTED until the grant exists: at once when the
// control pre-approves the action; after an approver's approval when it
// requires one (ungoverned targets of the job run meanwhile); never when
// nobody approves (FAILED at the cutoff with the reason), when an
// approver rejects, or when no control governs the resource. The dispatch
// carries the request and its grant's login user; the scheduler completes
// the request when the execution ends. Against the real policy service,
// on SQLite and PostgreSQL.
func TestGovernedPatchRun(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b)
			pre := f.governedResource("exa-pre", &policy.ControlInput{OperatorControlName: "patch_preapproved", PreApprovedOpActions: []string{GovernedAction}})
			appr := f.governedResource("exa-appr", &policy.ControlInput{OperatorControlName: "patch_approved", ApproverGroupsList: []string{"PATCH_APPROVERS"}, ApprovalRequiredOpActions: []string{GovernedAction}})
			none := f.governedResource("exa-none", nil)
			f.instances("plain01")

			t.Run("pre-approved", func(t *testing.T) {
				j := f.job(JobInput{ManagedInstances: []string{pre.ID}})
				f.tick(j.TimeNextExecution)
				ds := f.dispatches()
				if len(ds) != 1 {
					t.Fatalf("dispatched %+v", ds)
				}
				d := ds[0]
				r := must[policy.AccessRequest](t)(f.pol.GetRequest(f.ctx, d.ReqAuthID))
				if r.LifecycleState != policy.StatePreApproved || !r.IsAutoApproved || r.RequestorID != ActorScheduler || r.UserID != d.LoginID ||
					!slices.Equal(r.ActionRequests, []string{GovernedAction}) || !slices.Equal(r.SubResourceList, []string{pre.Host}) ||
					!strings.Contains(r.Reason, j.ID) || r.DurationHours != 6 {
					t.Fatalf("request %+v for dispatch %+v", r, d)
				}
				w := f.report(d, 1, schemas.WorkSucceeded, 100, "0 upgraded")
				if w.Status != Succeeded || w.AccessRequestID != r.ID || w.LoginID != r.UserID {
					t.Fatalf("work request %+v", w)
				}
				// The next tick completes the request: its grant is revoked.
				if res := f.tick(f.clock.Now().Add(time.Minute)); res.RequestsClosed != 1 {
					t.Fatalf("tick %+v", res)
				}
				r = must[policy.AccessRequest](t)(f.pol.GetRequest(f.ctx, r.ID))
				if r.LifecycleState != policy.StateCompleted {
					t.Fatalf("request %s after the run", r.LifecycleState)
				}
				if issued, revoked := f.grantsOf(r.UserID); issued != 1 || revoked != 1 {
					t.Fatalf("grant %s: %d issued, %d revoked", r.UserID, issued, revoked)
				}
				// The work request's lifecycle events are keyed by the resource.
				for _, l := range f.lifecycle(w.ID) {
					if l.ResourceID != "exa-pre" || l.Details["req_auth_id"] != r.ID {
						t.Errorf("event %+v", l)
					}
				}
			})

			t.Run("approved", func(t *testing.T) {
				j := f.job(JobInput{ManagedInstances: []string{"plain01", appr.ID}})
				f.tick(j.TimeNextExecution)
				ds := f.dispatches()
				if len(ds) != 1 || ds[0].Host != "plain01" || ds[0].ReqAuthID != "" {
					t.Fatalf("dispatched %+v: the ungoverned target should run alone", ds)
				}
				execs, _, _ := f.svc.ListExecutions(f.ctx, j.ID, pageAll)
				ws := f.work(execs[0].ID)
				if ws[1].Status != Accepted || ws[1].AccessRequestID == "" {
					t.Fatalf("governed work request %+v", ws[1])
				}
				r := must[policy.AccessRequest](t)(f.pol.GetRequest(f.ctx, ws[1].AccessRequestID))
				if r.LifecycleState != policy.StateApprovalWaiting {
					t.Fatalf("request %s", r.LifecycleState)
				}
				f.tick(f.clock.Now().Add(10 * time.Minute))
				if ds := f.dispatches(); len(ds) != 0 {
					t.Fatalf("dispatched before the approval: %+v", ds)
				}
				must[policy.AccessRequest](t)(f.pol.Approve(f.ctx, approver, r.ID, policy.ApproveInput{Comment: "patch window agreed"}))
				f.tick(f.clock.Now().Add(time.Minute))
				ds = f.dispatches()
				r = must[policy.AccessRequest](t)(f.pol.GetRequest(f.ctx, r.ID))
				if len(ds) != 1 || ds[0].Host != appr.Host || ds[0].ReqAuthID != r.ID || ds[0].LoginID != r.UserID || r.UserID == "" {
					t.Fatalf("after approval, dispatched %+v for request %+v", ds, r)
				}
				logs := must[[]LogEntry](t)(f.svc.WorkRequestLogs(f.ctx, ws[1].ID))
				if len(logs) != 1 || !strings.Contains(logs[0].Message, "under access request "+r.ID) {
					t.Errorf("logs %+v", logs)
				}
			})

			t.Run("not approved by the cutoff", func(t *testing.T) {
				j := f.job(JobInput{ManagedInstances: []string{appr.ID}, CutoffMinutes: 60})
				f.tick(j.TimeNextExecution)
				execs, _, _ := f.svc.ListExecutions(f.ctx, j.ID, pageAll)
				e := execs[0]
				f.tick(e.TimeCutoff.Add(-time.Second))
				if w := f.work(e.ID)[0]; w.Status != Accepted {
					t.Fatalf("before the cutoff: %s", w.Status)
				}
				f.tick(e.TimeCutoff)
				w := f.work(e.ID)[0]
				if w.Status != Failed || !strings.Contains(w.Message, "cutoff") || !strings.Contains(w.Message, "access request "+w.AccessRequestID+" is APPROVALWAITING") {
					t.Fatalf("at the cutoff: %s %q", w.Status, w.Message)
				}
				errs := must[[]LogEntry](t)(f.svc.WorkRequestErrors(f.ctx, w.ID))
				if len(errs) != 1 || errs[0].Code != codeAccessRefused {
					t.Fatalf("errors %+v", errs)
				}
				if ds := f.dispatches(); len(ds) != 0 {
					t.Fatalf("dispatched %+v", ds)
				}
				// The waiting request is withdrawn with the execution.
				f.tick(f.clock.Now().Add(time.Minute))
				if r := must[policy.AccessRequest](t)(f.pol.GetRequest(f.ctx, w.AccessRequestID)); r.LifecycleState != policy.StateCompleted {
					t.Fatalf("request %s", r.LifecycleState)
				}
			})

			t.Run("rejected", func(t *testing.T) {
				j := f.job(JobInput{ManagedInstances: []string{appr.ID}})
				f.tick(j.TimeNextExecution)
				execs, _, _ := f.svc.ListExecutions(f.ctx, j.ID, pageAll)
				w := f.work(execs[0].ID)[0]
				must[policy.AccessRequest](t)(f.pol.Reject(f.ctx, approver, w.AccessRequestID, "not during quarter end", 0))
				f.tick(f.clock.Now().Add(time.Minute))
				w = f.work(execs[0].ID)[0]
				if w.Status != Failed || !strings.Contains(w.Message, "is REJECTED: not during quarter end") {
					t.Fatalf("%s %q", w.Status, w.Message)
				}
			})

			t.Run("no control", func(t *testing.T) {
				j := f.job(JobInput{ManagedInstances: []string{none.ID, "plain01"}})
				f.tick(j.TimeNextExecution)
				execs, _, _ := f.svc.ListExecutions(f.ctx, j.ID, pageAll)
				ws := f.work(execs[0].ID)
				if ws[0].Status != Failed || ws[0].AccessRequestID != "" || !strings.Contains(ws[0].Message, "the access request for resource exa-none was refused: ") ||
					!strings.Contains(ws[0].Message, "no operator control is in force") {
					t.Fatalf("%s %q", ws[0].Status, ws[0].Message)
				}
				if ws[1].Status != InProgress {
					t.Fatalf("the ungoverned target: %s", ws[1].Status)
				}
				e := must[Execution](t)(f.svc.GetExecution(f.ctx, execs[0].ID))
				if len(e.Requests) != 1 || e.Requests[0].Error == "" || !e.Requests[0].Closed {
					t.Fatalf("requests %+v", e.Requests)
				}
			})

			// Every request the scheduler made is its own, and none
			// was made twice.
			reqs, _, err := f.pol.ListRequests(f.ctx, policy.RequestFilter{RequestorID: ActorScheduler, Page: policy.Page{Limit: 100}})
			if err != nil || len(reqs) != 4 {
				t.Fatalf("the scheduler's requests: %d, %v", len(reqs), err)
			}
			var states []string
			for _, r := range reqs {
				states = append(states, string(r.LifecycleState))
			}
			slices.Sort(states)
			// approved: its run is still in progress; the others ended.
			if got := strings.Join(states, " "); got != "APPROVED COMPLETED COMPLETED REJECTED" {
				t.Errorf("request states %s", got)
			}
		})
	}
}

// compileSchema compiles one of the contract's JSON Schemas.
func compileSchema(t *testing.T, name string) *jsonschema.Schema {
	t.Helper()
	path := filepath.Join("..", "..", "schemas", "jsonschema", name+".schema.json")
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	doc, err := jsonschema.UnmarshalJSON(fh)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(path, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

// TestPublishedMatchSchemas: what the scheduler writes to the outbox
// (lifecycle events of jobs and work requests, the signed dispatch
// payloads, RUN and CANCEL, governed or not) matches the contract's JSON
// Schemas, not only the Go types.
func TestPublishedMatchSchemas(t *testing.T) {
	f := newFixture(t, backends()[0])
	pre := f.governedResource("exa-pre", &policy.ControlInput{OperatorControlName: "patch_preapproved", PreApprovedOpActions: []string{GovernedAction}})
	f.instances("h01", "h02")
	j := f.job(JobInput{ManagedInstances: []string{pre.ID, "h01", "h02"}, MaxConcurrency: "2", MaxErrors: "0"})
	f.tick(j.TimeNextExecution)
	ds := f.dispatches()
	f.report(ds[0], 1, schemas.WorkFailed, 10, "")
	must[WorkRequest](t)(f.svc.CancelWorkRequest(f.ctx, admin, ds[1].WorkRequestID))
	f.report(ds[1], 1, schemas.WorkCanceled, 10, "stopped")
	f.tick(f.clock.Now().Add(time.Minute))
	lifecycle, dispatch := compileSchema(t, "lifecycle"), compileSchema(t, "dispatch")
	recs, err := f.store.Outbox(f.ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range recs {
		var (
			payload []byte
			sch     *jsonschema.Schema
		)
		switch r.Topic {
		case schemas.TopicLifecycle:
			payload, sch = r.Value, lifecycle
		case schemas.TopicDispatch:
			payload, _, err = sign.Open(r.Value, f.keys)
			if err != nil {
				t.Fatal(err)
			}
			sch = dispatch
		default:
			continue
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(inst); err != nil {
			t.Errorf("%s %s: %v", r.Topic, payload, err)
		}
		var kind struct {
			Kind   string `json:"kind"`
			Action string `json:"action"`
		}
		_ = json.Unmarshal(payload, &kind)
		seen[kind.Kind+kind.Action]++
	}
	for _, k := range []string{"scheduled_job.created", "scheduled_job.fired", "work_request.accepted", "work_request.dispatched", "work_request.failed",
		"work_request.cancel_requested", "work_request.canceled", "scheduled_job.execution_failed", "RUN", "CANCEL"} {
		if seen[k] == 0 {
			t.Errorf("no %s checked (%v)", k, seen)
		}
	}
}
