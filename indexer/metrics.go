package indexer

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the indexer's Prometheus metrics.
type metrics struct {
	consumed       *prometheus.CounterVec // messages fetched, by topic
	rowsInserted   *prometheus.CounterVec // rows inserted, by table
	batches        *prometheus.CounterVec // batches flushed, by result
	insertDuration prometheus.Histogram   // one insert call
	insertErrors   prometheus.Counter     // failed insert calls (retried or bisected)
	commitErrors   prometheus.Counter     // failed offset commits (retried)
	deadLetters    *prometheus.CounterVec // messages dead-lettered, by reason
	lag            *prometheus.GaugeVec   // consumer lag, by topic and partition
	pendingRows    prometheus.Gauge       // rows in the batch being built (queue depth)
	batchRows      prometheus.Histogram   // rows per flushed batch
	duplicates     prometheus.Counter     // identical copies of stored events (audit, lifecycle), not inserted
	conflicts      prometheus.Counter     // differing copies of stored events, kept apart
	paused         *prometheus.GaugeVec   // 1 while consumption is paused, by reason
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditpipe_indexer_messages_consumed_total",
			Help: "Kafka messages fetched by the indexer.",
		}, []string{"topic"}),
		rowsInserted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditpipe_indexer_rows_inserted_total",
			Help: "Rows inserted into ClickHouse, by table (retries of the same rows count again).",
		}, []string{"table"}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditpipe_indexer_batches_total",
			Help: "Batches flushed: inserted, dead letters written and offsets committed (ok), or given up at shutdown (aborted).",
		}, []string{"result"}),
		insertDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "auditpipe_indexer_insert_duration_seconds",
			Help:    "Time of one insert into ClickHouse.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}),
		insertErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditpipe_indexer_insert_errors_total",
			Help: "Inserts that failed (then retried, or split to find the bad rows).",
		}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditpipe_indexer_commit_errors_total",
			Help: "Offset commits or dead-letter writes that failed and were retried.",
		}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditpipe_indexer_dead_letters_total",
			Help: "Messages sent to the dead-letter topic, by reason.",
		}, []string{"reason"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditpipe_indexer_consumer_lag_messages",
			Help: "Messages between the last one fetched and the partition's high watermark.",
		}, []string{"topic", "partition"}),
		pendingRows: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "auditpipe_indexer_pending_rows",
			Help: "Rows in the batch being built, not yet inserted.",
		}),
		batchRows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "auditpipe_indexer_batch_rows",
			Help:    "Rows per flushed batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditpipe_indexer_duplicates_total",
			Help: "Audit and lifecycle events not inserted because an identical copy is stored (or was earlier in the batch).",
		}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditpipe_indexer_conflicts_total",
			Help: "Audit events not inserted because a different copy with the same event_id is stored: kept in event_conflicts.",
		}),
		paused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditpipe_indexer_paused",
			Help: "1 while the indexer holds its batch and fetches nothing because of a local fault (store_disk_full: the store's disk has no room), else 0.",
		}, []string{"reason"}),
	}
	m.paused.WithLabelValues(pauseStoreDiskFull)
	for _, r := range []string{"ok", "aborted"} {
		m.batches.WithLabelValues(r)
	}
	for _, t := range []string{"audit_events", "lifecycle_events", "pipeline_messages"} {
		m.rowsInserted.WithLabelValues(t)
	}
	for _, r := range Reasons {
		m.deadLetters.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.consumed, m.rowsInserted, m.batches, m.insertDuration, m.insertErrors,
			m.commitErrors, m.deadLetters, m.lag, m.pendingRows, m.batchRows, m.duplicates, m.conflicts, m.paused)
	}
	return m
}
