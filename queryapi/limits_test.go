package queryapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/testlog"
)

// Attack (issue 9): a statement raising the limits it runs under
// (SETTINGS max_execution_time = 0, a huge max_memory_usage, …). The
// statement may only lower them; URL settings are clamped to them.
func TestLimitSettingsCapped(t *testing.T) {
	lim := Limits{MaxExecutionTime: 30 * time.Second, MaxMemoryUsage: 1 << 30, MaxResultRows: 1000, MaxResultBytes: 1 << 20}
	for _, tc := range []struct{ name, sql, why string }{
		{"no limit", "SELECT 1 SETTINGS max_execution_time = 0", "max_execution_time"},
		{"above", "SELECT 1 SETTINGS max_execution_time = 31", "max_execution_time"},
		{"string", "SELECT 1 SETTINGS max_memory_usage = '100G'", "max_memory_usage"},
		{"negative", "SELECT 1 SETTINGS max_result_rows = -1", "max_result_rows"},
		{"expression", "SELECT 1 SETTINGS max_result_bytes = 1 + 1", "max_result_bytes"},
		{"inf", "SELECT 1 SETTINGS max_execution_time = inf", "max_execution_time"},
		{"in subquery", "SELECT * FROM (SELECT 1 SETTINGS max_memory_usage = 10000000000000)", "max_memory_usage"},
		// A reader's scan on every core starved ingestion of CPU.
		{"threads above", "SELECT 1 SETTINGS max_threads = 64", "max_threads"},
		{"threads unlimited", "SELECT 1 SETTINGS max_threads = 0", "max_threads"},
	} {
		lim := lim
		lim.MaxThreads = 2
		if got, err := guardStatement(tc.sql, guardOptions{limits: lim}); err == nil || !errors.Is(err, errRefused) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%s: guardStatement(%q) = %q, %v; want refused for %s", tc.name, tc.sql, got, err, tc.why)
		}
	}
	got, err := guardStatement("SELECT 1 SETTINGS max_execution_time = 1.5, max_result_rows = 10", guardOptions{limits: lim})
	want := "SELECT 1 SETTINGS max_memory_usage = 1073741824, max_result_bytes = 1048576, readonly = 1, max_execution_time = 1.5, max_result_rows = 10"
	if err != nil || got != want {
		t.Errorf("lowering: %q, %v; want %q", got, err, want)
	}
	got, err = guardStatement("SELECT 1", guardOptions{limits: lim, settings: []Setting{{"max_execution_time", "300"}, {"max_result_rows", "5"}}})
	want = "SELECT 1\nSETTINGS max_execution_time = 30, max_result_rows = 5, max_memory_usage = 1073741824, max_result_bytes = 1048576, readonly = 1"
	if err != nil || got != want {
		t.Errorf("URL: %q, %v; want %q", got, err, want)
	}
	for _, v := range []string{"", "x", "1e3'", "0x10"} {
		if _, err := guardStatement("SELECT 1", guardOptions{limits: lim, settings: []Setting{{"max_execution_time", v}}}); err == nil {
			t.Errorf("URL max_execution_time=%q allowed", v)
		}
	}
}

// logLines is a slog handler target that tests read.
type logLines struct{ testlog.Buffer }

// queries returns the endpoint's query log lines, decoded.
func (l *logLines) queries(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == "query endpoint: query" {
			out = append(out, m)
		}
	}
	return out
}

