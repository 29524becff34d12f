package clickhouse

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"text/template"

	"github.com/auditpipe/auditpipe/internal/sqlmigrate"
)

// Layout says how the migration files are rendered: for one server (the
// zero Layout, the files as they always read) or for a replicated, sharded
// cluster (Cluster set).
//
// A migration file is a text/template with these placeholders, each of
// which renders to exactly the text of the single-server schema when
// Cluster is empty:
//
//	{{table "T" "KEY"}}  the name in CREATE TABLE: T; on a cluster
//	                     T_local ON CLUSTER c, a Replicated… table on every
//	                     node, followed by the statement
//	                     CREATE TABLE T ON CLUSTER c AS T_local
//	                     ENGINE = Distributed(c, db, T_local, KEY), so that
//	                     reads and inserts of T go through the cluster and a
//	                     row lands on the shard KEY picks. KEY must be a
//	                     function of the table's dedup key (see README).
//	{{table "T"}}        a table that is not sharded: on a cluster
//	                     T ON CLUSTER c, one replica set over every node
//	                     (schema_migrations: whichever node the migrator
//	                     talks to sees every applied migration).
//	{{engine "E(args)"}} the engine of the last table: E(args); on a
//	                     cluster ReplicatedE('PATH', 'REPLICA', args).
//	{{alter "T"}}        the table of an ALTER TABLE that changes columns:
//	                     T; on a cluster T_local ON CLUSTER c, and the
//	                     statement is repeated for the Distributed T (its
//	                     columns follow the local table's); T ON CLUSTER c
//	                     for a table that is not sharded.
//	{{dedupWindow N}}    the insert deduplication window: the last N tokens
//	                     (non_replicated_deduplication_window = N); on a
//	                     cluster replicated_deduplication_window = N and
//	                     replicated_deduplication_window_seconds (a week).
//	{{onCluster}}        nothing; on a cluster " ON CLUSTER c" (views).
//	{{local "T"}}        T; on a cluster T_local (a materialized view reads
//	                     and writes the local tables of its shard).
type Layout struct {
	// Cluster is the name of the cluster in the servers' remote_servers
	// configuration; "" renders for one server.
	Cluster string
	// Database is the database that holds the tables on every node: the
	// Distributed tables' target. Required with Cluster.
	Database string
	// ZooKeeperPrefix is the Keeper path under which the replicated tables
	// keep their state: PREFIX/{shard}/{database}/T_local for a sharded
	// table, PREFIX/all/{database}/T for a table on every node. Default
	// "/clickhouse/tables".
	ZooKeeperPrefix string
	// Replica is the replica name of a sharded table, usually a macro of
	// the servers' configuration. Default "{replica}". A table on every
	// node uses "{shard}-" + Replica, unique over the cluster.
	Replica string
}

// IsCluster reports whether l renders for a cluster.
func (l Layout) IsCluster() bool { return l.Cluster != "" }

// LocalTable returns the name of the table that holds T's rows on a node:
// T on one server, T_local on a cluster.
func (l Layout) LocalTable(t string) string {
	if l.IsCluster() {
		return t + localSuffix
	}
	return t
}

// OnCluster returns the ON CLUSTER clause of a DDL statement, with its
// leading space; "" on one server.
func (l Layout) OnCluster() string {
	if !l.IsCluster() {
		return ""
	}
	return " ON CLUSTER " + ident(l.Cluster)
}

const localSuffix = "_local"

// dedupWindowSeconds is how long a replicated table remembers insert
// deduplication tokens (ClickHouse's default is one hour): a week, so a
// batch retried after an indexer was down for days is still dropped whole,
// as on one server, where only the count bounds the window.
const dedupWindowSeconds = 7 * 24 * 3600

func (l Layout) withDefaults() Layout {
	if l.ZooKeeperPrefix == "" {
		l.ZooKeeperPrefix = "/clickhouse/tables"
	}
	if l.Replica == "" {
		l.Replica = "{replica}"
	}
	return l
}

// Render returns the embedded migrations rendered for l, in version order.
// On one server each Migration is its file as before (Checksum is the
// SHA-256 of the file's text, so what schema_migrations recorded stays
// valid); on a cluster Checksum is the SHA-256 of the rendered statements.
func Render(l Layout) ([]Migration, error) {
	return RenderFS(files, ".", l)
}

// RenderFS renders the migration files (NNNN_name.sql) in dir of fsys for
// l, as Render does the embedded ones.
func RenderFS(fsys fs.FS, dir string, l Layout) ([]Migration, error) {
	const what = "clickhouse migrations"
	if l.IsCluster() && l.Database == "" {
		return nil, fmt.Errorf("%s: cluster %q: no database", what, l.Cluster)
	}
	raw, err := sqlmigrate.Load(fsys, dir, what)
	if err != nil {
		return nil, err
	}
	r := &renderer{l: l.withDefaults(), sharded: map[string]bool{}}
	ms := make([]Migration, len(raw))
	for i, m := range raw {
		file := fmt.Sprintf("%04d_%s.sql", m.Version, m.Name)
		b, err := fs.ReadFile(fsys, path.Join(dir, file))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if ms[i], err = r.file(file, b); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
	}
	return ms, nil
}

