// Package app is auditpipe's composition root: the one place where the
// components are wired together. Each component is a module with a name,
// the modules it depends on and an init that returns a service; a target
// names the modules a process runs. Run starts them in dependency order and
// stops them in reverse, draining consumers after the producers stopped, as
// grafana/loki's pkg/loki/modules.go does.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Service is a module's running part: Run blocks until ctx is cancelled
// (or the service ends by itself, which stops the whole process) and
// returns after every goroutine it started has ended.
type Service interface {
	Run(ctx context.Context) error
}

// Drainer is a service with a step before it is stopped: a consumer
// waiting until it took what the producers stopped before it wrote.
type Drainer interface {
	Drain(ctx context.Context) error
}

// Reloader is a service that applies a new configuration without a
// restart (SIGHUP). What it cannot change it keeps, and says so.
type Reloader interface {
	Reload(cfg Config) error
}

// ServiceFunc adapts a function to Service.
type ServiceFunc func(ctx context.Context) error

// Run implements Service.
func (f ServiceFunc) Run(ctx context.Context) error { return f(ctx) }

// idle returns a service that holds a resource open until it is stopped;
// the resource is closed by the cleanup its module registered.
func idle() Service {
	return ServiceFunc(func(ctx context.Context) error {
		<-ctx.Done()
		return nil
	})
}

// Module is one component of the process.
type Module struct {
	// Name is what targets and other modules call it.
	Name string
	// Deps are the modules this one needs; they are initialised and
	// started before it and stopped after it.
	Deps []string
	// After orders this module after those named, when they are part of
	// the same target, without needing them. The collector starts after
	// the consumers so that at shutdown it stops first and they drain its
	// last batch.
	After []string
	// Init builds the module's service (nil: nothing runs, e.g. a module
	// that only registers HTTP handlers).
	Init func(ctx context.Context, a *App) (Service, error)
}

// App is one process: its configuration, its shared collaborators and the
// modules its target needs.
type App struct {
	Config Config
	Log    *slog.Logger

	deps    Deps
	list    []Module
	modules map[string]Module
	targets map[string][]string
	order   []string
	http    *httpState
	closers []func() error
	running []started
	// state shared between modules, set by their inits.
	shared shared
}

type started struct {
	name string
	svc  Service
}

// Deps are what main hands in: the logger and the hooks tests use.
type Deps struct {
	Log *slog.Logger
	// LogLevel, when set, is changed by a reload.
	LogLevel *slog.LevelVar
	// Ready, when set, receives the HTTP server's address once it listens.
	Ready func(addr string)
	// Stdin is the collector's input for input type stdin.
	Stdin io.Reader
}

// New resolves cfg.Target into the modules to run, in start order. It
// opens nothing: Run does.
func New(cfg Config, deps Deps) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return newApp(cfg, deps, modules(), targets())
}

// newApp is New on a given module list and targets (tests use their own).
func newApp(cfg Config, deps Deps, list []Module, targets map[string][]string) (*App, error) {
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	a := &App{Config: cfg, Log: deps.Log, deps: deps, list: list, modules: map[string]Module{}, targets: targets, http: newHTTPState()}
	for _, m := range list {
		a.modules[m.Name] = m
	}
	order, err := a.resolve(cfg.Target)
	if err != nil {
		return nil, err
	}
	a.order = order
	return a, nil
}

// Modules returns the names of the modules a target runs, in start order.
func Modules(target string) ([]string, error) {
	a := &App{list: modules(), modules: map[string]Module{}, targets: targets()}
	for _, m := range a.list {
		a.modules[m.Name] = m
	}
	return a.resolve(target)
}

// Targets lists the targets a process can run.
func Targets() []string {
	ts := targets()
	names := make([]string, 0, len(ts))
	for t := range ts {
		names = append(names, t)
	}
	sort.Strings(names)
	return names
}

// Has reports whether the process runs module name.
func (a *App) Has(name string) bool { return slices.Contains(a.order, name) }

// OnClose registers a cleanup run when the process stops, after every
// service ended, in reverse order of registration.
func (a *App) OnClose(f func() error) { a.closers = append(a.closers, f) }

