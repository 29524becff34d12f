package clickhouse_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	chschema "github.com/auditpipe/auditpipe/schemas/clickhouse"
)

var testLayout = chschema.Layout{Cluster: "audit", Database: "auditpipe"}

// parses checks that ClickHouse's own parser (chDB's EXPLAIN AST) accepts
// stmt; no cluster is needed to parse ON CLUSTER or Replicated engines.
func parses(t *testing.T, e clickhouse.Engine, what, stmt string) {
	t.Helper()
	if _, err := e.Query(context.Background(), "EXPLAIN AST "+stmt); err != nil {
		t.Errorf("%s: ClickHouse does not parse:\n%s\n%v", what, stmt, err)
	}
}

// TestRenderedStatementsParse: every statement of both layouts, and of
// the materialized-view fixture, parses with ClickHouse 26.7's parser.
func TestRenderedStatementsParse(t *testing.T) {
	e := clickhousetest.OpenEmbedded(t, "")
	for _, tc := range []struct {
		name   string
		render func() ([]chschema.Migration, error)
	}{
		{"single server", func() ([]chschema.Migration, error) { return chschema.Render(chschema.Layout{}) }},
		{"cluster", func() ([]chschema.Migration, error) { return chschema.Render(testLayout) }},
		{"cluster, custom Keeper path", func() ([]chschema.Migration, error) {
			return chschema.Render(chschema.Layout{Cluster: "c-1", Database: "my db", ZooKeeperPrefix: "/ch/t", Replica: "{host}"})
		}},
		{"materialized view fixture", func() ([]chschema.Migration, error) {
			return chschema.RenderFS(os.DirFS("../schemas/clickhouse/testdata/mv"), ".", testLayout)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := tc.render()
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, m := range ms {
				for _, s := range m.Statements {
					parses(t, e, m.Name, s)
					n++
				}
			}
			if n == 0 {
				t.Fatal("no statement rendered")
			}
		})
	}
}

// recorder is an Engine for what cannot run here: a ClickHouse cluster
// (no Keeper). It records the statements Migrate would run and answers
// every query with no rows, as a cluster with nothing applied would.
type recorder struct {
	clickhouse.Engine // nil: only Exec and Query are called
	stmts             []string
}

func (r *recorder) Exec(_ context.Context, sql string) error {
	r.stmts = append(r.stmts, sql)
	return nil
}

func (r *recorder) Query(context.Context, string) (*clickhouse.Result, error) {
	return &clickhouse.Result{}, nil
}

// TestMigrateClusterStatements runs MigrateLayout for a cluster against
// the recorder and parses everything it would run: the migrations, the
// records in schema_migrations and the retention, set on the local tables
// ON CLUSTER.
func TestMigrateClusterStatements(t *testing.T) {
	e := clickhousetest.OpenEmbedded(t, "")
	rec := &recorder{}
	applied, err := clickhouse.MigrateLayout(context.Background(), rec, testLayout, 90, nil)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := chschema.Render(testLayout)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != len(ms) {
		t.Errorf("applied %v, want all %d", applied, len(ms))
	}
	var ttl, records int
	for _, s := range rec.stmts {
		parses(t, e, "migrate", s)
		if !strings.HasPrefix(s, "INSERT") && !strings.Contains(s, " ON CLUSTER `audit`") {
			t.Errorf("DDL without ON CLUSTER: %s", s)
		}
		if strings.Contains(s, "MODIFY TTL") {
			ttl++
			if !strings.HasPrefix(s, "ALTER TABLE ") || !strings.Contains(s, "_local ON CLUSTER `audit` MODIFY TTL") {
				t.Errorf("retention not set on a local table: %s", s)
			}
		}
		if strings.HasPrefix(s, "INSERT INTO schema_migrations ") {
			records++
		}
	}
	if ttl != 4 || records != len(ms) {
		t.Errorf("%d TTL statements (want 4), %d migration records (want %d)", ttl, records, len(ms))
	}
}

func TestClusterConfig(t *testing.T) {
	server := func(s *clickhouse.StoreConfig) {
		s.ClickHouse.Addr = []string{"ch-1:9000"}
		s.ClickHouse.Database = "auditpipe"
	}
	for _, tc := range []struct {
		name   string
		edit   func(*clickhouse.StoreConfig)
		err    string
		layout chschema.Layout
	}{
		{"default: one server", func(*clickhouse.StoreConfig) {}, "", chschema.Layout{}},
		{"server, no cluster", server, "", chschema.Layout{}},
		{"cluster", func(s *clickhouse.StoreConfig) { server(s); s.Cluster.Name = "audit" }, "",
			chschema.Layout{Cluster: "audit", Database: "auditpipe", ZooKeeperPrefix: "/clickhouse/tables", Replica: "{replica}"}},
		{"cluster on chDB", func(s *clickhouse.StoreConfig) { s.Cluster.Name = "audit" }, "store.cluster.name: \"audit\": a cluster needs server.addr", chschema.Layout{}},
		{"relative Keeper path", func(s *clickhouse.StoreConfig) {
			server(s)
			s.Cluster.Name = "audit"
			s.Cluster.ZooKeeperPrefix = "tables"
		},
			"store.cluster.zookeeper_prefix", chschema.Layout{}},
		{"no replica", func(s *clickhouse.StoreConfig) { server(s); s.Cluster.Name = "audit"; s.Cluster.Replica = "" },
			"store.cluster.replica", chschema.Layout{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := clickhouse.DefaultStoreConfig()
			tc.edit(&s)
			err := s.Validate("store")
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := s.Layout(); got != tc.layout {
					t.Errorf("layout %+v, want %+v", got, tc.layout)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error %v, want %q", err, tc.err)
			}
		})
	}
}
