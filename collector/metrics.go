package collector

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/collector/assemble"
	"github.com/auditpipe/auditpipe/collector/auditlog"
	"github.com/auditpipe/auditpipe/collector/builder"
	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/schemas"
)

type metrics struct {
	records        prometheus.Counter
	events         *prometheus.CounterVec
	rejects        *prometheus.CounterVec
	skipped        *prometheus.CounterVec
	gaps           prometheus.Counter
	incomplete     prometheus.Counter
	missingArgs    prometheus.Counter
	inputGaps      prometheus.Counter
	openEvents     prometheus.Gauge
	heldEvents     prometheus.Gauge
	unattributed   *prometheus.CounterVec
	queueDepth     prometheus.Gauge
	batchEvents    prometheus.Histogram
	produceSeconds prometheus.Histogram
	produceErrors  prometheus.Counter
	produced       prometheus.Counter
	deadLetters    prometheus.Counter
	spoolBytes     prometheus.Gauge
	spoolEntries   prometheus.Gauge
	spoolExpired   prometheus.Counter
	spoolFull      prometheus.Counter
	spoolCorrupt   prometheus.Counter
	grants         prometheus.Gauge
	grantsRefused  *prometheus.CounterVec
	paused         *prometheus.GaugeVec
	faultErrors    *prometheus.CounterVec
	rejectLogs     prometheus.Counter

	// last values seen from the decoder, to turn its counts into increments
	last struct {
		records      uint64
		asm          assemble.Stats
		missingArgs  uint64
		events       map[schemas.Kind]uint64
		rejects      map[string]uint64
		outcomes     map[builder.Outcome]uint64
		unattributed map[string]uint64
	}
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		records: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditpipe_collector_records_read_total",
			Help: "Audit records (input lines) read."}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditpipe_collector_events_total",
			Help: "Contract events emitted, by kind."}, []string{"kind"}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditpipe_collector_rejects_total",
			Help: "Input lines rejected (dead-lettered), by reason."}, []string{"reason"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditpipe_collector_skipped_events_total",
			Help: "Assembled events not emitted, by reason (not_audited, no_grant, keys_not_asked, replayed)."}, []string{"reason"}),
		gaps: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditpipe_collector_sequence_gaps_total",
			Help: "Audit serial numbers skipped in the input: events lost before the collector."}),
		incomplete: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditpipe_collector_incomplete_events_total",
			Help: "Events emitted without their EOE record (timeout or window)."}),
		missingArgs: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditpipe_collector_missing_args_total",
			Help: "Command arguments announced by argc but absent from the EXECVE records."}),
		inputGaps: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditpipe_collector_input_gaps_total",
			Help: "Losses detected by the file follower (checkpointed file gone, truncation)."}),
		openEvents: prometheus.NewGauge(prometheus.GaugeOpts{Name: "auditpipe_collector_open_events",
			Help: "Events being assembled."}),
		heldEvents: prometheus.NewGauge(prometheus.GaugeOpts{Name: "auditpipe_collector_held_events",
			Help: "Events held for a grant that has not arrived yet (grant_grace)."}),
		unattributed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditpipe_collector_held_unattributed_total",
			Help: "Events held for a grant (grant_grace), or about to be, released without one (skipped as no_grant), by reason: grace_over, input_end, outside_grant, login_cap, total_cap."}, []string{"reason"}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{Name: "auditpipe_collector_batch_queue_events",
			Help: "Events waiting in the current batch."}),
		batchEvents: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "auditpipe_collector_batch_size_events",
			Help: "Events per pushed batch.", Buckets: prometheus.ExponentialBuckets(1, 4, 8)}),
		produceSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "auditpipe_collector_produce_duration_seconds",
			Help: "Latency of one push to Kafka.", Buckets: prometheus.DefBuckets}),
		produceErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditpipe_collector_produce_errors_total",
			Help: "Pushes to Kafka that failed (the batch went to the spool)."}),
		produced: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditpipe_collector_produced_messages_total",
			Help: "Messages acknowledged by Kafka (events and dead letters)."}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditpipe_collector_dead_letters_total",
			Help: "Dead-letter records written."}),
		spoolBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "auditpipe_collector_spool_bytes",
			Help: "Bytes waiting in the disk spool."}),
		spoolEntries: prometheus.NewGauge(prometheus.GaugeOpts{Name: "auditpipe_collector_spool_entries",
			Help: "Batches waiting in the disk spool."}),
		spoolExpired: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditpipe_collector_spool_expired_entries_total",
			Help: "Spooled batches dropped for age (spool_max_age): data lost, loudly."}),
		spoolFull: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditpipe_collector_spool_full_total",
			Help: "Times the spool was full and reading paused."}),
		spoolCorrupt: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditpipe_collector_spool_corrupt_total",
			Help: "Damaged spool records cut off at start (after a crash): data lost, loudly."}),
		grants: prometheus.NewGauge(prometheus.GaugeOpts{Name: "auditpipe_collector_grants",
			Help: "Grants known for enrichment."}),
		grantsRefused: grants.NewRefusedCounter("collector"),
		paused: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "auditpipe_collector_paused",
			Help: "1 while input is paused by a local fault (disk full, read-only state directory, audit log path unusable), by reason."}, []string{"reason"}),
		faultErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditpipe_collector_fault_errors_total",
			Help: "Failed attempts of an operation paused by a local fault, by reason; each is retried with backoff."}, []string{"reason"}),
		rejectLogs: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditpipe_collector_reject_logs_suppressed_total",
			Help: "Rejected lines not logged one by one (over the log rate); each is still counted in rejects_total and dead-lettered."}),
	}
	for _, r := range faultReasons() {
		m.paused.WithLabelValues(r)
		m.faultErrors.WithLabelValues(r)
	}
	for _, k := range schemas.Kinds {
		m.events.WithLabelValues(string(k))
	}
	for _, r := range []string{auditlog.ReasonEmpty, auditlog.ReasonNoType, auditlog.ReasonBadTimestamp, auditlog.ReasonTooLong, ReasonLate, ReasonEventTooLarge} {
		m.rejects.WithLabelValues(r)
	}
	for _, o := range []builder.Outcome{builder.NotAudited, builder.NoGrant, builder.KeysNotAsked, builder.Replayed} {
		m.skipped.WithLabelValues(o.String())
	}
	for _, r := range unattributedReasons {
		m.unattributed.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.records, m.events, m.rejects, m.skipped, m.gaps, m.incomplete, m.missingArgs, m.inputGaps,
			m.openEvents, m.heldEvents, m.unattributed, m.queueDepth, m.batchEvents, m.produceSeconds, m.produceErrors, m.produced, m.deadLetters,
			m.spoolBytes, m.spoolEntries, m.spoolExpired, m.spoolFull, m.spoolCorrupt, m.grants, m.grantsRefused,
			m.paused, m.faultErrors, m.rejectLogs)
	}
	m.last.events = map[schemas.Kind]uint64{}
	m.last.rejects = map[string]uint64{}
	m.last.outcomes = map[builder.Outcome]uint64{}
	m.last.unattributed = map[string]uint64{}
	return m
}

