package app

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse/chdb"
	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/internal/testenv"
	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/policy/client"
	"github.com/auditpipe/auditpipe/policy/scheduler"
	"github.com/auditpipe/auditpipe/schemas"
)

// TestSchedulerAllInOne runs target all for real (embedded broker, chDB,
// SQLite, every module): a job created over the API fires at its time,
// its dispatch is on opctl.dispatch.v1 signed by the all-in-one's key
// (grants.DecodeDispatch verifies it), an agent's WorkProgress on
// opctl.agent.v1 moves the work request to SUCCEEDED through the
// scheduler's consumer (the policy consumer passes it over), and the
// work request's lifecycle events reach ClickHouse's lifecycle_events.
func TestSchedulerAllInOne(t *testing.T) {
	if _, err := chdb.FindLibrary(""); err != nil {
		testenv.SkipOrFail(t, testenv.CHDB, "needs libchdb.so (run 'make deps'): %v", err)
	}
	dir := t.TempDir()
	cfg := sampleConfig(dir, filepath.Join(dir, "audit.log"))
	appendTo(t, cfg.Collector.Input.Path, "")
	cfg.Scheduler.TickInterval = 100 * time.Millisecond
	r := start(t, cfg)
	ctx := context.Background()
	c := &client.Client{BaseURL: r.url, Token: r.token}

	if _, err := c.CreateCompartment(ctx, policy.CompartmentInput{ID: "tenancy", Name: "tenancy"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateInstance(ctx, scheduler.InstanceInput{ID: "cell01", DisplayName: "cell01", Host: "cell01", CompartmentID: "tenancy"}); err != nil {
		t.Fatal(err)
	}
	first := time.Now().Add(time.Second).UTC().Truncate(time.Millisecond)
	job, err := c.CreateJob(ctx, scheduler.JobInput{DisplayName: "hourly security updates", CompartmentID: "tenancy", ScheduleType: scheduler.Recurring,
		IntervalType: scheduler.Hour, IntervalValue: 1, TimeNextExecution: first, OperationType: schemas.OperationUpdateAll,
		UpdateType: schemas.UpdateSecurity, ManagedInstances: []string{"cell01"}})
	if err != nil {
		t.Fatal(err)
	}

	// It fires by itself: the dispatch on the topic is signed by the key
	// the all-in-one's agents trust.
	kr, err := sign.LoadKeyring(filepath.Join(cfg.Embedded.DataDir, GrantsPublicKeyName))
	if err != nil {
		t.Fatal(err)
	}
	kc := r.app.shared.kafka
	recs := kafkatest.Read(t, kc, kafka.TopicDispatch, 1, 30*time.Second)
	msg, err := grants.DecodeDispatch(recs[0].Key, recs[0].Value, kr)
	if err != nil {
		t.Fatalf("the dispatch does not verify: %v", err)
	}
	d := msg.Dispatch
	if d.JobID != job.ID || d.Host != "cell01" || d.Action != schemas.DispatchRun || d.UpdateType != schemas.UpdateSecurity {
		t.Fatalf("dispatch %+v", d)
	}
	wr, err := c.GetWorkRequest(ctx, d.WorkRequestID)
	if err != nil {
		t.Fatal(err)
	}
	if wr.Status != scheduler.InProgress {
		t.Fatalf("work request %s is %s, want IN_PROGRESS", wr.ID, wr.Status)
	}
	if j, err := c.GetJob(ctx, job.ID); err != nil || !j.TimeNextExecution.Equal(first.Add(time.Hour)) {
		t.Fatalf("job after the firing: next %v, %v; want %v", j.TimeNextExecution, err, first.Add(time.Hour))
	}

	// The agent reports on opctl.agent.v1, as the agent role.
	w, err := r.app.kafkaFor(kafka.RoleAgent).NewWriter(kafka.TopicAgent)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	now := time.Now().UTC()
	// Signed with the all-in-one's agent key, made and enrolled for its
	// host (cell01) at its first start.
	key, err := sign.LoadPrivateKey(r.app.resolvedConfig().Agent.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	hostKey, err := sign.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := grants.AgentRecord(hostKey, d.Host, schemas.WorkProgress{WorkRequestID: d.WorkRequestID, Host: d.Host, Seq: 1, Status: schemas.WorkSucceeded, PercentComplete: 100,
		Logs: []schemas.LogLine{{Time: now, Message: "openssl 3.0.15-1 installed"}}, Time: now, PublishSeq: 1})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := w.Write(wctx, rec); err != nil {
		t.Fatal(err)
	}
	until(t, "the work request SUCCEEDED", 30*time.Second, func() bool {
		wr, err = c.GetWorkRequest(ctx, d.WorkRequestID)
		return err == nil && wr.Status == scheduler.Succeeded
	})
	logs, err := c.WorkRequestLogs(ctx, wr.ID)
	if err != nil || len(logs) == 0 || logs[len(logs)-1].Message != "openssl 3.0.15-1 installed" {
		t.Fatalf("logs %+v %v", logs, err)
	}
	e, err := c.GetExecution(ctx, wr.ExecutionID)
	if err != nil || e.State != scheduler.ExecutionSucceeded {
		t.Fatalf("execution %+v %v", e, err)
	}

	// Its lifecycle events are in ClickHouse, in order.
	waitCount(t, r, "SELECT groupArray(kind) FROM (SELECT kind FROM lifecycle_events WHERE object_id = '"+wr.ID+"' ORDER BY kafka_offset)",
		"[work_request.accepted work_request.dispatched work_request.succeeded]", 30*time.Second)
	waitCount(t, r, "SELECT count() FROM lifecycle_events WHERE object_id = '"+job.ID+"' AND kind IN ('scheduled_job.created', 'scheduled_job.fired')", "2", 30*time.Second)
}
