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

// TestReportProgress: an agent's reports through the service: logs and
// errors with their timestamps, percent complete that never falls, a
// redelivered report applied once, another host's report forbidden, a
// report on work never dispatched refused; cancel of running work
// (CANCELING, a signed CANCEL, the agent's CANCELED), of queued work
// (CANCELED at once) and of finished work (a transition error); a
// timeout (FAILED with code TIMEOUT) and the agent's late report after
// it (kept in the logs, the status stays).
func TestReportProgress(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b)
			f.instances("h01", "h02", "h03")
			j := f.job(JobInput{ManagedInstances: []string{"h01", "h02", "h03"}, MaxConcurrency: "2", TimeoutMinutes: 30})
			f.tick(j.TimeNextExecution)
			ds := f.dispatches()
			if len(ds) != 2 {
				t.Fatalf("dispatched %+v", ds)
			}
			d1, d2 := ds[0], ds[1]
			if d1.NotAfter.Sub(d1.Time) != 4*time.Hour || d1.Deadline.Sub(d1.Time) != 30*time.Minute || d1.OperationType != schemas.OperationUpdateAll || d1.UpdateType != schemas.UpdateSecurity {
				t.Fatalf("dispatch %+v", d1)
			}
			at := f.clock.Add(time.Minute)
			w := f.report(d1, 1, schemas.WorkInProgress, 30, "Reading package lists...")
			if w.Status != InProgress || w.PercentComplete != 30 {
				t.Fatalf("%+v", w)
			}
			w = f.report(d1, 1, schemas.WorkInProgress, 30, "Reading package lists...") // redelivered
			w = f.report(d1, 2, schemas.WorkInProgress, 20, "Unpacking openssl ...")    // out of order percent
			if w.PercentComplete != 30 || w.LastReportSeq != 2 {
				t.Fatalf("percent %d seq %d", w.PercentComplete, w.LastReportSeq)
			}
			_, err := f.svc.ReportProgress(f.ctx, agentID, schemas.WorkProgress{WorkRequestID: d1.WorkRequestID, Host: "h02", Seq: 3, Status: schemas.WorkSucceeded, Time: at})
			if !errors.Is(err, policy.ErrForbidden) {
				t.Fatalf("another host's report: %v", err)
			}
			queued := f.work(d1.ExecutionID)[2]
			_, err = f.svc.ReportProgress(f.ctx, agentID, schemas.WorkProgress{WorkRequestID: queued.ID, Host: "h03", Seq: 1, Status: schemas.WorkInProgress, Time: at})
			if !errors.Is(err, policy.ErrInvalidTransition) {
				t.Fatalf("a report on queued work: %v", err)
			}
			if _, err := f.svc.ReportProgress(f.ctx, agentID, schemas.WorkProgress{WorkRequestID: d1.WorkRequestID, Host: "h01", Seq: 0, Status: schemas.WorkInProgress, Time: at}); !errors.Is(err, policy.ErrInvalid) {
				t.Fatalf("seq 0: %v", err)
			}
			logs := must[[]LogEntry](t)(f.svc.WorkRequestLogs(f.ctx, d1.WorkRequestID))
			var msgs []string
			for _, l := range logs {
				msgs = append(msgs, l.Message)
			}
			if got := strings.Join(msgs, " | "); got != "dispatched to h01 | Reading package lists... | Unpacking openssl ..." || !logs[1].Time.Equal(at) {
				t.Fatalf("logs %q (%s)", got, logs[1].Time)
			}

			// Cancel the running h01: CANCELING and a signed CANCEL; the
			// agent confirms.
			w = must[WorkRequest](t)(f.svc.CancelWorkRequest(f.ctx, admin, d1.WorkRequestID))
			if w.Status != Canceling {
				t.Fatalf("cancel running: %s", w.Status)
			}
			if cs := f.dispatches(); len(cs) != 1 || cs[0].Action != schemas.DispatchCancel || cs[0].WorkRequestID != d1.WorkRequestID {
				t.Fatalf("cancel sent %+v", cs)
			}
			w = f.report(d1, 3, schemas.WorkCanceled, 40, "stopped")
			if w.Status != Canceled || w.TimeFinished.IsZero() {
				t.Fatalf("after the agent's cancel: %s", w.Status)
			}
			// Its slot went to h03.
			if ds := f.dispatches(); len(ds) != 1 || ds[0].Host != "h03" {
				t.Fatalf("next dispatch %+v", ds)
			}
			if _, err := f.svc.CancelWorkRequest(f.ctx, admin, d1.WorkRequestID); !errors.Is(err, policy.ErrInvalidTransition) {
				t.Fatalf("cancel a canceled one: %v", err)
			}
			// h02 times out; its late report is recorded and changes nothing.
			f.tick(d2.Deadline)
			w = must[WorkRequest](t)(f.svc.GetWorkRequest(f.ctx, d2.WorkRequestID))
			if w.Status != Failed || !strings.Contains(w.Message, "no result from h02 within 30m0s") {
				t.Fatalf("timeout: %s %q", w.Status, w.Message)
			}
			errs := must[[]LogEntry](t)(f.svc.WorkRequestErrors(f.ctx, w.ID))
			if len(errs) != 1 || errs[0].Code != codeTimeout {
				t.Fatalf("errors %+v", errs)
			}
			w = f.report(d2, 1, schemas.WorkSucceeded, 100, "finished late")
			if w.Status != Failed {
				t.Fatalf("late report changed the status to %s", w.Status)
			}
			logs = must[[]LogEntry](t)(f.svc.WorkRequestLogs(f.ctx, w.ID))
			if last := logs[len(logs)-1].Message; !strings.Contains(last, "came after the work request was FAILED") {
				t.Fatalf("last log %q", last)
			}
			// Queued work is canceled at once: a new execution with one slot.
			j2 := f.job(JobInput{ManagedInstances: []string{"h01", "h02"}, MaxConcurrency: "1"})
			f.tick(j2.TimeNextExecution)
			execs, _, _ := f.svc.ListExecutions(f.ctx, j2.ID, pageAll)
			ws := f.work(execs[0].ID)
			if w := must[WorkRequest](t)(f.svc.CancelWorkRequest(f.ctx, admin, ws[1].ID)); w.Status != Canceled {
				t.Fatalf("cancel queued: %s", w.Status)
			}
			var kinds []string
			for _, h := range must[[]policy.HistoryEntry](t)(f.svc.History(f.ctx, ObjectWorkRequest, d1.WorkRequestID)) {
				kinds = append(kinds, h.From+">"+h.To)
			}
			if got := strings.Join(kinds, " "); got != ">ACCEPTED ACCEPTED>IN_PROGRESS IN_PROGRESS>CANCELING CANCELING>CANCELED" {
				t.Errorf("history %s", got)
			}
		})
	}
}

