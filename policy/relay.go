package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/internal/backoff"
	"github.com/auditpipe/auditpipe/internal/kafka"
)

// Relay publishes the outbox to Kafka: the pending records in id order
// (consecutive records of one topic as one batch), each batch marked
// published only after every in-sync replica acknowledged it. While Kafka
// is away it retries with backoff (internal/backoff), the outage logged
// once and its end once; nothing is skipped, so a record is never lost.
// Delivery is at least once: a process that stops between the broker's
// acknowledgement and the mark publishes the batch again when the relay
// runs next, and consumers deduplicate (lifecycle events by event_id; a
// grant or assignment is the same signed record twice on a compacted
// topic).
//
// One relay at a time should run (the leader's, see internal/leader); two
// at once publish some records twice, which the same deduplication
// absorbs.
type Relay struct {
	store *Store
	kafka kafka.Config
	cfg   RelayConfig
	log   *slog.Logger
	m     *relayMetrics
}

// RelayDeps are the relay's logger and metrics registry.
type RelayDeps struct {
	// Log defaults to a logger that discards.
	Log *slog.Logger
	// Registry registers the relay's metrics (auditpipe_policy_outbox_*).
	// Default: a registry of its own.
	Registry prometheus.Registerer
}

type relayMetrics struct {
	published *prometheus.CounterVec
	failures  prometheus.Counter
	duration  prometheus.Histogram
	purged    prometheus.Counter
}

func newRelayMetrics(reg prometheus.Registerer) *relayMetrics {
	m := &relayMetrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditpipe_policy_outbox_published_total",
			Help: "Outbox records published to Kafka and acknowledged, by topic."}, []string{"topic"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditpipe_policy_outbox_publish_failures_total",
			Help: "Attempts to publish a batch of outbox records that failed (retried with backoff; nothing is dropped)."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "auditpipe_policy_outbox_publish_duration_seconds",
			Help: "Time to publish one batch of outbox records, until the broker acknowledged it.", Buckets: prometheus.DefBuckets}),
		purged: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditpipe_policy_outbox_purged_total",
			Help: "Published outbox records deleted after policy.relay.retention."}),
	}
	for _, t := range []string{kafka.TopicLifecycle, kafka.TopicGrants, kafka.TopicAssignments} {
		m.published.WithLabelValues(t)
	}
	reg.MustRegister(m.published, m.failures, m.duration, m.purged)
	return m
}

// NewRelay returns a relay of store's outbox to the brokers of kc.
func NewRelay(store *Store, kc kafka.Config, cfg RelayConfig, deps RelayDeps) (*Relay, error) {
	if store == nil {
		return nil, errors.New("policy: NewRelay needs a store")
	}
	if err := cfg.validate("policy.relay"); err != nil {
		return nil, err
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Registry == nil {
		deps.Registry = prometheus.NewRegistry()
	}
	return &Relay{store: store, kafka: kc, cfg: cfg, log: deps.Log, m: newRelayMetrics(deps.Registry)}, nil
}

// purgeInterval is how often the relay deletes the published records
// older than the retention.
const purgeInterval = 10 * time.Minute

// Run publishes what is pending, then waits for more (a commit of this
// process, or the poll interval for other processes' records), until ctx
// ends. It returns nil then; it does not end by itself, whatever Kafka or
// the store do.
func (r *Relay) Run(ctx context.Context) error {
	p := newPublisher(r)
	defer p.close()
	outage := backoff.NewOutage(r.log, "publishing the policy outbox to Kafka")
	var lastPurge time.Time
	for attempt := 0; ; {
		err := p.publishAll(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			r.m.failures.Inc()
			outage.Fail(err)
			if !backoff.Sleep(ctx, backoff.Delay(attempt, 100*time.Millisecond, 5*time.Second)) {
				return nil
			}
			attempt++
			continue
		}
		attempt = 0
		outage.OK()
		if time.Since(lastPurge) >= purgeInterval {
			lastPurge = time.Now()
			r.purge(ctx)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.store.Written():
		case <-time.After(r.cfg.PollInterval):
		}
	}
}

// Flush publishes everything pending now, retrying while Kafka is away,
// until nothing is pending or ctx ends (its error then). The all-in-one
// flushes once at start, so that its collector finds the grants of the
// seed when it starts following the topic.
func (r *Relay) Flush(ctx context.Context) error {
	p := newPublisher(r)
	defer p.close()
	return backoff.Retry(ctx, backoff.Policy{Min: 100 * time.Millisecond, Max: 2 * time.Second}, func(ctx context.Context) error {
		if err := p.publishAll(ctx); err != nil {
			r.m.failures.Inc()
			return backoff.Retryable(err)
		}
		return nil
	})
}

func (r *Relay) purge(ctx context.Context) {
	n, err := r.store.PurgeOutbox(ctx, time.Now().Add(-r.cfg.Retention))
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("purging published outbox records failed; retried later", "err", err)
		}
		return
	}
	if n > 0 {
		r.m.purged.Add(float64(n))
		r.log.Info("purged published outbox records", "records", n, "published_before", time.Now().Add(-r.cfg.Retention).Format(time.RFC3339))
	}
}

