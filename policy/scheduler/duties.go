package scheduler

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/internal/backoff"
)

// Duties is the scheduler's leader work: Tick every interval, from the
// moment it starts leading (the composition root runs it under
// internal/leader, as policy.Duties). The outbox relay that publishes the
// dispatches and lifecycle events is the policy module's.
type Duties struct {
	svc      *Service
	interval time.Duration
	log      *slog.Logger
	failures prometheus.Counter
	ticks    prometheus.Counter
	outage   *backoff.Outage
}

// NewDuties returns the ticking of svc every interval; reg registers
// auditpipe_scheduler_ticks_total and auditpipe_scheduler_tick_failures_total
// (nil: a registry of its own).
func NewDuties(svc *Service, interval time.Duration, log *slog.Logger, reg prometheus.Registerer) (*Duties, error) {
	if svc == nil {
		return nil, errors.New("scheduler: NewDuties needs a service")
	}
	if interval <= 0 {
		return nil, errors.New("scheduler: the tick interval must be positive")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	d := &Duties{svc: svc, interval: interval, log: log,
		ticks: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditpipe_scheduler_ticks_total",
			Help: "Scheduler ticks run by this process (while it leads)."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditpipe_scheduler_tick_failures_total",
			Help: "Scheduler ticks that failed for at least one item (tried again at the next tick)."}),
		outage: backoff.NewOutage(log, "the scheduler's tick"),
	}
	for _, c := range []prometheus.Collector{d.ticks, d.failures} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Run ticks until ctx ends (leadership lost, or the process stops).
func (d *Duties) Run(ctx context.Context) error {
	t := time.NewTicker(d.interval)
	defer t.Stop()
	for {
		d.tick(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (d *Duties) tick(ctx context.Context) {
	res, err := d.svc.Tick(ctx, d.svc.clock())
	d.ticks.Inc()
	if res.Fired+res.Missed+res.Overlapping+res.Dispatched+res.Finished+res.RequestsClosed+res.Cleaned > 0 {
		d.log.Info("scheduler tick", "fired", res.Fired, "missed", res.Missed, "overlapping", res.Overlapping,
			"dispatched", res.Dispatched, "finished", res.Finished, "requests_closed", res.RequestsClosed, "cleaned", res.Cleaned)
	}
	switch {
	case ctx.Err() != nil:
	case err != nil:
		d.failures.Inc()
		d.outage.Fail(err)
	default:
		d.outage.OK()
	}
}
