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
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"one line", compact},
		{"indented, LF", indented.Bytes()},
		{"indented, CRLF", bytes.ReplaceAll(indented.Bytes(), []byte("\n"), []byte("\r\n"))},
		{"CR alone", bytes.Replace(compact, []byte(`,"`), []byte(",\r\""), 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := DecodeEvent(tc.in, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(r.JSON, compact) {
				t.Errorf("JSON %q, want %q", r.JSON, compact)
			}
			if r.ContentHash != ev.Hash() {
				t.Errorf("content hash %s, want %s", r.ContentHash, ev.Hash())
			}
		})
	}
}
