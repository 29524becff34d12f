package scheduler

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/schemas"
)

// ReportProgress applies an agent's report on a work request (what the
// consumer of opctl.agent.v1 calls for each schemas.WorkProgress): its log
// lines and errors are added, its percent complete rises (never falls),
// and its status follows (IN_PROGRESS keeps it; SUCCEEDED, FAILED,
// CANCELED end it, and the execution goes on: the next work requests
// are dispatched, or the rest canceled past max errors). A host other
// than the work request's is forbidden. A report whose seq was applied
// already is ignored (a redelivery). A report on a work request that
// ended already (timed out, canceled) is kept in its logs and changes
// nothing else.
func (s *Service) ReportProgress(ctx context.Context, who auth.Identity, p schemas.WorkProgress) (WorkRequest, error) {
	if err := p.Validate(); err != nil {
		return WorkRequest{}, &policy.ValidationError{Object: ObjectWorkRequest, Problems: []policy.FieldProblem{{Field: "report", Message: err.Error()}}}
	}
	now := s.clock()
	var (
		w  *WorkRequest
		fx effects
	)
	err := s.onWorkRequest(ctx, p.WorkRequestID, now, &fx, func(tx *policy.Tx, e *Execution, wr *WorkRequest) error {
		if wr.Host != p.Host {
			return &policy.ForbiddenError{Who: who.Name, Action: "report on", Object: ObjectWorkRequest, ID: wr.ID,
				Reason: fmt.Sprintf("host %q is not the work request's (%s)", p.Host, wr.Host)}
		}
		w = wr // as the execution's advance leaves it
		if p.Seq <= wr.LastReportSeq {
			return nil
		}
		late := wr.Status.Final()
		for _, l := range p.Logs {
			if err := addLog(tx, wr.ID, logLine, "", l.Message, l.Time); err != nil {
				return err
			}
		}
		for _, l := range p.Errors {
			if err := addLog(tx, wr.ID, logError, l.Code, l.Message, l.Time); err != nil {
				return err
			}
		}
		wr.LastReportSeq = p.Seq
		if late {
			if err := addLog(tx, wr.ID, logLine, "", fmt.Sprintf("report %d (%s) from %s came after the work request was %s: recorded, status kept", p.Seq, p.Status, p.Host, wr.Status), now); err != nil {
				return err
			}
			return saveWorkRequest(tx, wr, wr.Version)
		}
		wr.PercentComplete = max(wr.PercentComplete, p.PercentComplete)
		var act Action
		reason := ""
		switch p.Status {
		case schemas.WorkInProgress:
			// Progress keeps the status: saved, no history entry or event.
			if _, err := Next(wr.ID, wr.Status, ActProgress); err != nil {
				return err
			}
			return saveWorkRequest(tx, wr, wr.Version)
		case schemas.WorkSucceeded:
			act, reason = ActSucceed, "succeeded on "+p.Host
		case schemas.WorkFailed:
			act = ActFail
			reason = p.Errors[0].Message
			if c := p.Errors[0].Code; c != "" {
				reason = c + ": " + reason
			}
		case schemas.WorkCanceled:
			act, reason = ActReportCanceled, "canceled on "+p.Host
		}
		return s.move(tx, wr, act, p.Host, reason, now)
	})
	if err != nil {
		return WorkRequest{}, err
	}
	s.m.apply(fx)
	return *w, nil
}

// onWorkRequest runs fn on work request id, its execution read for
// change first (the lock order of every work request change), then
// advances the execution.
func (s *Service) onWorkRequest(ctx context.Context, id string, now time.Time, fx *effects, fn func(tx *policy.Tx, e *Execution, w *WorkRequest) error) error {
	return s.store.Tx(ctx, func(tx *policy.Tx) error {
		*fx = effects{}
		w, err := getWorkRequest(tx, id, false)
		if err != nil {
			return err
		}
		return s.onExecution(tx, w.ExecutionID, now, fx, func(e *Execution, ws []WorkRequest) error {
			for n := range ws {
				if ws[n].ID == id {
					return fn(tx, e, &ws[n])
				}
			}
			// Final (the execution's step reads only what may move):
			// read again under the execution's lock.
			w, err := getWorkRequest(tx, id, false)
			if err != nil {
				return err
			}
			return fn(tx, e, &w)
		})
	})
}

