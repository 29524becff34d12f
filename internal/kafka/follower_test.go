package kafka_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
)

// state is what a follower built: key -> value, tombstones deleting.
type state struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *state) apply(r kafka.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Value == nil {
		delete(s.m, string(r.Key))
		return nil
	}
	if string(r.Value) == "bad" {
		return fmt.Errorf("bad value for %s", r.Key)
	}
	s.m[string(r.Key)] = string(r.Value)
	return nil
}

func (s *state) get(k string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	return v, ok
}

func (s *state) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// follow runs a follower of topic until the test ends.
func follow(t *testing.T, cfg kafka.Config, topic string) (*kafka.Follower, *state) {
	t.Helper()
	st := &state{m: map[string]string{}}
	f, err := cfg.NewFollower(kafka.FollowerConfig{Topic: topic, Apply: st.apply, MaxWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("follower: %v", err)
		}
	})
	return f, st
}

func writeRecords(t *testing.T, cfg kafka.Config, topic string, recs ...kafka.Record) {
	t.Helper()
	w, err := cfg.NewWriter(topic)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.Write(ctx, recs...); err != nil {
		t.Fatal(err)
	}
}

func waitCaughtUp(t *testing.T, f *kafka.Follower) {
	t.Helper()
	select {
	case <-f.CaughtUp():
	case <-time.After(20 * time.Second):
		t.Fatal("the follower did not catch up")
	}
}

func TestFollower(t *testing.T) {
	cfg, _ := kafkatest.Start(t, 1)
	const grants = "opctl.grants.v1"
	var recs []kafka.Record
	for i := range 50 {
		recs = append(recs, kafka.Record{Key: []byte(fmt.Sprintf("k%d", i%10)), Value: []byte(fmt.Sprintf("v%d", i))})
	}
	recs = append(recs,
		kafka.Record{Key: []byte("k3")},                       // tombstone
		kafka.Record{Key: []byte("k4"), Value: []byte("bad")}, // skipped, k4 keeps v44
	)
	writeRecords(t, cfg, grants, recs...)

	f, st := follow(t, cfg, grants)
	waitCaughtUp(t, f)
	// Caught up means every record that existed at start is applied.
	if n := st.len(); n != 9 {
		t.Errorf("%d keys after catching up, want 9 (k3 deleted)", n)
	}
	for k, want := range map[string]string{"k0": "v40", "k9": "v49", "k4": "v44"} {
		if v, _ := st.get(k); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
	if _, ok := st.get("k3"); ok {
		t.Error("k3 survived its tombstone")
	}
	// And it goes on following.
	writeRecords(t, cfg, grants, kafka.Record{Key: []byte("late"), Value: []byte("x")})
	waitUntil(t, "the late record", func() bool { v, _ := st.get("late"); return v == "x" })
}

// A topic that does not exist at start: caught up at once (nothing to
// catch up with), and followed from its start once it appears.
func TestFollowerTopicCreatedLater(t *testing.T) {
	cfg, _ := kafkatest.Start(t, 1)
	const later = "opctl.later.v1"
	f, st := follow(t, cfg, later)
	waitCaughtUp(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cfg.EnsureTopics(ctx, kafka.Topic{Name: later, Partitions: 1, Compacted: true}); err != nil {
		t.Fatal(err)
	}
	writeRecords(t, cfg, later, kafka.Record{Key: []byte("a"), Value: []byte("1")})
	waitUntil(t, "the record of the topic created later", func() bool { v, _ := st.get("a"); return v == "1" })
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
