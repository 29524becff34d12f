package collector

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/schemas"
)

// GrantTable is the collector's view of the grants: static ones from the
// configuration and those followed on opctl.grants.v1. A revoked grant (a
// tombstone) stays known for attribution while the process runs: what its
// user did after the revocation is exactly what an auditor wants to see
// tied to the request. (After compaction and a restart it is gone; the
// policy service's agent removes the user and ends its sessions on revoke.)
// It is safe for concurrent use.
type GrantTable struct {
	mu sync.RWMutex
	// grants are those followed on the topic; they win over static ones
	// for the same login.
	grants map[string]schemas.Grant
	static map[string]schemas.Grant
}

// NewGrantTable returns a table holding the static grants.
func NewGrantTable(static map[string]schemas.Grant) *GrantTable {
	t := &GrantTable{grants: map[string]schemas.Grant{}}
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

// apply applies one message of the grants topic.
func (t *GrantTable) apply(key, value []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if value == nil {
		return nil // a tombstone: the grant stays known for attribution
	}
	var g schemas.Grant
	if err := json.Unmarshal(value, &g); err != nil {
		return fmt.Errorf("grant %q: %w", key, err)
	}
	if err := g.Validate(); err != nil {
		return err
	}
	t.grants[g.LoginID] = g
	return nil
}

// followGrants follows the grants topic from its start (kafka.Follower:
// retried while the broker is away, a tombstone keeps the grant known);
// c.ready is closed once the grants that existed at start are applied, or
// at once when the topic does not exist (no policy service yet: only
// static grants apply until it appears).
func (c *Collector) followGrants(ctx context.Context, kcfg kafka.Config, topic string) error {
	f, err := kcfg.NewFollower(kafka.FollowerConfig{
		Topic: topic,
		Apply: func(r kafka.Record) error { return c.grants.apply(r.Key, r.Value) },
		Log:   c.log.With("follower", "grants"),
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
