package collector

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

// GrantTable is the collector's view of the grants: static ones from the
// configuration and the verified ones followed on opctl.grants.v1. A
// revoked grant (its signed revocation) stays known for attribution while
// the process runs: what its user did after the revocation is exactly
// what an auditor wants to see tied to the request. (After a restart it
// is gone: the follower skips the grant, read before its revocation, and
// compaction removes it; the policy service's agent removes the user and
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
// attribution. (A grant replayed after its revocation never gets here:
// grants.Follower refuses it.)
func (t *GrantTable) apply(m grants.Message) {
	t.mu.Lock()
	defer t.mu.Unlock()
	login := m.Grant.LoginID
	if m.Grant.Revoked {
		t.revoked[login] = true
		return
	}
	t.grants[login] = m.Grant
}

// GrantsStateFile is the file of the collector's state directory that
// keeps its grants follower's replay memory (grants.FollowConfig.StateFile).
const GrantsStateFile = "grants-seqs.json"

// followGrants follows the grants topic from its start (grants.Follower:
// retried while the broker is away, every record verified with c.keys,
// refusals counted, logged at a bounded rate and dead-lettered) and
// applies each verified record to the grant table. c.ready is closed once
// the grants that existed at start are applied, or at once when the topic
// does not exist (no policy service yet: only static grants apply until
// it appears).
func (c *Collector) followGrants(ctx context.Context, kcfg kafka.Config, topic string) error {
	f, err := c.grantsFollower(kcfg, topic)
	if err != nil {
		return err
	}
	return c.runGrants(ctx, f)
}

// grantsFollower returns the follower of followGrants, its replay memory
// read from the state directory (GrantsStateFile): an error when that
// file is damaged.
func (c *Collector) grantsFollower(kcfg kafka.Config, topic string) (*grants.Follower, error) {
	return grants.NewFollower(grants.FollowConfig{
		Kafka: kcfg, Topic: topic, Keys: c.keys, DeadLetterTopic: c.cfg.DeadLetterTopic,
		Component: "collector", Host: c.cfg.Host,
		Apply:   c.grants.apply,
		Refused: c.m.grantsRefused, DeadLetters: c.m.deadLetters,
		Log:       c.log.With("follower", "grants"),
		StateFile: filepath.Join(c.cfg.StateDir, GrantsStateFile),
	})
}

// runGrants runs f until ctx ends, closing c.ready once it caught up.
func (c *Collector) runGrants(ctx context.Context, f *grants.Follower) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-f.CaughtUp():
			close(c.ready)
		case <-ctx.Done():
		}
	}()
	err := f.Run(ctx)
	<-done
	return err
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
