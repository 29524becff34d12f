package spool

import (
	"bytes"
	"testing"
	"time"
)

func segmentBytes(entries ...Entry) []byte {
	b := []byte(magic)
	t := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for i, e := range entries {
		b = encodeRecord(b, e, t.Add(time.Duration(i)*time.Second))
	}
	return b
}

func TestRecordRoundTrip(t *testing.T) {
	tests := []Entry{
		{},
		{Meta: []byte("m")},
		{Messages: []Message{{}}},
		{Messages: []Message{{Key: []byte("k"), Value: []byte("v")}, {Key: nil, Value: bytes.Repeat([]byte("x"), 300)}}, Meta: []byte(`{"a":1}`)},
	}
	for i, e := range tests {
		at := time.Unix(1700000000, int64(i))
		rec := encodeRecord(nil, e, at)
		if int64(len(rec)) != recordSize(e) {
			t.Fatalf("%d: record %d bytes, recordSize %d", i, len(rec), recordSize(e))
		}
		got, gotAt, err := checkRecord(rec)
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		if !sameEntry(got, e) || !gotAt.Equal(at) {
			t.Fatalf("%d: got %+v at %v, want %+v at %v", i, got, gotAt, e, at)
		}
	}
}

// FuzzScanSegment feeds arbitrary segment content to the decoder: it must
// never panic, the records it accepts must lie within the input and
// re-encode to exactly the bytes they were read from, and it must stop at
// the first damaged record.
func FuzzScanSegment(f *testing.F) {
	valid := segmentBytes(entry(0), entry(1), entry(2), entry(3))
	f.Add(valid)
	f.Add(valid[:len(valid)-1])
	f.Add(valid[:len(magic)+3])
	f.Add(valid[:len(magic)])
	f.Add([]byte(magic[:4]))
	flipped := bytes.Clone(valid)
	flipped[len(flipped)/2] ^= 1
	f.Add(flipped)
	f.Add(append(bytes.Clone(valid), 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var prevEnd int64 = int64(len(magic))
		end, bad, err := scanSegment(bytes.NewReader(data), int64(len(data)), func(r scanned) {
			if r.off != prevEnd || r.off+r.size > int64(len(data)) {
				t.Fatalf("record at %d+%d, previous ended at %d, input %d bytes", r.off, r.size, prevEnd, len(data))
			}
			rec := data[r.off : r.off+r.size]
			e, at, err := checkRecord(rec)
			if err != nil {
				t.Fatalf("accepted record fails the check: %v", err)
			}
			if re := encodeRecord(nil, e, at); !bytes.Equal(re, rec) {
				t.Fatalf("record does not re-encode to its bytes")
			}
			prevEnd = r.off + r.size
		})
		if err != nil {
			t.Fatalf("I/O error from a bytes.Reader: %v", err)
		}
		if end > int64(len(data)) {
			t.Fatalf("end %d past the input (%d bytes)", end, len(data))
		}
		if bad == "" && end != int64(len(data)) {
			t.Fatalf("clean scan ended at %d of %d", end, len(data))
		}
		if len(data) >= len(magic) && string(data[:len(magic)]) == magic && end != prevEnd {
			t.Fatalf("end %d, last record ended at %d", end, prevEnd)
		}
	})
}
