package queryapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/internal/testenv"
)

// clientFixture is the read-only endpoint over an embedded store holding
// the sample events, and the named queries to run against it (one run per
// access request for request-commands).
type clientFixture struct {
	eng     *clickhouse.Embedded
	srv     *httptest.Server
	queries []namedRun
}

type namedRun struct {
	name, sql string
}

func newClientFixture(t *testing.T) *clientFixture {
	t.Helper()
	eng := clickhousetest.OpenEmbedded(t, "")
	ctx := context.Background()
	if _, err := clickhouse.Migrate(ctx, eng, 0, nil); err != nil {
		t.Fatal(err)
	}
	clickhousetest.InsertEvents(t, eng, clickhousetest.SampleEvents(time.Date(2020, 10, 29, 3, 20, 22, 0, time.UTC)), 0)
	srv := httptest.NewServer(NewQueryHandler(eng, nil, QueryHandlerOptions{}))
	t.Cleanup(srv.Close)
	f := &clientFixture{eng: eng, srv: srv}
	for _, nq := range NamedQueries() {
		if len(nq.Args) == 0 {
			f.queries = append(f.queries, namedRun{nq.Name, nq.SQL(nil)})
			continue
		}
		for _, id := range []string{"ocid1.opctlaccessrequest.a", "ocid1.opctlaccessrequest.b"} {
			f.queries = append(f.queries, namedRun{nq.Name + " " + id, nq.SQL([]string{id})})
		}
	}
	return f
}

// want returns the rows of sql as the embedded engine answers them, each
// value as text (clickhouse.ValueString of its JSONCompact value).
func (f *clientFixture) want(t *testing.T, sql string) [][]string {
	t.Helper()
	res, err := f.eng.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("embedded: %v", err)
	}
	out := [][]string{}
	for _, r := range res.Rows {
		row := make([]string, len(r))
		for i, v := range r {
			row[i] = clickhouse.ValueString(v)
		}
		out = append(out, row)
	}
	if len(out) == 0 {
		t.Fatalf("embedded: %q returned no rows; the comparison would prove nothing", sql)
	}
	return out
}

// goValueText renders a value that clickhouse-go scanned from a column of
// type typ as the embedded engine's JSONCompact shows it.
func goValueText(v any, typ string) string {
	switch x := v.(type) {
	case time.Time:
		switch {
		case strings.HasPrefix(typ, "DateTime64(3"):
			return x.UTC().Format("2006-01-02 15:04:05.000")
		case strings.HasPrefix(typ, "DateTime"):
			return x.UTC().Format("2006-01-02 15:04:05")
		default:
			return x.Format("2006-01-02")
		}
	case []string:
		b, _ := json.Marshal(x)
		return string(b)
	}
	return fmt.Sprint(v)
}

