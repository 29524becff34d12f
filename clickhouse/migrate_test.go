package clickhouse_test

import (
	"context"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
)

func schemaSnapshot(t *testing.T, e clickhouse.Engine) *clickhouse.Result {
	t.Helper()
	r, err := e.Query(context.Background(), "SELECT name, engine_full, create_table_query FROM system.tables WHERE database = currentDatabase() ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestMigrateTwiceChangesNothing(t *testing.T) {
	dir := t.TempDir()
	e := clickhousetest.OpenEmbedded(t, dir)
	ctx := context.Background()
	applied, err := clickhouse.Migrate(ctx, e, 90, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) < 5 {
		t.Fatalf("first run applied %v, want every migration", applied)
	}
	before := schemaSnapshot(t, e)
	rowsBefore := clickhousetest.QueryInt(t, e, "SELECT count() FROM schema_migrations SETTINGS final = 0")

	for _, tc := range []struct {
		name   string
		reopen bool
	}{{"same session", false}, {"after reopen", true}} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.reopen {
				if err := e.Close(); err != nil {
					t.Fatal(err)
				}
				e = clickhousetest.OpenEmbedded(t, dir)
			}
			again, err := clickhouse.Migrate(ctx, e, 90, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(again) != 0 {
				t.Errorf("second run applied %v, want nothing", again)
			}
			if after := schemaSnapshot(t, e); !reflect.DeepEqual(before, after) {
				t.Errorf("schema changed:\nbefore %v\nafter  %v", before.Rows, after.Rows)
			}
			if n := clickhousetest.QueryInt(t, e, "SELECT count() FROM schema_migrations SETTINGS final = 0"); n != rowsBefore {
				t.Errorf("schema_migrations has %d rows, want %d", n, rowsBefore)
			}
		})
	}
}

func TestMigrateRetention(t *testing.T) {
	e := clickhousetest.OpenEmbedded(t, "")
	ctx := context.Background()
	for _, tc := range []struct {
		days int
		want string // substring of engine_full, "" = no TTL
	}{
		{30, "toIntervalDay(30)"},
		{400, "toIntervalDay(400)"},
		{0, ""},
		{7, "toIntervalDay(7)"},
	} {
		if _, err := clickhouse.Migrate(ctx, e, tc.days, nil); err != nil {
			t.Fatalf("retention %d: %v", tc.days, err)
		}
		// lifecycle_events counts from its time column, the others from ts.
		for _, table := range []string{"audit_events", "pipeline_messages", "lifecycle_events", "event_ids"} {
			r, err := e.Query(ctx, "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = '"+table+"'")
			if err != nil || len(r.Rows) != 1 {
				t.Fatalf("%s: %v %v", table, r, err)
			}
			full := clickhouse.ValueString(r.Rows[0][0])
			if tc.want == "" {
				if strings.Contains(full, " TTL ") {
					t.Errorf("%s, retention 0: engine_full still has a TTL: %s", table, full)
				}
			} else if !strings.Contains(full, tc.want) {
				t.Errorf("%s, retention %d: engine_full %s lacks %s", table, tc.days, full, tc.want)
			}
		}
	}
}

func TestEventIDKey(t *testing.T) {
	for _, tc := range []struct {
		id   string
		key  uint64
		okay bool
	}{
		{"0000000000000001ffffffffffffffff", 1, true},
		{"ffffffffffffffff0000000000000000", 1<<64 - 1, true},
		{"0123456789ABCDEFxxxx", 0x0123456789abcdef, true},
		{"0123456789abcde", 0, false},
		{"0123456789abcdeg0000000000000000", 0, false},
		{"", 0, false},
	} {
		k, ok := clickhouse.EventIDKey(tc.id)
		if k != tc.key || ok != tc.okay {
			t.Errorf("EventIDKey(%q) = %#x, %v; want %#x, %v", tc.id, k, ok, tc.key, tc.okay)
		}
	}
}

// Migration 0010 fills event_ids with the ids of the events stored before
// it, computing each key in SQL: the keys must be EventIDKey's, or the
// first-write-wins lookup would take those events for new ones and store a
// changed copy beside them. The store before 0010 is made by removing the
// table and its record after inserting into audit_events alone.
func TestEventIDsBackfill(t *testing.T) {
	e := clickhousetest.OpenEmbedded(t, "")
	ctx := context.Background()
	if _, err := clickhouse.Migrate(ctx, e, 0, nil); err != nil {
		t.Fatal(err)
	}
	evs := clickhousetest.ManyEvents(50, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	ins := "INSERT INTO audit_events FORMAT JSONEachRow\n"
	keys := make([]string, len(evs))
	for i := range evs {
		ins += string(evs[i].AppendJSON(nil)) + "\n"
		k, ok := clickhouse.EventIDKey(evs[i].EventID)
		if !ok {
			t.Fatal(evs[i].EventID)
		}
		keys[i] = strconv.FormatUint(k, 10)
	}
	for _, s := range []string{ins, "DROP TABLE event_ids", "ALTER TABLE schema_migrations DELETE WHERE version = 10 SETTINGS mutations_sync = 1"} {
		if err := e.Exec(ctx, s); err != nil {
			t.Fatalf("%.60s: %v", s, err)
		}
	}
	applied, err := clickhouse.Migrate(ctx, e, 0, nil)
	if err != nil || len(applied) != 1 || applied[0] != 10 {
		t.Fatalf("applied %v, %v; want 0010 alone", applied, err)
	}
	if n := clickhousetest.QueryInt(t, e, "SELECT count() FROM event_ids WHERE id IN ("+strings.Join(keys, ",")+")"); n != len(evs) {
		t.Errorf("%d of the %d stored events' keys in event_ids", n, len(evs))
	}
	if n := clickhousetest.QueryInt(t, e, "SELECT count() FROM event_ids WHERE ts = toDateTime('2025-01-01 00:00:00', 'UTC')"); n != len(evs) {
		t.Errorf("%d rows of event_ids at the events' second, want %d", n, len(evs))
	}
	// The engine's own insert writes the same keys and seconds.
	later := clickhousetest.ManyEvents(10, time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC))
	clickhousetest.InsertEvents(t, e, later, 0)
	k, _ := clickhouse.EventIDKey(later[3].EventID)
	if n := clickhousetest.QueryInt(t, e, "SELECT count() FROM event_ids WHERE ts = toDateTime('2025-02-01 00:00:00', 'UTC') AND id IN (SELECT reinterpretAsUInt64(reverse(unhex(substring(event_id, 1, 16)))) FROM audit_events WHERE ts >= '2025-02-01')"); n != len(later) {
		t.Errorf("%d rows of event_ids from InsertEvents match their events' keys and second, want %d", n, len(later))
	}
	if n := clickhousetest.QueryInt(t, e, "SELECT count() FROM event_ids WHERE id = "+strconv.FormatUint(k, 10)); n != 1 {
		t.Errorf("EventIDKey's key of an inserted event: %d rows, want 1", n)
	}
}
