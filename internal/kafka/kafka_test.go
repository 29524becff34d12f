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

// readGroup reads with a member of group until n records were seen,
// committing each batch when commit is set, and returns their values.
func readGroup(t *testing.T, ctx context.Context, cfg kafka.Config, group string, n int, commit bool) map[string]bool {
	t.Helper()
	r, err := cfg.NewGroupReader(kafka.GroupReaderConfig{Group: group, Topics: []string{"opctl.audit.v1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	got := map[string]bool{}
	seen := 0
	err = r.Run(ctx, func(_ context.Context, b kafka.Batch) error {
		mu.Lock()
		defer mu.Unlock()
		if seen >= n {
			return nil
		}
		for _, rec := range b.Records {
			got[string(rec.Value)] = true
			seen++
		}
		if commit {
			last := b.Records[len(b.Records)-1]
			if err := b.Generation.Commit(map[string]map[int]int64{b.Topic: {b.Partition: last.Offset + 1}}); err != nil {
				return err
			}
		}
		if seen >= n {
			cancel()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen < n {
		t.Fatalf("read %d records, want %d", seen, n)
	}
	return got
}

// TestWriteReadCommit checks the plumbing every component relies on: a
// writer with acks=all, a consumer group that starts at the earliest offset,
// and explicit commits that a second member of the same group resumes from.
func TestWriteReadCommit(t *testing.T) {
	cfg, _ := kafkatest.Start(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	w, err := cfg.NewWriter("opctl.audit.v1")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var recs []kafka.Record
	for i := range 100 {
		recs = append(recs, kafka.Record{Key: []byte(fmt.Sprintf("host%d", i%3)), Value: []byte(fmt.Sprint(i))})
	}
	if err := w.Write(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	if got := readGroup(t, ctx, cfg, "g1", 100, true); len(got) != 100 {
		t.Fatalf("first read: %d values, want 100", len(got))
	}
	// Everything was committed: a new member of the group sees only new data.
	if err := w.Write(ctx, kafka.Record{Key: []byte("host0"), Value: []byte("late")}); err != nil {
		t.Fatal(err)
	}
	got := readGroup(t, ctx, cfg, "g1", 1, true)
	if !got["late"] || len(got) != 1 {
		t.Fatalf("second read: got %v, want only \"late\"", got)
	}
}

func TestLag(t *testing.T) {
	cfg, _ := kafkatest.Start(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w, err := cfg.NewWriter("opctl.audit.v1")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := range 10 {
		if err := w.Write(ctx, kafka.Record{Key: []byte(fmt.Sprint(i)), Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	if lag, err := cfg.Lag(ctx, "nobody", "opctl.audit.v1"); err != nil || lag != 10 {
		t.Fatalf("lag of a new group = %d, %v; want 10", lag, err)
	}
	readGroup(t, ctx, cfg, "g", 10, true)
	if lag, err := cfg.Lag(ctx, "g", "opctl.audit.v1"); err != nil || lag != 0 {
		t.Fatalf("lag after committing everything = %d, %v; want 0", lag, err)
	}
	if err := w.Write(ctx, kafka.Record{Key: []byte("k"), Value: []byte("y")}, kafka.Record{Key: []byte("k"), Value: []byte("z")}); err != nil {
		t.Fatal(err)
	}
	if lag, err := cfg.Lag(ctx, "g", "opctl.audit.v1"); err != nil || lag != 2 {
		t.Fatalf("lag after 2 more = %d, %v; want 2", lag, err)
	}
}
