package forwarder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/deadletter"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

// AssignmentSource follows opctl.assignments.v1 (compacted, key =
// resource) and names one destination per resource whose assignment
// forwards logs: the assignment's syslog server and CA certificate, the
// resource's hosts and the resource itself as the filter (its audit and
// lifecycle events). Every record is verified (grants.DecodeAssignment)
// against the configured public keys (forwarder.assignment_keys): one
// unsigned, signed by another key, tampered, keyed by another resource
// than it names or not a valid assignment is refused — counted by
// reason, logged at a bounded rate, dead-lettered — and changes nothing,
// so a forged record cannot send a resource's events to another SIEM nor
// stop them. The signed removal record (lifecycle_state DELETED), or an
// assignment that no longer forwards, ends the resource's forwarding; a
// bare tombstone is unsigned and refused. The first set is sent once the
// topic is caught up, then one set after each change.
type AssignmentSource struct {
	kafka kafka.Config
	topic string
	// Template gives every destination its settings besides address, CA,
	// name and filter (timeouts, sizes, priority).
	template   Destination
	keys       *sign.Keyring
	deadLetter string // topic
	log        *slog.Logger
	m          *assignmentMetrics
	// seqs refuses an assignment record written again (by resource;
	// kept in forwarder.assignments.state_dir, else rebuilt from the
	// topic at each start).
	seqs *grants.Seqs

	mu      sync.Mutex
	current map[string]schemas.Assignment
	changed chan struct{}
	caDir   string
}

// assignmentMetrics are the AssignmentSource's series.
type assignmentMetrics struct {
	refused   *prometheus.CounterVec
	forwarded prometheus.Gauge
}

func newAssignmentMetrics(reg prometheus.Registerer) *assignmentMetrics {
	m := &assignmentMetrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditpipe_forwarder_assignments_refused_total",
			Help: "Records of the assignments topic refused (unsigned, unknown key, bad signature, …) and dead-lettered, by reason; none changed a destination."},
			[]string{"reason"}),
		forwarded: prometheus.NewGauge(prometheus.GaugeOpts{Name: "auditpipe_forwarder_assignments",
			Help: "Resources whose verified assignment forwards logs: one destination each."}),
	}
	for _, r := range grants.Reasons() {
		m.refused.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.refused, m.forwarded)
	}
	return m
}

