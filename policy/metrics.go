package policy

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// OutboxCollector reports the outbox's depth and the age of its oldest
// pending record, read from the store at each scrape (one query, bounded
// by a timeout), so that they are right while the relay is stuck on
// Kafka, and the same in every policy process of one database. (The
// requests by state and the active grants are the API's:
// policy/api.)
type OutboxCollector struct {
	store *Store
	now   func() time.Time

	depth, age *prometheus.Desc
}

// NewOutboxCollector returns the collector of store's outbox gauges;
// register it on the process's registry.
func NewOutboxCollector(store *Store) *OutboxCollector {
	return &OutboxCollector{
		store: store,
		now:   time.Now,
		depth: prometheus.NewDesc("auditpipe_policy_outbox_depth",
			"Outbox records not published yet.", nil, nil),
		age: prometheus.NewDesc("auditpipe_policy_outbox_oldest_pending_age_seconds",
			"Age of the oldest outbox record not published yet (0 when none is pending).", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *OutboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.age
}

// scrapeTimeout bounds the store's query of one scrape.
const scrapeTimeout = 2 * time.Second

// Collect implements prometheus.Collector. A query that fails reports
// both gauges as invalid, which fails the scrape visibly.
func (c *OutboxCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	st, err := c.store.OutboxStats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.depth, err)
		ch <- prometheus.NewInvalidMetric(c.age, err)
		return
	}
	age := 0.0
	if !st.OldestPending.IsZero() {
		age = max(0, c.now().Sub(st.OldestPending).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(st.Pending))
	ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, age)
}
