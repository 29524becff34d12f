package queryapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
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

// ErrQueryLogFull is Reserve's error when the query_log buffer has no room
// for one more row within its wait; ErrQueryLogStopped when the writer has
// stopped (Run returned).
var (
	ErrQueryLogFull    = errors.New("query log full: the query_log table is not taking rows as fast as queries come")
	ErrQueryLogStopped = errors.New("query log stopped")
)

// DefaultQueryLogWait is QueryLogOptions.ReserveWait's default: two flush
// intervals, so a reader that comes when the buffer is full gets the room
// of the next insert.
const DefaultQueryLogWait = 2 * time.Second

// QueryLogWriter puts the endpoint's log into the store's query_log table,
// so who read what is queryable like the trail itself. A statement runs only
// with a slot of the bounded buffer reserved for its row (Reserve), so no
// query is answered whose row cannot reach the table (issue 9 review: with
// a buffer that dropped rows when full, a flood of 60 000 queries in 4 s
// had 13 065 answered and not in query_log). Rows are inserted every second
// (or sooner when a batch is full), on the store's write session, not on
// the readers' one. When the store cannot take them, rows are kept and
// retried, and their slots stay taken: once the buffer is full, Reserve
// waits (ReserveWait) and then refuses, and the endpoint answers 503
// without running the statement (auditpipe_query_log_refused_total; the
// structured log line, which every statement always gets, remains its only
// record).
type QueryLogWriter struct {
	ins     QueryLogInserter
	log     *slog.Logger
	ch      chan clickhouse.QueryLogRow
	every   time.Duration
	batch   int
	wait    time.Duration
	dropped prometheus.Counter
	refused prometheus.Counter
	errors  prometheus.Counter
	depth   prometheus.Gauge

	mu       sync.Mutex
	rows     int           // rows reserved, queued or pending: at most cap(ch)
	sqlBytes int64         // their SQL bytes (reserved or actual): at most maxQueuedSQL
	room     chan struct{} // closed (and replaced) when room frees
	kick     chan struct{} // Reserve found the buffer full: insert now
	stopped  bool
}

// QueryLogOptions tune a QueryLogWriter.
type QueryLogOptions struct {
	// Buffer is how many rows may be reserved or wait for the table.
	// Default 10000.
	Buffer int
	// FlushInterval is how often rows are inserted. Default 1s.
	FlushInterval time.Duration
	// ReserveWait is how long Reserve waits for room in a full buffer
	// before it refuses. Default DefaultQueryLogWait.
	ReserveWait time.Duration
	// Registry, when set, gets auditpipe_query_log_dropped_total,
	// auditpipe_query_log_refused_total, auditpipe_query_log_errors_total
	// and auditpipe_query_log_queue_rows.
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
	if opt.ReserveWait <= 0 {
		opt.ReserveWait = DefaultQueryLogWait
	}
	w := &QueryLogWriter{
		ins: ins, log: log, ch: make(chan clickhouse.QueryLogRow, opt.Buffer), every: opt.FlushInterval, batch: 1000,
		wait: opt.ReserveWait, room: make(chan struct{}), kick: make(chan struct{}, 1),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditpipe_query_log_dropped_total",
			Help: "Query log rows not written to the query_log table: left when the writer stopped, or added after it stopped (the log line was still written).",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditpipe_query_log_refused_total",
			Help: "Statements refused (HTTP 503, not run) because the query_log buffer had no room for their row.",
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
		opt.Registry.MustRegister(w.dropped, w.refused, w.errors, w.depth)
	}
	return w
}

// QueryLogSlot is room reserved in a QueryLogWriter's buffer for one row.
type QueryLogSlot struct {
	w     *QueryLogWriter
	bytes int64 // SQL bytes reserved
	done  bool
}

// reservedSQL is what a statement of n bytes reserves: its row holds at
// most that much SQL (loggedSQL only shortens it; truncateSQL adds "…").
func reservedSQL(n int) int64 {
	return int64(min(n, maxTableSQL+len("…")))
}