// CancelWorkRequest cancels a work request: at once when it was not
// dispatched (CANCELED); else a signed CANCEL goes to its agent and it is
// CANCELING until the agent reports. Canceling one that ended is a
// *TransitionError.
func (s *Service) CancelWorkRequest(ctx context.Context, who auth.Identity, id string) (WorkRequest, error) {
	now := s.clock()
	var (
		w  *WorkRequest
		fx effects
	)
	err := s.onWorkRequest(ctx, id, now, &fx, func(tx *policy.Tx, e *Execution, wr *WorkRequest) error {
		w = wr
		return s.end(tx, e, wr, ActCancel, "", "canceled by "+who.Name, now)
	})
	if err != nil {
		return WorkRequest{}, err
	}
	s.m.apply(fx)
	return *w, nil
}

// GetWorkRequest returns a work request.
func (s *Service) GetWorkRequest(ctx context.Context, id string) (WorkRequest, error) {
	return getWorkRequest(s.store.Read(ctx), id, false)
}

// WorkRequestFilter selects work requests.
type WorkRequestFilter struct {
	JobID         string
	ExecutionID   string
	InstanceID    string
	CompartmentID string
	Recursive     bool
	Status        Status
	Page          policy.Page
}

// ListWorkRequests lists work requests, newest first, and the next
// page's cursor.
func (s *Service) ListWorkRequests(ctx context.Context, f WorkRequestFilter) ([]WorkRequest, string, error) {
	var (
		conds []string
		args  []any
	)
	if err := s.compartmentConds(ctx, &conds, &args, f.CompartmentID, f.Recursive); err != nil {
		return nil, "", err
	}
	for _, c := range []struct{ col, v string }{{"job_id", f.JobID}, {"execution_id", f.ExecutionID}, {"instance_id", f.InstanceID}, {"status", string(f.Status)}} {
		if c.v != "" {
			conds, args = append(conds, c.col+" = ?"), append(args, c.v)
		}
	}
	return policy.List[WorkRequest](ctx, s.store, "work_requests", conds, args, f.Page)
}

// WorkRequestLogs returns a work request's log lines, oldest first.
func (s *Service) WorkRequestLogs(ctx context.Context, id string) ([]LogEntry, error) {
	return s.logs(ctx, id, logLine)
}

// WorkRequestErrors returns a work request's errors, oldest first.
func (s *Service) WorkRequestErrors(ctx context.Context, id string) ([]LogEntry, error) {
	return s.logs(ctx, id, logError)
}

func (s *Service) logs(ctx context.Context, id, kind string) ([]LogEntry, error) {
	tx := s.store.Read(ctx)
	if _, err := getWorkRequest(tx, id, false); err != nil {
		return nil, err
	}
	rows, err := tx.Query("SELECT seq, code, message, time_ms FROM work_request_logs WHERE work_request_id = ? AND kind = ? ORDER BY seq", id, kind)
	if err != nil {
		return nil, fmt.Errorf("scheduler store: logs of %s: %w", id, err)
	}
	defer rows.Close()
	var out []LogEntry
	for rows.Next() {
		var (
			l  LogEntry
			ms int64
		)
		if err := rows.Scan(&l.Seq, &l.Code, &l.Message, &ms); err != nil {
			return nil, fmt.Errorf("scheduler store: logs of %s: %w", id, err)
		}
		l.Time = time.UnixMilli(ms).UTC()
		out = append(out, l)
	}
	return out, rows.Err()
}

// GetExecution returns an execution.
func (s *Service) GetExecution(ctx context.Context, id string) (Execution, error) {
	return getExecution(s.store.Read(ctx), id, false)
}

// ListExecutions lists a job's executions (all jobs' when jobID is
// empty), newest first, and the next page's cursor.
func (s *Service) ListExecutions(ctx context.Context, jobID string, p policy.Page) ([]Execution, string, error) {
	var (
		conds []string
		args  []any
	)
	if jobID != "" {
		conds, args = append(conds, "job_id = ?"), append(args, jobID)
	}
	return policy.List[Execution](ctx, s.store, "job_executions", conds, args, p)
}

// scanIDs reads one string column and closes rows.
func scanIDs(rows *sql.Rows) ([]string, error) {
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("scheduler store: %w", err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("scheduler store: %w", err)
	}
	return out, nil
}
