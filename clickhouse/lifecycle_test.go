package clickhouse_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/schemas"
)

// lifecycleRows returns evs as rows at offsets from 0, with their JSON as
// the payload.
func lifecycleRows(t *testing.T, evs []schemas.Lifecycle) []clickhouse.LifecycleRow {
	t.Helper()
	rows := make([]clickhouse.LifecycleRow, len(evs))
	for i := range evs {
		b, err := json.Marshal(&evs[i])
		if err != nil {
			t.Fatal(err)
		}
		rows[i] = clickhouse.LifecycleRow{Event: evs[i], Payload: b, ContentHash: "h", Partition: 0, Offset: int64(i)}
	}
	return rows
}

// checkLifecycleStored checks, in q, the typed columns of the rows
// inserted, each stored once without FINAL.
func checkLifecycleStored(t *testing.T, q clickhouse.Querier, rows []clickhouse.LifecycleRow) {
	t.Helper()
	if n := clickhousetest.QueryInt(t, q, "SELECT count() FROM lifecycle_events SETTINGS final = 0"); n != len(rows) {
		t.Errorf("lifecycle_events has %d rows without FINAL, want %d (the same token twice counts once)", n, len(rows))
	}
	r, err := q.Query(context.Background(), "SELECT event_id, kind, object_type, object_id, resource_id, compartment_id, state_from, state_to, actor, "+
		"formatDateTime(time, '%Y-%m-%dT%H:%i:%S.%fZ'), details['comment'], length(details), payload, kafka_offset FROM lifecycle_events ORDER BY kafka_offset")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Rows) != len(rows) {
		t.Fatalf("%d rows read back, want %d", len(r.Rows), len(rows))
	}
	for i, row := range r.Rows {
		l := &rows[i].Event
		want := []string{l.EventID, l.Kind, l.ObjectType, l.ObjectID, l.ResourceID, l.CompartmentID, l.StateFrom, l.StateTo, l.Actor,
			l.Time.UTC().Format("2006-01-02T15:04:05.000000Z"), l.Details["comment"], "1", string(rows[i].Payload), clickhouse.ValueString(int64(i))}
		for j, w := range want {
			if got := clickhouse.ValueString(row[j]); got != w {
				t.Errorf("row %d column %s = %q, want %q", i, r.Columns[j], got, w)
			}
		}
	}
}

// TestInsertLifecycleEmbedded: lifecycle rows go to their typed columns;
// the same rows inserted again with the same token are not stored twice
// (counted without FINAL, merges stopped).
func TestInsertLifecycleEmbedded(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	ctx := context.Background()
	if _, err := clickhouse.Migrate(ctx, eng, 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := eng.Exec(ctx, "SYSTEM STOP MERGES lifecycle_events"); err != nil {
		t.Fatal(err)
	}
	rows := lifecycleRows(t, clickhousetest.ManyLifecycle(7, time.Date(2026, 3, 2, 9, 15, 0, 123e6, time.UTC)))
	for range 2 {
		if err := eng.InsertLifecycle(ctx, clickhouse.LifecycleToken(rows), rows); err != nil {
			t.Fatal(err)
		}
	}
	checkLifecycleStored(t, eng, rows)
	if a, b := clickhouse.LifecycleToken(rows), clickhouse.LifecycleToken(rows[1:]); a == b {
		t.Errorf("rows and rows[1:] have the same token %s", a)
	}
}
