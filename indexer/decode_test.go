package indexer

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/schemas"
)

// DecodeEvent hands JSONEachRow one row per line: an event that arrives
// indented, with LF or CRLF line ends, is compacted; one on one line is
// kept as it came.
func TestDecodeEventOneLine(t *testing.T) {
	ev := clickhousetest.ManyEvents(1, time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC))[0]
	compact := ev.AppendJSON(nil)
	var indented bytes.Buffer
	if err := json.Indent(&indented, compact, "", "  "); err != nil {
		t.Fatal(err)
	}
	// One line but not the canonical bytes: stored as it came, and its
	// hash is still the canonical bytes' (DecodeEvent hashes its input as
	// it is only when it is them).
	spaced := bytes.Replace(compact, []byte(`{"layer":`), []byte(`{"layer": `), 1)
	for _, tc := range []struct {
		name     string
		in, want []byte
	}{
		{"one line", compact, compact},
		{"indented, LF", indented.Bytes(), compact},
		{"indented, CRLF", bytes.ReplaceAll(indented.Bytes(), []byte("\n"), []byte("\r\n")), compact},
		{"CR alone", bytes.Replace(compact, []byte(`,"`), []byte(",\r\""), 1), compact},
		{"one line, not canonical", spaced, spaced},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := DecodeEvent(tc.in, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(r.JSON, tc.want) {
				t.Errorf("JSON %q, want %q", r.JSON, tc.want)
			}
			if r.ContentHash != ev.Hash() {
				t.Errorf("content hash %s, want %s", r.ContentHash, ev.Hash())
			}
		})
	}
}

// BenchmarkDecodeEvent is the indexer's per-row decode: strict decode,
// checks, content hash.
func BenchmarkDecodeEvent(b *testing.B) {
	evs := clickhousetest.ManyEvents(1000, time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC))
	vals := make([][]byte, len(evs))
	for i := range evs {
		vals[i] = evs[i].AppendJSON(nil)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := DecodeEvent(vals[i%len(vals)], 0); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// The indexer's decode of a good audit event allocates what DecodeEvent
// does and the row it hands on, nothing more: the record's source
// ("topic/partition/offset", for dead letters) was formatted for every
// record and thrown away for all but the bad ones.
func TestDecodeAllocatesOnlyTheRow(t *testing.T) {
	ix, err := New(testConfig(kafka.Config{Brokers: []string{"localhost:1"}}, "g"), Deps{Engine: refusingEngine{}})
	if err != nil {
		t.Fatal(err)
	}
	ev := clickhousetest.ManyEvents(1, time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC))[0]
	m := kafka.Record{Topic: schemas.TopicAudit, Partition: 1, Offset: 5, Value: ev.AppendJSON(nil)}
	if it := ix.decode(context.Background(), m); it.ev == nil {
		t.Fatalf("not decoded: %+v", it.dl)
	}
	decode := testing.AllocsPerRun(50, func() { _, _ = DecodeEvent(m.Value, ix.cfg.MaxRowBytes) })
	item := testing.AllocsPerRun(50, func() { ix.decode(context.Background(), m) })
	if item != decode+1 {
		t.Errorf("decode of a record: %v allocations, DecodeEvent %v: want one more (the row)", item, decode)
	}
}
