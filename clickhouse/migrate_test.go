package clickhouse_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

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
		for _, table := range []string{"audit_events", "pipeline_messages", "lifecycle_events"} {
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
