package scheduler

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/schemas"
)

// TestJobValidation: every invalid field of a job is named.
func TestJobValidation(t *testing.T) {
	f := newFixture(t, backends()[0])
	f.instances("h01", "h02")
	must[Group](t)(f.svc.CreateGroup(f.ctx, admin, GroupInput{ID: "g1", DisplayName: "g1", CompartmentID: "tenancy", ManagedInstances: []string{"h01"}}))
	good := func(change func(in *JobInput)) JobInput {
		in := JobInput{DisplayName: "j", CompartmentID: "tenancy", ScheduleType: Recurring, IntervalType: Day, IntervalValue: 1,
			TimeNextExecution: t0.Add(time.Hour), OperationType: schemas.OperationUpdateAll, UpdateType: schemas.UpdateSecurity, ManagedInstances: []string{"h01"}}
		change(&in)
		return in
	}
	tests := []struct {
		name, field, msg string
		in               JobInput
	}{
		{"no name", "display_name", "is required", good(func(in *JobInput) { in.DisplayName = " " })},
		{"zone", "time_zone", "is not an IANA", good(func(in *JobInput) { in.TimeZone = "Mars/Olympus" })},
		{"local zone", "time_zone", "is not an IANA", good(func(in *JobInput) { in.TimeZone = "Local" })},
		{"schedule type", "schedule_type", "is not ONETIME or RECURRING", good(func(in *JobInput) { in.ScheduleType = "WEEKLY" })},
		{"interval type", "interval_type", "is not HOUR", good(func(in *JobInput) { in.IntervalType = "YEAR" })},
		{"interval value", "interval_value", "0 is not 1-1000", good(func(in *JobInput) { in.IntervalValue = 0 })},
		{"onetime with interval", "interval_type", "takes no interval", good(func(in *JobInput) { in.ScheduleType = OneTime })},
		{"past", "time_next_execution", "is in the past", good(func(in *JobInput) { in.TimeNextExecution = t0.Add(-time.Second) })},
		{"no time", "time_next_execution", "is required", good(func(in *JobInput) { in.TimeNextExecution = time.Time{} })},
		{"operation", "operation_type", "is not one of", good(func(in *JobInput) { in.OperationType = "COMPOUND" })},
		{"install without packages", "operation_type", "must name at least one package", good(func(in *JobInput) { in.OperationType, in.UpdateType = schemas.OperationInstall, "" })},
		{"update type on remove", "operation_type", "goes with UPDATEALL only", good(func(in *JobInput) { in.OperationType, in.PackageNames = schemas.OperationRemove, []string{"telnet"} })},
		{"bad package", "operation_type", "is not a package name", good(func(in *JobInput) {
			in.OperationType, in.UpdateType, in.PackageNames = schemas.OperationInstall, "", []string{"vim && reboot"}
		})},
		{"both target kinds", "managed_instances", "not both", good(func(in *JobInput) { in.ManagedInstanceGroups = []string{"g1"} })},
		{"no target", "managed_instances", "name the managed instances", good(func(in *JobInput) { in.ManagedInstances = nil })},
		{"twice", "managed_instances[1]", "listed twice", good(func(in *JobInput) { in.ManagedInstances = []string{"h01", "h01"} })},
		{"unknown instance", "managed_instances[1]", `no managed instance "h09"`, good(func(in *JobInput) { in.ManagedInstances = []string{"h01", "h09"} })},
		{"unknown group", "managed_instance_groups[0]", `no managed instance group "g9"`, good(func(in *JobInput) { in.ManagedInstances, in.ManagedInstanceGroups = nil, []string{"g9"} })},
		{"concurrency 0", "max_concurrency", "at least 1", good(func(in *JobInput) { in.MaxConcurrency = "0" })},
		{"concurrency text", "max_concurrency", "not a count or a percentage", good(func(in *JobInput) { in.MaxConcurrency = "half" })},
		{"errors over 100%", "max_errors", "more than 100%", good(func(in *JobInput) { in.MaxErrors = "150%" })},
		{"cutoff", "cutoff_minutes", "is not 1-10080", good(func(in *JobInput) { in.CutoffMinutes = 20000 })},
		{"timeout", "timeout_minutes", "is not 1-10080", good(func(in *JobInput) { in.TimeoutMinutes = -1 })},
		{"compartment", "compartment_id", `no compartment "nope"`, good(func(in *JobInput) { in.CompartmentID = "nope" })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.svc.CreateJob(f.ctx, admin, tt.in)
			var ve *policy.ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, policy.ErrInvalid) {
				t.Fatalf("error %v, want a validation error", err)
			}
			for _, p := range ve.Problems {
				if p.Field == tt.field && strings.Contains(p.Message, tt.msg) {
					return
				}
			}
			t.Errorf("problems %+v, want %s: %q", ve.Problems, tt.field, tt.msg)
		})
	}
	j := must[Job](t)(f.svc.CreateJob(f.ctx, admin, good(func(in *JobInput) {})))
	if j.TimeZone != "UTC" || j.MaxConcurrency != "100%" || j.MaxErrors != "100%" || j.CutoffMinutes != 240 || j.TimeoutMinutes != 120 || j.LifecycleState != JobActive {
		t.Errorf("defaults %+v", j)
	}
}

