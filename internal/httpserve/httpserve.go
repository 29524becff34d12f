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

	"github.com/auditpipe/auditpipe/internal/connlimit"
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

// Options bound what a client can hold on the listener. A zero field
// takes its default.
type Options struct {
	// ReadHeaderTimeout bounds the wait for a request's headers from the
	// first byte, the TLS handshake included, and for the first request
	// of a new connection from its accept: a client that connects and
	// sends nothing is closed after it. Default 10s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds the reading of a request, headers and body,
	// from its first byte (http.Server.ReadTimeout). It does not bound
	// the answer: net/http lifts the read deadline once the body has been
	// read, so a streamed answer (a query's rows, the console's event
	// stream) may last longer (TestReadTimeout). Default 60s.
	ReadTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends no new
	// request for this long. Default 60s.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header. Default 64 KiB.
	MaxHeaderBytes int
	// MaxConnections is the most connections open at once. At the limit
	// a new connection closes the oldest idle one (or one that has not
	// sent its request yet); it is refused only when every open one is
	// in a request. Default 1024, and never more than a quarter of the
	// process's RLIMIT_NOFILE (connlimit.Cap).
	MaxConnections int
	// Metrics, when set, receives the listener's
	// auditpipe_http_connections_{open,max,evicted_total,refused_total}
	// for as long as it serves.
	Metrics prometheus.Registerer
}

// Defaults of Options.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 60 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultMaxConnections    = 1024
)

// WithDefaults returns o with every zero field set to its default.
func (o Options) WithDefaults() Options {
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	return o
}

// Run listens on addr and serves h until ctx is cancelled, then shuts down
// gracefully: requests in flight get streamGrace to finish, then their
// contexts are cancelled. ready, when not nil, receives the bound address
// (useful with port 0) and is the caller's to log; without it Run logs
// the address.
func Run(ctx context.Context, addr string, h http.Handler, log *slog.Logger, ready func(net.Addr)) error {
	return RunTLS(ctx, addr, nil, Options{}, h, log, ready)
}

// RunTLS is Run with TLS on the listener when tc is not nil, and the
// bounds of opt.
func RunTLS(ctx context.Context, addr string, tc *tls.Config, opt Options, h http.Handler, log *slog.Logger, ready func(net.Addr)) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opt = opt.WithDefaults()
	if nofile, err := connlimit.FileLimit(); err != nil {
		log.Warn("http: cannot read the file limit; the connection limit is not checked against it", "err", err)
	} else if c := connlimit.Cap(nofile); opt.MaxConnections > c {
		log.Warn("http: connection limit lowered to a quarter of RLIMIT_NOFILE",
			"configured", opt.MaxConnections, "limit", c, "rlimit_nofile", nofile)
		opt.MaxConnections = c
	}
	raw, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("http: listen %s: %w", addr, err)
	}
	lim := connlimit.New(raw, opt.MaxConnections)
	if opt.Metrics != nil {
		cs := lim.Collectors("auditpipe_http")
		for _, c := range cs {
			if err := opt.Metrics.Register(c); err != nil {
				raw.Close()
				return fmt.Errorf("http: metrics: %w", err)
			}
			defer opt.Metrics.Unregister(c)
		}
	}
	var ln net.Listener = lim
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	if ready != nil {
		ready(ln.Addr())
	}
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	srv := &http.Server{
		Handler:           h,
		ReadTimeout:       opt.ReadTimeout,
		ReadHeaderTimeout: opt.ReadHeaderTimeout,
		IdleTimeout:       opt.IdleTimeout,
		MaxHeaderBytes:    opt.MaxHeaderBytes,
		ConnState:         markEvictable,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if ready == nil {
		log.Info("http listening", "addr", ln.Addr().String(), "max_connections", opt.MaxConnections)
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

// markEvictable lets a newer connection close one that is idle between
// requests or has not begun one, never one in a request.
func markEvictable(nc net.Conn, s http.ConnState) {
	c := connlimit.Of(nc)
	if c == nil {
		return
	}
	switch s {
	case http.StateActive:
		c.SetEvictable(false)
	case http.StateIdle:
		c.SetEvictable(true)
	}
}
