package app

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/chdb"
	"github.com/auditpipe/auditpipe/forwarder"
	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/siemtest"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/internal/testenv"
	"github.com/auditpipe/auditpipe/queryapi"
	"github.com/auditpipe/auditpipe/verify"
)

// sampleHalves splits the bundled sample log at an event boundary.
func sampleHalves(t *testing.T) (first, second string) {
	t.Helper()
	b, err := os.ReadFile("../../deploy/sample/audit.log")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	mid := len(lines) / 2
	for !strings.Contains(lines[mid-1], "type=EOE") {
		mid++
	}
	return strings.Join(lines[:mid], ""), strings.Join(lines[mid:], "")
}

// sampleConfig runs the all-in-one (target all) on log, in dir, with the
// bundled sample's users and grants.
func sampleConfig(dir, log string) Config {
	cfg := DefaultConfig()
	cfg.Target = TargetAll
	cfg.Embedded.DataDir = filepath.Join(dir, "data")
	cfg.Collector.Input.Path = log
	cfg.Collector.Host = "cell01"
	cfg.Collector.Passwd = "../../deploy/sample/passwd"
	cfg.Collector.Group = "../../deploy/sample/group"
	cfg.Collector.Grants = map[string]string{
		"830916abb78e4157b9e45b641e34fcf6": "req1",
		"5f1c0e9d2a7b4c3e8d6f0a1b2c3d4e5f": "req2",
	}
	cfg.Server.HTTPAddr = "127.0.0.1:0"
	cfg.Embedded.KafkaListen = "127.0.0.1:0"
	return cfg
}

