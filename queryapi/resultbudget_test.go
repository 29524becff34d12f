package queryapi

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/internal/auth"
)

// liveKey marks a request whose answer the bigQuerier made.
type liveKey struct{}

// bigQuerier answers each statement with size fresh bytes after delay, and
// counts the bytes of the answers alive: from the querier's call to the
// end of the handler's ServeHTTP (the harness subtracts them), which is
// what the process holds of them, chDB's buffer aside.
type bigQuerier struct {
	size       int
	delay      time.Duration
	live, peak atomic.Int64
}

func (b *bigQuerier) QueryFormat(ctx context.Context, sql, _ string) ([]byte, error) {
	if strings.HasPrefix(sql, "EXPLAIN AST ") {
		return []byte("SelectWithUnionQuery (children 1)\n ExpressionList (children 1)\n  SelectQuery (children 1)\n"), nil
	}
	if ran, ok := ctx.Value(liveKey{}).(*bool); ok {
		*ran = true
	}
	n := b.live.Add(int64(b.size))
	for p := b.peak.Load(); n > p && !b.peak.CompareAndSwap(p, n); p = b.peak.Load() {
	}
	out := make([]byte, b.size)
	for i := range out {
		out[i] = 'x'
	}
	time.Sleep(b.delay)
	return out, nil
}

// liveWriter is a ResponseWriter that keeps nothing of the body (as a
// connection sends it on) and takes the answer off q's live bytes once it
// is written: after that the handler holds nothing of it.
type liveWriter struct {
	h       http.Header
	code    int
	n       int
	q       *bigQuerier
	ran     *bool
	counted bool
}

func (w *liveWriter) Header() http.Header { return w.h }
func (w *liveWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}
func (w *liveWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.n += len(p)
	if *w.ran && !w.counted && w.n >= w.q.size {
		w.counted = true
		w.q.live.Add(-int64(w.q.size))
	}
	return len(p), nil
}

// serveLive serves one statement of reader who; its answer is alive
// (q.live) from the querier's call until it is written or the handler
// returns.
func serveLive(h http.Handler, q *bigQuerier, who string) *liveWriter {
	ran := new(bool)
	ctx := context.WithValue(context.Background(), liveKey{}, ran)
	ctx = auth.WithIdentity(ctx, auth.Identity{Name: who, Role: auth.RoleAuditor})
	req := httptest.NewRequest("GET", "/?"+url.Values{"query": {"SELECT big"}}.Encode(), nil).WithContext(ctx)
	rw := &liveWriter{h: http.Header{}, q: q, ran: ran}
	h.ServeHTTP(rw, req)
	if *ran && !rw.counted {
		q.live.Add(-int64(q.size))
	}
	return rw
}

// TestResultBudgetBoundsReaders catches the issue 9 review's finding that
// result memory was bounded per statement only: two readers of big
// results took the process to 3.65 GB, as every statement held its whole
// answer at once. Twelve readers of 4 MiB answers at once against a budget
// of two running statements (each reserves three times its 4 MiB cap
// while it runs, for chDB's buffer and the Go copy, and its answer's size
// while it is sent): the answers alive at once never exceed the budget,
// and every reader is answered, waiting its turn. On the old code all
// twelve are alive together.
func TestResultBudgetBoundsReaders(t *testing.T) {
	const size = 4 << 20
	q := &bigQuerier{size: size, delay: 30 * time.Millisecond}
	budget := NewResultBudget(2*resultHold(size, false), nil)
	h := NewQueryHandler(q, nil, QueryHandlerOptions{MaxOutputBytes: size, ResultBudget: budget, ResultWait: 30 * time.Second})
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rw := serveLive(h, q, fmt.Sprintf("reader%d", i))
			if rw.code != http.StatusOK || rw.n != size {
				t.Errorf("reader %d: %d, %d bytes; want 200 and %d bytes", i, rw.code, rw.n, size)
			}
		}()
	}
	wg.Wait()
	t.Logf("at most %d answers of %d alive at once, budget %d bytes", q.peak.Load()/size, 12, budget.Total())
	if p := q.peak.Load(); p > budget.Total() {
		t.Errorf("%d bytes of answers alive at once (%d answers), over the budget of %d", p, p/size, budget.Total())
	}
	if u := budget.inUse(); u != 0 {
		t.Errorf("%d bytes of the budget still reserved after every answer", u)
	}
}

