package app

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/schemas"
)

// logBuffer is a log the test reads: every line, also passed to t.Log.
type logBuffer struct {
	t     *testing.T
	lines chan string
	all   syncLines
}

type syncLines struct {
	mu    chan struct{}
	lines []string
}

func newLogBuffer(t *testing.T) *logBuffer {
	return &logBuffer{t: t, all: syncLines{mu: make(chan struct{}, 1)}}
}

// waitLines waits until n lines match re.
func (l *logBuffer) waitLines(t *testing.T, re *regexp.Regexp, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for len(l.matching(re)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d lines matching %s after %v, want %d", len(l.matching(re)), re, timeout, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (l *logBuffer) Write(b []byte) (int, error) {
	s := strings.TrimSpace(string(b))
	l.t.Log(s)
	l.all.mu <- struct{}{}
	l.all.lines = append(l.all.lines, s)
	<-l.all.mu
	return len(b), nil
}

// matching returns the lines that match re.
func (l *logBuffer) matching(re *regexp.Regexp) []string {
	l.all.mu <- struct{}{}
	defer func() { <-l.all.mu }()
	var out []string
	for _, s := range l.all.lines {
		if re.MatchString(s) {
			out = append(out, s)
		}
	}
	return out
}

// distinctEvents reads the audit topic from the start until it has seen
// want distinct event ids (a batch retried after a failure may be there
// twice: consumers dedup by event id), or 60s passed, and returns them.
func distinctEvents(t *testing.T, kc kafka.Config, want int) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	ids := map[string]bool{}
	var bad error
	f, err := kc.NewFollower(kafka.FollowerConfig{Topic: schemas.TopicAudit, MaxWait: 100 * time.Millisecond, Apply: func(r kafka.Record) error {
		var e schemas.Event
		mu.Lock()
		defer mu.Unlock()
		if err := json.Unmarshal(r.Value, &e); err != nil {
			bad = err
		}
		ids[e.EventID] = true
		if len(ids) >= want {
			cancel()
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Run(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if bad != nil {
		t.Fatalf("bad event in Kafka: %v", bad)
	}
	return maps.Clone(ids)
}

// The collector target alone against a real Apache Kafka broker: started
// before the broker and before any topic exists, then through a broker
// restart (SIGKILL). Nothing is lost, it recovers by itself (the topics
// are created by the target), and each outage is one log line, its
// recovery one more, never a line per retry.
func TestCollectorTargetSurvivesApacheKafka(t *testing.T) {
	a := kafkatest.NewApache(t, 1)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "audit.log")
	first, second := sampleHalves(t)
	appendTo(t, logPath, first)

	cfg := sampleConfig(dir, logPath)
	cfg.Target = TargetCollector
	cfg.Server.HTTPAddr = "off"
	cfg.Kafka = a.Config
	cfg.Kafka.Topics.Partitions = 1
	cfg.Collector.StateDir = filepath.Join(dir, "state")
	cfg.Collector.FlushInterval = 200 * time.Millisecond
	cfg.Collector.ProduceTimeout = 2 * time.Second
	cfg.Collector.GrantKeys = []string{grantKeyFile(t, dir)} // a separate collector names whom it trusts
	logs := newLogBuffer(t)
	app, err := New(cfg, Deps{Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("collector target stopped with: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("collector target did not stop in 60s")
		}
	}()

	// No broker for a while: the target waits and retries quietly.
	time.Sleep(5 * time.Second)
	a.Start(t)
	if n := len(distinctEvents(t, a.Config, 10)); n != 10 {
		t.Fatalf("%d distinct events after the broker came, want 10", n)
	}
	// The first outage is over once a push succeeded (a push that ran out
	// of time may have landed all the same, so the events in Kafka do not
	// say so): only then is the second outage a second one.
	push := "pushing to Kafka (batches go to the spool meanwhile)"
	pushRecovered := regexp.MustCompile(regexp.QuoteMeta(push) + ` recovered`)
	logs.waitLines(t, pushRecovered, 1, 60*time.Second)

	// The broker dies and comes back while events are appended.
	a.Kill(t)
	appendTo(t, logPath, second)
	time.Sleep(3 * time.Second) // a few flushes fail, into the spool
	a.Start(t)
	ids := distinctEvents(t, a.Config, 18)
	if len(ids) != 18 {
		t.Fatalf("%d distinct events after the restart, want 18", len(ids))
	}
	logs.waitLines(t, pushRecovered, 2, 60*time.Second)

	// One line when each thing failed first, one when it recovered; not
	// one per retry (the target was retrying for seconds each time).
	failed := logs.matching(regexp.MustCompile(`failed; retrying with backoff`))
	recovered := logs.matching(regexp.MustCompile(`msg="[^"]* recovered"`))
	if len(failed) == 0 || len(recovered) == 0 {
		t.Fatalf("no outage or recovery logged (%d, %d lines)", len(failed), len(recovered))
	}
	perWhat := map[string]int{}
	whatRe := regexp.MustCompile(`msg="([^"]*?) (failed; retrying|recovered)`)
	for _, l := range append(failed, recovered...) {
		m := whatRe.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("unexpected line: %s", l)
		}
		perWhat[m[1]+" / "+m[2]]++
	}
	for k, n := range perWhat {
		// Two outages at most (before the broker, its restart).
		if n > 2 {
			t.Errorf("%q logged %d times, want one per outage", k, n)
		}
	}
	// The pushes failed twice (no topic yet at start: the target creates
	// it; the restart), each time one line, and recovered twice.
	if perWhat[push+" / failed; retrying"] != 2 || perWhat[push+" / recovered"] != 2 {
		t.Errorf("the pushes' two outages: %d failure and %d recovery lines, want 2 and 2",
			perWhat[push+" / failed; retrying"], perWhat[push+" / recovered"])
	}
	topics := "creating the Kafka topics"
	if perWhat[topics+" / failed; retrying"] != 1 || perWhat[topics+" / recovered"] != 1 {
		t.Errorf("creating the topics while the broker was away: %d failure and %d recovery lines, want 1 and 1",
			perWhat[topics+" / failed; retrying"], perWhat[topics+" / recovered"])
	}
	if n := len(logs.matching(regexp.MustCompile(`level=(WARN|ERROR)`))); n > 12 {
		t.Errorf("%d warning or error lines for two outages, want a handful", n)
	}
}
