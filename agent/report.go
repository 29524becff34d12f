package agent

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

// maxQueuedReports bounds the reports kept while Kafka is away.
const maxQueuedReports = 10000

// reporter writes reports to the report topic from a goroutine of its
// own, so that a broker away never delays a revocation. Reports (grant
// reports, work progress, inventories) wait in a bounded queue
// meanwhile, in order.
type reporter struct {
	w    *kafka.Writer
	m    *metrics
	log  *slog.Logger
	sign *sign.Signer // the host's key: every message is signed with it

	mu    sync.Mutex
	queue []queued
	seqs  grants.ClockSeq // numbers the messages (publish_seq)
	wake  chan struct{}
}

// queued is one encoded report, with the label the reports metric counts
// it under (a grant report's state, "work_"+status, "inventory") and what
// the log names it by when it is dropped.
type queued struct {
	key, value []byte
	label      string
	about      string
}

func newReporter(w *kafka.Writer, s *sign.Signer, m *metrics, log *slog.Logger) *reporter {
	return &reporter{w: w, sign: s, m: m, log: log, wake: make(chan struct{}, 1)}
}

// add queues a grant report.
func (r *reporter) add(rep schemas.AgentReport) {
	r.addMessage(rep.Host, rep.State, rep.LoginID, rep)
}

// addMessage numbers v (a schemas.AgentReport, WorkProgress or
// Inventory) and queues it signed by the host's key (grants.AgentRecord),
// keyed by host; label and about are queued's.
//
// The number, publish_seq, is the host's messages' on the topic, all
// kinds together, which every consumer checks against the last it applied
// for the host (grants.CheckSeq): one above the last queued, and at
// least the time in microseconds since 1970, so that it still grows
// across a restart of the agent (or a state directory lost) without a
// file to keep it in, as long as the host's clock does not step back by
// more than the time between the restart and the last message before it.
func (r *reporter) addMessage(host, label, about string, v any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seq := r.seqs.Next()
	switch m := v.(type) {
	case schemas.AgentReport:
		m.PublishSeq = seq
		v = m
	case schemas.WorkProgress:
		m.PublishSeq = seq
		v = m
	case schemas.Inventory:
		m.PublishSeq = seq
		v = m
	}
	rec, err := grants.AgentRecord(r.sign, host, v)
	if err != nil {
		r.log.Error("report not encoded: dropped", "label", label, "about", about, "err", err) // not reached: plain strings, numbers and times
		return
	}
	if len(r.queue) >= maxQueuedReports {
		r.log.Error("report queue full: the oldest report is dropped", "dropped", r.queue[0].about, "state", r.queue[0].label)
		r.queue = r.queue[1:]
		r.m.reportsDropped.Inc()
	}
	r.queue = append(r.queue, queued{key: rec.Key, value: rec.Value, label: label, about: about})
	r.m.reportQueue.Set(float64(len(r.queue)))
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
	batch := append([]queued(nil), r.queue...)
	r.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	recs := make([]kafka.Record, 0, len(batch))
	for _, q := range batch {
		recs = append(recs, kafka.Record{Key: q.key, Value: q.value})
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
	for _, q := range batch {
		r.m.reports.WithLabelValues(q.label).Inc()
	}
}

func (r *reporter) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}
