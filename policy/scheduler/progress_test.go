package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/internal/sign/signtest"
	"github.com/auditpipe/auditpipe/schemas"
)

// testSeqs numbers the test's records by the clock in microseconds, as
// agents and grant publish do (a consumer refuses a number more than
// grants.MaxSeqAhead above its clock), strictly increasing.
var testSeqs grants.ClockSeq

// TestProgressConsumer: the consumer of opctl.agent.v1 applies work
// progress reports (a redelivery is recognised by its seq), passes over
// the policy service's grant reports, and dead-letters what it cannot
// apply with its reason, going on with the reports after it.
func TestProgressConsumer(t *testing.T) {
	f := newFixture(t, backends()[0])
	kc, _ := kafkatest.Start(t, 2)
	f.instances("h01", "h02")
	j := f.job(JobInput{ManagedInstances: []string{"h01", "h02"}})
	f.tick(j.TimeNextExecution)
	ds := f.dispatches()
	if len(ds) != 2 {
		t.Fatalf("dispatched %+v", ds)
	}
	at := f.clock.Now()
	keysDir := t.TempDir()
	h01, h02 := signtest.EnrolledHost(t, keysDir, "h01", 1), signtest.EnrolledHost(t, keysDir, "h02", 2)
	stranger := signtest.EnrolledHost(t, t.TempDir(), "h03", 3)
	// Numbered by the clock, as the agent numbers them: built in the order
	// they are written.
	signed := func(s *sign.Signer, p schemas.WorkProgress) kafka.Record {
		p.PublishSeq = testSeqs.Next()
		rec, err := grants.AgentRecord(s, p.Host, p)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	progress := func(p schemas.WorkProgress) kafka.Record {
		return signed(map[string]*sign.Signer{"h01": h01, "h02": h02}[p.Host], p)
	}
	plain := func(p schemas.WorkProgress) kafka.Record {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		return kafka.Record{Key: []byte(p.Host), Value: b}
	}
	done := schemas.WorkProgress{WorkRequestID: ds[0].WorkRequestID, Host: ds[0].Host, Seq: 1, Status: schemas.WorkSucceeded, PercentComplete: 100,
		Logs: []schemas.LogLine{{Time: at, Message: "0 upgraded, 0 newly installed"}}, Time: at}
	other := schemas.WorkProgress{WorkRequestID: ds[1].WorkRequestID, Host: ds[1].Host, Seq: 1, Status: schemas.WorkSucceeded, PercentComplete: 100, Time: at}
	grantReport, err := json.Marshal(schemas.AgentReport{Host: "h01", LoginID: "0123456789abcdef0123456789abcdef", State: schemas.AgentDeployed, Time: at})
	if err != nil {
		t.Fatal(err)
	}
	unknown := progress(schemas.WorkProgress{WorkRequestID: "wr-nonesuch", Host: "h01", Seq: 1, Status: schemas.WorkInProgress, Time: at})
	steps := []struct {
		name   string
		rec    kafka.Record
		result string // the counter's label it moves
	}{
		{"grant report", kafka.Record{Key: []byte("h01"), Value: grantReport}, ProgressAgentReport},
		{"inventory", kafka.Record{Key: []byte("h01"), Value: []byte(`{"inventory":{},"work_request_id":"wr-1"}`)}, ProgressInventory},
		{"malformed", func() kafka.Record {
			rec, err := grants.AgentRecord(h01, "h01", map[string]any{"work_request_id": "x", "host": "h01", "seq": 0, "publish_seq": 1})
			if err != nil {
				t.Fatal(err)
			}
			return rec
		}(), ProgressMalformed},
		{"unknown", unknown, ProgressUnknown},
		{"other host", progress(schemas.WorkProgress{WorkRequestID: ds[1].WorkRequestID, Host: "h01", Seq: 1, Status: schemas.WorkInProgress, Time: at}), ProgressForbidden},
		// Issue 9: the agent credential of h01 forging h02's work
		// request's end, unsigned or signed by h01's own key, or by a
		// host nobody enrolled. Refused; h02's work request stays
		// IN_PROGRESS (checked below).
		{"unsigned", plain(other), grants.ReasonUnsigned},
		{"h02's progress signed by h01", signed(h01, other), grants.ReasonUnknownKey},
		{"not enrolled", signed(stranger, schemas.WorkProgress{WorkRequestID: ds[1].WorkRequestID, Host: "h03", Seq: 1, Status: schemas.WorkSucceeded, PercentComplete: 100, Time: at}), grants.ReasonUnknownHost},
		{"succeeded", progress(done), ProgressApplied},
		{"redelivered", progress(done), ProgressApplied},
		// Regression (issue 9): an agent's old report written again was
		// read as new. h01's report numbered below the last applied for
		// h01 is refused as replayed.
		{"replayed", unknown, grants.ReasonReplayed},
	}
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig().Progress
	cfg.HostKeysDir = keysDir
	p, err := NewProgress(f.svc, kc, cfg, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(f.ctx)
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("progress: %v", err)
		}
	}()
	w, err := kc.NewWriter(kafka.TopicAgent)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	wctx, wcancel := context.WithTimeout(f.ctx, 30*time.Second)
	defer wcancel()
	want := map[string]float64{}
	var letters []string
	for _, s := range steps {
		// One at a time: keys spread records over partitions, read
		// concurrently.
		if err := w.Write(wctx, s.rec); err != nil {
			t.Fatal(err)
		}
		want[s.result]++
		n := want[s.result]
		waitUntil(t, fmt.Sprintf("%s: %s counted", s.name, s.result), func() bool { return testutil.ToFloat64(p.m.WithLabelValues(s.result)) == n })
		if s.result != ProgressApplied && s.result != ProgressAgentReport && s.result != ProgressInventory {
			letters = append(letters, progressDeadLetterOf+s.result)
		}
	}
	got := kafkatest.Read(t, kc, kafka.TopicDeadLetter, len(letters), 30*time.Second)
	for i, r := range got {
		var dl schemas.DeadLetter
		if err := json.Unmarshal(r.Value, &dl); err != nil {
			t.Fatal(err)
		}
		if dl.Component != "scheduler" || dl.Reason != letters[i] {
			t.Errorf("dead letter %d: %s/%s, want scheduler/%s", i, dl.Component, dl.Reason, letters[i])
		}
	}
	wr := must[WorkRequest](t)(f.svc.GetWorkRequest(f.ctx, ds[0].WorkRequestID))
	if wr.Status != Succeeded || wr.PercentComplete != 100 || wr.LastReportSeq != 1 {
		t.Errorf("work request after the reports: %+v", wr)
	}
	var agentLines int
	for _, l := range must[[]LogEntry](t)(f.svc.WorkRequestLogs(f.ctx, wr.ID)) {
		if l.Message == done.Logs[0].Message {
			agentLines++
		}
	}
	if agentLines != 1 {
		t.Errorf("the agent's log line is there %d times, want once (the redelivery is not applied again)", agentLines)
	}
	if other := must[WorkRequest](t)(f.svc.GetWorkRequest(f.ctx, ds[1].WorkRequestID)); other.Status != InProgress {
		t.Errorf("the forbidden report moved %s to %s", other.ID, other.Status)
	}
}

// waitUntil polls cond until it holds, failing after 30 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
