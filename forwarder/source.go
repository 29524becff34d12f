package forwarder

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"

	"github.com/auditpipe/auditpipe/internal/deadletter"
)

// Source says which destinations the forwarder runs: it sends the whole
// set on updates each time it changes (the first send is the initial set),
// until ctx ends. The forwarder starts a destination that appears, stops
// one that goes, and restarts one whose settings changed, without a
// restart of the process. Static configuration is a StaticSource; the
// policy service's assignments topic (each resource's SIEM) will be
// another.
type Source interface {
	Run(ctx context.Context, updates chan<- []Destination) error
}

// StaticSource is the configured destinations; Set replaces them (a
// reload).
type StaticSource struct {
	mu      sync.Mutex
	current []Destination
	changed chan struct{}
}

// NewStaticSource returns a source holding dests.
func NewStaticSource(dests []Destination) *StaticSource {
	return &StaticSource{current: dests, changed: make(chan struct{}, 1)}
}

// Set replaces the destinations; the running forwarder applies the change.
func (s *StaticSource) Set(dests []Destination) {
	s.mu.Lock()
	s.current = dests
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// Run implements Source.
func (s *StaticSource) Run(ctx context.Context, updates chan<- []Destination) error {
	for {
		s.mu.Lock()
		cur := s.current
		s.mu.Unlock()
		select {
		case updates <- cur:
		case <-ctx.Done():
			return nil
		}
		select {
		case <-s.changed:
		case <-ctx.Done():
			return nil
		}
	}
}

// running is one destination's sender.
type running struct {
	d      Destination
	cancel context.CancelFunc
	done   chan error
}

// destinations is the set of running senders, reconciled with each update.
type destinations struct {
	f       *Forwarder
	dlw     *deadletter.Writer
	failed  chan error
	mu      sync.Mutex
	running map[string]*running
}

// apply makes the running senders match want: stops those gone or
// changed (each commits what its SIEM confirmed, as at a shutdown), then
// starts those new or changed.
func (ds *destinations) apply(ctx context.Context, want []Destination) {
	next := map[string]Destination{}
	for _, d := range want {
		next[d.Name] = d
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	for name, r := range ds.running {
		if d, ok := next[name]; ok && reflect.DeepEqual(d, r.d) {
			continue
		}
		r.cancel()
		if err := <-r.done; err != nil {
			ds.f.log.Warn("destination stopped with an error", "destination", name, "error", err)
		}
		delete(ds.running, name)
		ds.f.log.Info("destination stopped", "destination", name)
	}
	for name, d := range next {
		if _, ok := ds.running[name]; ok {
			continue
		}
		dctx, cancel := context.WithCancel(ctx)
		r := &running{d: d, cancel: cancel, done: make(chan error, 1)}
		ds.running[name] = r
		go func() {
			err := ds.f.runDestination(dctx, d, ds.dlw)
			r.done <- err
			if err != nil && dctx.Err() == nil {
				select {
				case ds.failed <- fmt.Errorf("destination %s: %w", name, err):
				default:
				}
			}
		}()
	}
}

// stopAll stops every sender and returns their errors.
func (ds *destinations) stopAll() error {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	for _, r := range ds.running {
		r.cancel()
	}
	var errs []error
	for _, r := range ds.running {
		if err := <-r.done; err != nil {
			errs = append(errs, err)
		}
	}
	ds.running = map[string]*running{}
	return errors.Join(errs...)
}

// groups returns the consumer groups of the running senders.
func (ds *destinations) groups() []string {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	var gs []string
	for _, r := range ds.running {
		gs = append(gs, r.d.Group)
	}
	sort.Strings(gs)
	return gs
}

// checkSet gives each destination its defaults and validates the set as a
// whole (names and groups unique); an empty set is valid for a source.
func checkSet(dests []Destination) ([]Destination, error) {
	if len(dests) == 0 {
		return nil, nil
	}
	c := Config{Destinations: dests}.WithDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c.Destinations, nil
}
