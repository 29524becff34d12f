// Package kafkatest starts an in-process Kafka-protocol broker (kfake) for
// tests, with the pipeline's topics created.
package kafkatest

import (
	"context"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/kafka"
)

// Start starts a broker for the test, creates the pipeline topics with the
// given number of partitions for the audit topic, and returns a Kafka
// configuration pointing at it. The broker stops when the test ends.
func Start(t testing.TB, partitions int) (kafka.Config, *kafka.Embedded) {
	t.Helper()
	e, err := kafka.StartEmbedded(0, "", partitions)
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	t.Cleanup(e.Close)
	cfg := kafka.Config{Brokers: e.Brokers()}.WithDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cfg.EnsureTopics(ctx, kafka.PipelineTopics(partitions)...); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	return cfg, e
}
