package clickhouse

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/auditpipe/auditpipe/internal/golden"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// testCluster is the layout of the golden cluster renderings.
var testCluster = Layout{Cluster: "audit", Database: "auditpipe"}

// appliedChecksums are the SHA-256 sums that schema_migrations holds for
// the migrations deployed before the files carried placeholders: the
// single-server rendering must keep them, or every existing store would
// refuse to start ("changed after it was applied").
var appliedChecksums = map[uint32]string{
	1: "c4968d78e2ebeb59e85fbc6f80306b337dcd07298370f19d819b83999e3748d4",
	2: "23a1b7b06a98ece5376c2806646ed9cd91000c693a80aa1450188a7f5f46e4b3",
	3: "e2fad8977b343d2071af738819b90a865ac9476fada29beec3d65a4d12f1d7cf",
	4: "0f9c464298c81481bb51adff16b2cf0695fd047a12caa73596e6aca000b5931b",
	5: "6d461eb1dce04ceecb40abe3360bbeb3e1f22cb56c3f1896947b0be11d3fa5ea",
	6: "f3479abc34e2ae5e51ac6ba92dd0b3c9dbf21fb8f336c715ffae11290814e88c",
	7: "79206cfa870d15996e0a727659e2234766a47316e7181b093a26fa1d64a53cd9",
	8: "ed4b9a1727e5a05cf827b838a87d2302c554e740a39ba1a8e5dfa6a3ba7beab1",
	9: "66198ad934894f99d00883376b6fdbb628a731f9fd6510d88491281b2f913b12",
}

// TestSingleServerUnchanged: the single-server rendering of every file is
// byte for byte the file as it was before placeholders
// (testdata/single/, taken from git), and its checksum is the one
// recorded by deployed stores.
func TestSingleServerUnchanged(t *testing.T) {
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != len(names) {
		t.Fatalf("%d migrations, %d files", len(ms), len(names))
	}
	for i, name := range names {
		b, err := fs.ReadFile(files, name)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := (&renderer{l: Layout{}.withDefaults(), sharded: map[string]bool{}}).exec(name, string(b), &stmtState{}, &out); err != nil {
			t.Fatal(err)
		}
		golden.Check(t, filepath.Join("testdata", "single", name), out.Bytes(), *update)
		sum := sha256.Sum256(out.Bytes())
		if got := hex.EncodeToString(sum[:]); got != ms[i].Checksum {
			t.Errorf("%s: checksum %s, Migrations says %s", name, got, ms[i].Checksum)
		}
		if want, ok := appliedChecksums[ms[i].Version]; ok && ms[i].Checksum != want {
			t.Errorf("%s: checksum %s, deployed stores recorded %s", name, ms[i].Checksum, want)
		}
		if strings.Contains(out.String(), "{{") || strings.Contains(out.String(), "_local") {
			t.Errorf("%s: single-server rendering keeps a placeholder or a local table", name)
		}
	}
}

// goldenCluster is how a cluster migration is kept in testdata/cluster:
// its statements, each ended by a semicolon and a blank line.
func goldenCluster(m Migration) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "-- %04d_%s rendered for cluster %q, database %q (checksum %s)\n\n", m.Version, m.Name, testCluster.Cluster, testCluster.Database, m.Checksum)
	for _, s := range m.Statements {
		b.WriteString(s)
		b.WriteString(";\n\n")
	}
	return b.Bytes()
}

func TestClusterGolden(t *testing.T) {
	ms, err := Render(testCluster)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		golden.Check(t, filepath.Join("testdata", "cluster", fmt.Sprintf("%04d_%s.sql", m.Version, m.Name)), goldenCluster(m), *update)
		for _, s := range m.Statements {
			if !strings.Contains(s, " ON CLUSTER `audit`") && !strings.HasPrefix(s, "INSERT INTO ") {
				t.Errorf("%04d_%s: a statement without ON CLUSTER:\n%s", m.Version, m.Name, s)
			}
			if strings.Contains(s, "{{") {
				t.Errorf("%04d_%s: a placeholder left:\n%s", m.Version, m.Name, s)
			}
			if strings.Contains(s, "ENGINE = ") && !strings.Contains(s, "ENGINE = Replicated") && !strings.Contains(s, "ENGINE = Distributed") {
				t.Errorf("%04d_%s: a table neither replicated nor distributed:\n%s", m.Version, m.Name, s)
			}
		}
	}
	ms2, err := Render(Layout{Cluster: "other", Database: "auditpipe"})
	if err != nil {
		t.Fatal(err)
	}
	if ms2[1].Checksum == ms[1].Checksum {
		t.Error("the checksum of a cluster rendering does not depend on the cluster")
	}
}

