package queryapi

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/internal/backoff"
)

// maxTableSQL bounds the SQL text of a query_log row: the endpoint's
// default MaxQueryBytes, so that a row holds every statement it answers
// (without its comments, see loggedSQL). A first bound of 64 KiB let a
// reader hide what it read behind 64 KiB of padding (issue 9 review, F4).
const maxTableSQL = 1 << 20

// maxQueuedSQL bounds the SQL bytes of the rows waiting for the table: at
// 1 MiB a row, the row bound alone would let the buffer hold 10 GB.
const maxQueuedSQL = 64 << 20

// QueryLogInserter writes query_log rows: every clickhouse.Engine is one.
type QueryLogInserter interface {
	InsertQueryLog(ctx context.Context, rows []clickhouse.QueryLogRow) error
}

// QueryLogWriter puts the endpoint's log into the store's query_log table,
// so who read what is queryable like the trail itself. Add never blocks a
// query: rows wait in a bounded buffer and are inserted every second (or
// sooner when a batch is full), on the store's write session, not on the
// readers' one. When the store cannot take them, rows are kept and retried
// up to the buffer's size; beyond it they are counted
// (auditpipe_query_log_dropped_total) and the structured log line, which
// every statement always gets, remains their only record.
type QueryLogWriter struct {
	ins     QueryLogInserter
	log     *slog.Logger
	ch      chan clickhouse.QueryLogRow
	every   time.Duration
	batch   int
	dropped prometheus.Counter
	errors  prometheus.Counter
	depth   prometheus.Gauge
	queued  atomic.Int64 // SQL bytes of the rows in ch and pending
}

// QueryLogOptions tune a QueryLogWriter.
type QueryLogOptions struct {
	// Buffer is how many rows may wait. Default 10000.
	Buffer int
	// FlushInterval is how often rows are inserted. Default 1s.
	FlushInterval time.Duration
	// Registry, when set, gets auditpipe_query_log_dropped_total,
	// auditpipe_query_log_errors_total and auditpipe_query_log_queue_rows.
	Registry prometheus.Registerer
}

// NewQueryLogWriter makes a writer; Run it.
func NewQueryLogWriter(ins QueryLogInserter, log *slog.Logger, opt QueryLogOptions) *QueryLogWriter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opt.Buffer <= 0 {
		opt.Buffer = 10000
	}
	if opt.FlushInterval <= 0 {
		opt.FlushInterval = time.Second
	}
	w := &QueryLogWriter{
		ins: ins, log: log, ch: make(chan clickhouse.QueryLogRow, opt.Buffer), every: opt.FlushInterval, batch: 1000,
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditpipe_query_log_dropped_total",
			Help: "Query log rows not written to the query_log table because its buffer was full (the log line was still written).",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditpipe_query_log_errors_total",
			Help: "Failed inserts into the query_log table (the rows are retried).",
		}),
		depth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "auditpipe_query_log_queue_rows",
			Help: "Query log rows waiting for the query_log table.",
		}),
	}
	if opt.Registry != nil {
		opt.Registry.MustRegister(w.dropped, w.errors, w.depth)
	}
	return w
}

// Add queues one row; it never blocks.
func (w *QueryLogWriter) Add(r clickhouse.QueryLogRow) {
	if len(r.SQL) > maxTableSQL {
		r.SQL = truncateSQL(r.SQL, maxTableSQL)
	}
	n := int64(len(r.SQL))
	if w.queued.Add(n) > maxQueuedSQL {
		w.queued.Add(-n)
		w.dropped.Inc()
		return
	}
	select {
	case w.ch <- r:
	default:
		w.queued.Add(-n)
		w.dropped.Inc()
	}
}

// Run inserts queued rows until ctx ends, then inserts what is left (for
// at most two seconds).
func (w *QueryLogWriter) Run(ctx context.Context) error {
	t := time.NewTicker(w.every)
	defer t.Stop()
	var pending []clickhouse.QueryLogRow
	outage := backoff.NewOutage(w.log, "query log: insert into query_log")
	flush := func(ctx context.Context) {
		for len(pending) > 0 {
			n := min(len(pending), w.batch)
			if err := w.ins.InsertQueryLog(ctx, pending[:n]); err != nil {
				w.errors.Inc()
				outage.Fail(err)
				return
			}
			outage.OK()
			for _, r := range pending[:n] {
				w.queued.Add(-int64(len(r.SQL)))
			}
			pending = pending[n:]
		}
		pending = nil
	}
	take := func() {
		for {
			select {
			case r := <-w.ch:
				if len(pending) >= cap(w.ch) {
					w.queued.Add(-int64(len(r.SQL)))
					w.dropped.Inc()
					continue
				}
				pending = append(pending, r)
			default:
				w.depth.Set(float64(len(pending)))
				return
			}
		}
	}
	for {
		select {
		case <-ctx.Done():
			take()
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			flush(fctx)
			cancel()
			return nil
		case <-t.C:
			take()
			flush(ctx)
			w.depth.Set(float64(len(pending)))
		}
	}
}