// Reserve takes room for the row of a statement of sqlBytes bytes, waiting
// up to the writer's ReserveWait (and while ctx lasts) when the buffer is
// full. It returns ErrQueryLogFull when no room came, and
// ErrQueryLogStopped once Run has returned; refusals are counted.
func (w *QueryLogWriter) Reserve(ctx context.Context, sqlBytes int) (*QueryLogSlot, error) {
	n := reservedSQL(sqlBytes)
	err := waitRoom(ctx, w.wait, func() (<-chan struct{}, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.stopped {
			return nil, ErrQueryLogStopped
		}
		if w.rows < cap(w.ch) && (w.sqlBytes+n <= maxQueuedSQL || w.rows == 0) {
			w.rows++
			w.sqlBytes += n
			return nil, nil
		}
		select { // a full buffer is inserted now, not at the next tick
		case w.kick <- struct{}{}:
		default:
		}
		return w.room, nil
	})
	switch {
	case err == nil:
		return &QueryLogSlot{w: w, bytes: n}, nil
	case errors.Is(err, ErrQueryLogStopped):
	case errors.Is(err, errNoRoom):
		err = fmt.Errorf("%w (%d rows or %d MiB of SQL waiting; waited %s)", ErrQueryLogFull, cap(w.ch), maxQueuedSQL>>20, w.wait)
	default:
		err = fmt.Errorf("%w: %w", ErrQueryLogFull, err)
	}
	w.refused.Inc()
	return nil, err
}

// release frees the room of rows rows holding sqlBytes of SQL, and wakes
// the readers waiting for room.
func (w *QueryLogWriter) release(rows int, sqlBytes int64) {
	if rows == 0 && sqlBytes == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rows -= rows
	w.sqlBytes -= sqlBytes
	w.wake()
}

// wake wakes the readers waiting for room; w.mu is held.
func (w *QueryLogWriter) wake() {
	close(w.room)
	w.room = make(chan struct{})
}

// Add queues the slot's row; it never blocks (the slot's room is in the
// channel). A second Add of the same slot is ignored.
func (s *QueryLogSlot) Add(r clickhouse.QueryLogRow) {
	if s == nil || s.done {
		return
	}
	s.done = true
	w := s.w
	if len(r.SQL) > maxTableSQL {
		r.SQL = truncateSQL(r.SQL, maxTableSQL)
	}
	n := int64(len(r.SQL))
	w.mu.Lock()
	defer w.mu.Unlock()
	// The row's own size from now on: room freed when it is shorter than
	// reserved, or over by this row when longer.
	w.sqlBytes += n - s.bytes
	if n < s.bytes {
		w.wake()
	}
	if w.stopped {
		w.dropped.Inc()
		w.rows--
		w.sqlBytes -= n
		return
	}
	w.ch <- r // never blocks: at most cap(ch) rows hold slots
}

// Release gives the slot's room back without a row (a statement that is
// not logged after all); after Add it does nothing.
func (s *QueryLogSlot) Release() {
	if s == nil || s.done {
		return
	}
	s.done = true
	s.w.release(1, s.bytes)
}

// Run inserts queued rows until ctx ends, then inserts what is left (for
// at most two seconds).
func (w *QueryLogWriter) Run(ctx context.Context) error {
	t := time.NewTicker(w.every)
	defer t.Stop()
	var pending []clickhouse.QueryLogRow
	outage := backoff.NewOutage(w.log, "query log: insert into query_log")
	failing := false // the last insert failed: kicks wait for the tick
	flush := func(ctx context.Context) {
		for len(pending) > 0 {
			n := min(len(pending), w.batch)
			if err := w.ins.InsertQueryLog(ctx, pending[:n]); err != nil {
				w.errors.Inc()
				outage.Fail(err)
				failing = true
				return
			}
			failing = false
			outage.OK()
			var b int64
			for _, r := range pending[:n] {
				b += int64(len(r.SQL))
			}
			pending = pending[n:]
			w.release(n, b)
		}
		pending = nil
	}
	take := func() {
		for {
			select {
			case r := <-w.ch:
				pending = append(pending, r) // at most cap(ch): each holds a slot
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
			w.stop(len(pending))
			return nil
		case <-t.C:
			take()
			flush(ctx)
			w.depth.Set(float64(len(pending)))
		case <-w.kick:
			if failing {
				continue
			}
			take()
			flush(ctx)
			w.depth.Set(float64(len(pending)))
		}
	}
}

// stop marks the writer stopped: Reserve refuses from now on, and the rows
// left (lost rows: pending ones the store did not take, and those still in
// the channel) are counted as dropped.
func (w *QueryLogWriter) stop(pending int) {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	lost := pending
	for {
		select {
		case <-w.ch:
			lost++
		default:
			if lost > 0 {
				w.dropped.Add(float64(lost))
				w.log.Error("query log: rows not written to query_log at stop", "rows", lost)
			}
			return
		}
	}
}
