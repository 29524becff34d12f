package queryapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/internal/auth"
)

// maxLoggedSQL bounds the SQL text in a query's log line: its head and
// its tail, half each (see loggedSQL); sql_sha256 names the whole, as the
// query_log row holds it.
const maxLoggedSQL = 2048

// Query results, the label values of auditpipe_query_requests_total.
const (
	resultOK      = "ok"
	resultRefused = "refused"
	resultError   = "error"
)

// queryMetrics are the endpoint's metrics.
type queryMetrics struct {
	requests *prometheus.CounterVec
	duration prometheus.Histogram
}

// newQueryMetrics makes the metrics and registers them with reg (when not
// nil); a second handler on the same registry shares the first one's.
func newQueryMetrics(reg prometheus.Registerer) *queryMetrics {
	m := &queryMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditpipe_query_requests_total",
			Help: "Statements received by the query endpoint, by result: ok, refused (by the guard), error (by ClickHouse, a limit, a cancelled request, or no room in the query log or the result budget).",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "auditpipe_query_duration_seconds",
			Help:    "Time from a statement's arrival to its answer, at the query endpoint.",
			Buckets: []float64{0.001, 0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60},
		}),
	}
	for _, r := range []string{resultOK, resultRefused, resultError} {
		m.requests.WithLabelValues(r)
	}
	if reg == nil {
		return m
	}
	if err := reg.Register(m.requests); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if c, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				m.requests = c
			}
		}
	}
	if err := reg.Register(m.duration); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if c, ok := are.ExistingCollector.(prometheus.Histogram); ok {
				m.duration = c
			}
		}
	}
	return m
}

// queryRecord is what the endpoint logs of one statement.
type queryRecord struct {
	start     time.Time
	who, role string // the authenticated identity (auth.FromContext), if any
	writer    string // the writer's name, for a write instance
	remote    string
	queryID   string
	sql       string
	result    string
	code      int   // ClickHouse error code of a refusal or error
	err       error // why it was refused or failed
	// rows and bytes are the result's rows and uncompressed bytes (when
	// the engine says: chDB does), resultBytes the size of the answer as
	// sent.
	rows, bytes, resultBytes uint64
	// slot is the room reserved for the statement's query_log row.
	slot *QueryLogSlot
}

func newQueryRecord(ctx context.Context, remote string) *queryRecord {
	rec := &queryRecord{start: time.Now(), remote: remote}
	if id, ok := auth.FromContext(ctx); ok {
		rec.who, rec.role = id.Name, id.Role
	}
	return rec
}

// finish logs rec as one structured line and counts it.
func (h *queryHandler) finish(rec *queryRecord) {
	d := time.Since(rec.start)
	sql := loggedSQL(rec.sql)
	sum := sha256.Sum256([]byte(sql))
	h.metrics.requests.WithLabelValues(rec.result).Inc()
	h.metrics.duration.Observe(d.Seconds())
	attrs := []slog.Attr{
		slog.String("who", rec.who),
		slog.String("role", rec.role),
		slog.String("remote", rec.remote),
		slog.String("query_id", rec.queryID),
		slog.String("sql", headTail(sql, maxLoggedSQL)),
		slog.Int("sql_bytes", len(rec.sql)),
		slog.String("sql_sha256", hex.EncodeToString(sum[:])),
		slog.String("result", rec.result),
		slog.Uint64("rows", rec.rows),
		slog.Uint64("bytes", rec.bytes),
		slog.Uint64("result_bytes", rec.resultBytes),
		slog.Duration("duration", d),
	}
	if rec.writer != "" {
		attrs = append(attrs, slog.String("writer", rec.writer))
	}
	level := slog.LevelInfo
	if rec.err != nil {
		attrs = append(attrs, slog.Int("code", rec.code), slog.String("err", rec.err.Error()))
		if rec.result == resultRefused {
			level = slog.LevelWarn
		}
	}
	h.log.LogAttrs(context.Background(), level, "query endpoint: query", attrs...)
	if h.opt.QueryLog != nil && rec.slot != nil {
		row := clickhouse.QueryLogRow{
			Time: rec.start, Who: rec.who, Role: rec.role, Remote: rec.remote, QueryID: rec.queryID,
			SQL: sql, SQLBytes: uint64(len(rec.sql)), Result: rec.result, Code: int32(rec.code),
			Rows: rec.rows, Bytes: rec.bytes, ResultBytes: rec.resultBytes, Duration: d,
		}
		if rec.err != nil {
			row.Error = rec.err.Error()
		}
		rec.slot.Add(row) // no slot: refused for want of one, never run
	}
}

// loggedSQL is the statement as the query log keeps it: its comments each
// replaced by one space, so that a reader cannot pad a statement with them
// past what the log keeps of it (issue 9 review, F4); a statement the lexer
// refuses is kept as it came.
func loggedSQL(sql string) string {
	toks, err := lexSQL(sql)
	if err != nil || len(toks) == 0 {
		return sql
	}
	var b strings.Builder
	b.Grow(len(sql))
	prev := 0
	for _, t := range toks {
		gap := sql[prev:t.start]
		if strings.TrimLeft(gap, " \t\n\r\f\v") != "" { // a comment in it
			gap = " "
		}
		b.WriteString(gap)
		b.WriteString(sql[t.start:t.end])
		prev = t.end
	}
	if tail := sql[prev:]; strings.TrimLeft(tail, " \t\n\r\f\v") == "" {
		b.WriteString(tail)
	}
	return b.String()
}

// headTail returns sql when it fits in n bytes, else its first and last n/2
// bytes (on rune boundaries) around "…": padding in the middle of a
// statement cannot push its end out of the log line.
func headTail(sql string, n int) string {
	if len(sql) <= n {
		return sql
	}
	head := truncateSQL(sql, n/2)
	cut := len(sql) - n/2
	for cut < len(sql) && !utf8.RuneStart(sql[cut]) {
		cut++
	}
	return head + sql[cut:]
}

// truncateSQL returns sql cut to at most n bytes, on a rune boundary, with
// "…" when cut.
func truncateSQL(sql string, n int) string {
	if len(sql) <= n {
		return sql
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(sql[cut]) {
		cut--
	}
	return sql[:cut] + "…"
}