// Attack (issue 9): one slow query (numbers(1e12)) held the chDB session,
// stalled ingestion and ignored the client's disconnect; one large result
// took the process to 4 GB. Now: max_execution_time stops it with a clear
// error; a client that goes away has its query killed; the indexer's
// inserts go on meanwhile (the endpoint runs on a query session of its
// own); the result limits stop a large answer; and every query is logged
// and counted.
func TestLimitsCancelIngestion(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	ctx := context.Background()
	if _, err := clickhouse.Migrate(ctx, eng, 0, nil); err != nil {
		t.Fatal(err)
	}
	qs, err := eng.OpenQuerySession()
	if err != nil {
		t.Fatal(err)
	}
	defer qs.Close()
	var logs logLines
	reg := prometheus.NewRegistry()
	h := NewQueryHandler(qs, slog.New(slog.NewJSONHandler(&logs, nil)), QueryHandlerOptions{
		Limits:   Limits{MaxExecutionTime: 2 * time.Second, MaxResultRows: 1000},
		Registry: reg,
	})
	// Who is asking, as internal/auth puts it in the context.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(auth.WithIdentity(r.Context(), auth.Identity{Name: "alice", Role: auth.RoleAuditor, Method: "token"})))
	}))
	defer srv.Close()
	slow := "SELECT count() FROM numbers(1e12)"

	t.Run("max_execution_time", func(t *testing.T) {
		start := time.Now()
		status, code, body := get(t, srv, "GET", url.Values{"query": {slow}}, "")
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("took %s with max_execution_time = 2 s", d)
		}
		if status != http.StatusInternalServerError || code != "159" || !strings.Contains(body, "max_execution_time = 2s") {
			t.Errorf("status %d code %q body %q; want 500, 159 and the limit named", status, code, body)
		}
	})
	t.Run("result rows", func(t *testing.T) {
		status, code, body := get(t, srv, "GET", url.Values{"query": {"SELECT number FROM numbers(100000)"}}, "")
		if status != http.StatusInternalServerError || code != "396" || !strings.Contains(body, "max_result_rows = 1000") {
			t.Errorf("status %d code %q body %q; want 500, 396 and the limit named", status, code, body)
		}
	})
	t.Run("disconnect cancels, ingestion goes on", func(t *testing.T) {
		// A limit far away, so only the cancellation can stop it early.
		long := NewQueryHandler(qs, nil, QueryHandlerOptions{Limits: Limits{MaxExecutionTime: 60 * time.Second}})
		cctx, cancel := context.WithCancel(ctx)
		req := httptest.NewRequest("GET", "/?"+url.Values{"query": {slow}}.Encode(), nil).WithContext(cctx)
		rw := httptest.NewRecorder()
		done := make(chan time.Time)
		start := time.Now()
		go func() {
			long.ServeHTTP(rw, req)
			done <- time.Now()
		}()
		// Inserts while the slow query runs, on the engine's own session.
		time.Sleep(300 * time.Millisecond)
		evs := clickhousetest.SampleEvents(time.Date(2020, 10, 29, 3, 20, 22, 0, time.UTC))
		insStart := time.Now()
		clickhousetest.InsertEvents(t, eng, evs, 1)
		insTook := time.Since(insStart)
		r, err := eng.Query(ctx, "SELECT count() FROM audit_events")
		if err != nil {
			t.Fatal(err)
		}
		if n := clickhouse.ValueString(r.Rows[0][0]); n != fmt.Sprint(len(evs)) {
			t.Errorf("%s events stored while the slow query ran, want %d", n, len(evs))
		}
		select {
		case <-done:
			t.Fatalf("slow query ended before the client went away: %d %s", rw.Code, rw.Body)
		default:
		}
		t.Logf("%d inserts took %s while the slow query ran", len(evs), insTook)
		cancelled := time.Now()
		cancel()
		end := <-done
		if d := end.Sub(cancelled); d > 5*time.Second {
			t.Errorf("query ended %s after the client went away (started %s before)", d, cancelled.Sub(start))
		}
		if rw.Header().Get("X-ClickHouse-Exception-Code") != "394" {
			t.Errorf("cancelled query: %d %q; want code 394", rw.Code, rw.Body)
		}
	})
	t.Run("logged and counted", func(t *testing.T) {
		if status, _, body := get(t, srv, "GET", url.Values{"query": {"SELECT sum(number) FROM numbers(10)"}}, ""); status != 200 {
			t.Fatalf("%d %s", status, body)
		}
		get(t, srv, "GET", url.Values{"query": {"SELECT * FROM file('/etc/passwd')"}}, "")
		lines := logs.queries(t)
		byResult := map[string]map[string]any{}
		for _, l := range lines {
			if l["who"] != "alice" || l["role"] != auth.RoleAuditor {
				t.Errorf("log line without the identity: %v", l)
			}
			byResult[fmt.Sprint(l["result"])] = l
		}
		ok, refused, failed := byResult[resultOK], byResult[resultRefused], byResult[resultError]
		if ok == nil || refused == nil || failed == nil {
			t.Fatalf("want ok, refused and error lines: %v", lines)
		}
		if ok["sql"] != "SELECT sum(number) FROM numbers(10)" || ok["rows"].(float64) != 1 || ok["result_bytes"].(float64) != 3 {
			t.Errorf("ok line %v", ok)
		}
		if _, ok := ok["duration"]; !ok {
			t.Errorf("no duration: %v", ok)
		}
		if !strings.Contains(fmt.Sprint(refused["err"]), "file") || refused["code"].(float64) != 164 {
			t.Errorf("refused line %v", refused)
		}
		if n := testutil.CollectAndCount(reg, "auditpipe_query_duration_seconds"); n != 1 {
			t.Errorf("auditpipe_query_duration_seconds: %d series", n)
		}
		want := map[string]float64{resultOK: 1, resultRefused: 1, resultError: 2}
		for r, n := range want {
			if got := counterValue(t, reg, r); got != n {
				t.Errorf("auditpipe_query_requests_total{result=%q} = %v, want %v", r, got, n)
			}
		}
	})
	t.Run("SQL bounded in the log", func(t *testing.T) {
		long := "SELECT 1 -- " + strings.Repeat("x", 10000)
		get(t, srv, "POST", nil, long)
		lines := logs.queries(t)
		last := lines[len(lines)-1]
		if s := fmt.Sprint(last["sql"]); len(s) > maxLoggedSQL+len("…") || last["sql_bytes"].(float64) != float64(len(long)) {
			t.Errorf("logged %d bytes of SQL (sql_bytes %v)", len(s), last["sql_bytes"])
		}
	})
}

