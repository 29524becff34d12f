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
