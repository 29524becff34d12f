// Package httpserve runs an HTTP server for the life of a context: the
// /metrics endpoint every component has, and the all-in-one's query API.
package httpserve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MetricsHandler returns a mux serving reg on /metrics.
func MetricsHandler(reg *prometheus.Registry) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux
}

// streamGrace is how long a shutdown lets the requests in flight finish
// before it cancels their contexts: long-lived responses (server-sent
// events, a slow query) end then, instead of holding the shutdown until
// its deadline.
const streamGrace = time.Second

// Run listens on addr and serves h until ctx is cancelled, then shuts down
// gracefully: requests in flight get streamGrace to finish, then their
// contexts are cancelled. ready, when not nil, receives the bound address
// (useful with port 0) and is the caller's to log; without it Run logs
// the address.
func Run(ctx context.Context, addr string, h http.Handler, log *slog.Logger, ready func(net.Addr)) error {
	return RunTLS(ctx, addr, nil, h, log, ready)
}

// RunTLS is Run with TLS on the listener when tc is not nil.
func RunTLS(ctx context.Context, addr string, tc *tls.Config, h http.Handler, log *slog.Logger, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("http: listen %s: %w", addr, err)
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	if ready != nil {
		ready(ln.Addr())
	}
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return base }}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if log != nil && ready == nil {
		log.Info("http listening", "addr", ln.Addr().String())
	}
	select {
	case err := <-errc:
		return fmt.Errorf("http: serve: %w", err)
	case <-ctx.Done():
	}
	stop := time.AfterFunc(streamGrace, cancelBase)
	defer stop.Stop()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("http: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http: serve: %w", err)
	}
	return nil
}
