package forwarder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/schemas"
)

// AssignmentSource follows opctl.assignments.v1 (compacted, key =
// resource) and names one destination per resource whose assignment
// forwards logs: the assignment's syslog server and CA certificate, the
// resource's hosts as the filter. A tombstone, or an assignment that no
// longer forwards, removes the resource's destination. The first set is
// sent once the topic is caught up, then one set after each change.
type AssignmentSource struct {
	kafka kafka.Config
	topic string
	// Template gives every destination its settings besides address, CA,
	// name and hosts (timeouts, sizes, priority).
	template Destination
	log      *slog.Logger

	mu      sync.Mutex
	current map[string]schemas.Assignment
	changed chan struct{}
	caDir   string
}

// NewAssignmentSource returns a source following topic (default
// opctl.assignments.v1); template is the base of every destination.
func NewAssignmentSource(kc kafka.Config, topic string, template Destination, log *slog.Logger) *AssignmentSource {
	if topic == "" {
		topic = kafka.TopicAssignments
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &AssignmentSource{kafka: kc, topic: topic, template: template, log: log,
		current: map[string]schemas.Assignment{}, changed: make(chan struct{}, 1)}
}

// apply takes one record of the topic.
func (s *AssignmentSource) apply(r kafka.Record) error {
	key := string(r.Key)
	if r.Value == nil {
		s.set(key, nil)
		return nil
	}
	var a schemas.Assignment
	if err := json.Unmarshal(r.Value, &a); err != nil {
		return fmt.Errorf("assignment %q: %w", key, err)
	}
	if err := a.Validate(); err != nil {
		return err
	}
	if a.ResourceID != key {
		return fmt.Errorf("assignment keyed %q is for resource %q", key, a.ResourceID)
	}
	s.set(key, &a)
	return nil
}

func (s *AssignmentSource) set(resource string, a *schemas.Assignment) {
	s.mu.Lock()
	if a == nil || !a.IsLogForwarded {
		delete(s.current, resource)
	} else {
		s.current[resource] = *a
	}
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// destinations is the set the current assignments name; each CA
// certificate is written to a file of its own under caDir.
func (s *AssignmentSource) destinations() ([]Destination, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.current))
	for n := range s.current {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]Destination, 0, len(names))
	for _, n := range names {
		a := s.current[n]
		d := s.template
		d.Name = a.ResourceID
		d.Group = ""
		d.Address = a.SyslogAddress()
		d.Filter = Filter{Hosts: append([]string(nil), a.Hosts...), Resources: []string{a.ResourceID}}
		d.TLS.CAFile = ""
		if a.RemoteSyslogServerCACert != "" {
			// Named by resource and content: a changed certificate is a
			// changed destination, restarted with it.
			sum := sha256.Sum256([]byte(a.ResourceID + "\x00" + a.RemoteSyslogServerCACert))
			path := filepath.Join(s.caDir, "ca-"+hex.EncodeToString(sum[:8])+".pem")
			if err := os.WriteFile(path, []byte(a.RemoteSyslogServerCACert), 0o600); err != nil {
				return nil, fmt.Errorf("assignment %s: CA certificate: %w", a.ResourceID, err)
			}
			d.TLS.CAFile = path
		}
		out = append(out, d)
	}
	return out, nil
}

// Run implements Source.
func (s *AssignmentSource) Run(ctx context.Context, updates chan<- []Destination) error {
	dir, err := os.MkdirTemp("", "auditpipe-assignments-")
	if err != nil {
		return fmt.Errorf("assignments: %w", err)
	}
	defer os.RemoveAll(dir)
	s.caDir = dir
	f, err := s.kafka.NewFollower(kafka.FollowerConfig{Topic: s.topic, Apply: s.apply, Log: s.log.With("follower", "assignments")})
	if err != nil {
		return fmt.Errorf("assignments: %w", err)
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.Run(fctx) }()
	select {
	case <-f.CaughtUp():
	case <-ctx.Done():
		cancel()
		return <-done
	}
	for {
		ds, err := s.destinations()
		if err != nil {
			s.log.Error("assignments: destinations not updated", "error", err)
		} else {
			select {
			case updates <- ds:
			case <-ctx.Done():
				cancel()
				return <-done
			}
		}
		select {
		case <-s.changed:
		case err := <-done:
			return err
		case <-ctx.Done():
			cancel()
			return <-done
		}
	}
}
