package app

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/pgtest"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/policy/scheduler"
	"github.com/auditpipe/auditpipe/schemas"
)

// TestTwoSchedulerProcessesOneLeader: two processes of target scheduler
// on one real PostgreSQL (internal/pgtest) and one secured Kafka; one-time
// jobs fall due one after another over a few seconds. One process's
// scheduler leads (it alone ticks); it is killed with SIGKILL half way,
// and the other takes over: every job fires exactly once (one execution
// each, one dispatch per work request in the outbox, one distinct
// dispatched work request per job on Kafka, each verified with
// grants.DecodeDispatch), some by the killed leader and the rest by its
// successor.
func TestTwoSchedulerProcessesOneLeader(t *testing.T) {
	dsn := pgtest.Start(t)
	broker := kafkatest.StartSecure(t, 1)
	dir := t.TempDir()
	keyFile, signer := policyKey(t, dir)
	svc := openPolicy(t, dsn, signer, time.Now)
	sched, err := scheduler.New(svc, signer, scheduler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := svc.CreateCompartment(ctx, policyAdmin, policy.CompartmentInput{ID: "tenancy", Name: "tenancy"}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		h := fmt.Sprintf("h%02d", i)
		if _, err := sched.CreateInstance(ctx, policyAdmin, scheduler.InstanceInput{ID: h, DisplayName: h, Host: h, CompartmentID: "tenancy"}); err != nil {
			t.Fatal(err)
		}
	}
	const n = 16
	base := time.Now().Add(8 * time.Second)
	jobs := map[string]bool{}
	for i := range n {
		j, err := sched.CreateJob(ctx, policyAdmin, scheduler.JobInput{DisplayName: fmt.Sprintf("patch %d", i), CompartmentID: "tenancy",
			ScheduleType: scheduler.OneTime, TimeNextExecution: base.Add(time.Duration(i) * 400 * time.Millisecond),
			OperationType: schemas.OperationUpdateAll, UpdateType: schemas.UpdateSecurity, ManagedInstances: []string{fmt.Sprintf("h%02d", i%4)}})
		if err != nil {
			t.Fatal(err)
		}
		jobs[j.ID] = true
	}
	// The processes are the policy role's principal (their relay
	// publishes grants too): its ACLs cover the scheduler's group.
	cc := policyChildConfig{DSN: dsn, Kafka: broker.Client(kafka.RolePolicy), KeyFile: keyFile, Target: TargetScheduler}
	procs := []*policyChild{startPolicyChild(t, "s0", cc), startPolicyChild(t, "s1", cc)}
	leader, other := -1, -1
	select {
	case <-procs[0].led:
		leader, other = 0, 1
	case <-procs[1].led:
		leader, other = 1, 0
	case <-time.After(60 * time.Second):
		t.Fatal("no scheduler became the leader within 60s")
	}
	executions := func() []scheduler.Execution {
		es, _, err := sched.ListExecutions(ctx, "", policy.Page{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	until(t, "half the jobs fired", 60*time.Second, func() bool { return len(executions()) >= n/2 })
	killed := time.Now()
	procs[leader].kill()
	select {
	case at := <-procs[other].led:
		t.Logf("%s led %v after %s was killed", procs[other].name, at.Sub(killed).Round(time.Millisecond), procs[leader].name)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not take over within 30s", procs[other].name)
	}
	until(t, "every job fired", 60*time.Second, func() bool { return len(executions()) >= n })
	until(t, "the outbox published", 60*time.Second, func() bool { return outboxDepth(t, svc.Store()) == 0 })

	perJob := map[string]int{}
	var before, after int
	for _, e := range executions() {
		perJob[e.JobID]++
		if e.TimeStarted.Before(killed) {
			before++
		} else {
			after++
		}
	}
	for id := range jobs {
		if perJob[id] != 1 {
			t.Errorf("job %s: %d executions, want 1", id, perJob[id])
		}
	}
	if before == 0 || after == 0 {
		t.Errorf("firings before the kill %d, after %d: want both (the killed leader's and its successor's)", before, after)
	}

	kr := sign.NewKeyring(signer.PublicKey())
	runs := func(recs []kafka.Record) map[string]int {
		out := map[string]int{}
		for _, r := range recs {
			m, err := grants.DecodeDispatch(r.Key, r.Value, kr)
			if err != nil {
				t.Fatalf("dispatch: %v", err)
			}
			if m.Dispatch.Action == schemas.DispatchRun && jobs[m.Dispatch.JobID] {
				out[m.Dispatch.WorkRequestID]++
			}
		}
		return out
	}
	recs, err := svc.Store().Outbox(ctx, 0, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	var outbox []kafka.Record
	for _, r := range recs {
		if r.Topic == schemas.TopicDispatch {
			outbox = append(outbox, r.Record())
		}
	}
	inOutbox := runs(outbox)
	if len(inOutbox) != n {
		t.Errorf("%d work requests dispatched in the outbox, want %d", len(inOutbox), n)
	}
	for wr, c := range inOutbox {
		if c != 1 {
			t.Errorf("work request %s: %d dispatches in the outbox, want 1", wr, c)
		}
	}
	// On Kafka a batch the killed relay published but did not mark is
	// there twice: the same records, the same work requests.
	onKafka := runs(kafkatest.ReadAll(t, broker.Admin(), schemas.TopicDispatch, 30*time.Second))
	if len(onKafka) != n {
		t.Errorf("%d distinct work requests dispatched on Kafka, want %d", len(onKafka), n)
	}
	t.Logf("%d jobs fired once each: %d by the killed leader, %d by its successor", n, before, after)
}