// TestRunNowSkipDelete: a recurring job's upcoming executions, skip next
// (recurring only), run now (overriding the schedule, which stays),
// delete (no more firing; work not dispatched is canceled, running work
// finishes), and the job's history of all of it.
func TestRunNowSkipDelete(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b)
			f.instances("h01", "h02")
			berlin := zone(t, "Europe/Berlin")
			first := time.Date(2026, 3, 28, 2, 30, 0, 0, berlin)
			j := f.job(JobInput{ScheduleType: Recurring, TimeZone: "Europe/Berlin", IntervalType: Day, IntervalValue: 1, TimeNextExecution: first,
				ManagedInstances: []string{"h01", "h02"}, MaxConcurrency: "1"})
			up := must[[]Upcoming](t)(f.svc.Upcoming(f.ctx, j.ID, 3))
			wantUp := []string{"2026-03-28T02:30:00+01:00", "2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00"}
			for i, u := range up {
				if got := u.Time.In(berlin).Format(time.RFC3339); got != wantUp[i] {
					t.Errorf("upcoming[%d] = %s, want %s", i, got, wantUp[i])
				}
			}
			// Skip: the next execution is the one after.
			j = must[Job](t)(f.svc.SkipNext(f.ctx, admin, j.ID, j.Version))
			if got := j.TimeNextExecution.In(berlin).Format(time.RFC3339); got != wantUp[1] {
				t.Fatalf("after skip, next %s", got)
			}
			if _, err := f.svc.SkipNext(f.ctx, admin, j.ID, j.Version-1); !errors.Is(err, policy.ErrVersion) {
				t.Fatalf("skip with an old version: %v", err)
			}
			// The skipped time passes: nothing fires.
			if res := f.tick(first.Add(time.Minute)); res.Fired != 0 {
				t.Fatalf("fired a skipped execution: %+v", res)
			}
			// Run now: an execution at once, the schedule unchanged.
			f.clock.Set(first.Add(time.Hour))
			e := must[Execution](t)(f.svc.RunNow(f.ctx, admin, j.ID, 0))
			if e.Trigger != TriggerRunNow || !e.TimeScheduled.Equal(f.clock.Now()) {
				t.Fatalf("run now %+v", e)
			}
			if got := must[Job](t)(f.svc.GetJob(f.ctx, j.ID)); !got.TimeNextExecution.Equal(j.TimeNextExecution) || got.TimeLastExecution.IsZero() {
				t.Fatalf("run now moved the schedule: %+v", got)
			}
			d := f.dispatches()
			if len(d) != 1 || d[0].Host != "h01" {
				t.Fatalf("dispatched %+v", d)
			}
			// Delete: h01 keeps running, h02 (not dispatched) is canceled.
			j = must[Job](t)(f.svc.DeleteJob(f.ctx, admin, j.ID, 0))
			if j.LifecycleState != JobDeleted || !j.TimeNextExecution.IsZero() {
				t.Fatalf("deleted %+v", j)
			}
			ws := f.work(e.ID)
			if ws[0].Status != InProgress || ws[1].Status != Canceled || !strings.Contains(ws[1].Message, "its job was deleted by admin") {
				t.Fatalf("after delete %v (%q)", statuses(ws), ws[1].Message)
			}
			f.report(d[0], 1, schemas.WorkSucceeded, 100, "")
			if e := must[Execution](t)(f.svc.GetExecution(f.ctx, e.ID)); e.State != ExecutionCanceled {
				t.Errorf("execution %s", e.State)
			}
			if res := f.tick(first.Add(72 * time.Hour)); res.Fired != 0 {
				t.Errorf("a deleted job fired: %+v", res)
			}
			for _, call := range []func() error{
				func() error { _, err := f.svc.SkipNext(f.ctx, admin, j.ID, 0); return err },
				func() error { _, err := f.svc.RunNow(f.ctx, admin, j.ID, 0); return err },
				func() error { _, err := f.svc.DeleteJob(f.ctx, admin, j.ID, 0); return err },
			} {
				if err := call(); !errors.Is(err, policy.ErrConflict) {
					t.Errorf("on a deleted job: %v", err)
				}
			}
			var actions []string
			for _, h := range must[[]policy.HistoryEntry](t)(f.svc.History(f.ctx, ObjectJob, j.ID)) {
				actions = append(actions, h.Action)
			}
			if got, want := strings.Join(actions, " "), "created skipped run_now deleted"; got != want {
				t.Errorf("job history %q, want %q", got, want)
			}
			if got := testutil.ToFloat64(f.svc.m.skipped.WithLabelValues("skip_next")); got != 1 {
				t.Errorf("skipped metric %v", got)
			}
			if got := testutil.ToFloat64(f.svc.m.fired.WithLabelValues("RUN_NOW")); got != 1 {
				t.Errorf("fired metric %v", got)
			}

			// A one-time job: skip is refused; run now is its run.
			once := f.job(JobInput{ManagedInstances: []string{"h02"}, TimeNextExecution: f.clock.Now().Add(24 * time.Hour)})
			if _, err := f.svc.SkipNext(f.ctx, admin, once.ID, 0); !errors.Is(err, policy.ErrConflict) {
				t.Fatalf("skip on a one-time job: %v", err)
			}
			must[Execution](t)(f.svc.RunNow(f.ctx, admin, once.ID, 0))
			if got := must[Job](t)(f.svc.GetJob(f.ctx, once.ID)); !got.TimeNextExecution.IsZero() {
				t.Errorf("one-time job still due at %s after run now", got.TimeNextExecution)
			}
			if res := f.tick(f.clock.Now().Add(48 * time.Hour)); res.Fired != 0 {
				t.Errorf("one-time job fired again: %+v", res)
			}
		})
	}
}