// TestCleanup: finished work requests (succeeded, failed, canceled)
// older than 14 days are deleted with their logs; younger ones, and
// work not started or running however old, stay; history stays.
func TestCleanup(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b)
			f.instances("ok", "bad", "stop", "run", "blocker", "queued", "young")
			j := f.job(JobInput{ManagedInstances: []string{"ok", "bad", "stop", "run"}})
			jq := f.job(JobInput{ManagedInstances: []string{"blocker", "queued"}, MaxConcurrency: "1"})
			f.tick(j.TimeNextExecution)
			ds := f.dispatches() // ok, bad, stop, run, blocker
			if len(ds) != 5 {
				t.Fatalf("dispatched %d", len(ds))
			}
			f.report(ds[0], 1, schemas.WorkSucceeded, 100, "ok")
			f.report(ds[1], 1, schemas.WorkFailed, 50, "")
			f.report(ds[2], 1, schemas.WorkCanceled, 10, "")
			ids := map[string]string{}
			for _, e := range []string{ds[0].ExecutionID, ds[4].ExecutionID} {
				for _, w := range f.work(e) {
					ids[w.Host] = w.ID
				}
			}
			if w := must[WorkRequest](t)(f.svc.GetWorkRequest(f.ctx, ids["queued"])); w.Status != Accepted || jq.ID != w.JobID {
				t.Fatalf("queued: %s", w.Status)
			}
			// A younger execution finished 13 days later.
			f.clock.Add(13 * 24 * time.Hour)
			// (RunNow, not Tick: a tick would time out and cut off the
			// unfinished work of the first executions)
			j2 := f.job(JobInput{ManagedInstances: []string{"young"}})
			must[Execution](t)(f.svc.RunNow(f.ctx, admin, j2.ID, 0))
			yd := f.dispatches()
			f.report(yd[0], 1, schemas.WorkSucceeded, 100, "")
			young := f.work(yd[0].ExecutionID)[0].ID

			// 15 days after the first: Cleanup alone (no Tick, which would
			// time the running ones out).
			n, err := f.svc.Cleanup(f.ctx, t0.Add(15*24*time.Hour))
			if err != nil || n != 3 {
				t.Fatalf("cleaned %d, %v; want 3", n, err)
			}
			for host, id := range ids {
				_, err := f.svc.GetWorkRequest(f.ctx, id)
				gone := errors.Is(err, policy.ErrNotFound)
				if want := host == "ok" || host == "bad" || host == "stop"; gone != want {
					t.Errorf("%s: gone %v, want %v (%v)", host, gone, want, err)
				}
				if _, err := f.svc.WorkRequestLogs(f.ctx, id); gone && !errors.Is(err, policy.ErrNotFound) {
					t.Errorf("%s: logs of a deleted work request: %v", host, err)
				}
				if h := must[[]policy.HistoryEntry](t)(f.svc.History(f.ctx, ObjectWorkRequest, id)); len(h) == 0 {
					t.Errorf("%s: history gone", host)
				}
			}
			if _, err := f.svc.GetWorkRequest(f.ctx, young); err != nil {
				t.Errorf("a 13-day-old work request was deleted: %v", err)
			}
			var logRows int
			if err := f.store.Read(f.ctx).QueryRow("SELECT COUNT(*) FROM work_request_logs WHERE work_request_id IN (?, ?, ?)", ids["ok"], ids["bad"], ids["stop"]).Scan(&logRows); err != nil || logRows != 0 {
				t.Errorf("%d log rows of deleted work requests (%v)", logRows, err)
			}
			// A year on, unfinished work is still there.
			if n, err := f.svc.Cleanup(f.ctx, t0.Add(365*24*time.Hour)); err != nil || n != 1 {
				t.Fatalf("a year on: cleaned %d, %v; want 1 (young)", n, err)
			}
			for _, host := range []string{"run", "blocker", "queued"} {
				w, err := f.svc.GetWorkRequest(f.ctx, ids[host])
				if err != nil || w.Status.Final() {
					t.Errorf("%s: %s, %v", host, w.Status, err)
				}
			}
			if got := testutil.ToFloat64(f.svc.m.cleaned); got != 4 {
				t.Errorf("cleaned metric %v", got)
			}
		})
	}
}