// With the budget taken for longer than ResultWait, a statement is not run
// and is answered 503 with code 745, Retry-After and a message naming the
// budget; the refusal is counted.
func TestResultBudgetRefuses(t *testing.T) {
	const size = 1 << 20
	q := &bigQuerier{size: size, delay: 300 * time.Millisecond}
	reg := prometheus.NewRegistry()
	budget := NewResultBudget(resultHold(size, false), reg)
	h := NewQueryHandler(q, nil, QueryHandlerOptions{MaxOutputBytes: size, ResultBudget: budget, ResultWait: 20 * time.Millisecond})
	first := make(chan *liveWriter)
	go func() { first <- serveLive(h, q, "alice") }()
	for q.live.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx := auth.WithIdentity(context.Background(), auth.Identity{Name: "bob", Role: auth.RoleAuditor})
	rw := httptest.NewRecorder()
	h.ServeHTTP(rw, httptest.NewRequest("GET", "/?query=SELECT+big", nil).WithContext(ctx))
	if rw.Code != http.StatusServiceUnavailable || rw.Header().Get("X-ClickHouse-Exception-Code") != "745" ||
		rw.Header().Get("Retry-After") == "" || !strings.Contains(rw.Body.String(), "query.result_budget") {
		t.Errorf("bob's statement with the budget taken: %d %v %q; want 503, code 745, Retry-After, naming query.result_budget", rw.Code, rw.Header(), rw.Body)
	}
	if rw := <-first; rw.code != http.StatusOK {
		t.Errorf("alice's statement: %d", rw.code)
	}
	if got := testutil.ToFloat64(budget.refused); got != 1 {
		t.Errorf("auditpipe_query_result_budget_refused_total %v, want 1", got)
	}
}

// TestMaxOutputBytes catches the review's finding that max_result_bytes
// bounds a result before formatting only: 40 MB of data came back as
// 240 MB of JSONEachRow. An answer over MaxOutputBytes as chDB formats it
// is refused with code 396 and a message naming the limit; the same rows
// in a small format pass. On the old code the JSON answer is sent.
func TestMaxOutputBytes(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	h := NewQueryHandler(eng, nil, QueryHandlerOptions{MaxOutputBytes: 1 << 20})
	for _, tc := range []struct {
		query string
		code  int
	}{
		// 50 000 rows of 9 bytes: 450 KB of result, about 2 MB of JSON.
		{"SELECT number AS n, 1::UInt8 AS a_rather_long_column_name_that_json_repeats FROM numbers(50000) FORMAT JSONEachRow", http.StatusInternalServerError},
		{"SELECT count() FROM numbers(50000) FORMAT JSONEachRow", http.StatusOK},
		{"SELECT number FROM numbers(50000) FORMAT RowBinary", http.StatusOK},
	} {
		rw := httptest.NewRecorder()
		h.ServeHTTP(rw, httptest.NewRequest("GET", "/?"+url.Values{"query": {tc.query}}.Encode(), nil))
		if rw.Code != tc.code {
			t.Errorf("%s: %d (%d bytes), want %d", tc.query, rw.Code, rw.Body.Len(), tc.code)
			continue
		}
		if tc.code != http.StatusOK && (rw.Header().Get("X-ClickHouse-Exception-Code") != "396" || !strings.Contains(rw.Body.String(), "query.max_output_bytes")) {
			t.Errorf("%s: %v %q; want code 396 naming query.max_output_bytes", tc.query, rw.Header(), rw.Body)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Config
		bad  string
	}{
		{"defaults", Config{}, ""},
		{"budget of one statement", Config{MaxOutputBytes: 64 << 20, ResultBudget: 192 << 20}, ""},
		{"budget below one statement", Config{MaxOutputBytes: 64 << 20, ResultBudget: 128 << 20}, "query.result_budget"},
		{"negative output", Config{MaxOutputBytes: -1}, "query.max_output_bytes"},
		{"negative wait", Config{ResultWait: -time.Second}, "query.result_wait"},
		{"negative log wait", Config{LogWait: -time.Second}, "query.log_wait"},
	} {
		err := tc.c.Validate()
		if tc.bad == "" && err != nil || tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)) {
			t.Errorf("%s: %v, want an error naming %q", tc.name, err, tc.bad)
		}
	}
}

// limitQuerier records which entry the handler took and answers as a
// streaming engine would when its output passes the bound.
type limitQuerier struct {
	mu      sync.Mutex
	limited []int64 // the bounds QueryFormatStatsLimit was called with
	whole   int     // calls of QueryFormatStats
	over    bool    // QueryFormatStatsLimit answers ErrOutputLimit
}

func (q *limitQuerier) QueryFormat(_ context.Context, sql, _ string) ([]byte, error) {
	if strings.HasPrefix(sql, "EXPLAIN AST ") {
		return []byte("SelectWithUnionQuery (children 1)\n ExpressionList (children 1)\n  SelectQuery (children 1)\n"), nil
	}
	return []byte("1\n"), nil
}

func (q *limitQuerier) QueryFormatParams(ctx context.Context, sql, format string, _ []clickhouse.Param) ([]byte, error) {
	return q.QueryFormat(ctx, sql, format)
}

func (q *limitQuerier) QueryFormatStats(ctx context.Context, sql, format string, _ []clickhouse.Param) ([]byte, clickhouse.QueryStats, error) {
	q.mu.Lock()
	q.whole++
	q.mu.Unlock()
	b, err := q.QueryFormat(ctx, sql, format)
	return b, clickhouse.QueryStats{}, err
}

