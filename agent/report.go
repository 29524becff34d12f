package agent

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/schemas"
)

// maxQueuedReports bounds the reports kept while Kafka is away.
const maxQueuedReports = 10000

// reporter writes reports to the report topic from a goroutine of its
// own, so that a broker away never delays a revocation. Reports wait in
// a bounded queue meanwhile, in order.
type reporter struct {
	w   *kafka.Writer
	m   *metrics
	log *slog.Logger

	mu    sync.Mutex
	queue []schemas.AgentReport
	wake  chan struct{}
}

func newReporter(w *kafka.Writer, m *metrics, log *slog.Logger) *reporter {
	return &reporter{w: w, m: m, log: log, wake: make(chan struct{}, 1)}
}

// add queues r.
func (r *reporter) add(rep schemas.AgentReport) {
	r.mu.Lock()
	if len(r.queue) >= maxQueuedReports {
		r.log.Error("report queue full: the oldest report is dropped", "dropped", r.queue[0].LoginID, "state", r.queue[0].State)
		r.queue = r.queue[1:]
		r.m.reportsDropped.Inc()
	}
	r.queue = append(r.queue, rep)
	r.m.reportQueue.Set(float64(len(r.queue)))
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// run writes the queued reports until ctx ends, then tries for up to
// flush to write what is left.
func (r *reporter) run(ctx context.Context, flush time.Duration) {
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flush)
			r.send(fctx)
			cancel()
			return
		case <-r.wake:
			r.send(ctx)
		}
	}
}

// send writes the queue; the reports written leave it.
func (r *reporter) send(ctx context.Context) {
	r.mu.Lock()
	batch := append([]schemas.AgentReport(nil), r.queue...)
	r.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	recs := make([]kafka.Record, 0, len(batch))
	for _, rep := range batch {
		b, err := json.Marshal(rep)
		if err != nil {
			continue // not reached: plain strings and a time
		}
		recs = append(recs, kafka.Record{Key: []byte(rep.Host), Value: b})
	}
	if err := r.w.Write(ctx, recs...); err != nil {
		r.m.reportErrors.Inc()
		if ctx.Err() == nil {
			r.log.Error("writing reports failed; kept for the next attempt", "reports", len(batch), "err", err)
			time.AfterFunc(time.Second, func() { r.poke() })
		} else {
			r.log.Warn("reports not written before stopping", "reports", len(batch), "err", err)
		}
		return
	}
	r.mu.Lock()
	r.queue = r.queue[min(len(batch), len(r.queue)):]
	r.m.reportQueue.Set(float64(len(r.queue)))
	r.mu.Unlock()
	for _, rep := range batch {
		r.m.reports.WithLabelValues(rep.State).Inc()
	}
}

func (r *reporter) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}
