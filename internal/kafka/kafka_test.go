package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
)

// TestWriteReadCommit checks the plumbing every component relies on: a
// writer with acks=all, a consumer group that starts at the earliest offset,
// and explicit commits that a second reader of the same group resumes from.
func TestWriteReadCommit(t *testing.T) {
	cfg, _ := kafkatest.Start(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	w, err := cfg.NewWriter("opctl.audit.v1")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var msgs []kafkago.Message
	for i := range 100 {
		msgs = append(msgs, kafkago.Message{Key: []byte(fmt.Sprintf("host%d", i%3)), Value: []byte(fmt.Sprint(i))})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}

	read := func(n int, commit bool) map[string]bool {
		r, err := cfg.NewReader(kafka.ReaderConfig{Group: "g1", Topics: []string{"opctl.audit.v1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		got := map[string]bool{}
		for len(got) < n {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				t.Fatalf("fetch after %d: %v", len(got), err)
			}
			got[string(m.Value)] = true
			if commit {
				if err := r.CommitMessages(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
		}
		return got
	}
	if got := read(100, true); len(got) != 100 {
		t.Fatalf("first read: %d values, want 100", len(got))
	}
	// Everything was committed: a new member of the group sees only new data.
	if err := w.WriteMessages(ctx, kafkago.Message{Key: []byte("host0"), Value: []byte("late")}); err != nil {
		t.Fatal(err)
	}
	got := read(1, true)
	if !got["late"] {
		t.Fatalf("second read: got %v, want only \"late\"", got)
	}
}

func TestLag(t *testing.T) {
	cfg, _ := kafkatest.Start(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w, err := cfg.NewWriter("opctl.audit.v1")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := range 10 {
		if err := w.WriteMessages(ctx, kafkago.Message{Key: []byte(fmt.Sprint(i)), Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	if lag, err := cfg.Lag(ctx, "nobody", "opctl.audit.v1"); err != nil || lag != 10 {
		t.Fatalf("lag of a new group = %d, %v; want 10", lag, err)
	}
	r, err := cfg.NewReader(kafka.ReaderConfig{Group: "g", Topics: []string{"opctl.audit.v1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for range 4 {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.CommitMessages(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if lag, err := cfg.Lag(ctx, "g", "opctl.audit.v1"); err != nil || lag != 6 {
		t.Fatalf("lag after 4 commits = %d, %v; want 6", lag, err)
	}
}
