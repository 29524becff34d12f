package scheduler

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/schemas"
)

// TestParseRate: counts and percentages, resolved for a number of
// targets as AWS does (rounded down; a concurrency at least 1).
func TestParseRate(t *testing.T) {
	tests := []struct {
		in         string
		targets    int
		conc, errs int
		bad        bool
	}{
		{in: "2", targets: 10, conc: 2, errs: 2},
		{in: "20%", targets: 10, conc: 2, errs: 2},
		{in: "10%", targets: 50, conc: 5, errs: 5},
		{in: "40%", targets: 10, conc: 4, errs: 4},
		{in: "10%", targets: 5, conc: 1, errs: 0},
		{in: "0", targets: 10, conc: 1, errs: 0},
		{in: "100%", targets: 7, conc: 7, errs: 7},
		{in: " 3 ", targets: 7, conc: 3, errs: 3},
		{in: "101%", bad: true},
		{in: "-1", bad: true},
		{in: "two", bad: true},
		{in: "", bad: true},
		{in: "5%%", bad: true},
		{in: "100001", bad: true},
	}
	for _, tt := range tests {
		r, err := parseRate(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("%q accepted", tt.in)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if c, e := r.of(tt.targets, true), r.of(tt.targets, false); c != tt.conc || e != tt.errs {
			t.Errorf("%q of %d: concurrency %d, errors %d; want %d, %d", tt.in, tt.targets, c, e, tt.conc, tt.errs)
		}
	}
}

// TestRateControl: max concurrency 2 and max errors 1 over 10 targets,
// 3 of them failing, the agents finishing in dispatch order: at most two
// run at once, in target order; the second failure (more than max
// errors) cancels every target not dispatched, the one running finishes;
// the third failing target is never run. As counts and as percentages,
// on SQLite and PostgreSQL.
func TestRateControl(t *testing.T) {
	for _, b := range backends() {
		for _, rc := range []struct{ conc, errs string }{{"2", "1"}, {"20%", "10%"}} {
			// (no % in the name: the SQLite path is a file: URI)
			t.Run(b.name+"/"+strings.ReplaceAll(rc.conc+"_"+rc.errs, "%", "pct"), func(t *testing.T) {
				f := newFixture(t, b)
				hosts := f.instances("h01", "h02", "h03", "h04", "h05", "h06", "h07", "h08", "h09", "h10")
				failing := map[string]bool{"h03": true, "h05": true, "h08": true}
				j := f.job(JobInput{ManagedInstances: hosts, MaxConcurrency: rc.conc, MaxErrors: rc.errs})
				res := f.tick(j.TimeNextExecution)
				if res.Fired != 1 || res.Dispatched != 2 {
					t.Fatalf("first tick %+v", res)
				}
				execs, _, err := f.svc.ListExecutions(f.ctx, j.ID, pageAll)
				if err != nil || len(execs) != 1 {
					t.Fatalf("executions %v %v", execs, err)
				}
				e := execs[0]
				if e.MaxConcurrency != 2 || e.MaxErrors != 1 || e.Targets != 10 {
					t.Fatalf("execution %+v", e)
				}
				var (
					order   []string // hosts in dispatch order
					running []schemas.Dispatch
					maxRun  int
					seen    = map[string]bool{}
				)
				take := func() {
					for _, d := range f.dispatches() {
						if d.Action != schemas.DispatchRun {
							t.Fatalf("unexpected %s for %s", d.Action, d.Host)
						}
						if seen[d.WorkRequestID] {
							t.Fatalf("%s dispatched twice", d.Host)
						}
						seen[d.WorkRequestID] = true
						order = append(order, d.Host)
						running = append(running, d)
					}
					maxRun = max(maxRun, len(running))
				}
				take()
				for len(running) > 0 {
					d := running[0]
					running = running[1:]
					f.clock.Add(time.Minute)
					f.report(d, 1, schemas.WorkInProgress, 40, "unpacking")
					status := schemas.WorkSucceeded
					if failing[d.Host] {
						status = schemas.WorkFailed
					}
					f.report(d, 2, status, 100, "done")
					take()
				}
				if want := []string{"h01", "h02", "h03", "h04", "h05", "h06"}; !slices.Equal(order, want) {
					t.Errorf("dispatch order %v, want %v", order, want)
				}
				if maxRun != 2 {
					t.Errorf("at most %d ran at once, want 2", maxRun)
				}
				want := map[string]Status{"h01": Succeeded, "h02": Succeeded, "h03": Failed, "h04": Succeeded, "h05": Failed, "h06": Succeeded,
					"h07": Canceled, "h08": Canceled, "h09": Canceled, "h10": Canceled}
				ws := f.work(e.ID)
				if got := statuses(ws); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("statuses\n got %v\nwant %v", got, want)
				}
				for _, w := range ws {
					if w.Status == Canceled && (!strings.Contains(w.Message, "max errors (1) exceeded: 2 of 10") || !w.TimeStarted.IsZero()) {
						t.Errorf("%s: canceled with %q, started %s", w.Host, w.Message, w.TimeStarted)
					}
					if w.Status == Succeeded && w.PercentComplete != 100 {
						t.Errorf("%s: %d%%", w.Host, w.PercentComplete)
					}
				}
				e = must[Execution](t)(f.svc.GetExecution(f.ctx, e.ID))
				if e.State != ExecutionFailed || e.Counts[Succeeded] != 4 || e.Counts[Failed] != 2 || e.Counts[Canceled] != 4 || e.TimeFinished.IsZero() {
					t.Errorf("execution %s %v", e.State, e.Counts)
				}
				// Every status change of h05 is a lifecycle event, in order.
				var kinds []string
				for _, l := range f.lifecycle(ws[4].ID) {
					kinds = append(kinds, l.Kind)
				}
				if want := "work_request.accepted work_request.dispatched work_request.failed"; strings.Join(kinds, " ") != want {
					t.Errorf("h05 events %v, want %s", kinds, want)
				}
				errs := must[[]LogEntry](t)(f.svc.WorkRequestErrors(f.ctx, ws[4].ID))
				if len(errs) != 1 || errs[0].Code != "PACKAGE_SCRIPT_FAILED" {
					t.Errorf("h05 errors %+v", errs)
				}
				// Nothing more happens on later ticks.
				if res := f.tick(f.clock.Now().Add(time.Hour)); res.Dispatched != 0 || res.Advanced != 0 {
					t.Errorf("later tick %+v", res)
				}
			})
		}
	}
}
