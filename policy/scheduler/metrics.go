package scheduler

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the scheduler's, counted by the process that made the
// change (several schedulers on one store: sum them); the work-request
// gauge is the store's count, refreshed by every Tick.
type metrics struct {
	fired        *prometheus.CounterVec
	skipped      *prometheus.CounterVec
	finished     *prometheus.CounterVec
	failed       prometheus.Counter
	dispatched   prometheus.Counter
	dispatchLag  prometheus.Histogram
	cleaned      prometheus.Counter
	workRequests *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		fired: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditpipe_scheduler_jobs_fired_total",
			Help: "Job executions started, by trigger (SCHEDULED, RUN_NOW)."}, []string{"trigger"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditpipe_scheduler_jobs_skipped_total",
			Help: "Scheduled executions that did not run, by reason (skip_next: a user skipped it; missed: its cutoff passed before a scheduler ticked; overlapping: the job's previous execution still ran)."}, []string{"reason"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditpipe_scheduler_executions_finished_total",
			Help: "Job executions that ended, by state (SUCCEEDED, FAILED, CANCELED)."}, []string{"state"}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditpipe_scheduler_jobs_failed_total",
			Help: "Job executions that ended FAILED (a work request failed, or there was no target)."}),
		dispatched: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditpipe_scheduler_work_requests_dispatched_total",
			Help: "Work requests sent to agents on opctl.dispatch.v1 (through the outbox)."}),
		dispatchLag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "auditpipe_scheduler_dispatch_lag_seconds",
			Help:    "From an execution's scheduled time to a work request's dispatch (waiting for the tick, max concurrency and approval).",
			Buckets: []float64{0.1, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600}}),
		cleaned: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditpipe_scheduler_work_requests_cleaned_total",
			Help: "Finished work requests deleted after the retention (14 days)."}),
		workRequests: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "auditpipe_scheduler_work_requests",
			Help: "Work requests in the store, by status."}, []string{"status"}),
	}
	for _, t := range []Trigger{TriggerScheduled, TriggerRunNow} {
		m.fired.WithLabelValues(string(t))
	}
	for _, r := range []string{"skip_next", "missed", "overlapping"} {
		m.skipped.WithLabelValues(r)
	}
	for _, st := range []ExecutionState{ExecutionSucceeded, ExecutionFailed, ExecutionCanceled} {
		m.finished.WithLabelValues(string(st))
	}
	for _, st := range Statuses() {
		m.workRequests.WithLabelValues(string(st))
	}
	if reg != nil {
		reg.MustRegister(m.fired, m.skipped, m.finished, m.failed, m.dispatched, m.dispatchLag, m.cleaned, m.workRequests)
	}
	return m
}

// apply counts what a committed transaction did.
func (m *metrics) apply(fx effects) {
	for _, t := range fx.fired {
		m.fired.WithLabelValues(string(t)).Inc()
	}
	if fx.missed > 0 {
		m.skipped.WithLabelValues("missed").Add(float64(fx.missed))
	}
	if fx.overlapping > 0 {
		m.skipped.WithLabelValues("overlapping").Add(float64(fx.overlapping))
	}
	m.dispatched.Add(float64(fx.dispatched))
	for _, d := range fx.dispatchLags {
		m.dispatchLag.Observe(d.Seconds())
	}
	for _, st := range fx.finished {
		m.finished.WithLabelValues(string(st)).Inc()
		if st == ExecutionFailed {
			m.failed.Inc()
		}
	}
}
