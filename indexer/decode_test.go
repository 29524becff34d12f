package indexer

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
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
