package kafka_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/auditpipe/auditpipe/internal/connlimit/connlimittest"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/tlsconfig"
)

// securedBroker starts a secured embedded broker with the pipeline's
// topics and the connection bounds given.
func securedBroker(t *testing.T, maxConns int, authTimeout time.Duration) *kafka.Embedded {
	t.Helper()
	return securedBrokerIdle(t, maxConns, authTimeout, 0)
}

// securedBrokerIdle is securedBroker with an idle timeout (0: default).
func securedBrokerIdle(t *testing.T, maxConns int, authTimeout, idle time.Duration) *kafka.Embedded {
	t.Helper()
	dir := t.TempDir()
	e, err := kafka.NewEmbedded(kafka.EmbeddedConfig{
		Partitions:     1,
		CredentialsDir: filepath.Join(dir, "credentials"),
		TLSDir:         filepath.Join(dir, "tls"),
		MaxConnections: maxConns,
		AuthTimeout:    authTimeout,
		IdleTimeout:    idle,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Admin().EnsureTopics(ctx, kafka.PipelineTopics(1)...); err != nil {
		t.Fatal(err)
	}
	return e
}

// collectorWriter is a writer of the audit topic as the collector,
// closed when the test ends.
func collectorWriter(t *testing.T, e *kafka.Embedded) *kafka.Writer {
	t.Helper()
	w, err := e.Client(kafka.RoleCollector).NewWriter(kafka.TopicAudit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// brokerTLS is a client configuration trusting e's CA.
func brokerTLS(t *testing.T, e *kafka.Embedded) *tls.Config {
	t.Helper()
	tc, err := (tlsconfig.Config{Enabled: true, CAFile: e.CAFile()}).Build()
	if err != nil {
		t.Fatal(err)
	}
	tc.ServerName = "127.0.0.1"
	return tc
}

// apiVersions is an ApiVersions v0 request (allowed before SASL): size,
// key 18, version 0, correlation id 1, null client id.
func apiVersions() []byte {
	b := binary.BigEndian.AppendUint32(nil, 10)
	b = binary.BigEndian.AppendUint16(b, 18)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint32(b, 1)
	return binary.BigEndian.AppendUint16(b, 0xffff)
}

// peerClosed reports whether the broker closed c by deadline.
func peerClosed(c net.Conn, deadline time.Time) bool {
	c.SetReadDeadline(deadline)
	var b [512]byte
	for {
		if _, err := c.Read(b[:]); err != nil {
			return !errors.Is(err, os.ErrDeadlineExceeded)
		}
	}
}

// TestEmbeddedConnectionBounds: regression for review finding F5 (issue
// 9), through the embedded broker's port. Bare TCP connections (no TLS
// ClientHello) held to it stayed open for ever (2000 held 45 s: all
// open), in the fd table the all-in-one shares with chDB. Now, with N
// connections held, three times the limit, that never authenticate, the
// broker keeps at most the limit open (the oldest unauthenticated give
// way), a collector with its credentials still produces, and every held
// connection is closed within the authentication timeout.
func TestEmbeddedConnectionBounds(t *testing.T) {
	const limit, n = 8, 24
	const authTimeout = 300 * time.Millisecond
	for _, tc := range []struct {
		name string
		// hold opens one connection that does not authenticate.
		hold func(t *testing.T, addr string, tc *tls.Config) net.Conn
	}{
		{"sends nothing", func(t *testing.T, addr string, _ *tls.Config) net.Conn {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}},
		{"TLS, then nothing", func(t *testing.T, addr string, cfg *tls.Config) net.Conn {
			c, err := tls.Dial("tcp", addr, cfg)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}},
		{"TLS, ApiVersions without SASL", func(t *testing.T, addr string, cfg *tls.Config) net.Conn {
			c, err := tls.Dial("tcp", addr, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(apiVersions()); err != nil {
				t.Fatal(err)
			}
			return c
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := securedBroker(t, limit, authTimeout)
			addr := e.Brokers()[0]
			cli := brokerTLS(t, e)
			base := connlimittest.OpenFiles(t)
			held := make([]net.Conn, 0, n)
			defer func() {
				for _, c := range held {
					c.Close()
				}
			}()
			for range n {
				held = append(held, tc.hold(t, addr, cli))
			}
			time.Sleep(50 * time.Millisecond)
			if got, max := connlimittest.OpenFiles(t)-base-n, limit+2; got > max {
				t.Errorf("%d connections held: the process has %d more files than the clients' %d, want at most %d", n, got+n, n, max)
			}
			cs := e.ConnectionCollectors()
			if got := testutil.ToFloat64(cs[2]); got < n-limit {
				t.Errorf("auditpipe_kafka_embedded_connections_evicted_total = %v, want at least %d", got, n-limit)
			}
			if got := testutil.ToFloat64(cs[0]); got > limit {
				t.Errorf("auditpipe_kafka_embedded_connections_open = %v, want at most %d", got, limit)
			}
			if err := prometheus.NewRegistry().Register(cs[2]); err != nil {
				t.Errorf("the broker's metrics do not register: %v", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			w := collectorWriter(t, e)
			if err := w.Write(ctx, kafka.Record{Value: []byte("x")}); err != nil {
				t.Fatalf("produce as the collector with %d unauthenticated connections held: %v", n, err)
			}
			deadline := time.Now().Add(2 * time.Second)
			open := 0
			for _, c := range held {
				if !peerClosed(c, deadline) {
					open++
				}
			}
			if open > 0 {
				t.Errorf("%d of %d unauthenticated connections still open 2s after, with an authentication timeout of %v", open, n, authTimeout)
			}
			// The collector still produces after the timeout and as many
			// newcomers again.
			for range n {
				held = append(held, tc.hold(t, addr, cli))
			}
			time.Sleep(2 * authTimeout)
			if err := w.Write(ctx, kafka.Record{Value: []byte("y")}); err != nil {
				t.Fatalf("the collector's second produce, after the timeout and %d newcomers: %v", n, err)
			}
		})
	}
}

// TestEmbeddedRefusesLargeRequestBeforeAuth: the broker allocates what a
// request's size says before it looks at the request; before
// authentication a request over 4 MiB closes the connection at once.
func TestEmbeddedRefusesLargeRequestBeforeAuth(t *testing.T) {
	e := securedBroker(t, 8, 5*time.Second)
	c, err := tls.Dial("tcp", e.Brokers()[0], brokerTLS(t, e))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hdr := binary.BigEndian.AppendUint32(nil, 64<<20)
	hdr = binary.BigEndian.AppendUint16(hdr, 0) // produce
	if _, err := c.Write(hdr); err != nil {
		t.Fatal(err)
	}
	if !peerClosed(c, time.Now().Add(time.Second)) {
		t.Fatal("a 64 MiB request before authentication: the connection is still open")
	}
}

// TestEmbeddedClosesIdleAuthenticatedConnections: review finding (issue
// 9): a holder of Kafka credentials kept authenticated connections open
// for ever (no idle timeout after SASL). Now one that sends nothing for
// the idle timeout is closed, as Kafka's connections.max.idle.ms does,
// and the client reconnects for its next request.
func TestEmbeddedClosesIdleAuthenticatedConnections(t *testing.T) {
	const idle = 500 * time.Millisecond
	e := securedBrokerIdle(t, 8, 5*time.Second, idle)
	open := e.ConnectionCollectors()[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w := collectorWriter(t, e)
	if err := w.Write(ctx, kafka.Record{Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(open); n < 1 {
		t.Fatalf("%v connections open after a produce, want the producer's", n)
	}
	deadline := time.Now().Add(idle + 3*time.Second)
	for testutil.ToFloat64(open) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%v authenticated connections still open %v after the producer's last request, idle timeout %v", testutil.ToFloat64(open), idle+3*time.Second, idle)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := w.Write(ctx, kafka.Record{Value: []byte("y")}); err != nil {
		t.Fatalf("produce after the idle connection was closed: %v", err)
	}
}