// sync adds what the decoder counted since the last call.
func (m *metrics) sync(d *Decoder) {
	st := d.Stats()
	m.records.Add(float64(st.Records - m.last.records))
	m.last.records = st.Records
	for k, v := range st.Events {
		m.events.WithLabelValues(string(k)).Add(float64(v - m.last.events[k]))
		m.last.events[k] = v
	}
	for r, v := range st.Rejects {
		m.rejects.WithLabelValues(r).Add(float64(v - m.last.rejects[r]))
		m.last.rejects[r] = v
	}
	for o, v := range st.Outcomes {
		if o != builder.Emitted {
			m.skipped.WithLabelValues(o.String()).Add(float64(v - m.last.outcomes[o]))
		}
		m.last.outcomes[o] = v
	}
	for r, v := range st.Unattributed {
		m.unattributed.WithLabelValues(r).Add(float64(v - m.last.unattributed[r]))
		m.last.unattributed[r] = v
	}
	a := d.AssemblyStats()
	m.gaps.Add(float64(a.Gaps - m.last.asm.Gaps))
	m.incomplete.Add(float64(a.Incomplete - m.last.asm.Incomplete))
	m.last.asm = a
	ma := d.MissingArgs()
	m.missingArgs.Add(float64(ma - m.last.missingArgs))
	m.last.missingArgs = ma
	m.openEvents.Set(float64(d.asm.Open()))
	m.heldEvents.Set(float64(d.Held()))
}
