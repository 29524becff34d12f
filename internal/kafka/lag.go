package kafka

import (
	"context"
	"fmt"

	kafkago "github.com/segmentio/kafka-go"
)

// Lag returns how many messages of topics the consumer group has not
// committed yet, summed over partitions. A partition the group never
// committed counts whole (from its first offset).
func (c Config) Lag(ctx context.Context, group string, topics ...string) (int64, error) {
	tr, err := c.transport()
	if err != nil {
		return 0, err
	}
	defer tr.CloseIdleConnections()
	cl := &kafkago.Client{Addr: kafkago.TCP(c.Brokers...), Transport: tr}
	meta, err := cl.Metadata(ctx, &kafkago.MetadataRequest{Topics: topics})
	if err != nil {
		return 0, fmt.Errorf("kafka: lag: metadata: %w", err)
	}
	parts := map[string][]int{}
	reqs := map[string][]kafkago.OffsetRequest{}
	for _, t := range meta.Topics {
		if t.Error != nil {
			return 0, fmt.Errorf("kafka: lag: topic %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			parts[t.Name] = append(parts[t.Name], p.ID)
			reqs[t.Name] = append(reqs[t.Name], kafkago.FirstOffsetOf(p.ID), kafkago.LastOffsetOf(p.ID))
		}
	}
	offs, err := cl.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: reqs})
	if err != nil {
		return 0, fmt.Errorf("kafka: lag: list offsets: %w", err)
	}
	committed, err := cl.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: group, Topics: parts})
	if err != nil {
		return 0, fmt.Errorf("kafka: lag: offsets of group %s: %w", group, err)
	}
	var lag int64
	for topic, ps := range offs.Topics {
		done := map[int]int64{}
		for _, p := range committed.Topics[topic] {
			done[p.Partition] = p.CommittedOffset
		}
		for _, p := range ps {
			if p.Error != nil {
				return 0, fmt.Errorf("kafka: lag: %s/%d: %w", topic, p.Partition, p.Error)
			}
			from, ok := done[p.Partition]
			if !ok || from < p.FirstOffset {
				from = p.FirstOffset
			}
			if p.LastOffset > from {
				lag += p.LastOffset - from
			}
		}
	}
	return lag, nil
}

// AssignedMembers returns how many members of the consumer group hold at
// least one partition, once the group is stable (0 while it rebalances or
// when it does not exist).
func (c Config) AssignedMembers(ctx context.Context, group string) (int, error) {
	tr, err := c.transport()
	if err != nil {
		return 0, err
	}
	defer tr.CloseIdleConnections()
	cl := &kafkago.Client{Addr: kafkago.TCP(c.Brokers...), Transport: tr}
	desc, err := cl.DescribeGroups(ctx, &kafkago.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		return 0, fmt.Errorf("kafka: members of group %s: %w", group, err)
	}
	if len(desc.Groups) != 1 || desc.Groups[0].Error != nil || desc.Groups[0].GroupState != "Stable" {
		return 0, nil
	}
	n := 0
	for _, m := range desc.Groups[0].Members {
		for _, t := range m.MemberAssignments.Topics {
			if len(t.Partitions) > 0 {
				n++
				break
			}
		}
	}
	return n, nil
}