func TestClusterShape(t *testing.T) {
	ms, err := Render(testCluster)
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]string{} // statement head → statement
	for _, m := range ms {
		for _, s := range m.Statements {
			head, _, _ := strings.Cut(s, "\n")
			all[head] = s
		}
	}
	for _, tc := range []struct {
		head, want string
	}{
		{"CREATE TABLE IF NOT EXISTS schema_migrations ON CLUSTER `audit`", "ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/schema_migrations', '{shard}-{replica}', applied_at)"},
		{"CREATE TABLE IF NOT EXISTS audit_events_local ON CLUSTER `audit`", "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/audit_events_local', '{replica}')"},
		{"CREATE TABLE IF NOT EXISTS audit_events ON CLUSTER `audit` AS `auditpipe`.audit_events_local", "Distributed(`audit`, 'auditpipe', 'audit_events_local', cityHash64(event_id))"},
		{"CREATE TABLE IF NOT EXISTS lifecycle_events ON CLUSTER `audit` AS `auditpipe`.lifecycle_events_local", "cityHash64(event_id))"},
		{"CREATE TABLE IF NOT EXISTS event_conflicts ON CLUSTER `audit` AS `auditpipe`.event_conflicts_local", "cityHash64(event_id))"},
		{"CREATE TABLE IF NOT EXISTS event_ids_local ON CLUSTER `audit`", "ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/event_ids_local', '{replica}')"},
		{"CREATE TABLE IF NOT EXISTS event_ids ON CLUSTER `audit` AS `auditpipe`.event_ids_local", "Distributed(`audit`, 'auditpipe', 'event_ids_local', id)"},
		{"INSERT INTO event_ids (id, ts)", "toDateTime(ts)\nFROM audit_events"},
		{"CREATE TABLE IF NOT EXISTS query_log_local ON CLUSTER `audit`", "ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/query_log_local', '{replica}')"},
		{"ALTER TABLE audit_events_local ON CLUSTER `audit`", "ADD COLUMN IF NOT EXISTS sig"},
		{"ALTER TABLE audit_events ON CLUSTER `audit`", "ADD COLUMN IF NOT EXISTS sig"},
		{"CREATE VIEW IF NOT EXISTS request_sessions ON CLUSTER `audit` AS", "FROM audit_events FINAL"},
	} {
		s, ok := all[tc.head]
		if !ok {
			t.Errorf("no statement %q", tc.head)
			continue
		}
		if !strings.Contains(s, tc.want) {
			t.Errorf("%q lacks %q:\n%s", tc.head, tc.want, s)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file, want string
		l                Layout
	}{
		{"no database", "CREATE TABLE {{table \"a\" \"x\"}} (x Int8) ENGINE = {{engine \"MergeTree\"}} ORDER BY x;", "no database", Layout{Cluster: "c"}},
		{"engine first", "CREATE TABLE a (x Int8) ENGINE = {{engine \"MergeTree\"}} ORDER BY x;", "no {{table}} before it", testCluster},
		{"alter unknown", "ALTER TABLE {{alter \"nope\"}} ADD COLUMN y Int8;", "not a table created by an earlier", testCluster},
		{"unknown placeholder", "CREATE TABLE {{tabel \"a\"}} (x Int8);", "function \"tabel\" not defined", testCluster},
		{"two keys", "CREATE TABLE {{table \"a\" \"x\" \"y\"}} (x Int8);", "one shard key", Layout{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := RenderFS(fstest.MapFS{"m/0001_a.sql": {Data: []byte(tc.file)}}, "m", tc.l)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestAlterUnsharded(t *testing.T) {
	fsys := fstest.MapFS{
		"m/0001_a.sql": {Data: []byte("CREATE TABLE IF NOT EXISTS {{table \"a\"}} (x Int8) ENGINE = {{engine \"MergeTree\"}} ORDER BY x;\n" +
			"ALTER TABLE {{alter \"a\"}} ADD COLUMN y Int8;\n")},
	}
	ms, err := RenderFS(fsys, "m", testCluster)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"CREATE TABLE IF NOT EXISTS a ON CLUSTER `audit` (x Int8) ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/{database}/a', '{shard}-{replica}') ORDER BY x",
		"ALTER TABLE a ON CLUSTER `audit` ADD COLUMN y Int8",
	}
	if got := ms[0].Statements; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("statements\n%q\nwant\n%q", got, want)
	}
}

func TestMaterializedViewRendering(t *testing.T) {
	ms, err := RenderFS(os.DirFS("testdata/mv"), ".", testCluster)
	if err != nil {
		t.Fatal(err)
	}
	stmts := ms[0].Statements
	last := stmts[len(stmts)-1]
	if !strings.Contains(last, "per_host_mv ON CLUSTER `audit` TO per_host_local AS") || !strings.Contains(last, "FROM src_local") {
		t.Errorf("materialized view does not read and write the local tables:\n%s", last)
	}
	if len(stmts) != 5 {
		t.Errorf("%d statements, want 5 (two local, two Distributed, the view)", len(stmts))
	}
}

// FuzzRender: any file renders, or fails with an error, in both layouts;
// the single-server rendering of a file without placeholders is the file.
func FuzzRender(f *testing.F) {
	names, _ := fs.Glob(files, "*.sql")
	for _, n := range names {
		b, _ := fs.ReadFile(files, n)
		f.Add(b)
	}
	f.Add([]byte("ALTER TABLE {{alter \"x\"}} ADD COLUMN y Int8;"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fsys := fstest.MapFS{"m/0001_a.sql": {Data: b}}
		single, err := RenderFS(fsys, "m", Layout{})
		if err == nil && !bytes.Contains(b, []byte("{{")) {
			sum := sha256.Sum256(b)
			if single[0].Checksum != hex.EncodeToString(sum[:]) {
				t.Errorf("a file without placeholders changed in the single-server rendering")
			}
		}
		ms, err := RenderFS(fsys, "m", testCluster)
		if err == nil && (len(ms) != 1 || len(ms[0].Statements) == 0) {
			t.Errorf("cluster rendering: %+v", ms)
		}
	})
}
