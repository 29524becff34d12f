package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/auditpipe/auditpipe/schemas"
)

// Phases of a work request in the agent's state directory.
const (
	phaseQueued   = "QUEUED"   // received, waiting for its turn
	phaseRunning  = "RUNNING"  // its package run started
	phaseFinished = "FINISHED" // its final report is queued
)

// stateRetention is how long a finished work request's state is kept: a
// dispatch older than that (the topic keeps 7 days) is ignored.
const stateRetention = 30 * 24 * time.Hour

// workRecord is the state of one work request, one file in the state
// directory, rewritten atomically (and synced) before each report it
// makes, so that a report's seq is never used twice and a restart knows
// what was running.
type workRecord struct {
	Dispatch schemas.Dispatch `json:"dispatch"`
	Phase    string           `json:"phase"`
	// Seq is the seq of the last report made (0: none yet).
	Seq int64 `json:"seq"`
	// Percent is the percent of the last report (a report never lowers
	// it).
	Percent int `json:"percent,omitempty"`
	// Status is the final status, once Phase is FINISHED.
	Status   string    `json:"status,omitempty"`
	PID      int       `json:"pid,omitempty"` // the agent's pid when it started the run
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
}

// workState is the agent's state directory of work requests, locked by
// the agent that opened it (one agent, one package manager run at a time,
// per host).
type workState struct {
	dir  string
	lock *os.File
}

// openWorkState makes dir (0700; one made before with a wider mode is
// narrowed: its files name requests, logins and packages) and takes its
// lock.
func openWorkState(dir string) (*workState, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("agent.work.state_dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("agent.work.state_dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("agent.work.state_dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("agent.work.state_dir %s: locked by another agent (one agent runs the work of a host): %w", dir, err)
	}
	return &workState{dir: dir, lock: f}, nil
}

func (s *workState) close() error { return s.lock.Close() }

// path is the file of a work request: named by a hash of its id, so that
// no id can name another file.
func (s *workState) path(id string) string {
	h := sha256.Sum256([]byte(id))
	return filepath.Join(s.dir, "wr-"+hex.EncodeToString(h[:16])+".json")
}

// get returns the record of id, if there is one.
func (s *workState) get(id string) (workRecord, bool, error) {
	b, err := os.ReadFile(s.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return workRecord{}, false, nil
	}
	if err != nil {
		return workRecord{}, false, fmt.Errorf("agent: work state of %s: %w", id, err)
	}
	var r workRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return workRecord{}, false, fmt.Errorf("agent: work state of %s: %w", id, err)
	}
	return r, true, nil
}

// put writes r (atomically, synced).
func (s *workState) put(r workRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("agent: work state of %s: %w", r.Dispatch.WorkRequestID, err)
	}
	if err := writeAtomic(s.path(r.Dispatch.WorkRequestID), b, 0o600); err != nil {
		return fmt.Errorf("agent: work state of %s: %w", r.Dispatch.WorkRequestID, err)
	}
	return nil
}

// load reads every record, in dispatch order, and deletes finished ones
// older than the retention. A file that cannot be read is an error: the
// agent does not start on a state it cannot trust.
func (s *workState) load(now time.Time) ([]workRecord, error) {
	names, err := filepath.Glob(filepath.Join(s.dir, "wr-*.json"))
	if err != nil {
		return nil, err
	}
	var out []workRecord
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("agent: work state: %w", err)
		}
		var r workRecord
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("agent: work state %s: %w", name, err)
		}
		if r.Phase == phaseFinished && now.Sub(r.Finished) > stateRetention {
			if err := os.Remove(name); err != nil {
				return nil, fmt.Errorf("agent: work state: %w", err)
			}
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b workRecord) int {
		if c := a.Dispatch.Time.Compare(b.Dispatch.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Dispatch.WorkRequestID, b.Dispatch.WorkRequestID)
	})
	return out, nil
}
