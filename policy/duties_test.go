package policy

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
)

// TestDutiesExpireAndPublish: the leader's duties expire a request when
// its time ran out and publish the grant's revocation, with no call but
// the clock moving.
func TestDutiesExpireAndPublish(t *testing.T) {
	f := newFixture(t, backends(t)[0])
	kc, _ := kafkatest.Start(t, 1)
	f.resource("exa1")
	f.control("exa1", ControlInput{OperatorControlName: "diag", PreApprovedOpActions: []string{"INFRA_DIAG"}})
	r := f.request(operator, "exa1", 1, "INFRA_DIAG")
	reg := prometheus.NewRegistry()
	relay, err := NewRelay(f.store, kc, DefaultConfig().Relay, RelayDeps{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDuties(f.svc, relay, 20*time.Millisecond, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	// The grant is published at once; its revocation once the hour passed.
	kafkatest.Read(t, kc, kafka.TopicGrants, 1, 30*time.Second)
	f.clock.Add(time.Hour)
	got := kafkatest.Read(t, kc, kafka.TopicGrants, 2, 30*time.Second)
	m, err := grants.Decode(got[1].Key, got[1].Value, f.keys)
	if err != nil || !m.Grant.Revoked || m.Grant.LoginID != r.UserID {
		t.Fatalf("second grants record: %+v %v, want the revocation of %s", m, err, r.UserID)
	}
	if s := must[AccessRequest](t)(f.svc.GetRequest(f.ctx, r.ID)).LifecycleState; s != StateExpired {
		t.Errorf("request %s, want EXPIRED", s)
	}
	// The tick counts its changes after it returns, which may be after
	// the relay published them.
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(d.m.changes.WithLabelValues(tickExpired)) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := testutil.ToFloat64(d.m.changes.WithLabelValues(tickExpired)); n != 1 {
		t.Errorf("auditpipe_policy_tick_changes_total{change=expired} = %v, want 1", n)
	}
}
