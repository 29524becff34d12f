package policy

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/internal/backoff"
)

// Duties are the work one policy process at a time does (the leader's,
// internal/leader): Tick every interval (expiry, future starts,
// assignment windows) and the outbox relay. Run does both until its
// context ends, which is when leadership is lost too.
type Duties struct {
	svc      *Service
	relay    *Relay
	interval time.Duration
	log      *slog.Logger
	m        *dutyMetrics
	outage   *backoff.Outage
}

type dutyMetrics struct {
	changes  *prometheus.CounterVec
	failures prometheus.Counter
}

// Kinds of time-driven changes (the label of
// auditpipe_policy_tick_changes_total).
const (
	tickExpired            = "expired"
	tickStarted            = "started"
	tickAssignmentsApplied = "assignment_applied"
	tickAssignmentsEnded   = "assignment_ended"
)

func newDutyMetrics(reg prometheus.Registerer) *dutyMetrics {
	m := &dutyMetrics{
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditpipe_policy_tick_changes_total",
			Help: "Time-driven changes made by this process: requests expired, future accesses started, assignment windows applied and ended."}, []string{"change"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditpipe_policy_tick_failures_total",
			Help: "Ticks that failed for at least one item (the item is tried again at the next tick)."}),
	}
	for _, c := range []string{tickExpired, tickStarted, tickAssignmentsApplied, tickAssignmentsEnded} {
		m.changes.WithLabelValues(c)
	}
	reg.MustRegister(m.changes, m.failures)
	return m
}

// NewDuties returns the leader's work: svc's Tick every interval and
// relay. reg registers the tick metrics (nil: a registry of its own).
func NewDuties(svc *Service, relay *Relay, interval time.Duration, log *slog.Logger, reg prometheus.Registerer) (*Duties, error) {
	if svc == nil || relay == nil {
		return nil, errors.New("policy: NewDuties needs a service and a relay")
	}
	if interval <= 0 {
		return nil, errors.New("policy: the tick interval must be positive")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	return &Duties{svc: svc, relay: relay, interval: interval, log: log, m: newDutyMetrics(reg),
		outage: backoff.NewOutage(log, "the time-driven work (expiry, future starts, assignment windows)")}, nil
}

// Run ticks and relays until ctx ends; it returns nil then.
func (d *Duties) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { _ = d.relay.Run(ctx) })
	defer wg.Wait()
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

// tick runs one Tick at the service's clock and counts what it changed.
func (d *Duties) tick(ctx context.Context) {
	res, err := d.svc.Tick(ctx, d.svc.now())
	d.m.changes.WithLabelValues(tickExpired).Add(float64(res.Expired))
	d.m.changes.WithLabelValues(tickStarted).Add(float64(res.Started))
	d.m.changes.WithLabelValues(tickAssignmentsApplied).Add(float64(res.AssignmentsApplied))
	d.m.changes.WithLabelValues(tickAssignmentsEnded).Add(float64(res.AssignmentsEnded))
	if n := res.Expired + res.Started + res.AssignmentsApplied + res.AssignmentsEnded; n > 0 {
		d.log.Info("time-driven changes", "expired", res.Expired, "started", res.Started,
			"assignments_applied", res.AssignmentsApplied, "assignments_ended", res.AssignmentsEnded)
	}
	switch {
	case ctx.Err() != nil:
	case err != nil:
		// Logged once per outage (a store away fails every tick), and
		// its end; the items are tried again at the next tick.
		d.m.failures.Inc()
		d.outage.Fail(err)
	default:
		d.outage.OK()
	}
}
