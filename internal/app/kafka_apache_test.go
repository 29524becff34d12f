package app

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse/chdb"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/forwarder"
	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/siemtest"
	"github.com/auditpipe/auditpipe/internal/testenv"
	"github.com/auditpipe/auditpipe/queryapi"
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
// want distinct event ids of audited events (chain checkpoints left out) (a batch retried after a failure may be there
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
		if e.Event == schemas.KindChain {
			return nil // the collector's chain checkpoints: not audited events
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
	cfg.Server.Auth.OpenMetrics = true // on 127.0.0.1:0
	cfg.Kafka = a.Config
	cfg.Kafka.Topics.Partitions = 1
	cfg.Collector.StateDir = filepath.Join(dir, "state")
	cfg.Collector.FlushInterval = 200 * time.Millisecond
	cfg.Collector.ProduceTimeout = 2 * time.Second
	cfg.Collector.GrantKeys = []string{grantKeyFile(t, dir)} // a separate collector names whom it trusts
	r := startTarget(t, cfg)
	push := "pushing to Kafka (batches go to the spool meanwhile)"
	pushFailed := regexp.MustCompile(regexp.QuoteMeta(push + " failed; retrying"))

	// No broker yet: the target retries quietly (one line) until it comes.
	r.logs.waitLines(t, regexp.MustCompile(`creating the Kafka topics failed; retrying`), 1, 30*time.Second)
	a.Start(t)
	if n := len(distinctEvents(t, a.Config, 10)); n != 10 {
		t.Fatalf("%d distinct events after the broker came, want 10", n)
	}
	// The broker dies and comes back while events are appended.
	pushes := len(r.logs.matching(pushFailed)) // 1 when the topic came late
	if pushes > 0 {
		// That outage is over once a push succeeded (one that ran out of
		// time may have landed all the same, so the events in Kafka do
		// not say so): only then is the next one a second outage.
		r.logs.waitLines(t, regexp.MustCompile(regexp.QuoteMeta(push+" recovered")), 1, 60*time.Second)
	}
	a.Kill(t)
	appendTo(t, logPath, second)
	r.logs.waitLines(t, pushFailed, pushes+1, 30*time.Second) // into the spool
	a.Start(t)
	ids := distinctEvents(t, a.Config, 18)
	if len(ids) != 18 {
		t.Fatalf("%d distinct events after the restart, want 18", len(ids))
	}
	r.running(t, "after the broker restart")

	// One line when each thing failed first, one when it recovered; not
	// one per retry (the target was retrying for seconds each time). The
	// pushes failed once or twice (the restart; before it, only when the
	// first batch came before the target had created the topic);
	// creating the topics failed while the broker was away.
	checkOutages(t, r.logs, 2, map[string]int{push: pushes + 1, "creating the Kafka topics": 1})
	if n := len(r.logs.matching(regexp.MustCompile(`level=(WARN|ERROR)`))); n > 12 {
		t.Errorf("%d warning or error lines for two outages, want a handful", n)
	}
}

// outageEvents are the events the consumer targets' tests produce: before
// the broker restart, while the broker is away (the producer retries until
// it is back), and after.
func outageEvents() (before, during, after []schemas.Event) {
	base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	return clickhousetest.ManyEvents(300, base), clickhousetest.ManyEvents(300, base.Add(time.Hour)),
		clickhousetest.ManyEvents(300, base.Add(2*time.Hour))
}

// throughRestart runs a consumer target's scenario against a: the target
// already runs with no broker; wait until it logged its outage, start
// the broker, produce before, wait for settled (everything taken and
// committed), kill the broker, produce during in the background, wait
// for the target to log its second outage, start the broker again and
// produce after. outage matches the target's outage lines.
func throughRestart(t *testing.T, a *kafkatest.Apache, r *targetRun, outage *regexp.Regexp, settled func(), before, during, after []schemas.Event) {
	t.Helper()
	r.logs.waitLines(t, outage, 1, 60*time.Second)
	a.Start(t)
	if err := produceEvents(a.Config, before); err != nil {
		t.Fatal(err)
	}
	settled()

	n := len(r.logs.matching(outage))
	a.Kill(t)
	produced := make(chan error, 1)
	go func() { produced <- produceEvents(a.Config, during) }()
	r.logs.waitLines(t, outage, n+1, 60*time.Second)
	a.Start(t)
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	if err := produceEvents(a.Config, after); err != nil {
		t.Fatal(err)
	}
}

