package policy

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/auditpipe/auditpipe/internal/backoff"
	"github.com/auditpipe/auditpipe/internal/deadletter"
	"github.com/auditpipe/auditpipe/internal/kafka"
)

// RecordConsumer is the consumer loop that the policy service's agent
// reports and the scheduler's work progress share: one consumer group on
// one topic, each record applied in order, what cannot be applied
// dead-lettered by Apply, and a batch committed once every record of it
// was. A record read again (a rebalance, a commit after the generation
// ended) is applied again, which the appliers make a no-op.
type RecordConsumer struct {
	// Name prefixes the errors and the log lines ("agent reports").
	Name string
	// Component names the writer of the dead letters ("policy").
	Component                     string
	Group, Topic, DeadLetterTopic string
	// Outage says what a store outage stops, for its log line.
	Outage string
	Log    *slog.Logger
	// Apply applies one record, retrying through outage while the store
	// is away; it returns an error only when ctx ended or a dead letter
	// could not be written.
	Apply func(ctx context.Context, r *kafka.Record, dead *deadletter.Writer, outage *backoff.Outage) error
}

// Run consumes until ctx ends; it returns nil then, or the consumer
// group's permanent failure (not authorized).
func (c RecordConsumer) Run(ctx context.Context, kc kafka.Config) error {
	reader, err := kc.NewGroupReader(kafka.GroupReaderConfig{Group: c.Group, Topics: []string{c.Topic}, Log: c.Log})
	if err != nil {
		return fmt.Errorf("%s: %w", c.Name, err)
	}
	dead, err := deadletter.Open(kc, c.DeadLetterTopic, c.Component, c.Log)
	if err != nil {
		_ = reader.Close()
		return fmt.Errorf("%s: %w", c.Name, err)
	}
	defer func() {
		if err := dead.Close(); err != nil {
			c.Log.Debug("closing the dead-letter writer", "err", err)
		}
	}()
	outage := backoff.NewOutage(c.Log, c.Outage)
	err = reader.Run(ctx, func(ctx context.Context, b kafka.Batch) error {
		for i := range b.Records {
			if err := c.Apply(ctx, &b.Records[i], dead, outage); err != nil {
				if ctx.Err() != nil {
					return nil // stopping or rebalanced: the rest is read again
				}
				return err
			}
		}
		if len(b.Records) == 0 {
			return nil
		}
		next := b.Records[len(b.Records)-1].Offset + 1
		if err := b.Generation.Commit(map[string]map[int]int64{b.Topic: {b.Partition: next}}); err != nil {
			// The generation ended: the partition's next owner reads
			// these records again, and applying them again changes nothing.
			c.Log.Debug(c.Name+": commit after the generation ended", "err", err)
		}
		return nil
	})
	if cerr := reader.Close(); cerr != nil {
		c.Log.Debug("closing the "+c.Name+" reader", "err", cerr)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", c.Name, err)
	}
	return nil
}
