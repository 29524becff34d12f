package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/httpserve"
)

// httpState is the process's one mux and metrics registry: /metrics (with
// build info, Go and process collectors), /-/healthy, /-/ready, and what
// the modules add.
type httpState struct {
	mux      *http.ServeMux
	registry *prometheus.Registry
	// auth checks every request but the probes'; set by the server module
	// before the other modules add their handlers.
	auth *auth.Authenticator
	tls  *tls.Config

	mu     sync.Mutex
	checks map[string]func(context.Context) error
}

func newHTTPState() *httpState {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewBuildInfoCollector(),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	h := &httpState{mux: http.NewServeMux(), registry: reg, checks: map[string]func(context.Context) error{}}
	h.mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "healthy")
	})
	h.mux.HandleFunc("GET /-/ready", h.ready)
	return h
}

// handle serves pattern to requests authenticated with one of roles (or
// admin).
func (h *httpState) handle(pattern string, handler http.Handler, roles ...string) {
	if h.auth == nil {
		// No server module: nothing is served, and nothing may be served
		// unauthenticated by mistake.
		return
	}
	h.mux.Handle(pattern, h.auth.Require(handler, roles...))
}

// handleSigned serves pattern with a handler that authenticates its
// visitors itself, with the process's authenticator, through a session it
// started by it (the web console's cookie). Like handle, nothing is served
// without the server module's authenticator.
func (h *httpState) handleSigned(pattern string, handler func(*auth.Authenticator) (http.Handler, error)) error {
	if h.auth == nil {
		return nil
	}
	hh, err := handler(h.auth)
	if err != nil {
		return err
	}
	h.mux.Handle(pattern, hh)
	return nil
}

// check adds a readiness check: /-/ready answers 200 only when every check
// passes.
func (h *httpState) check(name string, f func(context.Context) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks[name] = f
}

// readiness runs every check, each bounded by timeout, and returns the
// failures by name.
func (h *httpState) readiness(ctx context.Context, timeout time.Duration) map[string]error {
	h.mu.Lock()
	checks := make(map[string]func(context.Context) error, len(h.checks))
	for n, f := range h.checks {
		checks[n] = f
	}
	h.mu.Unlock()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		fail = map[string]error{}
	)
	for n, f := range checks {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			if err := f(cctx); err != nil {
				mu.Lock()
				fail[n] = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return fail
}

func (h *httpState) ready(w http.ResponseWriter, r *http.Request) {
	fail := h.readiness(r.Context(), 2*time.Second)
	if len(fail) == 0 {
		fmt.Fprintln(w, "ready")
		return
	}
	names := make([]string, 0, len(fail))
	for n := range fail {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s: %v\n", n, fail[n])
	}
	http.Error(w, "not ready\n"+b.String(), http.StatusServiceUnavailable)
}

func (h *httpState) serve(ctx context.Context, addr string, opt httpserve.Options, log *slog.Logger, ready func(string)) error {
	opt.Metrics = h.registry
	return httpserve.RunTLS(ctx, addr, h.tls, opt, h.mux, log, func(a net.Addr) {
		if ready != nil {
			ready(a.String())
		}
	})
}
