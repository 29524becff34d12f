package policy

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/proctest"
)

// story makes changes of every kind that publishes: a control assigned
// (lifecycle, assignment), an auto-approved request (lifecycle, grant)
// revoked (lifecycle, revocation).
func (f *fixture) story(resource string) AccessRequest {
	f.t.Helper()
	f.resource(resource)
	f.control(resource, ControlInput{OperatorControlName: "diag-" + resource, PreApprovedOpActions: []string{"INFRA_DIAG"}, ApproverGroupsList: []string{"EXPLICIT_APPROVED_POLICY_USERS"}})
	r := f.request(operator, resource, 4, "INFRA_DIAG")
	if r.LifecycleState != StatePreApproved {
		f.t.Fatalf("request %s is %s, want PREAPPROVED", r.ID, r.LifecycleState)
	}
	return must[AccessRequest](f.t)(f.svc.Revoke(f.ctx, explicit, r.ID, "done", 0))
}

// byTopic is the outbox's records, by topic, in id order.
func (f *fixture) byTopic() map[string][]OutboxRecord {
	f.t.Helper()
	recs, err := f.store.Outbox(f.ctx, 0, 100000)
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string][]OutboxRecord{}
	for _, r := range recs {
		out[r.Topic] = append(out[r.Topic], r)
	}
	return out
}

