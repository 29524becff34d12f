package policy

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// StoreCollector reports what the store holds, read at each scrape (one
// query per gauge family, each bounded by a timeout): the outbox's depth
// and the age of its oldest pending record, the access requests by
// state, and the grants in force. They are the same in every policy
// process of one database.
type StoreCollector struct {
	store *Store
	now   func() time.Time

	depth, age, grants *prometheus.Desc
	requests           *prometheus.Desc
}

// NewStoreCollector returns the collector of store's gauges; register it
// on the process's registry.
func NewStoreCollector(store *Store) *StoreCollector {
	return &StoreCollector{
		store: store,
		now:   time.Now,
		depth: prometheus.NewDesc("auditpipe_policy_outbox_depth",
			"Outbox records not published yet.", nil, nil),
		age: prometheus.NewDesc("auditpipe_policy_outbox_oldest_pending_age_seconds",
			"Age of the oldest outbox record not published yet (0 when none is pending).", nil, nil),
		grants: prometheus.NewDesc("auditpipe_policy_grants_active",
			"Grants issued and neither revoked, expired nor completed.", nil, nil),
		requests: prometheus.NewDesc("auditpipe_policy_requests",
			"Access requests by lifecycle state.", []string{"state"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *StoreCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.age
	ch <- c.grants
	ch <- c.requests
}

// scrapeTimeout bounds the store's queries of one scrape.
const scrapeTimeout = 2 * time.Second

// Collect implements prometheus.Collector. A query that fails reports
// its families as invalid, which fails the scrape visibly.
func (c *StoreCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	if st, err := c.store.OutboxStats(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(c.depth, err)
		ch <- prometheus.NewInvalidMetric(c.age, err)
	} else {
		age := 0.0
		if !st.OldestPending.IsZero() {
			age = max(0, c.now().Sub(st.OldestPending).Seconds())
		}
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(st.Pending))
		ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, age)
	}
	if n, err := c.store.ActiveGrants(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(c.grants, err)
	} else {
		ch <- prometheus.MustNewConstMetric(c.grants, prometheus.GaugeValue, float64(n))
	}
	counts, err := c.store.RequestCounts(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.requests, err)
		return
	}
	for _, s := range RequestStates() {
		ch <- prometheus.MustNewConstMetric(c.requests, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
}
