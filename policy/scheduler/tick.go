package scheduler

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/auditpipe/auditpipe/policy"
)

// TickResult counts what one Tick did.
type TickResult struct {
	Fired          int // executions started by their schedule
	Missed         int // scheduled executions whose cutoff passed before a tick fired them
	Overlapping    int // scheduled executions skipped: the job's previous one still ran
	Advanced       int // executions in progress looked at
	Dispatched     int // work requests sent to agents
	Finished       int // executions that ended
	RequestsClosed int // access requests of finished executions completed
	Cleaned        int // finished work requests older than the retention deleted
}

// cleanupBatch bounds the work requests one cleanup transaction deletes.
const cleanupBatch = 500

// Tick does the time-driven work due at now: it fires the jobs whose
// time_next_execution came (once each, whichever process ticks), moves
// every execution in progress on (timeouts, governance, max errors,
// cutoff, dispatch, its end), completes the access requests of finished
// executions, deletes finished work requests older than the retention,
// and refreshes the work-request gauges. Each item is its own transaction
// that reads its row for change and checks again that the work is still
// due, so several processes may tick at once: each firing and each
// change happens once. It goes on past a failed item and returns the
// errors joined.
func (s *Service) Tick(ctx context.Context, now time.Time) (TickResult, error) {
	now = now.UTC().Truncate(time.Millisecond)
	var (
		res  TickResult
		errs []error
	)
	each := func(what, q string, args []any, fn func(tx *policy.Tx, id string, fx *effects) (bool, error)) {
		rows, err := s.store.Read(ctx).Query(q, args...)
		if err != nil {
			errs = append(errs, fmt.Errorf("scheduler tick: %s: %w", what, err))
			return
		}
		ids, err := scanIDs(rows)
		if err != nil {
			errs = append(errs, fmt.Errorf("scheduler tick: %s: %w", what, err))
			return
		}
		for _, id := range ids {
			if ctx.Err() != nil {
				errs = append(errs, ctx.Err())
				return
			}
			var (
				fx   effects
				done bool
			)
			err := s.store.Tx(ctx, func(tx *policy.Tx) error {
				fx = effects{}
				var err error
				done, err = fn(tx, id, &fx)
				return err
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("scheduler tick: %s %s: %w", what, id, err))
				continue
			}
			s.m.apply(fx)
			res.Fired += len(fx.fired)
			res.Missed += fx.missed
			res.Overlapping += fx.overlapping
			res.Dispatched += fx.dispatched
			res.Finished += len(fx.finished)
			if done && what == "advance" {
				res.Advanced++
			}
		}
	}
	each("fire", "SELECT id FROM scheduled_jobs WHERE lifecycle_state = ? AND next_ms IS NOT NULL AND next_ms <= ? ORDER BY next_ms",
		[]any{string(JobActive), now.UnixMilli()}, func(tx *policy.Tx, id string, fx *effects) (bool, error) {
			return true, s.fireDue(tx, id, now, fx)
		})
	each("advance", "SELECT id FROM job_executions WHERE state = ? ORDER BY created_ms",
		[]any{string(ExecutionInProgress)}, func(tx *policy.Tx, id string, fx *effects) (bool, error) {
			return true, s.onExecution(tx, id, now, fx, func(*Execution, []WorkRequest) error { return nil })
		})
	n, err := s.closeRequests(ctx)
	res.RequestsClosed = n
	if err != nil {
		errs = append(errs, err)
	}
	n, err = s.Cleanup(ctx, now)
	res.Cleaned = n
	if err != nil {
		errs = append(errs, err)
	}
	if err := s.refreshGauges(ctx); err != nil {
		errs = append(errs, err)
	}
	return res, errors.Join(errs...)
}

// fireDue fires job id if it is still due at now (another process may
// have fired it since it was listed). Executions missed while no process
// ticked are coalesced: only the latest due one fires, and only while its
// cutoff has not passed; the ones before it are recorded as missed. It
// does not fire while the job's previous execution is in progress.
func (s *Service) fireDue(tx *policy.Tx, id string, now time.Time, fx *effects) error {
	j, err := getJob(tx, id, true)
	if err != nil {
		return err
	}
	if j.LifecycleState != JobActive || j.TimeNextExecution.IsZero() || j.TimeNextExecution.After(now) {
		return nil
	}
	prev := j.Version
	sch, err := j.schedule()
	if err != nil {
		return err
	}
	missed := 0
	first, latest := j.TimeNextExecution, j.TimeNextExecution
	for {
		n, ok := sch.Next(latest)
		if !ok || n.After(now) {
			break
		}
		missed++
		latest = n
	}
	fire := now.Before(latest.Add(time.Duration(j.CutoffMinutes) * time.Minute))
	if !fire {
		missed++
	}
	next, ok := sch.Next(latest)
	if !ok {
		next = time.Time{}
	}
	j.TimeNextExecution, j.TimeUpdated = next, now
	if missed > 0 {
		comment := fmt.Sprintf("%d execution(s) from %s missed: no scheduler ran before their cutoff", missed, first.Format(time.RFC3339))
		if err := s.jobChanged(tx, &j, ActorScheduler, string(j.LifecycleState), "missed", comment, now, map[string]string{"missed": strconv.Itoa(missed)}); err != nil {
			return err
		}
		fx.missed = missed
	}
	if fire {
		// As AWS's SKIPPED_OVERLAPPING: a scheduled execution does not
		// start while the job's last one still runs (two package runs on
		// one host would fight over its package database).
		var running int
		if err := tx.QueryRow("SELECT COUNT(*) FROM job_executions WHERE job_id = ? AND state = ?", j.ID, string(ExecutionInProgress)).Scan(&running); err != nil {
			return fmt.Errorf("scheduler store: executions of %s: %w", j.ID, err)
		}
		if running > 0 {
			fire = false
			fx.overlapping++
			if err := s.jobChanged(tx, &j, ActorScheduler, string(j.LifecycleState), "skipped_overlapping",
				fmt.Sprintf("execution of %s skipped: the previous execution still runs", latest.Format(time.RFC3339)), now,
				map[string]string{"time_skipped": latest.Format(time.RFC3339)}); err != nil {
				return err
			}
		}
	}
	if fire {
		if _, err := s.fire(tx, &j, TriggerScheduled, latest, now, ActorScheduler, fx); err != nil {
			return err
		}
	}
	return saveJob(tx, &j, prev)
}

