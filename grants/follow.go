package grants

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/internal/deadletter"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

// FollowConfig is what a Follower reads, whom it trusts and whom it
// tells.
type FollowConfig struct {
	// Kafka is the broker connection. Required.
	Kafka kafka.Config
	// Topic is the grants topic. Default schemas.TopicGrants.
	Topic string
	// Keys verify every record; a record not signed by one of them is
	// refused. Required.
	Keys *sign.Keyring
	// DeadLetterTopic receives each refused record. Default
	// schemas.TopicDeadLetter.
	DeadLetterTopic string
	// Component names the consumer in dead letters (collector, agent).
	// Required.
	Component string
	// Host is the dead letters' host.
	Host string
	// Apply is called with each verified message that is not a replay,
	// from the follower's goroutines (one per partition; the grants topic
	// has one). Required.
	Apply func(Message)
	// Refused counts refused records by reason (NewRefusedCounter).
	// Required.
	Refused *prometheus.CounterVec
	// DeadLetters, when set, counts the dead letters written.
	DeadLetters prometheus.Counter
	// Log receives refusals (at a bounded rate) and the follower's
	// outages. Default: discard.
	Log *slog.Logger
	// StateFile keeps the follower's replay memory across restarts (Seqs:
	// per login, the last applied record's number and digest, and whether
	// it was revoked): a file in the consumer's state directory. A damaged
	// file makes NewFollower fail. Default "": memory only, rebuilt from
	// the topic at each start (a replay that compaction left as its
	// login's only record is then accepted).
	StateFile string
}

// Follower follows the grants topic from its start (a kafka.Follower:
// retried while the broker is away), verifies each record with the
// configured keys and hands the verified ones to Apply. Any other record
// is refused: counted by reason, logged at a bounded rate, dead-lettered,
// and never applied. A record written again later is refused with
// ReasonReplayed (Seqs: a publish_seq below the last applied for its
// login, or the last with another payload, or none); so is a grant for a
// login whose revocation was followed, whatever its number (the policy
// service never reuses a login). With a StateFile that memory outlives
// the process, so a restart refuses such a replay even when compaction
// left it as its login's only record; a record read before its login's
// applied one (history not compacted yet) is skipped, neither applied nor
// refused. The collector (attribution) and the host agent (enforcement)
// both follow the grants with it.
type Follower struct {
	cfg      FollowConfig
	f        *kafka.Follower
	refusals *RefusalLog

	// set by Run before the records are read: the dead letters' writer
	// and Run's context, which bounds their writing.
	ctx  context.Context
	dead *deadletter.Writer

	// seqs remembers, per login, the last record applied and whether it
	// was a revocation (final). Its changes are held while the follower
	// catches up (nothing acts on the grants before), and written once
	// caught up, before caught is closed.
	seqs   *Seqs
	caught chan struct{}
}