// TestRelayPublishesInOrder: every record of the outbox reaches its topic
// once, in the outbox's order, with its key and headers, and is marked
// published; the metrics say so.
func TestRelayPublishesInOrder(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b)
			kc, _ := kafkatest.Start(t, 1)
			f.story("exa1")
			f.story("exa2")
			reg := prometheus.NewRegistry()
			relay, err := NewRelay(f.store, kc, RelayConfig{PollInterval: 50 * time.Millisecond, BatchSize: 3, WriteTimeout: 10 * time.Second, Retention: time.Hour}, RelayDeps{Registry: reg})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(f.ctx, 60*time.Second)
			defer cancel()
			if err := relay.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			want := f.byTopic()
			for _, topic := range []string{kafka.TopicLifecycle, kafka.TopicGrants, kafka.TopicAssignments} {
				recs := want[topic]
				if len(recs) == 0 {
					t.Fatalf("%s: nothing in the outbox", topic)
				}
				got := kafkatest.ReadAll(t, kc, topic, 30*time.Second)
				if len(got) != len(recs) {
					t.Fatalf("%s: %d records in Kafka, %d in the outbox", topic, len(got), len(recs))
				}
				for i, r := range recs {
					if !bytes.Equal(got[i].Key, r.Key) || !bytes.Equal(got[i].Value, r.Value) {
						t.Errorf("%s record %d: key %q, want outbox %d's %q (or its value differs)", topic, i, got[i].Key, r.ID, r.Key)
					}
					if r.Published.IsZero() {
						t.Errorf("outbox %d is not marked published", r.ID)
					}
				}
				if n := testutil.ToFloat64(relay.m.published.WithLabelValues(topic)); n != float64(len(recs)) {
					t.Errorf("auditpipe_policy_outbox_published_total{topic=%q} = %v, want %d", topic, n, len(recs))
				}
			}
			st := NewOutboxCollector(f.store)
			if err := testutil.CollectAndCompare(st, bytes.NewBufferString(`
# HELP auditpipe_policy_outbox_depth Outbox records not published yet.
# TYPE auditpipe_policy_outbox_depth gauge
auditpipe_policy_outbox_depth 0
# HELP auditpipe_policy_outbox_oldest_pending_age_seconds Age of the oldest outbox record not published yet (0 when none is pending).
# TYPE auditpipe_policy_outbox_oldest_pending_age_seconds gauge
auditpipe_policy_outbox_oldest_pending_age_seconds 0
`), "auditpipe_policy_outbox_depth", "auditpipe_policy_outbox_oldest_pending_age_seconds"); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestRelayRetriesWhileKafkaAway: with the broker down the relay counts
// failed attempts and marks nothing (the depth and the oldest record's
// age grow); once the broker is back every record is published once.
// A change made meanwhile wakes the relay without waiting for its poll.
func TestRelayRetriesWhileKafkaAway(t *testing.T) {
	f := newFixture(t, backends(t)[0])
	port := proctest.FreePorts(t, 1)[0]
	kc := kafka.Config{Brokers: []string{kafka.HostPort("127.0.0.1", port)}}.WithDefaults()
	f.story("exa1")
	want := f.byTopic()
	total := 0
	for _, rs := range want {
		total += len(rs)
	}
	reg := prometheus.NewRegistry()
	relay, err := NewRelay(f.store, kc, RelayConfig{PollInterval: time.Hour, BatchSize: 500, WriteTimeout: time.Second, Retention: time.Hour}, RelayDeps{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	st := NewOutboxCollector(f.store)
	st.now = func() time.Time { return f.clock.Now().Add(time.Minute) }
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	go func() { done <- relay.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("relay: %v", err)
		}
	}()
	waitFor(t, "failed attempts while the broker is away", func() bool { return testutil.ToFloat64(relay.m.failures) >= 2 })
	stats, err := f.store.OutboxStats(f.ctx)
	if err != nil || stats.Pending != total {
		t.Fatalf("outbox while Kafka is away: %+v %v, want all %d pending", stats, err, total)
	}
	if err := testutil.CollectAndCompare(st, bytes.NewBufferString(fmt.Sprintf(`
# HELP auditpipe_policy_outbox_depth Outbox records not published yet.
# TYPE auditpipe_policy_outbox_depth gauge
auditpipe_policy_outbox_depth %d
# HELP auditpipe_policy_outbox_oldest_pending_age_seconds Age of the oldest outbox record not published yet (0 when none is pending).
# TYPE auditpipe_policy_outbox_oldest_pending_age_seconds gauge
auditpipe_policy_outbox_oldest_pending_age_seconds 60
`, total)), "auditpipe_policy_outbox_depth", "auditpipe_policy_outbox_oldest_pending_age_seconds"); err != nil {
		t.Error(err)
	}

	broker, err := kafka.StartEmbedded(port, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	tctx, tcancel := context.WithTimeout(f.ctx, 30*time.Second)
	defer tcancel()
	if err := kc.EnsureTopics(tctx, kafka.PipelineTopics(1)...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the outbox published once the broker is back", func() bool {
		s, err := f.store.OutboxStats(f.ctx)
		return err == nil && s.Pending == 0
	})
	// A change now is published at once (the relay polls hourly).
	f.story("exa2")
	waitFor(t, "the new change published without a poll", func() bool {
		s, err := f.store.OutboxStats(f.ctx)
		return err == nil && s.Pending == 0
	})
	// An attempt that timed out may have landed (Kafka cannot tell): the
	// records of the outage may be there twice, never missing nor out of
	// order.
	for topic, recs := range f.byTopic() {
		got := kafkatest.ReadAll(t, kc, topic, 30*time.Second)
		seen := map[string]bool{}
		var first [][]byte
		for _, g := range got {
			if !seen[string(g.Value)] {
				seen[string(g.Value)] = true
				first = append(first, g.Value)
			}
		}
		if len(first) != len(recs) {
			t.Fatalf("%s: %d distinct records in Kafka, %d in the outbox", topic, len(first), len(recs))
		}
		for i, r := range recs {
			if !bytes.Equal(first[i], r.Value) {
				t.Errorf("%s: record %d first seen out of the outbox's order (outbox %d)", topic, i, r.ID)
			}
		}
		if len(got) > len(recs) {
			t.Logf("%s: %d records of %d published twice after the outage (at least once)", topic, len(got)-len(recs), len(recs))
		}
	}
}

// waitFor polls cond for up to 60 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