// counterValue returns auditpipe_query_requests_total{result} from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "auditpipe_query_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "result" && lp.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no auditpipe_query_requests_total{result=%q}", result)
	return 0
}

// TestReaderShare catches a gap the issue 9 work left open ("a per-reader
// share of the query endpoint's sessions"): one reader's slow queries
// could take every session of the pool, and the next reader waited up to
// max_execution_time. Now a reader runs at most MaxQueriesPerReader
// statements at once: one more is refused at once with 429 and code 202,
// while another reader is answered from the sessions left.
func TestReaderShare(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	pool, err := eng.OpenQueryPool(3)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	h := NewQueryHandler(pool, nil, QueryHandlerOptions{Limits: Limits{MaxExecutionTime: 60 * time.Second}, MaxQueriesPerReader: 2})
	serve := func(ctx context.Context, who, query string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/?"+url.Values{"query": {query}}.Encode(), nil)
		req = req.WithContext(auth.WithIdentity(ctx, auth.Identity{Name: who, Role: auth.RoleAuditor, Method: "token"}))
		rw := httptest.NewRecorder()
		h.ServeHTTP(rw, req)
		return rw
	}
	const slow = "SELECT count() FROM numbers(1e12)"
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); serve(ctx, "alice", slow) }()
	}
	defer func() { cancel(); wg.Wait() }()
	// Until both run: chDB lists them in system.processes.
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := eng.Query(context.Background(), "SELECT count() FROM system.processes WHERE query LIKE '%numbers(1e12)%' AND query NOT LIKE '%system.processes%'")
		if err != nil {
			t.Fatal(err)
		}
		if clickhouse.ValueString(r.Rows[0][0]) == "2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("alice's two slow queries are not running after 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A third of alice's: refused at once (on the code before, it took the
	// pool's last session and ran until its client gave up).
	third, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	start := time.Now()
	rw := serve(third, "alice", slow)
	if rw.Code != http.StatusTooManyRequests || rw.Header().Get("X-ClickHouse-Exception-Code") != "202" ||
		!strings.Contains(rw.Body.String(), "TOO_MANY_SIMULTANEOUS_QUERIES") {
		t.Errorf("alice's third query: %d %q, code %q after %s; want 429, code 202 at once",
			rw.Code, rw.Body, rw.Header().Get("X-ClickHouse-Exception-Code"), time.Since(start))
	}
	// Bob is answered meanwhile.
	if rw := serve(context.Background(), "bob", "SELECT 1"); rw.Code != http.StatusOK || strings.TrimSpace(rw.Body.String()) != "1" {
		t.Errorf("bob's query while alice's run: %d %q", rw.Code, rw.Body)
	}
	// Once alice's end, she may query again.
	cancel()
	wg.Wait()
	if rw := serve(context.Background(), "alice", "SELECT 2"); rw.Code != http.StatusOK || strings.TrimSpace(rw.Body.String()) != "2" {
		t.Errorf("alice's query after hers ended: %d %q", rw.Code, rw.Body)
	}
}
