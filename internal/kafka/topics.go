package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/auditpipe/auditpipe/internal/backoff"
)

// TopicsConfig is how the targets create the topics they use.
type TopicsConfig struct {
	// Create: each target creates the topics it uses and that do not
	// exist yet, at start, retrying in the background while the broker
	// is away; a topic that exists is left alone. Set false where
	// operators manage topics themselves (`auditpipe kafka ensure-topics`
	// creates them). Default true.
	Create *bool `yaml:"create"`
	// Partitions of the topics keyed by host or instance (audit,
	// dispatch, agent). The others have one. Default 6.
	Partitions int `yaml:"partitions"`
	// ReplicationFactor of a created topic. Default 0: three copies, or
	// one per broker when the cluster has fewer than three.
	ReplicationFactor int `yaml:"replication_factor"`
}

func (c TopicsConfig) withDefaults() TopicsConfig {
	if c.Create == nil {
		t := true
		c.Create = &t
	}
	if c.Partitions == 0 {
		c.Partitions = 6
	}
	return c
}

func (c TopicsConfig) validate(prefix string) error {
	if c.Partitions < 0 {
		return fmt.Errorf("%s.partitions: %d must be positive", prefix, c.Partitions)
	}
	if c.ReplicationFactor < 0 {
		return fmt.Errorf("%s.replication_factor: %d must be positive, or 0 for min(3, brokers)", prefix, c.ReplicationFactor)
	}
	return nil
}

// Creates reports whether the targets create their topics (Create).
func (c TopicsConfig) Creates() bool { return c.Create == nil || *c.Create }

// Topic describes a topic to create.
type Topic struct {
	Name       string
	Partitions int
	// Compacted sets cleanup.policy=compact (grants, assignments: the
	// latest value per key is the state).
	Compacted bool
}

// The topic names (schemas/doc.go holds the same as the contract's).
const (
	TopicAudit       = "opctl.audit.v1"
	TopicDeadLetter  = "opctl.deadletter.v1"
	TopicGrants      = "opctl.grants.v1"
	TopicAssignments = "opctl.assignments.v1"
	TopicLifecycle   = "opctl.lifecycle.v1"
	TopicDispatch    = "opctl.dispatch.v1"
	TopicAgent       = "opctl.agent.v1"
)

// PipelineTopics are the topics auditpipe uses, with their layouts: the
// audit, dispatch and agent topics with partitions, the others with one.
func PipelineTopics(partitions int) []Topic {
	return []Topic{
		{Name: TopicAudit, Partitions: partitions},
		{Name: TopicDeadLetter, Partitions: 1},
		{Name: TopicGrants, Partitions: 1, Compacted: true},
		{Name: TopicAssignments, Partitions: 1, Compacted: true},
		{Name: TopicLifecycle, Partitions: 1},
		{Name: TopicDispatch, Partitions: partitions},
		{Name: TopicAgent, Partitions: partitions},
	}
}

// TopicsNamed returns the pipeline topics (with c's partitions) named by
// names, in the pipeline's order; a name auditpipe does not know is
// created with one partition.
func (c TopicsConfig) TopicsNamed(names ...string) []Topic {
	c = c.withDefaults()
	var out []Topic
	for _, t := range PipelineTopics(c.Partitions) {
		if slices.Contains(names, t.Name) {
			out = append(out, t)
		}
	}
	for _, n := range names {
		if !slices.ContainsFunc(out, func(t Topic) bool { return t.Name == n }) {
			out = append(out, Topic{Name: n, Partitions: 1})
		}
	}
	return out
}

// EnsureTopics creates the topics that do not exist yet, with the
// configured replication factor (default min(3, brokers)); existing topics
// are left as they are. A failure the broker may get over (away, no
// controller yet) is a backoff.RetryableError; one it will not (not
// authorized, an invalid replication factor) is not, and says so.
func (c Config) EnsureTopics(ctx context.Context, topics ...Topic) error {
	tr, err := c.transport()
	if err != nil {
		return fmt.Errorf("kafka: ensure topics: %w", err)
	}
	defer tr.CloseIdleConnections()
	cl := &kafkago.Client{Addr: kafkago.TCP(c.Brokers...), Transport: tr, Timeout: 30 * time.Second}
	names := make([]string, len(topics))
	for i, t := range topics {
		names[i] = t.Name
	}
	meta, err := cl.Metadata(ctx, &kafkago.MetadataRequest{Topics: names})
	if err != nil {
		return fmt.Errorf("kafka: ensure topics: metadata: %w", Classify(err))
	}
	exists := map[string]bool{}
	for _, t := range meta.Topics {
		if t.Error == nil {
			exists[t.Name] = true
		}
	}
	rf := c.WithDefaults().Topics.ReplicationFactor
	if rf == 0 {
		rf = min(3, len(meta.Brokers))
	}
	req := &kafkago.CreateTopicsRequest{}
	for _, t := range topics {
		if exists[t.Name] {
			continue
		}
		tc := kafkago.TopicConfig{Topic: t.Name, NumPartitions: t.Partitions, ReplicationFactor: rf}
		if t.Compacted {
			tc.ConfigEntries = []kafkago.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}}
		}
		req.Topics = append(req.Topics, tc)
	}
	if len(req.Topics) == 0 {
		return nil
	}
	resp, err := cl.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("kafka: create topics: %w", Classify(err))
	}
	var errs []error
	for name, e := range resp.Errors {
		if e != nil && !errors.Is(e, kafkago.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("kafka: create topic %s (replication factor %d): %w", name, rf, Classify(e)))
		}
	}
	return errors.Join(errs...)
}

// EnsureTopicsRetry is EnsureTopics retried with backoff while the broker
// is away (the outage logged once, and its end), until it succeeds, fails
// for good, or ctx ends.
func (c Config) EnsureTopicsRetry(ctx context.Context, log *slog.Logger, topics ...Topic) error {
	o := backoff.NewOutage(log, "creating the Kafka topics")
	return backoff.Retry(ctx, backoff.Policy{Min: 200 * time.Millisecond, Max: 10 * time.Second, Outage: o}, func(ctx context.Context) error {
		err := c.EnsureTopics(ctx, topics...)
		if err != nil && !backoff.IsRetryable(err) && ctx.Err() == nil {
			return backoff.Permanent(err)
		}
		return err
	})
}
