package clickhouse_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/schemas"
)

// jsonEachRowInsert is the embedded engine's insert of audit events before
// RowBinary (the events' own JSON with the Kafka position and content hash
// spliced in, parsed by ClickHouse), kept here as the reference that the
// RowBinary insert must store exactly as.
func jsonEachRowInsert(table, token string, rows []clickhouse.EventRow) string {
	var b strings.Builder
	b.WriteString("INSERT INTO " + table + " SETTINGS insert_deduplication_token = " + clickhouse.QuoteString(token) +
		", date_time_input_format = 'best_effort', input_format_skip_unknown_fields = 0 FORMAT JSONEachRow\n")
	for i := range rows {
		r := &rows[i]
		j := bytes.TrimSpace(r.JSON)
		b.Write(j[:len(j)-1])
		if r.Partition >= 0 {
			b.WriteString(`,"kafka_partition":` + strconv.Itoa(int(r.Partition)) + `,"kafka_offset":` + strconv.FormatInt(r.Offset, 10))
		}
		if r.ContentHash != "" {
			b.WriteString(`,"content_hash":"` + r.ContentHash + `"`)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// rowBinaryCases are events that exercise every column: the sample
// (logins, commands, logouts), a hash chain with signed checkpoints, and
// events with bytes that are hard to carry (non-UTF-8 escaped, NUL, quotes,
// newlines, empty and long values, many arguments).
func rowBinaryCases(t *testing.T) []clickhouse.EventRow {
	base := time.Date(2024, 7, 1, 3, 20, 22, 418_000_000, time.UTC)
	evs := clickhousetest.SampleEvents(base)
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	evs = append(evs, clickhousetest.ChainedEvents(t, "chain01", 5, 2, key)...)
	odd := clickhousetest.ManyEvents(4, base.Add(time.Hour))
	odd[0].Title, odd[0].Args = "printf\x00a\\x80b", []string{"printf", `a\x80b`, "", "quote ' \" \\ tab\t nl\n"}
	odd[0].Escaped = []string{"title", "args"}
	odd[1].RawData = strings.Repeat("type=EXECVE msg=audit(07/01/2024 04:20:22.418:1) : argc=3 a0=x \n", 2000) // > 127 bytes: a multi-byte length
	odd[1].Args = make([]string, 300)
	for i := range odd[1].Args {
		odd[1].Args[i] = "arg" + strconv.Itoa(i)
	}
	odd[2].Event, odd[2].Keys, odd[2].Title, odd[2].Args = schemas.KindKeys, "ls -l\r\x7f\x1b[A日本語", "", nil
	odd[3].Cwd, odd[3].Exe, odd[3].PID = "", "", ""
	// Regression: bytes 0A 0A (an empty line) in the rows ended chDB's
	// inline data of an INSERT there, cutting the batch: a seq of 2570 is
	// 0A 0A 00 …, and so is a value with an empty line.
	odd[3].Seq, odd[3].Cwd = 0x0a0a, "/tmp/a\n\nb"
	evs = append(evs, odd...)

	// As the indexer has them: the wire JSON and the event decoded from it
	// (the wire form leaves out the fields a kind does not carry).
	rows := make([]clickhouse.EventRow, len(evs))
	for i := range evs {
		js := evs[i].AppendJSON(nil)
		var ev schemas.Event
		if err := ev.DecodeJSON(js); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		ts, err := time.Parse(time.RFC3339Nano, ev.TS)
		if err != nil {
			t.Fatal(err)
		}
		rows[i] = clickhouse.EventRow{Event: ev, TS: ts.UTC(), JSON: js, ContentHash: ev.Hash(),
			Partition: int32(i % 3), Offset: int64(1000 + i)}
	}
	// A backfill (no Kafka position) and a row indexed without a content
	// hash: the defaults must be the same as when JSON left them out.
	rows[0].Partition, rows[0].Offset, rows[1].ContentHash = -1, -1, ""
	return rows
}

// TestInsertEventsRowBinaryAsJSON checks that the embedded engine's
// RowBinary insert stores every column of every row exactly as the
// JSONEachRow insert it replaced: the same rows through both, then every
// column but inserted_at compared, and the RowBinary insert's token
// deduplicating a retry.
func TestInsertEventsRowBinaryAsJSON(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	ctx := context.Background()
	if _, err := clickhouse.Migrate(ctx, eng, 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := eng.Exec(ctx, "CREATE TABLE reference AS audit_events"); err != nil {
		t.Fatal(err)
	}
	rows := rowBinaryCases(t)
	if err := eng.Exec(ctx, jsonEachRowInsert("reference", clickhouse.EventsToken(rows), rows)); err != nil {
		t.Fatal(err)
	}
	if err := eng.InsertEvents(ctx, clickhouse.EventsToken(rows), rows); err != nil {
		t.Fatal(err)
	}
	if err := eng.InsertEvents(ctx, clickhouse.EventsToken(rows), rows); err != nil { // a retry
		t.Fatal(err)
	}
	if got := clickhousetest.QueryInt(t, eng, "SELECT count() FROM audit_events SETTINGS final = 0"); got != len(rows) {
		t.Fatalf("%d rows in audit_events after an insert and its retry, want %d", got, len(rows))
	}
	dump := func(table string) []byte {
		b, err := eng.QueryFormat(ctx, "SELECT * EXCEPT inserted_at FROM "+table+" ORDER BY event_id SETTINGS final = 0", "JSONEachRow")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	want, got := dump("reference"), dump("audit_events")
	if n := bytes.Count(want, []byte("\n")); n != len(rows) {
		t.Fatalf("reference holds %d rows, want %d", n, len(rows))
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("row %d differs:\nRowBinary:  %.2000s\nJSONEachRow: %.2000s", i, gl[i], wl[i])
			}
		}
		t.Fatalf("RowBinary stored %d lines, JSONEachRow %d", len(gl), len(wl))
	}
}

// TestInsertEventsRowBinaryRefusesBadEventID: a row whose event id does not
// fit FixedString(32) is a row error (so the indexer's bisection finds it
// and dead-letters it), and nothing of the insert is stored.
func TestInsertEventsRowBinaryRefusesBadEventID(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	ctx := context.Background()
	if _, err := clickhouse.Migrate(ctx, eng, 0, nil); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", "abc", strings.Repeat("a", 33)} {
		rows := rowBinaryCases(t)[:3]
		rows[1].Event.EventID = id
		err := eng.InsertEvents(ctx, clickhouse.EventsToken(rows), rows)
		if err == nil || !clickhouse.IsRowError(err) {
			t.Fatalf("event_id %q: err = %v, want a row error", id, err)
		}
	}
	if got := clickhousetest.QueryInt(t, eng, "SELECT count() FROM audit_events SETTINGS final = 0"); got != 0 {
		t.Fatalf("%d rows stored, want 0", got)
	}
}