// NewAssignmentSource returns a source following cfg.Assignments.Topic
// (default opctl.assignments.v1), whose destinations are made from
// cfg.Assignments.Template, and whose records are trusted when signed by
// one of cfg.AssignmentKeys (or cfg.OwnAssignmentKey); refused records go
// to cfg.DeadLetterTopic. Its metrics go to reg (nil: none).
func NewAssignmentSource(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*AssignmentSource, error) {
	cfg = cfg.WithDefaults()
	keys, err := cfg.assignmentKeyring()
	if err != nil {
		return nil, err
	}
	if keys.Len() == 0 {
		return nil, errors.New("forwarder.assignment_keys: required to follow the assignments (unsigned assignments are never trusted)")
	}
	topic := cfg.Assignments.Topic
	if topic == "" {
		topic = kafka.TopicAssignments
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var state string
	if cfg.Assignments.StateDir != "" {
		state = filepath.Join(cfg.Assignments.StateDir, AssignmentsStateFile)
	}
	seqs, err := grants.OpenSeqs("resource", state, log.With("follower", "assignments"))
	if err != nil {
		return nil, fmt.Errorf("forwarder.assignments.state_dir: %w", err)
	}
	if state == "" {
		log.Info("forwarder.assignments.state_dir not set: the assignments' replay memory is rebuilt from the topic at each start")
	}
	// Held while Run catches up (no destination is named before), then
	// written at each change.
	seqs.Defer()
	return &AssignmentSource{kafka: cfg.Kafka, topic: topic, template: cfg.Assignments.Template, keys: keys,
		deadLetter: cfg.DeadLetterTopic, log: log, m: newAssignmentMetrics(reg),
		current: map[string]schemas.Assignment{}, changed: make(chan struct{}, 1), seqs: seqs}, nil
}

// apply verifies one record of the topic and applies it, or refuses it.
// The error is the dead letter's, when it could not be written (ctx
// ended).
func (s *AssignmentSource) apply(ctx context.Context, r kafka.Record, dead *deadletter.Writer, refusals *grants.RefusalLog) error {
	m, err := grants.DecodeAssignment(r.Key, r.Value, s.keys)
	if err == nil {
		// An old assignment (or removal) written again: refused; one
		// read before its resource's applied record (history not
		// compacted yet, at a restart): skipped.
		err = s.seqs.AdmitRecord(grants.Numbered{Key: m.Assignment.ResourceID, Seq: m.Assignment.PublishSeq, Payload: m.Payload,
			Partition: r.Partition, Offset: r.Offset})
		if errors.Is(err, grants.ErrSuperseded) {
			return nil
		}
	}
	if err != nil {
		reason := grants.Reason(err)
		err = fmt.Errorf("record key %q: %w", r.Key, err)
		source := r.Source()
		s.m.refused.WithLabelValues(reason).Inc()
		refusals.Refused(time.Now(), reason, err, source)
		if werr := dead.Write(ctx, dead.Letter("assignment_"+reason, err, r.Value, string(r.Key), source)); werr != nil {
			return fmt.Errorf("refused assignment at %s not dead-lettered: %w", source, werr)
		}
		return nil
	}
	a := m.Assignment
	if a.LifecycleState == grants.AssignmentRemoved {
		s.log.Info("assignment removed: the resource's forwarding ends", "resource", a.ResourceID, "key_id", m.KeyID)
		s.set(a.ResourceID, nil)
		return nil
	}
	s.set(a.ResourceID, &a)
	return nil
}

func (s *AssignmentSource) set(resource string, a *schemas.Assignment) {
	s.mu.Lock()
	if a == nil || !a.IsLogForwarded {
		delete(s.current, resource)
	} else {
		s.current[resource] = *a
	}
	s.m.forwarded.Set(float64(len(s.current)))
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
			if err := writeOnce(path, []byte(a.RemoteSyslogServerCACert)); err != nil {
				return nil, fmt.Errorf("assignment %s: CA certificate: %w", a.ResourceID, err)
			}
			d.TLS.CAFile = path
		}
		out = append(out, d)
	}
	return out, nil
}

// writeOnce writes b to path, a file named by its content, unless it
// exists: a running destination may be reading it. A new file appears
// whole (written aside, then renamed).
//
// Regression: the file was written again, truncated first, at every
// change of the set, and a destination starting at that moment read it
// empty ("no PEM certificate found"): the destination failed and the
// forwarder stopped (TestAssignmentSource failed about one run in four).
func writeOnce(path string, b []byte) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".ca-*.tmp")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}

// Run implements Source.
func (s *AssignmentSource) Run(ctx context.Context, updates chan<- []Destination) error {
	dir, err := os.MkdirTemp("", "auditpipe-assignments-")
	if err != nil {
		return fmt.Errorf("assignments: %w", err)
	}
	defer os.RemoveAll(dir)
	s.caDir = dir
	log := s.log.With("follower", "assignments")
	dead, err := deadletter.Open(s.kafka, s.deadLetter, "forwarder", log)
	if err != nil {
		return fmt.Errorf("assignments: %w", err)
	}
	defer dead.Close()
	refusals := grants.NewRefusalLog(log, "assignment", "auditpipe_forwarder_assignments_refused_total")
	defer refusals.Summarize()
	f, err := s.kafka.NewFollower(kafka.FollowerConfig{
		Topic: s.topic,
		Apply: func(r kafka.Record) error { return s.apply(ctx, r, dead, refusals) },
		Log:   log,
	})
	if err != nil {
		return fmt.Errorf("assignments: %w", err)
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer func() { _ = s.seqs.Flush() }()
	done := make(chan error, 1)
	go func() { done <- f.Run(fctx) }()
	select {
	case <-f.CaughtUp():
		// What the catch-up applied is written before the first set is
		// named (a failure is logged; the set is named all the same).
		_ = s.seqs.Undefer()
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
