package clickhouse_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/chdb"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/internal/testenv"
	chschema "github.com/auditpipe/auditpipe/schemas/clickhouse"
)

// oneNodeCluster is chDB's configuration for a cluster "audit" of one
// shard, this process (localhost at chDB's tcp_port: is_local, so the
// Distributed tables read and write the local tables without a network).
const oneNodeCluster = `<clickhouse>
  <tcp_port>9000</tcp_port>
  <remote_servers>
    <audit>
      <shard><internal_replication>true</internal_replication>
        <replica><host>localhost</host><port>9000</port></replica></shard>
    </audit>
  </remote_servers>
  <macros><shard>01</shard><replica>r1</replica></macros>
</clickhouse>
`

// noKeeper is an Engine that runs the cluster layout's statements
// without what needs ClickHouse Keeper, which cannot run here: ON CLUSTER
// (the distributed DDL queue) is dropped and the Replicated engines become
// their plain MergeTree engines (same version column), whose dedup window
// is non_replicated_deduplication_window. Everything else —
// the _local tables, the Distributed tables over them with their shard
// keys, the views, the ALTERs of both, the retention on the local tables —
// runs as rendered.
type noKeeper struct {
	*clickhouse.Embedded
}

var (
	onCluster  = regexp.MustCompile(" ON CLUSTER `[^`]*`")
	replicated = regexp.MustCompile(`Replicated(\w*MergeTree)\('[^']*', '[^']*'(?:, )?`)
	window     = regexp.MustCompile(`replicated_deduplication_window = (\d+), replicated_deduplication_window_seconds = \d+`)
)

func (n noKeeper) Exec(ctx context.Context, sql string) error {
	sql = onCluster.ReplaceAllString(sql, "")
	sql = replicated.ReplaceAllString(sql, "$1(")
	sql = window.ReplaceAllString(sql, "non_replicated_deduplication_window = $1")
	return n.Embedded.Exec(ctx, sql)
}

// TestClusterLayoutOnOneNode executes the cluster layout on a one-node
// cluster of chDB: migrations (twice), inserts through the Distributed
// audit_events with the dedup token, a retried batch cut differently,
// FINAL and the views through the Distributed tables.
func TestClusterLayoutOnOneNode(t *testing.T) {
	if _, err := chdb.FindLibrary(""); err != nil {
		testenv.SkipOrFail(t, testenv.CHDB, "needs libchdb.so (run 'make deps'): %v", err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.xml")
	if err := os.WriteFile(cfg, []byte(oneNodeCluster), 0o600); err != nil {
		t.Fatal(err)
	}
	emb, err := clickhouse.OpenEmbeddedWithConfig("", filepath.Join(dir, "chdb"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emb.Close() })
	e := noKeeper{emb}
	ctx := context.Background()
	if n := clickhousetest.QueryInt(t, e, "SELECT count() FROM system.clusters WHERE cluster = 'audit' AND is_local"); n != 1 {
		t.Fatalf("chDB does not see the one-node cluster (%d local replicas)", n)
	}
	db := clickhouse.ValueString(mustQuery(t, e, "SELECT currentDatabase()").Rows[0][0])
	layout := chschema.Layout{Cluster: "audit", Database: db}

	applied, err := clickhouse.MigrateLayout(ctx, e, layout, 30, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := clickhouse.MigrateLayout(ctx, e, layout, 30, nil); err != nil || len(again) != 0 {
		t.Fatalf("second run applied %v, %v; want nothing", again, err)
	}
	if len(applied) < 9 {
		t.Fatalf("applied %v", applied)
	}
	for _, tc := range []struct{ table, engine string }{
		{"audit_events", "Distributed"}, {"audit_events_local", "ReplacingMergeTree"},
		{"lifecycle_events", "Distributed"}, {"query_log_local", "MergeTree"}, {"schema_migrations", "ReplacingMergeTree"},
	} {
		r := mustQuery(t, e, "SELECT engine FROM system.tables WHERE database = currentDatabase() AND name = '"+tc.table+"'")
		if len(r.Rows) != 1 || clickhouse.ValueString(r.Rows[0][0]) != tc.engine {
			t.Errorf("%s: engine %v, want %s", tc.table, r.Rows, tc.engine)
		}
	}
	full := clickhouse.ValueString(mustQuery(t, e, "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = 'audit_events_local'").Rows[0][0])
	if !strings.Contains(full, "toIntervalDay(30)") {
		t.Errorf("retention not on the local table: %s", full)
	}
	// The Distributed table has the columns 0006 added to the local one.
	if n := clickhousetest.QueryInt(t, e, "SELECT count() FROM system.columns WHERE database = currentDatabase() AND table = 'audit_events' AND name IN ('prev_hash', 'sig')"); n != 2 {
		t.Errorf("Distributed audit_events has %d of the columns 0006 added, want 2", n)
	}

	evs := clickhousetest.SampleEvents(time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC))
	clickhousetest.InsertEvents(t, e, evs, 0)
	clickhousetest.InsertEvents(t, e, evs, 0) // the same batch retried: the token drops it
	if n := clickhousetest.QueryInt(t, e, "SELECT count() FROM audit_events SETTINGS final = 0"); n != len(evs) {
		t.Errorf("after a retried insert: %d rows without FINAL, want %d", n, len(evs))
	}
	clickhousetest.InsertEvents(t, e, evs, 3) // retried, cut into other batches: new tokens
	if n := clickhousetest.QueryInt(t, e, "SELECT count() FROM audit_events"); n != len(evs) {
		t.Errorf("FINAL through the Distributed table: %d rows, want %d", n, len(evs))
	}
	if n := clickhousetest.QueryInt(t, e, "SELECT sum(events) FROM request_sessions"); n != len(evs) {
		t.Errorf("request_sessions over the Distributed table counts %d events, want %d", n, len(evs))
	}
	if n := clickhousetest.QueryInt(t, e, "SELECT count() FROM login_sessions"); n != 2 {
		t.Errorf("login_sessions: %d sessions, want 2", n)
	}
}

func mustQuery(t *testing.T, q clickhouse.Querier, sql string) *clickhouse.Result {
	t.Helper()
	r, err := q.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return r
}
