package kafkatest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/kafka"
)

// Read returns the first n records of topic (all partitions, from the
// start, without a consumer group), failing the test when they do not
// arrive within timeout.
func Read(t testing.TB, cfg kafka.Config, topic string, n int, timeout time.Duration) []kafka.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var mu sync.Mutex
	var got []kafka.Record
	enough := make(chan struct{})
	f, err := cfg.NewFollower(kafka.FollowerConfig{Topic: topic, MaxWait: 100 * time.Millisecond, Apply: func(r kafka.Record) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, r)
		if len(got) == n {
			close(enough)
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	select {
	case <-enough:
	case <-ctx.Done():
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("kafkatest: read %s: %v", topic, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) < n {
		t.Fatalf("kafkatest: read %s: %d records in %s, want %d", topic, len(got), timeout, n)
	}
	return got[:n]
}

// ReadAll returns every record of topic as of now (all partitions, from
// the start, until the follower caught up with the end it saw first),
// failing the test when that takes longer than timeout.
func ReadAll(t testing.TB, cfg kafka.Config, topic string, timeout time.Duration) []kafka.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var mu sync.Mutex
	var got []kafka.Record
	f, err := cfg.NewFollower(kafka.FollowerConfig{Topic: topic, MaxWait: 100 * time.Millisecond, Apply: func(r kafka.Record) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, r)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	caught := false
	select {
	case <-f.CaughtUp():
		caught = true
	case <-ctx.Done():
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("kafkatest: read %s: %v", topic, err)
	}
	if !caught {
		t.Fatalf("kafkatest: read %s: not caught up within %s", topic, timeout)
	}
	mu.Lock()
	defer mu.Unlock()
	return got
}
