package indexer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/schemas"
)

// produce writes values to topic, key = host for events.
func produce(t testing.TB, kc kafka.Config, topic string, msgs []kafka.Record) {
	t.Helper()
	w, err := kc.NewWriter(topic)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for len(msgs) > 0 {
		n := min(len(msgs), 1000)
		if err := w.Write(ctx, msgs[:n]...); err != nil {
			t.Fatalf("produce: %.300v", err)
		}
		msgs = msgs[n:]
	}
}

func eventMessages(evs []schemas.Event) []kafka.Record {
	out := make([]kafka.Record, len(evs))
	for i := range evs {
		out[i] = kafka.Record{Key: []byte(evs[i].Host), Value: evs[i].AppendJSON(nil)}
	}
	return out
}

// testConfig is an indexer configuration for kc with small timings.
func testConfig(kc kafka.Config, group string) Config {
	cfg := DefaultConfig()
	cfg.Kafka = kc
	cfg.Group = group
	cfg.Batch.MaxWait = 100 * time.Millisecond
	cfg.RetryBackoff = 10 * time.Millisecond
	cfg.RetryBackoffMax = 100 * time.Millisecond
	cfg.ShutdownTimeout = 10 * time.Second
	// The sample events are years old: a TTL would drop them on insert.
	cfg.Store.RetentionDays = 0
	return cfg
}

// startIndexer runs ix until the returned stop is called; stop returns
// Run's error.
func startIndexer(t testing.TB, ix *Indexer) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ix.Run(ctx) }()
	var stopped bool
	var err error
	stop = func() error {
		if !stopped {
			cancel()
			err = <-done
			stopped = true
		}
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// countOr returns the one number sql returns, or -1 on error (a table
// not created yet).
func countOr(q clickhouse.Querier, sql string) int {
	r, err := q.Query(context.Background(), sql)
	if err != nil || len(r.Rows) != 1 || len(r.Rows[0]) != 1 {
		return -1
	}
	var n int
	fmt.Sscan(clickhouse.ValueString(r.Rows[0][0]), &n)
	return n
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
