package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// CheckLeaders asks the brokers for metadata and reports whether they
// serve: the cluster names its brokers, every partition of each named
// topic exists and has a leader, and that leader answers for it (its end
// offset). A broker that accepts TCP connections is
// not yet ready by this measure: right after a (re)start it answers "no
// leader" until its controller has elected one for every partition.
func (c Config) CheckLeaders(ctx context.Context, topics ...string) error {
	tr, err := c.transport()
	if err != nil {
		return fmt.Errorf("kafka: metadata: %w", err)
	}
	defer tr.CloseIdleConnections()
	cl := &kafkago.Client{Addr: kafkago.TCP(c.Brokers...), Transport: tr, Timeout: 10 * time.Second}
	// A nil topic list asks for every topic; an empty one for none.
	req := &kafkago.MetadataRequest{Topics: append([]string{}, topics...)}
	resp, err := cl.Metadata(ctx, req)
	if err != nil {
		return fmt.Errorf("kafka: metadata: %w", err)
	}
	if len(resp.Brokers) == 0 {
		return errors.New("kafka: metadata names no broker")
	}
	found := map[string]kafkago.Topic{}
	for _, t := range resp.Topics {
		found[t.Name] = t
	}
	var errs []error
	offsets := &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{}}
	for _, name := range topics {
		t, ok := found[name]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("kafka: topic %s: not in the metadata", name))
		case t.Error != nil:
			errs = append(errs, fmt.Errorf("kafka: topic %s: %w", name, t.Error))
		case len(t.Partitions) == 0:
			errs = append(errs, fmt.Errorf("kafka: topic %s: no partitions", name))
		}
		for _, p := range t.Partitions {
			switch {
			case p.Error != nil:
				errs = append(errs, fmt.Errorf("kafka: topic %s partition %d: %w", name, p.ID, p.Error))
			case p.Leader.Host == "":
				errs = append(errs, fmt.Errorf("kafka: topic %s partition %d: no leader", name, p.ID))
			default:
				offsets.Topics[name] = append(offsets.Topics[name], kafkago.LastOffsetOf(p.ID))
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// The metadata name a leader before the leader serves the partition
	// (it answers "not leader" meanwhile): ask each leader for the end
	// offset of each partition too.
	if len(offsets.Topics) == 0 {
		return nil
	}
	oresp, err := cl.ListOffsets(ctx, offsets)
	if err != nil {
		return fmt.Errorf("kafka: list offsets: %w", err)
	}
	for name, want := range offsets.Topics {
		got := oresp.Topics[name]
		if len(got) != len(want) {
			errs = append(errs, fmt.Errorf("kafka: topic %s: end offsets of %d partitions, want %d", name, len(got), len(want)))
		}
		for _, p := range got {
			if p.Error != nil {
				errs = append(errs, fmt.Errorf("kafka: topic %s partition %d: %w", name, p.Partition, p.Error))
			}
		}
	}
	return errors.Join(errs...)
}

// TopicNames returns the names of topics.
func TopicNames(topics []Topic) []string {
	names := make([]string, len(topics))
	for i, t := range topics {
		names[i] = t.Name
	}
	return names
}