// TestClickHouseGoHTTP runs clickhouse-go/v2 over its HTTP protocol (what
// the server engine and Grafana's ClickHouse data source use) against the
// read-only endpoint: connect (its hello query), ping, every named query
// with the same answer as the embedded engine gives, a query parameter,
// and the refusal of a write.
func TestClickHouseGoHTTP(t *testing.T) {
	f := newClientFixture(t)
	u, _ := url.Parse(f.srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := ch.Open(&ch.Options{
		Addr:     []string{u.Host},
		Protocol: ch.HTTP,
		Auth:     ch.Auth{Database: "default", Username: "default"},
		Settings: ch.Settings{"final": 1, "max_execution_time": 60},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	sv, err := conn.ServerVersion()
	if err != nil || sv.Version.Major < 25 {
		t.Fatalf("server version %v, %v; want chDB's (26.x)", sv, err)
	}

	for _, nq := range f.queries {
		t.Run(nq.name, func(t *testing.T) {
			want := f.want(t, nq.sql)
			rows, err := conn.Query(ctx, nq.sql)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			cts := rows.ColumnTypes()
			got := [][]string{}
			for rows.Next() {
				ptrs := make([]any, len(cts))
				for i, ct := range cts {
					ptrs[i] = reflect.New(ct.ScanType()).Interface()
				}
				if err := rows.Scan(ptrs...); err != nil {
					t.Fatal(err)
				}
				row := make([]string, len(cts))
				for i, p := range ptrs {
					row[i] = goValueText(reflect.ValueOf(p).Elem().Interface(), cts[i].DatabaseTypeName())
				}
				got = append(got, row)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("clickhouse-go got\n%v\nembedded engine\n%v", got, want)
			}
		})
	}

	t.Run("query parameter", func(t *testing.T) {
		pctx := ch.Context(ctx, ch.WithParameters(ch.Parameters{"req": "ocid1.opctlaccessrequest.a", "ev": "command"}))
		var n uint64
		if err := conn.QueryRow(pctx, "SELECT count() FROM audit_events WHERE req_auth_id = {req:String} AND event = {ev:String}").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 3 {
			t.Errorf("count = %d, want 3", n)
		}
		// A value is a value: quotes in it do not end the literal.
		pctx = ch.Context(ctx, ch.WithParameters(ch.Parameters{"req": "x' OR 1 = 1 OR '"}))
		if err := conn.QueryRow(pctx, "SELECT count() FROM audit_events WHERE req_auth_id = {req:String}").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("count with a quote in the parameter = %d, want 0", n)
		}
	})

	t.Run("writes refused", func(t *testing.T) {
		err := conn.Exec(ctx, "DROP TABLE audit_events")
		if err == nil || !strings.Contains(err.Error(), "read-only") {
			t.Fatalf("DROP TABLE over clickhouse-go: %v; want refused as read-only", err)
		}
		b, err := conn.PrepareBatch(ctx, "INSERT INTO schema_migrations (version, name, checksum)")
		if err == nil {
			if err = b.Append(uint32(99), "x", strings.Repeat("0", 64)); err == nil {
				err = b.Send()
			}
		}
		if err == nil || !strings.Contains(err.Error(), "read-only") {
			t.Fatalf("batch INSERT over clickhouse-go: %v; want refused as read-only", err)
		}
		if n := clickhousetest.QueryInt(t, f.eng, "SELECT count() FROM schema_migrations WHERE version = 99"); n != 0 {
			t.Errorf("read-only endpoint inserted %d rows", n)
		}
	})
}

// clickhouseConnectScript runs the named queries given as JSON on stdin
// through clickhouse-connect against the endpoint named in argv[1] and prints
// {"name": [[value as text, …], …], …}; dates and times as the embedded
// engine's JSON shows them.
const clickhouseConnectScript = `
import datetime, json, sys
import clickhouse_connect

host, port = sys.argv[1].rsplit(":", 1)
client = clickhouse_connect.get_client(host=host, port=int(port), username="default", password="",
                                       compress=False, autogenerate_session_id=False)
def text(v, typ):
    if isinstance(v, datetime.datetime):
        if typ.startswith("DateTime64(3"):
            return v.strftime("%Y-%m-%d %H:%M:%S.") + "%03d" % (v.microsecond // 1000)
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, datetime.date):
        return v.strftime("%Y-%m-%d")
    if isinstance(v, (list, tuple)):
        return json.dumps(list(v), separators=(",", ":"))
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
out = {}
for name, sql in json.load(sys.stdin).items():
    r = client.query(sql)
    types = [t.name for t in r.column_types]
    out[name] = [[text(v, types[i]) for i, v in enumerate(row)] for row in r.result_rows]
r = client.query("SELECT count() FROM audit_events WHERE req_auth_id = {req:String}",
                 parameters={"req": "ocid1.opctlaccessrequest.a"})
out["parameter"] = [[str(r.result_rows[0][0])]]
try:
    client.command("DROP TABLE audit_events")
    out["drop"] = "allowed"
except Exception as e:
    out["drop"] = str(e)
json.dump(out, sys.stdout)
`

// venvPython returns the Python of the test venv that
// scripts/deps.d/40-python-venv.sh makes, or skips the test saying why.
func venvPython(t *testing.T) string {
	t.Helper()
	cache := os.Getenv("AUDITPIPE_CACHE")
	if cache == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			testenv.SkipOrFail(t, testenv.PythonVenv, "no home directory for the venv: %v", err)
		}
		cache = filepath.Join(h, ".cache", "auditpipe")
	}
	py := filepath.Join(cache, "venv", "bin", "python")
	if _, err := os.Stat(py); err != nil {
		testenv.SkipOrFail(t, testenv.PythonVenv, "needs the clickhouse-connect venv (run 'make deps', scripts/deps.d/40-python-venv.sh): %v", err)
	}
	if err := exec.Command(py, "-c", "import clickhouse_connect").Run(); err != nil {
		testenv.SkipOrFail(t, testenv.PythonVenv, "%s has no clickhouse_connect (run 'make deps'): %v", py, err)
	}
	return py
}