// resolve returns the modules of target (itself a module or a list of
// modules) with everything they depend on, dependencies first; modules
// that do not depend on each other keep the order of modules(), adjusted
// for After.
func (a *App) resolve(target string) ([]string, error) {
	roots, ok := a.targets[target]
	if !ok {
		return nil, fmt.Errorf("target %q: unknown; targets are %s", target, strings.Join(Targets(), ", "))
	}
	want := map[string]bool{}
	var add func(name string, path []string) error
	add = func(name string, path []string) error {
		m, ok := a.modules[name]
		if !ok {
			return fmt.Errorf("module %q (needed by %s): unknown", name, strings.Join(path, " → "))
		}
		if slices.Contains(path[1:], name) { // path[0] is the target
			return fmt.Errorf("module %q: dependency cycle %s", name, strings.Join(append(path, name), " → "))
		}
		if want[name] {
			return nil
		}
		want[name] = true
		for _, d := range m.Deps {
			if err := add(d, append(path, name)); err != nil {
				return err
			}
		}
		return nil
	}
	for _, r := range roots {
		if err := add(r, []string{target}); err != nil {
			return nil, err
		}
	}
	// Kahn's algorithm over Deps and the After edges inside the target,
	// taking ready modules in registration order.
	var names []string
	for _, m := range a.list {
		if want[m.Name] {
			names = append(names, m.Name)
		}
	}
	before := map[string][]string{}
	for _, n := range names {
		m := a.modules[n]
		for _, d := range m.Deps {
			before[n] = append(before[n], d)
		}
		for _, d := range m.After {
			if want[d] {
				before[n] = append(before[n], d)
			}
		}
	}
	done := map[string]bool{}
	var order []string
	for len(order) < len(names) {
		progress := false
		for _, n := range names {
			if done[n] {
				continue
			}
			ready := true
			for _, d := range before[n] {
				if !done[d] {
					ready = false
					break
				}
			}
			if ready {
				done[n] = true
				order = append(order, n)
				progress = true
				break
			}
		}
		if !progress {
			return nil, fmt.Errorf("target %q: modules order each other in a cycle", target)
		}
	}
	return order, nil
}

// Run initialises the target's modules in order, runs their services until
// ctx is cancelled or one of them ends, then stops them in reverse order:
// each Drainer drains first (bounded by the drain timeout), then its
// context is cancelled and Run waits for it to return. Cleanups run last.
func (a *App) Run(ctx context.Context) (err error) {
	if a.Config.Target == TargetAll {
		// The all-in-one's data directory holds every event and
		// keystroke, and what kfake and chDB write there they create
		// 0644: the process's files are its owner's only while it runs,
		// until its modules have closed (the broker writes its state
		// then).
		defer syscall.Umask(syscall.Umask(0o077))
	}
	defer func() { err = errors.Join(err, a.close()) }()
	for _, name := range a.order {
		m := a.modules[name]
		if m.Init == nil {
			continue
		}
		svc, err := m.Init(ctx, a)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if svc != nil {
			a.running = append(a.running, started{name: name, svc: svc})
		}
	}

	type handle struct {
		started
		cancel context.CancelFunc
		done   chan error
	}
	ended := make(chan string, len(a.running))
	handles := make([]*handle, 0, len(a.running))
	for _, s := range a.running {
		sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		h := &handle{started: s, cancel: cancel, done: make(chan error, 1)}
		go func() {
			h.done <- s.svc.Run(sctx)
			ended <- s.name
		}()
		handles = append(handles, h)
	}
	a.Log.Info("auditpipe running", "target", a.Config.Target, "modules", strings.Join(a.order, ","))

	var first string
	select {
	case <-ctx.Done():
		a.Log.Info("stopping", "target", a.Config.Target)
	case first = <-ended:
		a.Log.Error("a module stopped by itself; stopping the others", "module", first)
	}
	var errs []error
	for i := len(handles) - 1; i >= 0; i-- {
		h := handles[i]
		if d, ok := h.svc.(Drainer); ok && first == "" {
			dctx, cancel := context.WithTimeout(context.Background(), a.Config.DrainTimeout)
			if err := d.Drain(dctx); err != nil {
				errs = append(errs, fmt.Errorf("%s: drain: %w", h.name, err))
			}
			cancel()
		}
		h.cancel()
		if err := <-h.done; err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", h.name, err))
		}
	}
	return errors.Join(errs...)
}

// Reload applies cfg to every service that can take it. The target cannot
// change.
func (a *App) Reload(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Target != a.Config.Target {
		return fmt.Errorf("target: %q cannot change to %q without a restart", a.Config.Target, cfg.Target)
	}
	if a.deps.LogLevel != nil {
		a.deps.LogLevel.Set(cfg.Log.Level.Level())
	}
	var errs []error
	for _, s := range a.running {
		if r, ok := s.svc.(Reloader); ok {
			if err := r.Reload(cfg); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
			}
		}
	}
	a.Config = cfg
	return errors.Join(errs...)
}

func (a *App) close() error {
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		if err := a.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	a.closers = nil
	return errors.Join(errs...)
}

// waitFor polls cond every interval until it holds or ctx ends.
func waitFor(ctx context.Context, interval time.Duration, cond func() (bool, error)) error {
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
			}
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// resolvedConfig is the configuration with what the sections share
// filled in.
func (a *App) resolvedConfig() Config { return a.Config.resolved() }

// Registry is the process's metrics registry. An App runs once.
func (a *App) Registry() *prometheus.Registry { return a.http.registry }