// renderer renders the files of one Layout in order; it remembers which
// tables are sharded, for later ALTERs and views.
type renderer struct {
	l       Layout
	sharded map[string]bool // table created by {{table}} → it has a Distributed table
}

// file renders one migration file.
func (r *renderer) file(name string, b []byte) (Migration, error) {
	if !r.l.IsCluster() {
		// One server: the whole file, comments included, so the checksum
		// is the file's as it was before placeholders.
		var out bytes.Buffer
		if err := r.exec(name, string(b), &stmtState{}, &out); err != nil {
			return Migration{}, err
		}
		return sqlmigrate.Parse(name, out.Bytes())
	}
	raw, err := sqlmigrate.Parse(name, b)
	if err != nil {
		return Migration{}, err
	}
	m := Migration{Version: raw.Version, Name: raw.Name}
	for _, src := range raw.Statements {
		st := &stmtState{}
		var out bytes.Buffer
		if err := r.exec(name, src, st, &out); err != nil {
			return Migration{}, err
		}
		m.Statements = append(m.Statements, out.String())
		if st.table != "" {
			if st.shardKey != "" {
				m.Statements = append(m.Statements, r.distributed(st.table, st.shardKey))
			}
			r.sharded[st.table] = st.shardKey != ""
		}
		if st.altered != "" {
			sharded, known := r.sharded[st.altered]
			if !known {
				return Migration{}, fmt.Errorf("%s: alter %q: not a table created by an earlier {{table}}", name, st.altered)
			}
			if !sharded {
				continue
			}
			again := &stmtState{alterDistributed: true}
			out.Reset()
			if err := r.exec(name, src, again, &out); err != nil {
				return Migration{}, err
			}
			m.Statements = append(m.Statements, out.String())
		}
	}
	sum := sha256.Sum256([]byte(strings.Join(m.Statements, ";\n")))
	m.Checksum = hex.EncodeToString(sum[:])
	return m, nil
}

// stmtState is what the placeholders of one statement declared.
type stmtState struct {
	table, shardKey  string // {{table}}
	altered          string // {{alter}}
	alterDistributed bool   // render {{alter}} as the Distributed table
}

func (r *renderer) exec(name, src string, st *stmtState, out *bytes.Buffer) error {
	l := r.l
	funcs := template.FuncMap{
		"table": func(t string, key ...string) (string, error) {
			if len(key) > 1 {
				return "", fmt.Errorf("table %q: one shard key, got %d", t, len(key))
			}
			st.table = t
			if len(key) == 1 {
				st.shardKey = key[0]
			}
			switch {
			case !l.IsCluster():
				return t, nil
			case st.shardKey != "":
				return t + localSuffix + l.OnCluster(), nil
			default:
				return t + l.OnCluster(), nil
			}
		},
		"engine": func(e string) (string, error) {
			if st.table == "" {
				return "", fmt.Errorf("engine %q: no {{table}} before it", e)
			}
			if !l.IsCluster() {
				return e, nil
			}
			name, args, _ := strings.Cut(e, "(")
			args = strings.TrimSuffix(args, ")")
			var zk, replica string
			if st.shardKey != "" {
				zk = l.ZooKeeperPrefix + "/{shard}/{database}/" + st.table + localSuffix
				replica = l.Replica
			} else {
				zk = l.ZooKeeperPrefix + "/all/{database}/" + st.table
				replica = "{shard}-" + l.Replica
			}
			s := "Replicated" + name + "(" + quote(zk) + ", " + quote(replica)
			if args != "" {
				s += ", " + args
			}
			return s + ")", nil
		},
		"alter": func(t string) string {
			if !l.IsCluster() {
				return t
			}
			st.altered = t
			if sharded, known := r.sharded[t]; known && !sharded {
				return t + l.OnCluster()
			}
			if st.alterDistributed {
				return t + l.OnCluster()
			}
			return t + localSuffix + l.OnCluster()
		},
		"dedupWindow": func(n int) string {
			if !l.IsCluster() {
				return fmt.Sprintf("non_replicated_deduplication_window = %d", n)
			}
			return fmt.Sprintf("replicated_deduplication_window = %d, replicated_deduplication_window_seconds = %d", n, dedupWindowSeconds)
		},
		"onCluster": l.OnCluster,
		"local":     l.LocalTable,
	}
	tpl, err := template.New(name).Funcs(funcs).Option("missingkey=error").Parse(src)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := tpl.Execute(out, nil); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// distributed is the statement that creates the Distributed table t over
// the local tables of every shard.
func (r *renderer) distributed(t, key string) string {
	l := r.l
	return "CREATE TABLE IF NOT EXISTS " + t + l.OnCluster() + " AS " + ident(l.Database) + "." + t + localSuffix + "\n" +
		"ENGINE = Distributed(" + ident(l.Cluster) + ", " + quote(l.Database) + ", " + quote(t+localSuffix) + ", " + key + ")"
}

// ident quotes a ClickHouse identifier.
func ident(s string) string {
	return "`" + strings.NewReplacer("\\", "\\\\", "`", "\\`").Replace(s) + "`"
}

// quote quotes a ClickHouse string literal.
func quote(s string) string {
	return "'" + strings.NewReplacer("\\", "\\\\", "'", "\\'").Replace(s) + "'"
}
