package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"

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
	mu     sync.RWMutex
	grants map[string]schemas.Grant
}

// NewGrantTable returns a table holding the static grants.
func NewGrantTable(static map[string]schemas.Grant) *GrantTable {
	t := &GrantTable{grants: map[string]schemas.Grant{}}
	for k, v := range static {
		t.grants[k] = v
	}
	return t
}

// Lookup implements builder.Grants.
func (t *GrantTable) Lookup(login string) (schemas.Grant, bool) {
	t.mu.RLock()
	g, ok := t.grants[login]
	t.mu.RUnlock()
	return g, ok
}

// Len returns the number of grants known.
func (t *GrantTable) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.grants)
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

// followGrants reads every partition of the grants topic from the start
// and keeps following it. ready is closed once the messages that existed at
// start have been applied, or at once when the topic does not exist (no
// policy service yet: only static grants apply until it appears).
func followGrants(ctx context.Context, kcfg kafka.Config, topic string, t *GrantTable, ready chan<- struct{}, log *slog.Logger) error {
	d, err := kcfg.Dialer()
	if err != nil {
		return err
	}
	var once sync.Once
	markReady := func() { once.Do(func() { close(ready) }) }
	var ends map[int]int64
	for attempt := 0; ; attempt++ {
		ends, err = partitionEnds(ctx, d, kcfg.Brokers, topic)
		if err == nil {
			break
		}
		if errors.Is(err, kafkago.UnknownTopicOrPartition) {
			if attempt == 0 {
				log.Warn("grants: the grants topic does not exist; only static grants apply until it does", "topic", topic)
			}
			markReady()
		} else {
			log.Warn("grants: cannot read the grants topic yet; retrying", "topic", topic, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	pending := len(ends)
	done := func() {
		mu.Lock()
		defer mu.Unlock()
		pending--
		if pending == 0 {
			markReady()
		}
	}
	if pending == 0 {
		markReady()
	}
	errc := make(chan error, len(ends))
	for p, end := range ends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- followPartition(ctx, kcfg, d, topic, p, end, t, done, log)
		}()
	}
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func partitionEnds(ctx context.Context, d *kafkago.Dialer, brokers []string, topic string) (map[int]int64, error) {
	conn, err := d.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		return nil, fmt.Errorf("grants: dial: %w", err)
	}
	defer conn.Close()
	parts, err := conn.ReadPartitions(topic)
	if err != nil {
		return nil, fmt.Errorf("grants: partitions of %s: %w", topic, err)
	}
	ends := map[int]int64{}
	for _, p := range parts {
		lc, err := d.DialLeader(ctx, "tcp", brokers[0], topic, p.ID)
		if err != nil {
			return nil, fmt.Errorf("grants: leader of %s/%d: %w", topic, p.ID, err)
		}
		end, err := lc.ReadLastOffset()
		lc.Close()
		if err != nil {
			return nil, fmt.Errorf("grants: end of %s/%d: %w", topic, p.ID, err)
		}
		ends[p.ID] = end
	}
	return ends, nil
}

func followPartition(ctx context.Context, kcfg kafka.Config, d *kafkago.Dialer, topic string, p int, end int64, t *GrantTable, done func(), log *slog.Logger) error {
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers: kcfg.Brokers, Topic: topic, Partition: p, Dialer: d,
		MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 500 * time.Millisecond, StartOffset: kafkago.FirstOffset,
	})
	defer r.Close()
	caughtUp := end == 0
	if caughtUp {
		done()
	}
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("grants: read %s/%d: %w", topic, p, err)
		}
		if err := t.apply(m.Key, m.Value); err != nil {
			log.Error("grants: bad grant message ignored", "partition", p, "offset", m.Offset, "err", err)
		}
		if !caughtUp && m.Offset+1 >= end {
			caughtUp = true
			done()
		}
	}
}