// NewFollower returns a follower of cfg.Topic; Run follows it.
func NewFollower(cfg FollowConfig) (*Follower, error) {
	if cfg.Topic == "" {
		cfg.Topic = schemas.TopicGrants
	}
	if cfg.DeadLetterTopic == "" {
		cfg.DeadLetterTopic = schemas.TopicDeadLetter
	}
	if cfg.Keys == nil || cfg.Apply == nil || cfg.Refused == nil || cfg.Component == "" {
		return nil, errors.New("grants: follower: keys, an Apply function, a refusal counter and a component are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	seqs, err := OpenSeqs("login", cfg.StateFile, cfg.Log)
	if err != nil {
		return nil, fmt.Errorf("grants: follower: %w", err)
	}
	seqs.Defer()
	fl := &Follower{cfg: cfg, refusals: NewRefusalLog(cfg.Log, "grant", "auditpipe_"+cfg.Component+"_grants_refused_total"), seqs: seqs,
		caught: make(chan struct{})}
	f, err := cfg.Kafka.NewFollower(kafka.FollowerConfig{Topic: cfg.Topic, Apply: fl.apply, Log: cfg.Log})
	if err != nil {
		return nil, fmt.Errorf("grants: %w", err)
	}
	fl.f = f
	return fl, nil
}

// CaughtUp is closed once the records that existed when Run started are
// applied and the replay memory written (StateFile), or at once when the
// topic does not exist (no policy service yet: nothing to catch up with).
// The consumer acts on the grants once it is closed: the memory then
// names every record applied.
func (fl *Follower) CaughtUp() <-chan struct{} { return fl.caught }

// Run follows the topic until ctx ends; it returns nil then, or a
// permanent error. Call it once.
func (fl *Follower) Run(ctx context.Context) error {
	dead, err := deadletter.Open(fl.cfg.Kafka, fl.cfg.DeadLetterTopic, fl.cfg.Component, fl.cfg.Log)
	if err != nil {
		return fmt.Errorf("grants: %w", err)
	}
	defer dead.Close()
	defer fl.refusals.Summarize()
	// Whatever was read when Run ends is written (a stop while catching
	// up: the next start reads it again anyway).
	defer func() { _ = fl.seqs.Flush() }()
	fl.ctx, fl.dead = ctx, dead
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	caught := make(chan struct{})
	go func() {
		defer close(caught)
		select {
		case <-fl.f.CaughtUp():
			// A failure is logged; the grants apply all the same.
			_ = fl.seqs.Undefer()
			close(fl.caught)
		case <-ctx.Done():
		}
	}()
	err = fl.f.Run(ctx)
	cancel()
	<-caught
	return err
}

// apply verifies one record and applies it, or refuses it. The error is
// the dead letter's, when it could not be written (Run's ctx ended).
func (fl *Follower) apply(r kafka.Record) error {
	m, err := Decode(r.Key, r.Value, fl.cfg.Keys)
	if err == nil {
		if err = fl.checkReplay(m, r); err == nil {
			fl.cfg.Apply(m)
			return nil
		}
		if errors.Is(err, ErrSuperseded) {
			return nil
		}
	}
	reason := Reason(err)
	err = fmt.Errorf("record key %q: %w", r.Key, err)
	source := fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)
	fl.cfg.Refused.WithLabelValues(reason).Inc()
	fl.refusals.Refused(time.Now(), reason, err, source)
	if werr := fl.dead.Write(fl.ctx, fl.dead.Letter("grant_"+reason, err, r.Value, fl.cfg.Host, source)); werr != nil {
		return fmt.Errorf("refused grant at %s not dead-lettered: %w", source, werr)
	}
	if fl.cfg.DeadLetters != nil {
		fl.cfg.DeadLetters.Inc()
	}
	return nil
}

// checkReplay refuses a record written again (Seqs) and a grant for a
// login already revoked (a revocation is its login's final record), and
// remembers the record otherwise (ErrSuperseded: a record read before the
// login's applied one, skipped).
func (fl *Follower) checkReplay(m Message, r kafka.Record) error {
	err := fl.seqs.AdmitRecord(Numbered{Key: m.Grant.LoginID, Seq: m.Grant.PublishSeq, Payload: m.Payload, Final: m.Grant.Revoked,
		Partition: r.Partition, Offset: r.Offset})
	if err != nil {
		return fmt.Errorf("signed by key %s: %w", m.KeyID, err)
	}
	return nil
}

// NewRefusedCounter returns auditpipe_<component>_grants_refused_total,
// by reason, every reason's series at 0.
func NewRefusedCounter(component string) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditpipe_" + component + "_grants_refused_total",
		Help: "Records of the grants topic refused (unsigned, unknown key, bad signature, replayed, …) and dead-lettered, by reason; none changed a grant."}, []string{"reason"})
	for _, r := range Reasons() {
		v.WithLabelValues(r)
	}
	return v
}