func (q *limitQuerier) QueryFormatStatsLimit(_ context.Context, _, _ string, _ []clickhouse.Param, maxOutput int64) ([]byte, clickhouse.QueryStats, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.limited = append(q.limited, maxOutput)
	if q.over {
		return nil, clickhouse.QueryStats{}, fmt.Errorf("%w: more than %d bytes", clickhouse.ErrOutputLimit, maxOutput)
	}
	return []byte("1\n"), clickhouse.QueryStats{}, nil
}

// TestMaxOutputBytesBoundsTheEngine: review finding (issue 9, qbounds'
// note): the formatted answer was measured only once chDB had built it
// whole, so one statement still took about three times its answer before
// it was refused. A reader's statement in a format the engine streams
// whole is now run bounded at MaxOutputBytes, the engine stopping it
// there (code 396, as for an answer measured after); a format chDB
// cannot stream whole (its header repeated per chunk) is measured after,
// as before.
func TestMaxOutputBytesBoundsTheEngine(t *testing.T) {
	const max = 1 << 20
	for _, tc := range []struct {
		query   string
		limited bool
	}{
		{"SELECT 1", true}, // the request's default format, TabSeparated
		{"SELECT 1 FORMAT JSONEachRow", true},
		{"SELECT 1 FORMAT Native", true},
		{"SELECT 1 FORMAT JSON", false},
		{"SELECT 1 FORMAT CSVWithNames", false},
		{"WITH 1 AS x SELECT x FORMAT TSV", true},
		{"(SELECT 1) UNION ALL (SELECT 2)", true},
		{"SHOW TABLES", false}, // chDB streams SELECTs only
		{"DESCRIBE TABLE audit_events", false},
		{"EXPLAIN SELECT 1", false},
	} {
		for _, over := range []bool{false, true} {
			q := &limitQuerier{over: over}
			h := NewQueryHandler(q, nil, QueryHandlerOptions{MaxOutputBytes: max})
			rw := httptest.NewRecorder()
			h.ServeHTTP(rw, httptest.NewRequest("GET", "/?"+url.Values{"query": {tc.query}}.Encode(), nil))
			if got := len(q.limited) == 1 && q.limited[0] == max && q.whole == 0; got != tc.limited {
				t.Errorf("%s: bounded calls %v, whole %d; want bounded at %d: %v", tc.query, q.limited, q.whole, max, tc.limited)
			}
			if !tc.limited || !over {
				if rw.Code != http.StatusOK {
					t.Errorf("%s: %d %q", tc.query, rw.Code, rw.Body)
				}
				continue
			}
			if rw.Code != http.StatusInternalServerError || rw.Header().Get("X-ClickHouse-Exception-Code") != "396" || !strings.Contains(rw.Body.String(), "query.max_output_bytes") {
				t.Errorf("%s stopped by the engine: %d %v %q; want 500, code 396 naming query.max_output_bytes", tc.query, rw.Code, rw.Header(), rw.Body)
			}
		}
	}
}

// TestMaxOutputBytesStreamedChDB: through chDB's query pool, an answer of
// about 1 GB of JSONEachRow (a long alias repeated on each of a million
// rows: 8 MB of result) is stopped at the bound as chDB streams it, with
// code 396; a small one in the same format is answered whole.
func TestMaxOutputBytesStreamedChDB(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	pool, err := eng.OpenQueryPool(1)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	h := NewQueryHandler(pool, nil, QueryHandlerOptions{MaxOutputBytes: 4 << 20})
	alias := "c" + strings.Repeat("x", 1000)
	for _, tc := range []struct {
		query string
		code  int
	}{
		{"SELECT number AS " + alias + " FROM numbers(1000000) FORMAT JSONEachRow", http.StatusInternalServerError},
		{"SELECT number AS " + alias + " FROM numbers(100) FORMAT JSONEachRow", http.StatusOK},
		{"WITH 100 AS n SELECT number AS " + alias + " FROM numbers(n) FORMAT JSONEachRow", http.StatusOK},
		{"(SELECT number AS " + alias + " FROM numbers(50)) UNION ALL (SELECT number FROM numbers(50)) FORMAT JSONEachRow", http.StatusOK},
	} {
		rw := httptest.NewRecorder()
		h.ServeHTTP(rw, httptest.NewRequest("GET", "/?"+url.Values{"query": {tc.query}}.Encode(), nil))
		if rw.Code != tc.code {
			t.Errorf("%.60s…: %d (%d bytes), want %d", tc.query, rw.Code, rw.Body.Len(), tc.code)
			continue
		}
		if tc.code == http.StatusOK {
			if n := strings.Count(rw.Body.String(), "\n"); n != 100 {
				t.Errorf("small answer: %d lines, want 100", n)
			}
			continue
		}
		if rw.Header().Get("X-ClickHouse-Exception-Code") != "396" || !strings.Contains(rw.Body.String(), "more than 4194304") {
			t.Errorf("large answer: %v %q; want code 396, stopped at the bound", rw.Header(), rw.Body)
		}
	}
}