// publisher holds one Kafka writer per topic while a relay runs.
type publisher struct {
	r       *Relay
	writers map[string]*kafka.Writer
}

func newPublisher(r *Relay) *publisher {
	return &publisher{r: r, writers: map[string]*kafka.Writer{}}
}

func (p *publisher) close() {
	for t, w := range p.writers {
		if err := w.Close(); err != nil {
			p.r.log.Debug("closing an outbox writer", "topic", t, "err", err)
		}
	}
}

func (p *publisher) writer(topic string) (*kafka.Writer, error) {
	if w, ok := p.writers[topic]; ok {
		return w, nil
	}
	w, err := p.r.kafka.NewWriter(topic)
	if err != nil {
		return nil, err
	}
	p.writers[topic] = w
	return w, nil
}

// publishAll publishes pending records, a batch at a time, until none is
// left; it returns the first failure.
func (p *publisher) publishAll(ctx context.Context) error {
	for {
		recs, err := p.r.store.PendingOutbox(ctx, p.r.cfg.BatchSize)
		if err != nil {
			return err
		}
		for i := 0; i < len(recs); {
			j := i + 1
			for j < len(recs) && recs[j].Topic == recs[i].Topic {
				j++
			}
			if err := p.publish(ctx, recs[i:j]); err != nil {
				return err
			}
			i = j
		}
		if len(recs) < p.r.cfg.BatchSize {
			return nil
		}
	}
}

// publish writes recs (all of one topic) and marks them published once
// the broker acknowledged them.
func (p *publisher) publish(ctx context.Context, recs []OutboxRecord) error {
	topic := recs[0].Topic
	w, err := p.writer(topic)
	if err != nil {
		return err
	}
	out := make([]kafka.Record, len(recs))
	ids := make([]int64, len(recs))
	for i, rec := range recs {
		out[i], ids[i] = rec.Record(), rec.ID
	}
	wctx, cancel := context.WithTimeout(ctx, p.r.cfg.WriteTimeout)
	began := time.Now()
	err = w.Write(wctx, out...)
	cancel()
	if err != nil {
		return fmt.Errorf("policy outbox: records %d..%d: %w", ids[0], ids[len(ids)-1], err)
	}
	p.r.m.duration.Observe(time.Since(began).Seconds())
	// Acknowledged: the mark is made even when ctx ended meanwhile (a
	// stop), so that a clean stop publishes nothing twice.
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := p.r.store.MarkPublished(mctx, time.Now(), ids...); err != nil {
		return fmt.Errorf("policy outbox: records %d..%d published but not marked (they will be published again): %w", ids[0], ids[len(ids)-1], err)
	}
	p.r.m.published.WithLabelValues(topic).Add(float64(len(recs)))
	return nil
}