// TestClickHouseConnect runs clickhouse-connect (Python, from PyPI) against
// the read-only endpoint: its connect sequence (version and timezone,
// system.settings, the protocol-version probe in Native), every named
// query compared with the embedded engine's answer, a server-side query
// parameter, and a refused write.
func TestClickHouseConnect(t *testing.T) {
	py := venvPython(t)
	f := newClientFixture(t)
	u, _ := url.Parse(f.srv.URL)
	in := map[string]string{}
	for _, nq := range f.queries {
		in[nq.name] = nq.sql
	}
	stdin, _ := json.Marshal(in)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-c", clickhouseConnectScript, u.Host)
	cmd.Stdin = strings.NewReader(string(stdin))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("clickhouse-connect: %v\n%s", err, stderr.String())
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("clickhouse-connect output %q: %v", b, err)
	}
	for _, nq := range f.queries {
		var got [][]string
		if err := json.Unmarshal(out[nq.name], &got); err != nil {
			t.Errorf("%s: %v in %s", nq.name, err, out[nq.name])
			continue
		}
		if got == nil {
			got = [][]string{}
		}
		if want := f.want(t, nq.sql); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: clickhouse-connect got\n%v\nembedded engine\n%v", nq.name, got, want)
		}
	}
	if p := string(out["parameter"]); p != `[["5"]]` {
		t.Errorf("parameter query: %s, want [[\"5\"]]", p)
	}
	var drop string
	_ = json.Unmarshal(out["drop"], &drop)
	if !strings.Contains(drop, "read-only") {
		t.Errorf("DROP TABLE over clickhouse-connect: %q, want refused as read-only", drop)
	}
	if n := clickhousetest.QueryInt(t, f.eng, "SELECT count() FROM audit_events"); n != 8 {
		t.Errorf("audit_events has %d rows after the clients, want 8", n)
	}
}

// TestClickHouseGoSeesBounds: what clickhouse-go/v2 (over HTTP, in Native)
// reports when a statement meets the endpoint's bounds: an answer over
// max_output_bytes, and a query log with no room (its store takes no
// rows). The ClickHouse exception, with its code and sentence, is the
// client's error, not a garbled answer.
func TestClickHouseGoSeesBounds(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	ins := &slowInserter{gate: make(chan struct{})}
	qlog := NewQueryLogWriter(ins, nil, QueryLogOptions{Buffer: 4, FlushInterval: 5 * time.Millisecond, ReserveWait: 20 * time.Millisecond})
	lctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- qlog.Run(lctx) }()
	defer func() { close(ins.gate); stop(); <-done }()
	srv := httptest.NewServer(NewQueryHandler(eng, nil, QueryHandlerOptions{QueryLog: qlog, MaxOutputBytes: 64 << 10}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := ch.Open(&ch.Options{Addr: []string{u.Host}, Protocol: ch.HTTP, Auth: ch.Auth{Database: "default", Username: "default"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n uint64
	err = conn.QueryRow(ctx, "SELECT number FROM numbers(100000) ORDER BY number DESC LIMIT 1").Scan(&n)
	if err != nil || n != 99999 {
		t.Fatalf("a small answer: %d, %v", n, err)
	}
	rows, err := conn.Query(ctx, "SELECT number, toString(number) FROM numbers(100000)")
	if err == nil {
		for rows.Next() {
		}
		err = rows.Err()
		rows.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "396") || !strings.Contains(err.Error(), "query.max_output_bytes") {
		t.Errorf("an answer over max_output_bytes: %v; want code 396 naming query.max_output_bytes", err)
	}
	// The log's four slots are taken by now (the store takes no rows).
	for i := 0; ; i++ {
		err = conn.QueryRow(ctx, "SELECT 1").Scan(new(uint8))
		if err != nil {
			break
		}
		if i == 4 {
			t.Fatal("a fifth statement ran with a query log of four rows that the store does not take")
		}
	}
	t.Logf("clickhouse-go's error with the query log full: %v", err)
	if !strings.Contains(err.Error(), "745") || !strings.Contains(err.Error(), "query log full") {
		t.Errorf("with the query log full: %v; want code 745, \"query log full\"", err)
	}
}