// TestMissedExecutions: executions that came while no scheduler ticked
// are coalesced: the latest due one fires while its cutoff has not
// passed, the ones before it are recorded as missed; when even the
// latest one's cutoff passed, it is missed too.
func TestMissedExecutions(t *testing.T) {
	f := newFixture(t, backends()[0])
	f.instances("h01")
	j := f.job(JobInput{ScheduleType: Recurring, IntervalType: Day, IntervalValue: 1, TimeNextExecution: t0.Add(time.Hour), ManagedInstances: []string{"h01"}, CutoffMinutes: 60})
	// Three days later, 30 minutes after that day's execution.
	res := f.tick(t0.Add(time.Hour + 72*time.Hour + 30*time.Minute))
	if res.Fired != 1 || res.Missed != 3 {
		t.Fatalf("tick %+v", res)
	}
	execs, _, _ := f.svc.ListExecutions(f.ctx, j.ID, pageAll)
	if len(execs) != 1 || !execs[0].TimeScheduled.Equal(t0.Add(time.Hour+72*time.Hour)) {
		t.Fatalf("executions %+v", execs)
	}
	got := must[Job](t)(f.svc.GetJob(f.ctx, j.ID))
	if !got.TimeNextExecution.Equal(t0.Add(time.Hour + 96*time.Hour)) {
		t.Fatalf("next %s", got.TimeNextExecution)
	}
	// Two hours after the next one: past its cutoff, nothing fires.
	res = f.tick(got.TimeNextExecution.Add(2 * time.Hour))
	if res.Fired != 0 || res.Missed != 1 {
		t.Fatalf("tick %+v", res)
	}
	if got := testutil.ToFloat64(f.svc.m.skipped.WithLabelValues("missed")); got != 4 {
		t.Errorf("missed metric %v", got)
	}
}

