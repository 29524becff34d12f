package httpserve

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/internal/connlimit/connlimittest"
	"github.com/auditpipe/auditpipe/internal/tlsconfig"
)

// metric returns the value of the metric named name in reg (-1 when
// there is none).
func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	return -1
}

// guarded answers 200 to the bearer token "good" and 401 to anyone else,
// as the process's authenticator does.
var guarded = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer good" {
		http.Error(w, "401 unauthorized", http.StatusUnauthorized)
		return
	}
	io.WriteString(w, "ok")
})

// server runs RunTLS with opt (with TLS when tc is set) for the test's
// life and returns its address.
func server(t *testing.T, tc *tls.Config, opt Options, h http.Handler) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	errc := make(chan error, 1)
	go func() { errc <- RunTLS(ctx, "127.0.0.1:0", tc, opt, h, nil, func(a net.Addr) { addrc <- a.String() }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("RunTLS: %v", err)
		}
	})
	return <-addrc
}

// testTLS returns a server and a client configuration trusting it.
func testTLS(t *testing.T) (srv, cli *tls.Config) {
	t.Helper()
	ss, _, err := tlsconfig.EnsureSelfSigned(t.TempDir(), "httpserve test", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if srv, err = tlsconfig.Server(ss.CertFile, ss.KeyFile, ""); err != nil {
		t.Fatal(err)
	}
	if cli, err = (tlsconfig.Config{Enabled: true, CAFile: ss.CAFile}).Build(); err != nil {
		t.Fatal(err)
	}
	cli.ServerName = "127.0.0.1"
	return srv, cli
}

// dial connects, with TLS (handshake done) when cli is set.
func dial(t *testing.T, addr string, cli *tls.Config) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if cli != nil {
		tc := tls.Client(c, cli)
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			t.Fatalf("TLS handshake: %v", err)
		}
		tc.SetDeadline(time.Time{})
		c = tc
	}
	return c
}

// getUnauthorized sends a request without a credential on c and reads
// its 401, leaving c open as a keep-alive client does.
func getUnauthorized(c net.Conn) error {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("status %d, want 401", resp.StatusCode)
	}
	return nil
}

// TestIdleConnectionsAreClosed: regression for review finding F5 (issue
// 9). Any local user could hold thousands of connections to the
// listener, idle after a 401 (no IdleTimeout: kept for ever) or never
// sending a request, and take the process's file descriptors from chDB.
// Now, with N connections held, three times the limit, the server keeps
// at most the limit open (the oldest idle ones give way), a client with
// a credential is still answered at once, and every held connection is
// closed within the idle (or header) timeout.
func TestIdleConnectionsAreClosed(t *testing.T) {
	const limit, n = 8, 24
	opt := Options{ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond, MaxConnections: limit}
	srvTLS, cliTLS := testTLS(t)
	for _, tc := range []struct {
		name string
		tls  bool
		// request: each held connection gets its 401 first; else it
		// sends nothing (half-open; with TLS, not even a ClientHello).
		request bool
	}{
		{"idle after 401", false, true},
		{"idle after 401, TLS", true, true},
		{"sends nothing", false, false},
		{"sends nothing, TLS", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stc, ctc *tls.Config
			if tc.tls {
				stc, ctc = srvTLS, cliTLS
			}
			addr := server(t, stc, opt, guarded)
			base := connlimittest.OpenFiles(t)
			held := make([]net.Conn, 0, n)
			defer func() {
				for _, c := range held {
					c.Close()
				}
			}()
			for range n {
				var c net.Conn
				if tc.request {
					// Each one is answered before the next connects
					// (and, past the limit, evicts the oldest).
					c = dial(t, addr, ctc)
					if err := getUnauthorized(c); err != nil {
						t.Fatalf("held connection %d: %v", len(held), err)
					}
				} else {
					var err error
					if c, err = net.Dial("tcp", addr); err != nil {
						t.Fatal(err)
					}
				}
				held = append(held, c)
			}
			time.Sleep(50 * time.Millisecond)
			// The server's side of the held connections: at most the
			// limit (n client sockets are the test's own).
			if got, max := connlimittest.OpenFiles(t)-base-n, limit+2; got > max {
				t.Errorf("%d connections held: the process has %d more files than the clients' %d, want at most %d", n, got+n, n, max)
			}
			client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: ctc}}
			defer client.CloseIdleConnections()
			scheme := "http"
			if tc.tls {
				scheme = "https"
			}
			req, _ := http.NewRequest(http.MethodGet, scheme+"://"+addr+"/metrics", nil)
			req.Header.Set("Authorization", "Bearer good")
			start := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("an authenticated request with %d connections held: %v", n, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(body) != "ok" {
				t.Fatalf("authenticated request: %d %q", resp.StatusCode, body)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("authenticated request took %v with %d connections held", d, n)
			}
			deadline := time.Now().Add(2 * time.Second)
			open := 0
			for _, c := range held {
				if !connlimittest.ClosedBy(c, deadline) {
					open++
				}
			}
			if open > 0 {
				t.Errorf("%d of %d held connections still open 2s after, with timeouts of 300ms", open, n)
			}
		})
	}
}

