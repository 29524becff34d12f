package app

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse/chdb"
	"github.com/auditpipe/auditpipe/internal/testenv"
)

// TestAllInOneConnectionBounds: regression for review finding F5 (issue
// 9). Any local user holding thousands of idle connections to the
// all-in-one's HTTP listener (after a 401) or to its embedded broker's
// port (never sending a byte) took the process's file descriptors: chDB
// failed the admin's queries and the indexer's inserts with EMFILE. Now,
// with three times the configured limits held on both ports, the admin's
// query is answered, the collector's new lines are produced and indexed,
// and every held connection is closed within the configured timeouts.
func TestAllInOneConnectionBounds(t *testing.T) {
	if _, err := chdb.FindLibrary(""); err != nil {
		testenv.SkipOrFail(t, testenv.CHDB, "needs libchdb.so (run 'make deps'): %v", err)
	}
	const httpLimit, kafkaLimit = 8, 64
	dir := t.TempDir()
	log := filepath.Join(dir, "audit.log")
	first, second := sampleHalves(t)
	cfg := sampleConfig(dir, log)
	cfg.Collector.FlushInterval = 300 * time.Millisecond
	cfg.Server.MaxConnections = httpLimit
	cfg.Server.IdleTimeout = 500 * time.Millisecond
	cfg.Server.ReadHeaderTimeout = 500 * time.Millisecond
	cfg.Embedded.KafkaMaxConnections = kafkaLimit
	cfg.Embedded.KafkaAuthTimeout = 500 * time.Millisecond
	appendTo(t, log, first)
	r := start(t, cfg)
	const all = "SELECT count(), uniqExact(event_id) FROM audit_events WHERE event != 'chain'"
	waitCount(t, r, all, "10 10", 30*time.Second)

	u, err := url.Parse(r.url)
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range 3 * httpLimit {
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("held HTTP connection %d: %v", len(held), err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("without a credential: %d, want 401", resp.StatusCode)
		}
		c.SetDeadline(time.Time{})
	}
	broker := r.app.shared.broker.Brokers()[0]
	for range 3 * kafkaLimit {
		c, err := net.Dial("tcp", broker)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}

	if got := count(t, r, "SELECT 1"); got != "1" {
		t.Fatalf("the admin's query with %d connections held: %s", len(held), got)
	}
	appendTo(t, log, second)
	waitCount(t, r, all, "18 18", 30*time.Second)

	deadline := time.Now().Add(3 * time.Second)
	open := 0
	for _, c := range held {
		c.SetReadDeadline(deadline)
		var b [1]byte
		if _, err := c.Read(b[:]); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			open++
		}
	}
	if open > 0 {
		t.Errorf("%d of %d held connections still open, with timeouts of 500ms", open, len(held))
	}
	req, _ := http.NewRequest(http.MethodGet, r.url+"metrics", nil)
	req.Header.Set("Authorization", "Bearer "+string(r.token))
	_, body := status(t, req)
	for _, m := range []string{"auditpipe_http_connections_evicted_total", "auditpipe_http_connections_max 8",
		"auditpipe_kafka_embedded_connections_evicted_total", "auditpipe_kafka_embedded_connections_max 64"} {
		if !strings.Contains(body, m) {
			t.Errorf("/metrics has no %s", m)
		}
	}
	r.stop(t)
}