// TestInstancesAndGroups: instances with a unique host, a governed one
// on a host of its resource, groups in member order, references that
// keep instances and groups from deletion.
func TestInstancesAndGroups(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b)
			f.instances("h01", "h02", "h03")
			if _, err := f.svc.CreateInstance(f.ctx, admin, InstanceInput{DisplayName: "dup", Host: "h01", CompartmentID: "tenancy"}); !errors.Is(err, policy.ErrConflict) {
				t.Fatalf("a second instance on h01: %v", err)
			}
			must[policy.Resource](t)(f.pol.CreateResource(f.ctx, admin, policy.ResourceInput{ID: "exa", Name: "exa", ResourceType: policy.ResourceExaCC, CompartmentID: "tenancy",
				Hosts: []policy.Host{{Name: "exa-db01", Layer: "HOST"}}}))
			if _, err := f.svc.CreateInstance(f.ctx, admin, InstanceInput{DisplayName: "x", Host: "other", CompartmentID: "tenancy", ResourceID: "exa"}); !errors.Is(err, policy.ErrInvalid) {
				t.Fatalf("a governed instance on a host its resource lacks: %v", err)
			}
			gi := must[Instance](t)(f.svc.CreateInstance(f.ctx, admin, InstanceInput{DisplayName: "db01", Host: "exa-db01", CompartmentID: "tenancy", ResourceID: "exa"}))
			if err := f.pol.DeleteResource(f.ctx, admin, "exa", 0); !errors.Is(err, policy.ErrConflict) {
				t.Fatalf("deleting a resource an instance names: %v", err)
			}
			if list, _, err := f.svc.ListInstances(f.ctx, InstanceFilter{ResourceID: "exa"}); err != nil || len(list) != 1 || list[0].ID != gi.ID {
				t.Fatalf("instances of exa: %v %v", list, err)
			}
			g := must[Group](t)(f.svc.CreateGroup(f.ctx, admin, GroupInput{ID: "g1", DisplayName: "web", CompartmentID: "tenancy", ManagedInstances: []string{"h03", "h01"}}))
			if _, err := f.svc.CreateGroup(f.ctx, admin, GroupInput{DisplayName: "bad", CompartmentID: "tenancy", ManagedInstances: []string{"h01", "nope"}}); !errors.Is(err, policy.ErrInvalid) {
				t.Fatalf("a group of an unknown instance: %v", err)
			}
			if err := f.svc.DeleteInstance(f.ctx, admin, "h03", 0); !errors.Is(err, policy.ErrConflict) {
				t.Fatalf("deleting a group member: %v", err)
			}
			j := f.job(JobInput{ManagedInstanceGroups: []string{g.ID}})
			if err := f.svc.DeleteGroup(f.ctx, admin, g.ID, 0); !errors.Is(err, policy.ErrConflict) {
				t.Fatalf("deleting a group a job names: %v", err)
			}
			// Members change before the firing: the new members, in order.
			g = must[Group](t)(f.svc.SetGroupMembers(f.ctx, admin, g.ID, g.Version, []string{"h02", "h03"}))
			f.tick(j.TimeNextExecution)
			var hosts []string
			for _, d := range f.dispatches() {
				hosts = append(hosts, d.Host)
			}
			if strings.Join(hosts, " ") != "h02 h03" {
				t.Fatalf("dispatched to %v", hosts)
			}
			must[Job](t)(f.svc.DeleteJob(f.ctx, admin, j.ID, 0))
			if err := f.svc.DeleteGroup(f.ctx, admin, g.ID, 0); err != nil {
				t.Fatal(err)
			}
			if err := f.svc.DeleteInstance(f.ctx, admin, "h01", 0); err != nil {
				t.Fatal(err)
			}
			if err := f.pol.DeleteCompartment(f.ctx, admin, "tenancy", 0); !errors.Is(err, policy.ErrConflict) {
				t.Fatalf("deleting a compartment with instances: %v", err)
			}
		})
	}
}

// TestOverlappingSkipped: a scheduled execution does not start while the
// job's previous one still runs (AWS's SKIPPED_OVERLAPPING); run now is
// not held back.
func TestOverlappingSkipped(t *testing.T) {
	f := newFixture(t, backends()[0])
	f.instances("h01")
	j := f.job(JobInput{ScheduleType: Recurring, IntervalType: Hour, IntervalValue: 1, TimeNextExecution: t0.Add(time.Hour), ManagedInstances: []string{"h01"}, TimeoutMinutes: 180})
	f.tick(j.TimeNextExecution)
	d := f.dispatches()[0]
	res := f.tick(j.TimeNextExecution.Add(time.Hour))
	if res.Fired != 0 || res.Overlapping != 1 {
		t.Fatalf("while the first runs: %+v", res)
	}
	if got := must[Job](t)(f.svc.GetJob(f.ctx, j.ID)); !got.TimeNextExecution.Equal(j.TimeNextExecution.Add(2 * time.Hour)) {
		t.Fatalf("next %s", got.TimeNextExecution)
	}
	f.report(d, 1, schemas.WorkSucceeded, 100, "")
	if res := f.tick(j.TimeNextExecution.Add(2 * time.Hour)); res.Fired != 1 {
		t.Fatalf("after it ended: %+v", res)
	}
	if got := testutil.ToFloat64(f.svc.m.skipped.WithLabelValues("overlapping")); got != 1 {
		t.Errorf("overlapping metric %v", got)
	}
}
