package deadletter

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/schemas"
)

// flaky refuses the first fails writes, then keeps what it is given.
type flaky struct {
	fails int
	calls int
	got   []kafka.Record
}

func (f *flaky) Write(_ context.Context, recs ...kafka.Record) error {
	f.calls++
	if f.calls <= f.fails {
		return errors.New("dial tcp: connection refused")
	}
	f.got = append(f.got, recs...)
	return nil
}

func TestWriteRetriesUntilWritten(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fails int
	}{
		{"first try", 0},
		{"after failures", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &flaky{fails: tc.fails}
			w := NewWriter("indexer", f, nil)
			w.SetBackoff(time.Millisecond, 2*time.Millisecond)
			d := w.Letter("decode", errors.New("bad json"), []byte("{"), "h1", "opctl.audit.v1/0/7")
			if err := w.Write(context.Background(), d); err != nil {
				t.Fatal(err)
			}
			if f.calls != tc.fails+1 || len(f.got) != 1 {
				t.Fatalf("%d calls, %d records; want %d calls, 1 record", f.calls, len(f.got), tc.fails+1)
			}
			r := f.got[0]
			if string(r.Key) != "indexer" {
				t.Errorf("key %q, want the component", r.Key)
			}
			var back schemas.DeadLetter
			if err := json.Unmarshal(r.Value, &back); err != nil {
				t.Fatal(err)
			}
			if back.Component != "indexer" || back.Reason != "decode" || back.Error != "bad json" || back.Raw != "{" || back.Host != "h1" || back.Source != "opctl.audit.v1/0/7" {
				t.Errorf("dead letter %+v", back)
			}
		})
	}
}

func TestWriteStopsWithContext(t *testing.T) {
	w := NewWriter("forwarder", &flaky{fails: 1 << 30}, nil)
	w.SetBackoff(time.Millisecond, time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := w.Write(ctx, w.Letter("r", nil, nil, "", ""))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Write = %v, want the context's end and the last failure", err)
	}
}

// The input a dead letter carries is capped, so that it fits one record.
func TestLetterCapsRaw(t *testing.T) {
	raw := []byte(strings.Repeat("x", schemas.MaxDeadLetterRaw+10))
	d := New("collector", "too_long", nil, raw, "", "", time.Now())
	if len(d.Raw) != schemas.MaxDeadLetterRaw || !d.Truncated || d.RawBytes != len(raw) {
		t.Fatalf("raw %d bytes, truncated %v, raw_bytes %d", len(d.Raw), d.Truncated, d.RawBytes)
	}
}
