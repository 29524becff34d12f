package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/schemas"
)

// race runs fns at once (released together) and returns their errors.
func race(fns ...func() error) []error {
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn()
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// TestTwoSchedulers: two scheduler processes (each its own connection,
// policy service and scheduler) tick one store at the same instants,
// while agents' reports race with their ticks: every scheduled time of
// every job fires exactly once, each work request is dispatched once,
// and no execution runs more than its max concurrency. A tick whose
// context ends before it commits fires nothing, and the next tick fires
// what it did not. On SQLite and PostgreSQL.
func TestTwoSchedulers(t *testing.T) {
	const (
		jobs   = 3
		rounds = 6
	)
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b)
			_, other, _, _ := f.open()
			procs := []*Service{f.svc, other}
			f.instances("h01", "h02", "h03")
			first := t0.Add(time.Hour)
			var ids []string
			for n := 0; n < jobs; n++ {
				j := f.job(JobInput{DisplayName: fmt.Sprintf("job %d", n), ScheduleType: Recurring, IntervalType: Hour, IntervalValue: 1,
					TimeNextExecution: first, ManagedInstances: []string{"h01", "h02", "h03"}, MaxConcurrency: "1"})
				ids = append(ids, j.ID)
			}
			// A tick cancelled before it starts fires nothing.
			cancelled, cancel := context.WithCancel(f.ctx)
			cancel()
			f.clock.Set(first)
			if res, err := f.svc.Tick(cancelled, first); err == nil || res.Fired != 0 {
				t.Fatalf("cancelled tick: %+v %v", res, err)
			}
			dispatched := map[string]int{} // work request → RUNs
			running := map[string]map[string]bool{}
			for round := 0; round < rounds; round++ {
				at := first.Add(time.Duration(round) * time.Hour)
				f.clock.Set(at)
				var fired, finished int
				var mu sync.Mutex
				tick := func(s *Service) func() error {
					return func() error {
						res, err := s.Tick(f.ctx, at)
						mu.Lock()
						fired += res.Fired
						mu.Unlock()
						return err
					}
				}
				for _, err := range race(tick(procs[0]), tick(procs[1])) {
					if err != nil {
						t.Fatalf("round %d: %v", round, err)
					}
				}
				if fired != jobs {
					t.Fatalf("round %d: %d fired, want %d", round, fired, jobs)
				}
				// The agents finish what runs while both schedulers tick.
				for {
					ds := f.dispatches()
					for _, d := range ds {
						dispatched[d.WorkRequestID]++
						if running[d.ExecutionID] == nil {
							running[d.ExecutionID] = map[string]bool{}
						}
						running[d.ExecutionID][d.WorkRequestID] = true
						if len(running[d.ExecutionID]) > 1 {
							t.Fatalf("execution %s runs %d at once", d.ExecutionID, len(running[d.ExecutionID]))
						}
					}
					if len(ds) == 0 {
						break
					}
					var fns []func() error
					for _, d := range ds {
						// ended before the report: the next may be dispatched with it
						delete(running[d.ExecutionID], d.WorkRequestID)
						fns = append(fns, func() error {
							_, err := f.svc.ReportProgress(f.ctx, agentID, schemas.WorkProgress{WorkRequestID: d.WorkRequestID, Host: d.Host, Seq: 1,
								Status: schemas.WorkSucceeded, PercentComplete: 100, Time: at})
							return err
						}, tick(procs[1]))
					}
					for _, err := range race(fns...) {
						if err != nil {
							t.Fatalf("round %d: %v", round, err)
						}
					}
					finished += len(ds)
				}
				if finished != jobs*3 {
					t.Fatalf("round %d: %d work requests finished, want %d", round, finished, jobs*3)
				}
			}
			for _, id := range ids {
				execs, _, err := f.svc.ListExecutions(f.ctx, id, pageAll)
				if err != nil || len(execs) != rounds {
					t.Fatalf("job %s: %d executions (%v), want %d", id, len(execs), err, rounds)
				}
				seen := map[time.Time]bool{}
				for _, e := range execs {
					if seen[e.TimeScheduled] || e.State != ExecutionSucceeded || e.Trigger != TriggerScheduled {
						t.Fatalf("job %s: execution %+v (twice: %v)", id, e, seen[e.TimeScheduled])
					}
					seen[e.TimeScheduled] = true
				}
			}
			if len(dispatched) != jobs*rounds*3 {
				t.Fatalf("%d work requests dispatched, want %d", len(dispatched), jobs*rounds*3)
			}
			for wr, n := range dispatched {
				if n != 1 {
					t.Fatalf("%s dispatched %d times", wr, n)
				}
			}
			// The store refuses a second execution of one scheduled time
			// outright, whoever writes it.
			e := must[[]Execution](t)(func() ([]Execution, error) {
				es, _, err := f.svc.ListExecutions(f.ctx, ids[0], pageAll)
				return es, err
			}())[0]
			dup := e
			dup.ID, dup.Version = policy.NewID("jobexecution"), 0
			err := f.store.Tx(f.ctx, func(tx *policy.Tx) error { return saveExecution(tx, &dup, 0) })
			if !errors.Is(err, policy.ErrConflict) {
				t.Fatalf("a second execution of %s: %v", e.TimeScheduled, err)
			}
		})
	}
}