// TestMetrics: the scheduler's metrics on a fresh registry after a run:
// work requests by status (the store's counts), fired, failed, dispatch
// lag.
func TestMetrics(t *testing.T) {
	f := newFixture(t, backends()[0])
	f.instances("h01", "h02")
	j := f.job(JobInput{ManagedInstances: []string{"h01", "h02"}, MaxConcurrency: "1"})
	f.tick(j.TimeNextExecution.Add(5 * time.Second))
	d := f.dispatches()[0]
	f.clock.Add(time.Minute)
	f.report(d, 1, schemas.WorkFailed, 0, "")
	f.report(f.dispatches()[0], 1, schemas.WorkSucceeded, 100, "")
	f.tick(f.clock.Now())
	for status, want := range map[Status]float64{Succeeded: 1, Failed: 1, Accepted: 0, InProgress: 0} {
		if got := testutil.ToFloat64(f.svc.m.workRequests.WithLabelValues(string(status))); got != want {
			t.Errorf("work requests %s = %v, want %v", status, got, want)
		}
	}
	if got := testutil.ToFloat64(f.svc.m.fired.WithLabelValues(string(TriggerScheduled))); got != 1 {
		t.Errorf("fired %v", got)
	}
	if got := testutil.ToFloat64(f.svc.m.failed); got != 1 {
		t.Errorf("failed %v", got)
	}
	if got := testutil.ToFloat64(f.svc.m.dispatched); got != 2 {
		t.Errorf("dispatched %v", got)
	}
	n, err := testutil.GatherAndCount(f.reg, "auditpipe_scheduler_dispatch_lag_seconds")
	if err != nil || n != 1 {
		t.Fatalf("lag histogram: %d %v", n, err)
	}
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "auditpipe_scheduler_dispatch_lag_seconds" {
			h := mf.GetMetric()[0].GetHistogram()
			// 5 s after the scheduled time, then a minute later.
			if h.GetSampleCount() != 2 || h.GetSampleSum() != 70 {
				t.Errorf("lag: %d samples, sum %v s", h.GetSampleCount(), h.GetSampleSum())
			}
		}
	}
}
