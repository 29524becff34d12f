package kafka_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/testlog"
)

// Regression: a member that joined its group on Apache Kafka before its
// topics existed, the topics being created just after the join, held an
// assignment without their partitions for ever (kafka-go's partition
// watcher took its baseline after the topics came into being): the
// indexer target started before the broker read nothing. The reader now
// rejoins when partitions of its topics are held by no member.
func TestGroupReaderJoinedBeforeTopicsExist(t *testing.T) {
	a := kafkatest.NewApache(t, 1)
	logs := &testlog.Buffer{}
	r, err := a.Config.NewGroupReader(kafka.GroupReaderConfig{Group: "g", Topics: []string{topic, "opctl.lifecycle.v1"},
		MaxWait: 100 * time.Millisecond, Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- r.Run(ctx, func(_ context.Context, b kafka.Batch) error { n.Add(int64(len(b.Records))); return nil })
	}()
	waitFor(t, "the join to fail (no broker)", func() bool { return logs.Contains("joining the consumer group failed") })
	a.Start(t)
	// Joined while the topics did not exist (or were being created by
	// kafka-go's own metadata request), then the topics are created.
	waitFor(t, "the join", func() bool { return logs.Contains("joining the consumer group recovered") })
	ectx, ecancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer ecancel()
	if err := a.Config.EnsureTopics(ectx, kafka.PipelineTopics(1)...); err != nil {
		t.Fatal(err)
	}
	write(t, a.Config, 0, 100)
	waitFor(t, "100 values", func() bool { return n.Load() == 100 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Logf("Close: %v", err)
	}
}
