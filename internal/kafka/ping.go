package kafka

import (
	"context"
	"fmt"

	kafkago "github.com/segmentio/kafka-go"
)

// Ping asks the brokers for the cluster's metadata: the readiness check of
// every component that talks to Kafka.
func (c Config) Ping(ctx context.Context) error {
	tr, err := c.transport()
	if err != nil {
		return err
	}
	defer tr.CloseIdleConnections()
	cl := &kafkago.Client{Addr: kafkago.TCP(c.Brokers...), Transport: tr}
	if _, err := cl.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{}}); err != nil {
		return fmt.Errorf("kafka: metadata: %w", err)
	}
	return nil
}
