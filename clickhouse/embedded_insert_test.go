package clickhouse

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/schemas"
)

// TestEventsInsertSizedUpFront: the statements of a batch are built in
// the buffer they were sized for, whatever the Kafka position and hash
// add to each row (a statement of 10 000 events is about 9 MB: growing it
// by appends copied and allocated it about twice over), and they say
// what they said before.
func TestEventsInsertSizedUpFront(t *testing.T) {
	row := func(i int, partition int32, offset int64, hash string) EventRow {
		id := fmt.Sprintf("%016x%016x", uint64(i)*0x9e3779b97f4a7c15, i)
		return EventRow{
			Event: schemas.Event{EventID: id}, TS: time.Unix(1796277900+int64(i), 0).UTC(),
			JSON:        []byte(fmt.Sprintf(`{"event_id":"%s","seq":%d}`, id, i)),
			ContentHash: hash, Partition: partition, Offset: offset,
		}
	}
	hash := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name string
		rows []EventRow
		want string // what the first row's line adds to its JSON
	}{
		{"position and hash", []EventRow{row(1, 2147483647, 9223372036854775807, hash), row(2, 0, 0, hash)},
			`,"kafka_partition":2147483647,"kafka_offset":9223372036854775807,"content_hash":"` + hash + `"}`},
		{"negative position", []EventRow{row(3, 1, -5, hash)},
			`,"kafka_partition":1,"kafka_offset":-5,"content_hash":"` + hash + `"}`},
		{"backfill, no hash", []EventRow{row(4, -1, -1, "")},
			`}`},
		{"many", func() []EventRow {
			var rs []EventRow
			for i := range 1000 {
				rs = append(rs, row(i, int32(i%3), int64(i)*1000003, hash))
			}
			return rs
		}(), `,"kafka_partition":0,"kafka_offset":0,"content_hash":"` + hash + `"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			qt := QuoteString("ev-token")
			b := eventsInsert(qt, tc.rows)
			if len(b) != cap(b) && cap(b)-len(b) > len(tc.rows)*positionMax {
				t.Errorf("events: %d bytes in a buffer of %d: sized too large", len(b), cap(b))
			}
			if allocs := testing.AllocsPerRun(5, func() { b = eventsInsert(qt, tc.rows) }); allocs > 1 {
				t.Errorf("events: %v allocations, want 1 (the buffer, sized up front)", allocs)
			}
			lines := strings.Split(string(bytes.TrimSuffix(b, []byte{'\n', 0})), "\n")
			if want := eventsInsertHead + qt + eventsInsertTail; lines[0]+"\n" != want {
				t.Errorf("head %q, want %q", lines[0], want)
			}
			want := string(tc.rows[0].JSON[:len(tc.rows[0].JSON)-1]) + tc.want
			if len(lines) != len(tc.rows)+1 || lines[1] != want {
				t.Errorf("%d lines, first row %q, want %d and %q", len(lines), lines[1], len(tc.rows)+1, want)
			}
			if allocs := testing.AllocsPerRun(5, func() { b, _ = eventIDsInsert(qt, tc.rows) }); allocs > 1 {
				t.Errorf("event ids: %v allocations, want 1", allocs)
			}
			if n := bytes.Count(b, []byte{'\n'}); n != len(tc.rows)+1 || b[len(b)-1] != 0 {
				t.Errorf("event ids: %d lines, want %d, NUL-terminated", n, len(tc.rows)+1)
			}
		})
	}
}