// closeRequests completes the access requests of finished executions
// (the scheduler is their requester): the grant ends with the work it
// was for. A request that ended already (expired, revoked) counts as
// closed.
func (s *Service) closeRequests(ctx context.Context) (int, error) {
	rows, err := s.store.Read(ctx).Query("SELECT id FROM job_executions WHERE state <> ? AND requests_open = ?", string(ExecutionInProgress), true)
	if err != nil {
		return 0, fmt.Errorf("scheduler tick: requests to close: %w", err)
	}
	ids, err := scanIDs(rows)
	if err != nil {
		return 0, err
	}
	var (
		closed int
		errs   []error
	)
	for _, id := range ids {
		e, err := s.GetExecution(ctx, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		done := map[string]bool{}
		for _, r := range e.Requests {
			if r.Closed || r.AccessRequestID == "" {
				continue
			}
			comment := fmt.Sprintf("scheduled job %s execution %s %s: %d succeeded, %d failed, %d canceled", e.JobID, e.ID, e.State, e.Counts[Succeeded], e.Counts[Failed], e.Counts[Canceled])
			_, err := s.policy.Complete(ctx, s.identity, r.AccessRequestID, comment, 0)
			switch {
			case err == nil:
				closed++
				done[r.AccessRequestID] = true
			case errors.Is(err, policy.ErrInvalidTransition):
				done[r.AccessRequestID] = true
			default:
				errs = append(errs, fmt.Errorf("scheduler tick: complete access request %s: %w", r.AccessRequestID, err))
			}
		}
		err = s.store.Tx(ctx, func(tx *policy.Tx) error {
			e, err := getExecution(tx, id, true)
			if err != nil {
				return err
			}
			prev := e.Version
			for n := range e.Requests {
				if done[e.Requests[n].AccessRequestID] || e.Requests[n].AccessRequestID == "" {
					e.Requests[n].Closed = true
				}
			}
			return saveExecution(tx, &e, prev)
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("scheduler tick: execution %s: %w", id, err))
		}
	}
	return closed, errors.Join(errs...)
}

// Cleanup deletes the work requests that finished (SUCCEEDED, FAILED,
// CANCELED) before now minus the retention, with their logs; work not
// started or still running is never deleted, however old. Their
// executions and the history of every change stay. It returns how many
// it deleted.
func (s *Service) Cleanup(ctx context.Context, now time.Time) (int, error) {
	before := now.Add(-s.retention).UnixMilli()
	total := 0
	for {
		var n int
		err := s.store.Tx(ctx, func(tx *policy.Tx) error {
			rows, err := tx.Query("SELECT id FROM work_requests WHERE status IN (?, ?, ?) AND finished_ms < ? ORDER BY finished_ms LIMIT ?",
				string(Succeeded), string(Failed), string(Canceled), before, cleanupBatch)
			if err != nil {
				return fmt.Errorf("scheduler cleanup: %w", err)
			}
			ids, err := scanIDs(rows)
			if err != nil {
				return err
			}
			n = len(ids)
			if n == 0 {
				return nil
			}
			args := make([]any, len(ids))
			for i, id := range ids {
				args[i] = id
			}
			for _, q := range []string{
				"DELETE FROM work_request_logs WHERE work_request_id IN (" + marks(n) + ")",
				// the status condition again: nothing unfinished goes,
				// whatever the listing saw
				"DELETE FROM work_requests WHERE status IN ('SUCCEEDED', 'FAILED', 'CANCELED') AND id IN (" + marks(n) + ")",
			} {
				if _, err := tx.Exec(q, args...); err != nil {
					return fmt.Errorf("scheduler cleanup: %w", err)
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
		s.m.cleaned.Add(float64(n))
		if n < cleanupBatch {
			return total, nil
		}
	}
}

// WorkRequestCounts returns the number of work requests in each status
// (for the work-requests-by-status gauge).
func (s *Service) WorkRequestCounts(ctx context.Context) (map[Status]int, error) {
	rows, err := s.store.Read(ctx).Query("SELECT status, COUNT(*) FROM work_requests GROUP BY status")
	if err != nil {
		return nil, fmt.Errorf("scheduler store: work request counts: %w", err)
	}
	defer rows.Close()
	out := map[Status]int{}
	for rows.Next() {
		var (
			st string
			n  int
		)
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("scheduler store: work request counts: %w", err)
		}
		out[Status(st)] = n
	}
	return out, rows.Err()
}

func (s *Service) refreshGauges(ctx context.Context) error {
	counts, err := s.WorkRequestCounts(ctx)
	if err != nil {
		return err
	}
	for _, st := range Statuses() {
		s.m.workRequests.WithLabelValues(string(st)).Set(float64(counts[st]))
	}
	return nil
}