// TestConnectionLimitRefusesWhenBusy: when every connection is in a
// request, a new one is closed at once (not queued behind the busy ones,
// and none of them is cut), and is served again once one ends.
func TestConnectionLimitRefusesWhenBusy(t *testing.T) {
	const limit = 4
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "ok")
	})
	reg := prometheus.NewRegistry()
	addr := server(t, nil, Options{MaxConnections: limit, Metrics: reg}, h)
	errc := make(chan error, limit)
	for range limit {
		go func() {
			resp, err := http.Get("http://" + addr + "/slow")
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
	}
	time.Sleep(200 * time.Millisecond)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if !connlimittest.ClosedBy(c, time.Now().Add(time.Second)) {
		t.Error("a connection over the limit of busy ones was not closed")
	}
	for name, want := range map[string]float64{
		"auditpipe_http_connections_open":          limit,
		"auditpipe_http_connections_max":           limit,
		"auditpipe_http_connections_refused_total": 1,
		"auditpipe_http_connections_evicted_total": 0,
	} {
		if got := metric(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	close(release)
	for range limit {
		if err := <-errc; err != nil {
			t.Errorf("a busy request was cut: %v", err)
		}
	}
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("after the busy requests ended: %v", err)
	}
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
}

// TestReadTimeout: a request body trickled slower than ReadTimeout is
// cut, while an answer streamed after its body was read lasts past it
// with its context alive (net/http lifts the read deadline when the body
// ends: the read timeout is safe for the query endpoint's streams).
func TestReadTimeout(t *testing.T) {
	const rt = 300 * time.Millisecond
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, "body: "+err.Error(), http.StatusRequestTimeout)
			return
		}
		if r.URL.Path == "/stream" {
			for range 6 {
				select {
				case <-r.Context().Done():
					return
				case <-time.After(rt / 2):
				}
				io.WriteString(w, "row\n")
				w.(http.Flusher).Flush()
			}
		}
		io.WriteString(w, "done\n")
	})
	addr := server(t, nil, Options{ReadTimeout: rt}, h)
	t.Run("slow body", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
		for range 10 {
			if _, err := io.WriteString(c, "x"); err != nil {
				break
			}
			time.Sleep(rt / 3)
		}
		// The server has given up on the body by now: it answers (408)
		// or has closed, rather than wait for the 90 bytes missing.
		c.SetReadDeadline(time.Now().Add(time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			t.Fatal("a body trickled for 3s (and never finished) still held its request, with a read timeout of 300ms")
		case err == nil:
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Fatal("a body that never finished was read whole")
			}
		}
	})
	t.Run("stream after body", func(t *testing.T) {
		resp, err := http.Post("http://"+addr+"/stream", "text/plain", strings.NewReader("SELECT 1"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || strings.Count(string(b), "row\n") != 6 || !strings.HasSuffix(string(b), "done\n") {
			t.Fatalf("a 900ms stream after its body, read timeout 300ms: %q, %v", b, err)
		}
		http.DefaultClient.CloseIdleConnections()
	})
}
