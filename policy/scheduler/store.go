package scheduler

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/auditpipe/auditpipe/policy"
)

// The scheduler's rows in the policy store (migration 0002_scheduler):
// each object a JSON document beside the columns its queries filter on.
// A work request changes only with its execution's row locked (read for
// change first), so changes of one execution are serialized on
// PostgreSQL as SQLite serializes every transaction.

func encode(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("scheduler store: encode: %w", err)
	}
	return string(b), nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// msOrNil is t in Unix milliseconds, or nil for the zero time.
func msOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

// updatedOne checks an UPDATE … WHERE version = ? changed one row.
func updatedOne(res sql.Result, object, id string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("scheduler store: %w", err)
	}
	if n != 1 {
		return &policy.ConflictError{Object: object, ID: id, Reason: "changed by another transaction; try again"}
	}
	return nil
}

func getJob(tx *policy.Tx, id string, lock bool) (Job, error) {
	return policy.GetDoc[Job](tx, "scheduled_jobs", ObjectJob, id, lock)
}

// saveJob writes j; prev is the version it was read at (0: insert).
func saveJob(tx *policy.Tx, j *Job, prev int64) error {
	j.Version = prev + 1
	doc, err := encode(j)
	if err != nil {
		return err
	}
	if prev == 0 {
		_, err = tx.Exec("INSERT INTO scheduled_jobs (id, compartment_id, lifecycle_state, next_ms, created_ms, version, doc) VALUES (?, ?, ?, ?, ?, ?, ?)",
			j.ID, j.CompartmentID, string(j.LifecycleState), msOrNil(j.TimeNextExecution), j.TimeCreated.UnixMilli(), j.Version, doc)
		if err != nil {
			return fmt.Errorf("scheduler store: create job: %w", err)
		}
		return nil
	}
	res, err := tx.Exec("UPDATE scheduled_jobs SET lifecycle_state = ?, next_ms = ?, version = ?, doc = ? WHERE id = ? AND version = ?",
		string(j.LifecycleState), msOrNil(j.TimeNextExecution), j.Version, doc, j.ID, prev)
	if err != nil {
		return fmt.Errorf("scheduler store: update job: %w", err)
	}
	return updatedOne(res, ObjectJob, j.ID)
}

func getExecution(tx *policy.Tx, id string, lock bool) (Execution, error) {
	return policy.GetDoc[Execution](tx, "job_executions", ObjectExecution, id, lock)
}

func saveExecution(tx *policy.Tx, e *Execution, prev int64) error {
	e.Version = prev + 1
	doc, err := encode(e)
	if err != nil {
		return err
	}
	if prev == 0 {
		_, err = tx.Exec("INSERT INTO job_executions (id, job_id, trigger_type, scheduled_ms, state, requests_open, created_ms, version, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
			e.ID, e.JobID, string(e.Trigger), e.TimeScheduled.UnixMilli(), string(e.State), e.requestsOpen(), e.TimeStarted.UnixMilli(), e.Version, doc)
		if err != nil {
			if policy.IsUniqueViolation(err) {
				return &policy.ConflictError{Object: ObjectExecution, ID: e.ID, Reason: fmt.Sprintf("job %s fired for %s already", e.JobID, e.TimeScheduled.Format(time.RFC3339))}
			}
			return fmt.Errorf("scheduler store: create execution: %w", err)
		}
		return nil
	}
	res, err := tx.Exec("UPDATE job_executions SET state = ?, requests_open = ?, version = ?, doc = ? WHERE id = ? AND version = ?", string(e.State), e.requestsOpen(), e.Version, doc, e.ID, prev)
	if err != nil {
		return fmt.Errorf("scheduler store: update execution: %w", err)
	}
	return updatedOne(res, ObjectExecution, e.ID)
}

func getWorkRequest(tx *policy.Tx, id string, lock bool) (WorkRequest, error) {
	return policy.GetDoc[WorkRequest](tx, "work_requests", ObjectWorkRequest, id, lock)
}

func saveWorkRequest(tx *policy.Tx, w *WorkRequest, prev int64) error {
	w.Version = prev + 1
	doc, err := encode(w)
	if err != nil {
		return err
	}
	if prev == 0 {
		_, err = tx.Exec("INSERT INTO work_requests (id, execution_id, job_id, instance_id, compartment_id, status, finished_ms, created_ms, version, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			w.ID, w.ExecutionID, w.JobID, w.InstanceID, w.CompartmentID, string(w.Status), msOrNil(w.TimeFinished), w.TimeAccepted.UnixMilli(), w.Version, doc)
		if err != nil {
			return fmt.Errorf("scheduler store: create work request: %w", err)
		}
		return nil
	}
	res, err := tx.Exec("UPDATE work_requests SET status = ?, finished_ms = ?, version = ?, doc = ? WHERE id = ? AND version = ?",
		string(w.Status), msOrNil(w.TimeFinished), w.Version, doc, w.ID, prev)
	if err != nil {
		return fmt.Errorf("scheduler store: update work request: %w", err)
	}
	return updatedOne(res, ObjectWorkRequest, w.ID)
}

// executionWork returns the work requests of an execution that are not
// final, in dispatch order, and the counts of its final ones by status
// (final work requests never change, so an execution's step reads only
// what may move). The caller holds the execution's row.
func executionWork(tx *policy.Tx, id string) ([]WorkRequest, map[Status]int, error) {
	ws, err := policy.Docs[WorkRequest](tx, "SELECT doc FROM work_requests WHERE execution_id = ? AND status NOT IN (?, ?, ?)",
		id, string(Succeeded), string(Failed), string(Canceled))
	if err != nil {
		return nil, nil, err
	}
	sortByPosition(ws)
	rows, err := tx.Query("SELECT status, COUNT(*) FROM work_requests WHERE execution_id = ? AND status IN (?, ?, ?) GROUP BY status",
		id, string(Succeeded), string(Failed), string(Canceled))
	if err != nil {
		return nil, nil, fmt.Errorf("scheduler store: work of %s: %w", id, err)
	}
	defer rows.Close()
	final := map[Status]int{}
	for rows.Next() {
		var (
			st string
			n  int
		)
		if err := rows.Scan(&st, &n); err != nil {
			return nil, nil, fmt.Errorf("scheduler store: work of %s: %w", id, err)
		}
		final[Status(st)] = n
	}
	return ws, final, rows.Err()
}

func addLog(tx *policy.Tx, wr, kind, code, msg string, at time.Time) error {
	if _, err := tx.Exec("INSERT INTO work_request_logs (work_request_id, kind, code, message, time_ms) VALUES (?, ?, ?, ?, ?)",
		wr, kind, code, msg, at.UnixMilli()); err != nil {
		return fmt.Errorf("scheduler store: work request log: %w", err)
	}
	return nil
}