// The indexer target alone (embedded chDB store, query endpoint) against
// a real Apache Kafka broker: started before the broker and before any
// topic exists, then through a broker restart (SIGKILL) while events are
// produced. Every event is in ClickHouse exactly once, also counted
// without FINAL; the target recovers by itself, and each outage is one
// log line per mechanism, its recovery one more.
func TestIndexerTargetSurvivesApacheKafka(t *testing.T) {
	if _, err := chdb.FindLibrary(""); err != nil {
		testenv.SkipOrFail(t, testenv.CHDB, "needs libchdb.so (run 'make deps'): %v", err)
	}
	a := kafkatest.NewApache(t, 1)
	dir := t.TempDir()
	tokens, tok := writeTokens(t, dir, auth.RoleAuditor)
	cfg := DefaultConfig()
	cfg.Target = TargetIndexer
	cfg.Server.HTTPAddr = "127.0.0.1:0"
	cfg.Server.Auth.TokensFile = tokens
	cfg.Kafka = a.Config
	cfg.Kafka.Topics.Partitions = 1
	cfg.ClickHouse.Embedded.Dir = filepath.Join(dir, "chdb")
	cfg.ClickHouse.RetentionDays = 0
	cfg.Indexer.Batch.MaxWait = 100 * time.Millisecond
	cfg.Indexer.RetryBackoffMax = 2 * time.Second
	r := startTarget(t, cfg)
	q := &queryapi.HTTPClient{URL: r.url, Token: config.Secret(tok[auth.RoleAuditor])}
	value := func(sql string) string {
		res, err := q.Query(context.Background(), sql)
		if err != nil || len(res.Rows) != 1 {
			return fmt.Sprintf("%v %v", res, err)
		}
		return strings.TrimSpace(fmt.Sprintln(res.Rows[0]...))
	}
	// Without FINAL, each copy of a row counts.
	const counts = "SELECT count(), uniqExact(event_id) FROM audit_events SETTINGS final = 0"
	waitValue := func(want string) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for got := value(counts); got != want; got = value(counts) {
			if time.Now().After(deadline) {
				t.Fatalf("%s = %q, want %q", counts, got, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	before, during, after := outageEvents()
	joining := regexp.MustCompile(`(joining the consumer group|reading the partition) failed; retrying`)
	throughRestart(t, a, r, joining, func() {
		waitValue("300 300")
		waitLag(t, a.Config, cfg.Indexer.Group, 60*time.Second)
	}, before, during, after)
	waitValue("900 900")
	waitLag(t, a.Config, cfg.Indexer.Group, 60*time.Second)
	r.running(t, "after the broker restart")
	// The group could not be joined twice (no broker yet; the restart) and
	// the topics not created once (no broker yet): one line each time, and
	// one for each recovery. Whether the partition's reader also notices
	// the restart (or its generation ends first, quietly) is timing: it
	// is held to one line per outage and a recovery for each, as every
	// mechanism is.
	checkOutages(t, r.logs, 2, map[string]int{"creating the Kafka topics": 1, "joining the consumer group": 2})
	r.stop(t)
	if n := len(r.logs.matching(regexp.MustCompile(`level=ERROR`))); n > 0 {
		t.Errorf("%d error lines, want none", n)
	}
}

// The forwarder target alone against a real Apache Kafka broker, an
// rsyslog over TLS as its SIEM: started before the broker and before any
// topic exists, then through a broker restart (SIGKILL) while events are
// produced. Every event reaches rsyslog; an event may arrive twice only
// if it was not committed before the outage (duplicates counted and
// bounded); the group's lag is 0 at the end; the target recovers by
// itself, and each outage is one log line per mechanism, its recovery one
// more.
func TestForwarderTargetSurvivesApacheKafka(t *testing.T) {
	a := kafkatest.NewApache(t, 1)
	dir := t.TempDir()
	ca := siemtest.NewCA(t, dir, "siem-ca")
	cert, key := ca.Issue(t, dir, "siem", siemtest.CertOptions{})
	rs := siemtest.StartRsyslog(t, siemtest.RsyslogOptions{CA: ca, CertFile: cert, KeyFile: key})
	cfg := DefaultConfig()
	cfg.Target = TargetForwarder
	cfg.Server.HTTPAddr = "127.0.0.1:0"
	cfg.Server.Auth.OpenMetrics = true
	cfg.Kafka = a.Config
	cfg.Kafka.Topics.Partitions = 1
	cfg.Forwarder.Destinations = []forwarder.Destination{{Name: "siem", Address: rs.Addr, TLS: forwarder.TLS{CAFile: ca.CertPEM}}}
	group := cfg.Forwarder.Destinations[0].WithDefaults().Group
	r := startTarget(t, cfg)

	arrived := func() map[string]int {
		ids := map[string]int{}
		for _, m := range rs.Messages(t) {
			i := strings.Index(m, `event_id="`)
			if i < 0 || len(m) < i+42 {
				t.Fatalf("not an auditpipe message: %q", m)
			}
			ids[m[i+10:i+42]]++
		}
		return ids
	}
	before, during, after := outageEvents()
	joining := regexp.MustCompile(`(joining the consumer group|reading the partition) failed; retrying`)
	throughRestart(t, a, r, joining, func() {
		rs.WaitMessages(t, len(before), 60*time.Second)
		waitLag(t, a.Config, group, 60*time.Second)
	}, before, during, after)
	all := slices.Concat(before, during, after)
	deadline := time.Now().Add(90 * time.Second)
	for len(arrived()) < len(all) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events at rsyslog after 90s", len(arrived()), len(all))
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitLag(t, a.Config, group, 60*time.Second)
	r.running(t, "after the broker restart")

	ids := arrived()
	dups := 0
	for _, n := range ids {
		dups += n - 1
	}
	t.Logf("%d messages at rsyslog for %d events: %d duplicates", len(rs.Messages(t)), len(all), dups)
	for _, ev := range all {
		if ids[ev.EventID] == 0 {
			t.Fatalf("event %s (seq %d) never reached rsyslog", ev.EventID, ev.Seq)
		}
	}
	for _, ev := range before { // committed before the outage
		if n := ids[ev.EventID]; n != 1 {
			t.Errorf("event %s, committed before the broker restart, arrived %d times", ev.EventID, n)
		}
	}
	for id, n := range ids {
		if n > 2 {
			t.Errorf("event %s arrived %d times: a duplicate per outage at most", id, n)
		}
	}
	// As for the indexer: the partition's reader may or may not notice the
	// restart before its generation ends.
	checkOutages(t, r.logs, 2, map[string]int{"creating the Kafka topics": 1, "joining the consumer group": 2})
	r.stop(t)
	if n := len(r.logs.matching(regexp.MustCompile(`level=ERROR`))); n > 0 {
		t.Errorf("%d error lines, want none", n)
	}
}
