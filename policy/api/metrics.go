package api

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/policy"
)

// metrics are the API's and the policy domain's.
type metrics struct {
	requests        *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	approvalLatency prometheus.Histogram
}

// newMetrics registers the API's metrics and the store's gauges on reg
// (nil: metrics are kept but not exposed). Label series start at 0 for
// every route.
func newMetrics(reg prometheus.Registerer, store *policy.Store, routes []Route) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditpipe_policy_api_requests_total",
			Help: "Policy API requests by operation (OpenAPI operationId) and HTTP status.",
		}, []string{"operation", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "auditpipe_policy_api_request_duration_seconds",
			Help:    "Policy API request latency by operation.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"operation"}),
		approvalLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "auditpipe_policy_approval_latency_seconds",
			Help:    "Time from an access request's creation to the approval that decided it (requests decided by approvers, not auto-approved ones).",
			Buckets: []float64{10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400},
		}),
	}
	for _, rt := range routes {
		m.duration.WithLabelValues(rt.OperationID)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.approvalLatency, &storeCollector{store: store}} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("policy api: metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) observe(op string, status int, d time.Duration) {
	m.requests.WithLabelValues(op, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(op).Observe(d.Seconds())
}

// approved observes the approval latency of a request an approval just
// decided (not an approval that leaves it waiting for more).
func (m *metrics) approved(r *policy.AccessRequest) {
	if r.IsAutoApproved {
		return
	}
	switch r.LifecycleState {
	case policy.StateApproved, policy.StateApprovedForFuture:
		m.approvalLatency.Observe(r.TimeOfModification.Sub(r.TimeOfCreation).Seconds())
	}
}

// storeCollector reads the policy store at each scrape: the gauges are
// the store's, so every process of a cluster reports the same figures.
// Expiries and revocations are counts of requests in the final states
// EXPIRED and REVOKED, which no request leaves: counters.
type storeCollector struct {
	store *policy.Store
}

var (
	descRequests = prometheus.NewDesc("auditpipe_policy_requests", "Access requests by lifecycle state (in the policy store).", []string{"state"}, nil)
	descGrants   = prometheus.NewDesc("auditpipe_policy_active_grants", "Grants not revoked (login users live on their hosts, or about to be).", nil, nil)
	descExpired  = prometheus.NewDesc("auditpipe_policy_expiries_total", "Access requests that expired (their time ran out, or they lapsed waiting).", nil, nil)
	descRevoked  = prometheus.NewDesc("auditpipe_policy_revocations_total", "Access requests revoked.", nil, nil)
)

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRequests
	ch <- descGrants
	ch <- descExpired
	ch <- descRevoked
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := c.store.RequestCounts(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descRequests, err)
		return
	}
	for _, s := range policy.RequestStates() {
		ch <- prometheus.MustNewConstMetric(descRequests, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
	ch <- prometheus.MustNewConstMetric(descExpired, prometheus.CounterValue, float64(counts[policy.StateExpired]))
	ch <- prometheus.MustNewConstMetric(descRevoked, prometheus.CounterValue, float64(counts[policy.StateRevoked]))
	n, err := c.store.ActiveGrants(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descGrants, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(descGrants, prometheus.GaugeValue, float64(n))
}
