package indexer

import (
	"maps"
	"testing"

	"github.com/auditpipe/auditpipe/internal/kafka"
)

// Mutation testing (issue 15) of indexer.go: the offset a batch commits
// for a partition is that of its highest record read under the generation
// it was last read in (a rebalance hands the partition to a new
// generation, which may read it again from lower down), and the batch
// counts its records and bytes. The end-to-end tests commit batches whose
// records come once each, in order, under one generation, and read back
// with deduplication: a batch that kept the lowest offset, or the first
// generation's, still passed them.
// Mutants killed: indexer.go:382:42, 382:71 (CONDITIONALS_NEGATION), 385:5
// (INCREMENT_DECREMENT).
func TestBatchLastOffsets(t *testing.T) {
	g1, g2 := &kafka.Generation{}, &kafka.Generation{}
	var b batch
	add := func(gen *kafka.Generation, topic string, partition int, offset int64) {
		b.add(item{msg: kafka.Record{Topic: topic, Partition: partition, Offset: offset, Value: []byte("xyz")}, gen: gen})
	}
	type last struct {
		offset int64
		gen    *kafka.Generation
	}
	lasts := func() map[topicPartition]last {
		m := map[topicPartition]last{}
		for k, it := range b.last {
			m[k] = last{it.msg.Offset, it.gen}
		}
		return m
	}
	add(g1, "a", 0, 5)
	add(g1, "a", 0, 7)
	add(g1, "a", 0, 6)
	add(g1, "a", 1, 3)
	add(g1, "b", 0, 9)
	want := map[topicPartition]last{{"a", 0}: {7, g1}, {"a", 1}: {3, g1}, {"b", 0}: {9, g1}}
	if got := lasts(); !maps.Equal(got, want) {
		t.Errorf("one generation: last %v, want %v", got, want)
	}
	if b.len() != 5 || b.bytes != 15 {
		t.Errorf("one generation: %d records of %d bytes, want 5 of 15", b.len(), b.bytes)
	}
	add(g2, "a", 0, 2) // re-read after a rebalance
	want[topicPartition{"a", 0}] = last{2, g2}
	if got := lasts(); !maps.Equal(got, want) {
		t.Errorf("after a rebalance: last %v, want %v", got, want)
	}
	b.reset()
	if b.len() != 0 || b.bytes != 0 || len(b.last) != 0 {
		t.Errorf("reset: %d records of %d bytes, last %v", b.len(), b.bytes, b.last)
	}
	add(g2, "a", 0, 3)
	if got, want := lasts(), (map[topicPartition]last{{"a", 0}: {3, g2}}); !maps.Equal(got, want) || b.len() != 1 {
		t.Errorf("after reset: last %v (%d records), want %v (1)", got, b.len(), want)
	}
}
