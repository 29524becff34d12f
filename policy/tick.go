package policy

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// TickResult counts what one Tick changed.
type TickResult struct {
	Expired            int // requests expired (grants revoked with them)
	Started            int // future accesses begun (grants issued)
	AssignmentsApplied int
	AssignmentsEnded   int
}

// Tick does the time-driven work due at now: expire requests whose time
// ran out (a pending one lapses at the end of the access it asked for),
// start approved future accesses, apply assignments whose window began
// and end those whose window ended. Each item is its own transaction that
// reads the row for change and checks again that the work is still due,
// so several processes may call Tick at once: each change happens once.
// It goes on past a failed item and returns the errors joined.
func (s *Service) Tick(ctx context.Context, now time.Time) (TickResult, error) {
	now = now.UTC().Truncate(time.Millisecond)
	var (
		res  TickResult
		errs []error
	)
	run := func(q string, args []any, count *int, fn func(tx *txn, id string) (bool, error)) {
		ids, err := s.dueIDs(ctx, q, args...)
		if err != nil {
			errs = append(errs, err)
			return
		}
		for _, id := range ids {
			if ctx.Err() != nil {
				errs = append(errs, ctx.Err())
				return
			}
			var done bool
			err := s.store.tx(ctx, func(tx *txn) error {
				var err error
				done, err = fn(tx, id)
				return err
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("policy tick %s: %w", id, err))
				continue
			}
			if done {
				*count++
			}
		}
	}
	// Expiry first: a future access whose whole window passed expires
	// rather than starts.
	expirable := []any{string(StateApprovalWaiting), string(StateMoreInfo), string(StateApprovedForFuture), string(StatePreApproved), string(StateApproved),
		string(StateDeployed), string(StateDeployFailed), string(StateUndeployed), string(StateExtending), string(StateExtended), string(StateExtensionRejected)}
	run("SELECT id FROM access_requests WHERE lifecycle_state IN (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) AND expiry_ms <= ? ORDER BY expiry_ms",
		append(expirable, now.UnixMilli()), &res.Expired, func(tx *txn, id string) (bool, error) { return s.expire(tx, id, now) })
	run("SELECT id FROM access_requests WHERE lifecycle_state = ? AND start_ms <= ? ORDER BY start_ms",
		[]any{string(StateApprovedForFuture), now.UnixMilli()}, &res.Started, func(tx *txn, id string) (bool, error) { return s.start(tx, id, now) })
	// Ends before starts: the next window of a resource may begin when
	// the last one ends.
	run("SELECT id FROM assignments WHERE lifecycle_state <> ? AND is_enforced_always = ? AND to_ms <= ? ORDER BY to_ms",
		[]any{string(AssignmentDeleted), false, now.UnixMilli()}, &res.AssignmentsEnded, func(tx *txn, id string) (bool, error) { return s.endWindow(tx, id, now) })
	run("SELECT id FROM assignments WHERE lifecycle_state = ? AND from_ms <= ? ORDER BY from_ms",
		[]any{string(AssignmentCreated), now.UnixMilli()}, &res.AssignmentsApplied, func(tx *txn, id string) (bool, error) { return s.startWindow(tx, id, now) })
	return res, errors.Join(errs...)
}

func (s *Service) dueIDs(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := s.store.read(ctx).query(q, args...)
	if err != nil {
		return nil, fmt.Errorf("policy tick: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("policy tick: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

func (s *Service) expire(tx *txn, id string, now time.Time) (bool, error) {
	r, err := getRequest(tx, id, true)
	if err != nil {
		return false, err
	}
	if r.TimeOfExpiry.After(now) || checkAllowed(&r, ActExpire) != nil {
		return false, nil // done by another process, or extended meanwhile
	}
	prev := r.Version
	if err := s.endGrant(tx, &r, now); err != nil {
		return false, err
	}
	if err := s.move(tx, &r, ActExpire, ActorPolicy, "", now); err != nil {
		return false, err
	}
	return true, saveRequest(tx, &r, prev)
}

func (s *Service) start(tx *txn, id string, now time.Time) (bool, error) {
	r, err := getRequest(tx, id, true)
	if err != nil {
		return false, err
	}
	if r.LifecycleState != StateApprovedForFuture || r.TimeRequestedForFutureAccess.After(now) || !r.TimeOfExpiry.After(now) {
		return false, nil
	}
	prev := r.Version
	res, err := getResource(tx, r.ResourceID, false)
	if err != nil {
		return false, err
	}
	if err := s.issueGrant(tx, &r, &res, now, now); err != nil {
		return false, err
	}
	if err := s.move(tx, &r, ActStart, ActorPolicy, "", now); err != nil {
		return false, err
	}
	return true, saveRequest(tx, &r, prev)
}

// lockAssignment reads an assignment for change, its resource first (the
// lock order of every assignment change).
func lockAssignment(tx *txn, id string) (Assignment, Resource, error) {
	a, err := getAssignment(tx, id, false)
	if err != nil {
		return a, Resource{}, err
	}
	r, err := getResource(tx, a.ResourceID, true)
	if err != nil {
		return a, r, err
	}
	a, err = getAssignment(tx, id, true)
	return a, r, err
}

func (s *Service) endWindow(tx *txn, id string, now time.Time) (bool, error) {
	a, _, err := lockAssignment(tx, id)
	if err != nil {
		return false, err
	}
	if a.LifecycleState == AssignmentDeleted || a.IsEnforcedAlways || a.TimeAssignmentTo.After(now) {
		return false, nil
	}
	return true, s.endAssignment(tx, &a, ActorPolicy, "window_ended", "time_assignment_to passed", now)
}

func (s *Service) startWindow(tx *txn, id string, now time.Time) (bool, error) {
	a, r, err := lockAssignment(tx, id)
	if err != nil {
		return false, err
	}
	if a.LifecycleState != AssignmentCreated || assignmentState(&a, now) != AssignmentApplied {
		return false, nil
	}
	return true, s.applyAssignment(tx, &a, &r, ActorPolicy, now)
}

// RequestCounts returns the number of access requests in each state (for
// the requests-by-state gauge).
func (s *Store) RequestCounts(ctx context.Context) (map[RequestState]int, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT lifecycle_state, COUNT(*) FROM access_requests GROUP BY lifecycle_state")
	if err != nil {
		return nil, fmt.Errorf("policy store: request counts: %w", err)
	}
	defer rows.Close()
	out := map[RequestState]int{}
	for rows.Next() {
		var (
			st string
			n  int
		)
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("policy store: request counts: %w", err)
		}
		out[RequestState(st)] = n
	}
	return out, rows.Err()
}

// ActiveGrants returns the number of grants not revoked (for the
// active-grants gauge).
func (s *Store) ActiveGrants(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM grants WHERE revoked_ms IS NULL").Scan(&n); err != nil {
		return 0, fmt.Errorf("policy store: active grants: %w", err)
	}
	return n, nil
}