func appendTo(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	w.WriteString(text)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

type running struct {
	url    string
	token  config.Secret
	app    *App
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, cfg Config) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	a, err := New(cfg, Deps{Log: slog.New(slog.NewTextHandler(testLog{t}, nil)), Ready: func(s string) { addr <- s }})
	if err != nil {
		t.Fatal(err)
	}
	r := &running{cancel: cancel, done: make(chan error, 1), app: a}
	go func() {
		r.done <- a.Run(ctx)
	}()
	select {
	case a := <-addr:
		r.url = fmt.Sprintf("http://%s/", a)
		tok, err := os.ReadFile(filepath.Join(cfg.Embedded.DataDir, auth.AdminTokenName))
		if err != nil {
			t.Fatalf("the admin token created on first start: %v", err)
		}
		r.token = config.Secret(strings.TrimSpace(string(tok)))
	case err := <-r.done:
		t.Fatalf("all-in-one did not start: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("all-in-one did not start in 60s")
	}
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop is what SIGTERM does (the binary maps it to this cancellation).
func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("all-in-one stopped with: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("all-in-one did not stop in 60s")
	}
}

type testLog struct{ t *testing.T }

func (w testLog) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func recordsRead(t *testing.T, a *App) float64 {
	mfs, err := a.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "auditpipe_collector_records_read_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

func count(t *testing.T, r *running, sql string) string {
	t.Helper()
	res, err := (&queryapi.HTTPClient{URL: r.url, Token: r.token}).Query(context.Background(), sql)
	if err != nil {
		return "error: " + err.Error()
	}
	if len(res.Rows) != 1 {
		return fmt.Sprintf("%d rows", len(res.Rows))
	}
	return strings.TrimSpace(fmt.Sprintln(res.Rows[0]...))
}

func waitCount(t *testing.T, r *running, sql, want string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	got := ""
	for time.Now().Before(deadline) {
		if got = count(t, r, sql); got == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s = %q after %v, want %q", sql, got, d, want)
}

// TestAllInOne follows an audit log end to end: lines appended are
// queryable after the flush interval; a stop (SIGTERM) right after more
// lines were appended flushes, indexes and commits them; a restart
// neither loses nor doubles anything.
func TestAllInOne(t *testing.T) {
	if _, err := chdb.FindLibrary(""); err != nil {
		testenv.SkipOrFail(t, testenv.CHDB, "needs libchdb.so (run 'make deps'): %v", err)
	}
	dir := t.TempDir()
	log := filepath.Join(dir, "audit.log")
	first, second := sampleHalves(t)
	cfg := sampleConfig(dir, log)
	cfg.Collector.FlushInterval = 300 * time.Millisecond
	cfg.Collector.Layer = "CELL"
	appendTo(t, log, first)
	r := start(t, cfg)
	const all = "SELECT count(), uniqExact(event_id) FROM audit_events WHERE event != 'chain'"
	waitCount(t, r, all, "10 10", 30*time.Second)

	// Appended lines become queryable after the flush interval.
	appendTo(t, log, second)
	waitCount(t, r, all, "18 18", 30*time.Second)

	// More lines, then a stop at once: the last batch is flushed, indexed
	// and committed on the way out.
	more := strings.ReplaceAll(second, "audit(1795600", "audit(1795700")
	appendTo(t, log, more)
	lines := strings.Count(first+second+more, "\n")
	deadline := time.Now().Add(10 * time.Second)
	for recordsRead(t, r.app) < float64(lines) {
		if time.Now().After(deadline) {
			t.Fatalf("collector read %v of %d lines", recordsRead(t, r.app), lines)
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.stop(t)
	// The process is gone: open its store directly. The batch read just
	// before the stop was pushed, indexed and committed on the way out.
	eng, err := clickhouse.OpenEmbedded("", filepath.Join(cfg.Embedded.DataDir, "chdb"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := eng.Query(context.Background(), all)
	eng.Close()
	if err != nil || len(res.Rows) != 1 || strings.TrimSpace(fmt.Sprintln(res.Rows[0]...)) != "26 26" {
		t.Fatalf("after stop: %v %v, want 26 26", res, err)
	}

	r = start(t, cfg)
	waitCount(t, r, all, "26 26", 30*time.Second)
	// Nothing more arrives later: no event is read twice after the restart.
	time.Sleep(4 * cfg.Collector.FlushInterval)
	if got := count(t, r, all); got != "26 26" {
		t.Fatalf("after restart: %s, want 26 26", got)
	}
	if got := count(t, r, "SELECT count() FROM audit_events WHERE req_auth_id = 'req2' AND event = 'command'"); got != "8" {
		t.Errorf("req2 commands: %s, want 8", got)
	}
	r.stop(t)
}

// TestAllInOneSIEM runs the all-in-one with --siem against a real rsyslog
// over TLS: every audited event of the sample arrives, and is also in
// ClickHouse.
func TestAllInOneSIEM(t *testing.T) {
	if _, err := chdb.FindLibrary(""); err != nil {
		testenv.SkipOrFail(t, testenv.CHDB, "needs libchdb.so (run 'make deps'): %v", err)
	}
	dir := t.TempDir()
	ca := siemtest.NewCA(t, dir, "siem-ca")
	cert, key := ca.Issue(t, dir, "siem", siemtest.CertOptions{})
	rs := siemtest.StartRsyslog(t, siemtest.RsyslogOptions{CA: ca, CertFile: cert, KeyFile: key})

	log := filepath.Join(dir, "audit.log")
	b, err := os.ReadFile("../../deploy/sample/audit.log")
	if err != nil {
		t.Fatal(err)
	}
	appendTo(t, log, string(b))
	cfg := sampleConfig(dir, log)
	cfg.Collector.FlushInterval = 200 * time.Millisecond
	cfg.Forwarder.Destinations = []forwarder.Destination{{Address: rs.Addr, TLS: forwarder.TLS{CAFile: ca.CertPEM}}}
	r := start(t, cfg)
	msgs := rs.WaitMessages(t, 18, 30*time.Second)
	waitCount(t, r, "SELECT count() FROM audit_events WHERE event != 'chain'", "18", 30*time.Second)
	r.stop(t)
	msgs = rs.Messages(t)
	ids := map[string]bool{}
	var file strings.Builder
	for _, m := range msgs {
		i := strings.Index(m, `event_id="`)
		if i < 0 || !strings.Contains(m, " opctl ") {
			t.Fatalf("not an auditpipe message: %q", m)
		}
		if !strings.Contains(m, `event="chain"`) {
			ids[m[i+10:i+42]] = true
		}
		line, _ := json.Marshal(map[string]string{"raw": m})
		file.Write(line)
		file.WriteByte('\n')
	}
	if len(ids) != 18 {
		t.Fatalf("%d distinct events at the SIEM, want 18", len(ids))
	}
	// Issue 9: the SIEM's copy verifies: the chain, and the checkpoints
	// signed with the key the all-in-one made in its data directory.
	ring, err := sign.LoadKeyring(filepath.Join(cfg.Embedded.DataDir, "chain.key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	keys := ring.Keys()
	if fi, err := os.Stat(filepath.Join(cfg.Embedded.DataDir, "chain.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("chain.key: %v %v, want mode 0600", fi.Mode(), err)
	}
	recs, finds, _, err := verify.LoadSyslog(strings.NewReader(file.String()))
	if err != nil {
		t.Fatal(err)
	}
	rep := verify.Check(recs, nil, verify.Options{Keys: keys, FileOrder: true})
	rep.AddFindings(finds)
	var out strings.Builder
	_ = rep.Write(&out)
	valid := 0
	for _, h := range rep.Hosts {
		valid += h.Valid
	}
	if !rep.Intact() || valid == 0 {
		t.Errorf("the SIEM's copy does not verify (%d valid checkpoints):\n%s", valid, out.String())
	}
}
