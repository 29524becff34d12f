package indexer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/schemas"
)

const goldenLifecycle = "../schemas/testdata/policy/lifecycle-approved.json"

// golden returns the golden lifecycle example as it is in its file and
// decoded.
func golden(t *testing.T) ([]byte, schemas.Lifecycle) {
	t.Helper()
	b, err := os.ReadFile(goldenLifecycle)
	if err != nil {
		t.Fatal(err)
	}
	l, err := schemas.DecodeLifecycle(b)
	if err != nil {
		t.Fatal(err)
	}
	return b, l
}

// edited returns the golden example's JSON with edit applied to its
// fields.
func edited(t *testing.T, edit func(map[string]any)) []byte {
	t.Helper()
	b, _ := golden(t)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDecodeLifecycle(t *testing.T) {
	raw, want := golden(t)
	row, err := DecodeLifecycle(raw, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if row.Event.EventID != want.EventID || row.Event.Details["loginid"] != want.Details["loginid"] || row.Partition != -1 ||
		!bytes.Equal(row.Payload, bytes.TrimSpace(raw)) || len(row.ContentHash) != 64 {
		t.Errorf("golden decoded as %+v", row)
	}
	// The same event in another form (compact, another time zone) has the
	// same content hash; another actor another one.
	compact := edited(t, func(m map[string]any) { m["time"] = "2026-03-02T18:15:00.123+09:00" })
	if r2, err := DecodeLifecycle(compact, 0); err != nil || r2.ContentHash != row.ContentHash {
		t.Errorf("the same event compact and in +09:00: hash %s (%v), want %s", r2.ContentHash, err, row.ContentHash)
	}
	if r3, _ := DecodeLifecycle(edited(t, func(m map[string]any) { m["actor"] = "mallory" }), 0); r3.ContentHash == row.ContentHash {
		t.Error("another actor, the same content hash")
	}
	for _, tt := range badLifecycle(t) {
		if _, err := DecodeLifecycle(tt.value, 4<<10); RejectReason(err) != tt.reason {
			t.Errorf("%s: %v (reason %q), want reason %s", tt.name, err, RejectReason(err), tt.reason)
		}
	}
}

type badCase struct {
	name   string
	value  []byte
	reason string
}

// badLifecycle are messages of the lifecycle topic that are not valid
// lifecycle events, with the reason of each, for a max_row_bytes of 4 KiB.
func badLifecycle(t *testing.T) []badCase {
	return []badCase{
		{"tombstone", nil, ReasonInvalidJSON},
		{"cut short", []byte(`{"event_id":`), ReasonInvalidJSON},
		{"not JSON", []byte(`approved by bob`), ReasonInvalidJSON},
		{"two objects", append(edited(t, func(map[string]any) {}), []byte(` {}`)...), ReasonInvalidJSON},
		{"not UTF-8", []byte("{\"event_id\":\"\xff\xfe\"}"), ReasonInvalidUTF8},
		{"unknown field", edited(t, func(m map[string]any) { m["surprise"] = 1 }), ReasonSchemaMismatch},
		{"time a number", edited(t, func(m map[string]any) { m["time"] = 5 }), ReasonSchemaMismatch},
		{"details not strings", edited(t, func(m map[string]any) { m["details"] = map[string]any{"n": 1} }), ReasonSchemaMismatch},
		{"unknown object type", edited(t, func(m map[string]any) { m["object_type"] = "grant" }), ReasonInvalidLifecycle},
		{"event id not hex", edited(t, func(m map[string]any) { m["event_id"] = "not-an-id" }), ReasonInvalidLifecycle},
		{"no actor", edited(t, func(m map[string]any) { delete(m, "actor") }), ReasonInvalidLifecycle},
		{"no state_to", edited(t, func(m map[string]any) { m["state_to"] = "" }), ReasonInvalidLifecycle},
		{"oversize", edited(t, func(m map[string]any) { m["details"] = map[string]any{"comment": strings.Repeat("x", 5<<10)} }), ReasonOversize},
	}
}

// readDeadLetters returns the first n dead letters of kc, decoded.
func readDeadLetters(t *testing.T, kc kafka.Config, n int) []schemas.DeadLetter {
	t.Helper()
	var out []schemas.DeadLetter
	for _, r := range kafkatest.Read(t, kc, schemas.TopicDeadLetter, n, 30*time.Second) {
		var d schemas.DeadLetter
		if err := json.Unmarshal(r.Value, &d); err != nil {
			t.Fatalf("dead letter %s: %v", r.Value, err)
		}
		out = append(out, d)
	}
	return out
}

// TestLifecycleEvents: lifecycle events from Kafka are stored in
// lifecycle_events, the golden example queried by its typed columns; an
// identical copy (the golden file's pretty form, then compact) is a
// counted duplicate, not a row; a differing copy of a stored event_id is
// dead-lettered as lifecycle_conflict and the stored one stays; every
// malformed payload is dead-lettered with its reason without stopping its
// batch, and the indexer goes on.
func TestLifecycleEvents(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	if _, err := clickhouse.Migrate(context.Background(), eng, 0, nil); err != nil {
		t.Fatal(err)
	}
	// Merges stopped: a copy inserted and folded would hide from the
	// counts without FINAL.
	if err := eng.Exec(context.Background(), "SYSTEM STOP MERGES lifecycle_events"); err != nil {
		t.Fatal(err)
	}
	kc, _ := kafkatest.Start(t, 1)
	raw, want := golden(t)
	others := clickhousetest.ManyLifecycle(20, time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	others[3].ResourceID, others[3].StateFrom, others[3].Details = "", "", nil // a control's creation has neither
	others[3].ObjectType, others[3].Kind, others[3].StateTo = schemas.ObjectOperatorControl, "operator_control.created", "CREATED"
	forged := edited(t, func(m map[string]any) { m["actor"] = "mallory"; m["state_to"] = "REVOKED" })
	bad := badLifecycle(t)

	msgs := []kafka.Record{{Key: []byte(want.Key()), Value: raw}}
	for i := range others {
		v, _ := json.Marshal(&others[i])
		msgs = append(msgs, kafka.Record{Key: []byte(others[i].Key()), Value: v})
		if i < len(bad) {
			msgs = append(msgs, kafka.Record{Key: []byte("r"), Value: bad[i].value})
		}
	}
	compact := edited(t, func(map[string]any) {})
	msgs = append(msgs, kafka.Record{Key: []byte(want.Key()), Value: compact}, kafka.Record{Key: []byte(want.Key()), Value: forged})
	produce(t, kc, schemas.TopicLifecycle, msgs[:len(msgs)/2])

	cfg := testConfig(kc, "lifecycle")
	cfg.MaxRowBytes = 4 << 10
	ix, err := New(cfg, Deps{Engine: eng})
	if err != nil {
		t.Fatal(err)
	}
	stop := startIndexer(t, ix)
	waitFor(t, "the first half indexed", 30*time.Second, func() bool {
		return testutil.ToFloat64(ix.m.batches.WithLabelValues("ok")) > 0
	})
	// The second half in later batches: the duplicate and the conflict
	// are looked up in the store, not only in their batch.
	produce(t, kc, schemas.TopicLifecycle, msgs[len(msgs)/2:])
	wantRows := 1 + len(others)
	waitFor(t, "every lifecycle event stored and every bad one dead-lettered", 30*time.Second, func() bool {
		var dead float64
		for _, r := range Reasons {
			dead += testutil.ToFloat64(ix.m.deadLetters.WithLabelValues(r))
		}
		return countOr(eng, "SELECT count() FROM lifecycle_events") == wantRows && int(dead) == len(bad)+1
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	if n := clickhousetest.QueryInt(t, eng, "SELECT count() FROM lifecycle_events SETTINGS final = 0"); n != wantRows {
		t.Errorf("%d rows without FINAL, want %d: a copy was inserted", n, wantRows)
	}
	if got := testutil.ToFloat64(ix.m.duplicates); got != 1 {
		t.Errorf("duplicates = %v, want 1 (the compact copy of the golden event)", got)
	}
	if got := testutil.ToFloat64(ix.m.rowsInserted.WithLabelValues("lifecycle_events")); got != float64(wantRows) {
		t.Errorf("rows inserted into lifecycle_events = %v, want %d", got, wantRows)
	}
	if n := countOr(eng, "SELECT count() FROM pipeline_messages"); n > 0 {
		t.Errorf("%d lifecycle messages in pipeline_messages too, want them only in lifecycle_events", n)
	}

	// The golden event, found by its typed columns, as it was written
	// first (not the forged copy).
	r, err := eng.Query(context.Background(), `SELECT event_id, kind, object_type, object_id, compartment_id, state_from, actor,
		formatDateTime(time, '%Y-%m-%dT%H:%i:%S.%fZ'), details['comment'], details['loginid'], details['approvals'], length(details),
		payload, content_hash, kafka_partition, kafka_offset
		FROM lifecycle_events WHERE resource_id = 'exacc-main' AND state_to = 'APPROVED' AND actor = 'bob' AND mapContains(details, 'audit_type')`)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Rows) != 1 {
		t.Fatalf("golden event by typed columns: %d rows, want 1: %v", len(r.Rows), r.Rows)
	}
	row := r.Rows[0]
	hash := LifecycleHash(&want)
	for i, w := range []string{want.EventID, want.Kind, want.ObjectType, want.ObjectID, want.CompartmentID, want.StateFrom, want.Actor,
		"2026-03-02T09:15:00.123000Z", "patch window agreed", "830916abb78e4157b9e45b641e34fcf6", "1/1", "5",
		string(bytes.TrimSpace(raw)), hash, "0", "0"} {
		if got := clickhouse.ValueString(row[i]); got != w {
			t.Errorf("golden %s = %q, want %q", r.Columns[i], got, w)
		}
	}
	// A control's event, without resource, state_from and details.
	if n := countOr(eng, "SELECT count() FROM lifecycle_events WHERE object_type = 'operator_control' AND resource_id = '' AND state_from = '' AND empty(details)"); n != 1 {
		t.Errorf("the control's event: %d rows, want 1", n)
	}

	// The dead letters: one per bad payload with its reason, and the
	// conflict with the forged copy as its raw value.
	dead := readDeadLetters(t, kc, len(bad)+1)
	got := map[string]int{}
	for _, d := range dead {
		got[d.Reason]++
		if d.Component != "indexer" || d.Error == "" || !strings.HasPrefix(d.Source, schemas.TopicLifecycle+"/0/") {
			t.Errorf("incomplete dead letter %+v", d)
		}
		if d.Reason == ReasonLifecycleConflict && (d.Raw != string(forged) || !strings.Contains(d.Error, hash) || d.Host != want.ResourceID) {
			t.Errorf("conflict dead letter %+v, want the forged copy, the stored hash %s and the resource", d, hash)
		}
	}
	wantDead := map[string]int{ReasonLifecycleConflict: 1}
	for _, b := range bad {
		wantDead[b.reason]++
	}
	if fmt.Sprint(got) != fmt.Sprint(wantDead) {
		t.Errorf("dead letters by reason %v, want %v", got, wantDead)
	}
	for reason, n := range wantDead {
		if m := testutil.ToFloat64(ix.m.deadLetters.WithLabelValues(reason)); int(m) != n {
			t.Errorf("auditpipe_indexer_dead_letters_total{reason=%q} = %v, want %d", reason, m, n)
		}
	}
}

// A crash between the insert of a batch of lifecycle events and the
// commit of its offsets: after the restart the batch is read again and
// inserted again, the same rows under the same token, and each event is
// stored once as a row (counted without FINAL, merges stopped), as for
// audit events in TestCrashReplayStoresEachEventOnce.
func TestLifecycleCrashReplayStoresOnce(t *testing.T) {
	const batch, n = 50, 150
	dir := t.TempDir()
	eng := clickhousetest.OpenEmbedded(t, dir)
	stopMerges := func(eng clickhouse.Engine) {
		t.Helper()
		if _, err := clickhouse.Migrate(context.Background(), eng, 0, nil); err != nil {
			t.Fatal(err)
		}
		if err := eng.Exec(context.Background(), "SYSTEM STOP MERGES lifecycle_events"); err != nil {
			t.Fatal(err)
		}
	}
	stopMerges(eng)
	kc, _ := kafkatest.Start(t, 1)
	evs := clickhousetest.ManyLifecycle(n, time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC))
	var msgs []kafka.Record
	for i := range evs {
		v, _ := json.Marshal(&evs[i])
		msgs = append(msgs, kafka.Record{Key: []byte(evs[i].Key()), Value: v})
	}
	produce(t, kc, schemas.TopicLifecycle, msgs)

	cfg := testConfig(kc, "lifecycle-replay")
	cfg.Topics = []string{schemas.TopicLifecycle}
	cfg.Batch.MaxRows = batch
	cfg.Batch.MaxWait = 10 * time.Minute
	ix1, err := New(cfg, Deps{Engine: eng})
	if err != nil {
		t.Fatal(err)
	}
	ix1.beforeCommit = func() error { return errors.New("crash") }
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := ix1.Run(ctx); !errors.Is(err, errCrash) {
		t.Fatalf("first run: %v, want the simulated crash", err)
	}
	if got := clickhousetest.QueryInt(t, eng, "SELECT count() FROM lifecycle_events SETTINGS final = 0"); got != batch {
		t.Fatalf("%d rows before the restart, want %d (the batch inserted before the crash)", got, batch)
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	eng = clickhousetest.OpenEmbedded(t, dir)
	stopMerges(eng)

	ix2, err := New(cfg, Deps{Engine: eng})
	if err != nil {
		t.Fatal(err)
	}
	stop := startIndexer(t, ix2)
	waitCommitted(t, kc, cfg.Group, schemas.TopicLifecycle)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct{ what, sql string }{
		{"rows without FINAL", "SELECT count() FROM lifecycle_events SETTINGS final = 0"},
		{"distinct event ids", "SELECT uniqExact(event_id) FROM lifecycle_events SETTINGS final = 0"},
		{"rows with FINAL", "SELECT count() FROM lifecycle_events"},
	} {
		if got := clickhousetest.QueryInt(t, eng, q.sql); got != n {
			t.Errorf("%s = %d, want %d", q.what, got, n)
		}
	}
	if got := testutil.ToFloat64(ix2.m.duplicates); got != batch {
		t.Errorf("duplicates after the restart = %v, want %d (the replayed batch, found stored)", got, batch)
	}
}

// The same batch inserted twice, as a retry after an insert whose answer
// was lost: the insert deduplication token drops the second (the lookup
// is bypassed here, so the token alone is what keeps the rows once).
func TestLifecycleSameBatchTwice(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	ctx := context.Background()
	if _, err := clickhouse.Migrate(ctx, eng, 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := eng.Exec(ctx, "SYSTEM STOP MERGES lifecycle_events"); err != nil {
		t.Fatal(err)
	}
	ix, err := New(testConfig(kafka.Config{Brokers: []string{"127.0.0.1:9"}}, "x"), Deps{Engine: eng})
	if err != nil {
		t.Fatal(err)
	}
	rows := lifecycleRows(t, 40, time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC))
	for range 2 {
		if dead, err := ix.insertLifecycle(ctx, rows); err != nil || len(dead) > 0 {
			t.Fatalf("insert: %v, dead letters %v", err, dead)
		}
	}
	if got := clickhousetest.QueryInt(t, eng, "SELECT count() FROM lifecycle_events SETTINGS final = 0"); got != len(rows) {
		t.Errorf("%d rows without FINAL after the same batch twice, want %d", got, len(rows))
	}
}

// lifecycleRows returns n lifecycle events from ts on, decoded as the
// indexer decodes them, at offsets 0..n-1 of partition 0.
func lifecycleRows(t *testing.T, n int, ts time.Time) []clickhouse.LifecycleRow {
	t.Helper()
	evs := clickhousetest.ManyLifecycle(n, ts)
	rows := make([]clickhouse.LifecycleRow, len(evs))
	for i := range evs {
		v, _ := json.Marshal(&evs[i])
		var err error
		if rows[i], err = DecodeLifecycle(v, 0); err != nil {
			t.Fatal(err)
		}
		rows[i].Partition, rows[i].Offset = 0, int64(i)
	}
	return rows
}
