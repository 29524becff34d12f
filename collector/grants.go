package collector

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/deadletter"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

// GrantTable is the collector's view of the grants: static ones from the
// configuration and the verified ones followed on opctl.grants.v1. A
// revoked grant (its signed revocation) stays known for attribution while
// the process runs: what its user did after the revocation is exactly
// what an auditor wants to see tied to the request. (After compaction and
// a restart it is gone; the policy service's agent removes the user and
// ends its sessions on revoke.) It is safe for concurrent use.
type GrantTable struct {
	mu sync.RWMutex
	// grants are those followed on the topic; they win over static ones
	// for the same login.
	grants  map[string]schemas.Grant
	revoked map[string]bool
	static  map[string]schemas.Grant
}

// NewGrantTable returns a table holding the static grants.
func NewGrantTable(static map[string]schemas.Grant) *GrantTable {
	t := &GrantTable{grants: map[string]schemas.Grant{}, revoked: map[string]bool{}}
	t.SetStatic(static)
	return t
}

// SetStatic replaces the static grants (a reload of the configuration);
// the followed ones stay.
func (t *GrantTable) SetStatic(static map[string]schemas.Grant) {
	m := make(map[string]schemas.Grant, len(static))
	for k, v := range static {
		m[k] = v
	}
	t.mu.Lock()
	t.static = m
	t.mu.Unlock()
}

// Lookup implements builder.Grants.
func (t *GrantTable) Lookup(login string) (schemas.Grant, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if g, ok := t.grants[login]; ok {
		return g, true
	}
	g, ok := t.static[login]
	return g, ok
}

// Revoked reports whether a signed revocation of login's grant was
// followed.
func (t *GrantTable) Revoked(login string) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.revoked[login]
}

// Len returns the number of logins with a grant.
func (t *GrantTable) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	n := len(t.grants)
	for k := range t.static {
		if _, ok := t.grants[k]; !ok {
			n++
		}
	}
	return n
}

// apply applies one verified message of the grants topic: a grant
// replaces the login's; a revocation marks it revoked and keeps it for
// attribution. A revocation is final: a grant for a login already revoked
// is a replay of an old signed grant (the policy service never reuses a
// login), refused with grants.ReasonReplayed and changing nothing.
func (t *GrantTable) apply(m grants.Message) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	login := m.Grant.LoginID
	if m.Grant.Revoked {
		t.revoked[login] = true
		return nil
	}
	if t.revoked[login] {
		return &grants.RefusedError{Reason: grants.ReasonReplayed, Err: fmt.Errorf("login %s was revoked (signed by key %s)", login, m.KeyID)}
	}
	t.grants[login] = m.Grant
	return nil
}

// followGrants follows the grants topic from its start (kafka.Follower:
// retried while the broker is away) and applies each record whose
// signature verifies with c.keys; any other record is refused (counted,
// logged at a bounded rate, dead-lettered) and changes nothing. c.ready is
// closed once the grants that existed at start are applied, or at once
// when the topic does not exist (no policy service yet: only static grants
// apply until it appears).
func (c *Collector) followGrants(ctx context.Context, kcfg kafka.Config, topic string) error {
	log := c.log.With("follower", "grants")
	dead, err := deadletter.Open(kcfg, c.cfg.DeadLetterTopic, "collector", log)
	if err != nil {
		return fmt.Errorf("grants: %w", err)
	}
	defer dead.Close()
	refusals := grants.NewRefusalLog(log, "grant", "auditpipe_collector_grants_refused_total")
	defer refusals.Summarize()
	f, err := kcfg.NewFollower(kafka.FollowerConfig{
		Topic: topic,
		Apply: func(r kafka.Record) error { return c.applyGrant(ctx, r, dead, refusals) },
		Log:   log,
	})
	if err != nil {
		return fmt.Errorf("grants: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-f.CaughtUp():
			close(c.ready)
		case <-ctx.Done():
		}
	}()
	err = f.Run(ctx)
	<-done
	return err
}

// applyGrant verifies one record of the grants topic and applies it, or
// refuses it. The error is the dead letter's, when it could not be
// written (ctx ended).
func (c *Collector) applyGrant(ctx context.Context, r kafka.Record, dead *deadletter.Writer, refusals *grants.RefusalLog) error {
	m, err := grants.Decode(r.Key, r.Value, c.keys)
	if err == nil {
		if err = c.grants.apply(m); err == nil {
			return nil
		}
	}
	reason := grants.Reason(err)
	err = fmt.Errorf("record key %q: %w", r.Key, err)
	source := fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)
	c.m.grantsRefused.WithLabelValues(reason).Inc()
	refusals.Refused(time.Now(), reason, err, source)
	if werr := dead.Write(ctx, dead.Letter("grant_"+reason, err, r.Value, c.cfg.Host, source)); werr != nil {
		return fmt.Errorf("refused grant at %s not dead-lettered: %w", source, werr)
	}
	c.m.deadLetters.Inc()
	return nil
}

// newGrantsRefused is the counter of refused grant records, by reason.
func newGrantsRefused() *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditpipe_collector_grants_refused_total",
		Help: "Records of the grants topic refused (unsigned, unknown key, bad signature, …) and dead-lettered, by reason; none changed a grant."}, []string{"reason"})
	for _, r := range grants.Reasons() {
		v.WithLabelValues(r)
	}
	return v
}

// loadGrantKeys reads the trusted public keys of cfg.
func loadGrantKeys(cfg Config) (*sign.Keyring, error) {
	paths := cfg.GrantKeys
	if cfg.OwnGrantKey != "" {
		paths = append(paths[:len(paths):len(paths)], cfg.OwnGrantKey)
	}
	kr, err := sign.LoadKeyring(paths...)
	if err != nil {
		return nil, fmt.Errorf("collector.grant_keys: %w", err)
	}
	return kr, nil
}
