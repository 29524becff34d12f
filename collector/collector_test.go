package collector

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
	"github.com/auditpipe/auditpipe/verify"
)

// sessionLines returns n command events of user 1001 (USERNAME in the seed
// passwd), serials from first, as auditd writes them.
func sessionLines(first, n int) string {
	var b strings.Builder
	for i := range n {
		serial := first + i
		ts := fmt.Sprintf("%d.%03d:%d", 1700000000+serial/1000, serial%1000, serial)
		fmt.Fprintf(&b, "type=SYSCALL msg=audit(%s): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=1 ppid=1 pid=%d auid=1001 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=7 comm=\"echo\" exe=\"/usr/bin/echo\" key=(null)\n", ts, serial)
		fmt.Fprintf(&b, "type=EXECVE msg=audit(%s): argc=2 a0=\"echo\" a1=\"%d\"\n", ts, serial)
		fmt.Fprintf(&b, "type=CWD msg=audit(%s): cwd=\"/root\"\n", ts)
		fmt.Fprintf(&b, "type=PROCTITLE msg=audit(%s): proctitle=%X\n", ts, "echo\x00"+strconv.Itoa(serial))
		fmt.Fprintf(&b, "type=EOE msg=audit(%s): \n", ts)
	}
	return b.String()
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func testConfig(t *testing.T, kcfg kafka.Config, dir string) Config {
	cfg := DefaultConfig()
	cfg.Layer = "CPS"
	cfg.Host = "testhost"
	cfg.Input.Path = filepath.Join(dir, "audit.log")
	cfg.Input.PollInterval = 20 * time.Millisecond
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Passwd = "testdata/seed/passwd"
	cfg.Group = "testdata/seed/group"
	cfg.Grants = map[string]string{"USERNAME": "1"}
	no := false
	cfg.FollowGrants = &no
	cfg.Kafka = kcfg
	cfg.FlushInterval = 100 * time.Millisecond
	cfg.ProduceTimeout = 2 * time.Second
	return cfg
}

// startCollector runs a collector until the returned stop is called.
func startCollector(t *testing.T, cfg Config, reg prometheus.Registerer) (stop func() error) {
	t.Helper()
	c, err := New(cfg, Deps{Registry: reg, Log: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-errc:
			case <-time.After(30 * time.Second):
				runErr = fmt.Errorf("collector did not stop")
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// consumer reads every partition of a topic from the start, without a
// consumer group (so that nothing it sees twice is its own doing).
type consumer struct {
	ch   chan kafka.Record
	msgs []kafka.Record
	// chain holds the chain checkpoints read, kept apart from msgs (the
	// events): how many a run emits depends on its batches.
	chain []kafka.Record
}

// take files m under msgs or chain.
func (c *consumer) take(m kafka.Record) {
	if bytes.Contains(m.Value, []byte(`"event":"chain"`)) {
		c.chain = append(c.chain, m)
		return
	}
	c.msgs = append(c.msgs, m)
}

func newConsumer(t *testing.T, kcfg kafka.Config, topic string, _ int) *consumer {
	c := &consumer{ch: make(chan kafka.Record, 1024)}
	ctx, cancel := context.WithCancel(context.Background())
	f, err := kcfg.NewFollower(kafka.FollowerConfig{Topic: topic, MaxWait: 50 * time.Millisecond, Apply: func(r kafka.Record) error {
		select {
		case c.ch <- r:
		case <-ctx.Done():
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() { _ = f.Run(ctx) })
	return c
}

// waitFor reads until pred holds for the messages read so far.
func (c *consumer) waitFor(t *testing.T, what string, timeout time.Duration, pred func([]kafka.Record) bool) {
	t.Helper()
	deadline := time.After(timeout)
	for !pred(c.msgs) {
		select {
		case m := <-c.ch:
			c.take(m)
		case <-deadline:
			t.Fatalf("timed out waiting for %s (%d messages read)", what, len(c.msgs))
		}
	}
}

// drain reads whatever else arrives within a short while.
func (c *consumer) drain(t *testing.T) {
	t.Helper()
	for {
		select {
		case m := <-c.ch:
			c.take(m)
		case <-time.After(500 * time.Millisecond):
			return
		}
	}
}

func atLeast(n int) func([]kafka.Record) bool {
	return func(m []kafka.Record) bool { return len(m) >= n }
}

// eventIDs decodes events and checks each event_id appears once; it returns
// the events in Kafka order.
func decodeAll(t *testing.T, msgs []kafka.Record) []schemas.Event {
	t.Helper()
	var out []schemas.Event
	for _, m := range msgs {
		var e schemas.Event
		if err := json.Unmarshal(m.Value, &e); err != nil {
			t.Fatalf("bad event in Kafka: %v", err)
		}
		if string(m.Key) != e.Host {
			t.Errorf("key %q, host %q", m.Key, e.Host)
		}
		out = append(out, e)
	}
	return out
}

func checkExactlyOnce(t *testing.T, events []schemas.Event, want int) {
	t.Helper()
	seen := map[string]int{}
	for _, e := range events {
		seen[e.EventID]++
	}
	dups := 0
	for _, n := range seen {
		if n > 1 {
			dups += n - 1
		}
	}
	if len(seen) != want || dups != 0 {
		var d []string
		for _, e := range events {
			if seen[e.EventID] > 1 {
				d = append(d, e.RecID+"/"+strconv.FormatUint(e.Seq, 10))
			}
		}
		t.Logf("duplicated rec_id/seq: %v", d)
		t.Fatalf("%d distinct events (want %d), %d duplicates", len(seen), want, dups)
	}
	// seq is contiguous from 1 for the host: no event skipped, none twice.
	seqs := map[uint64]bool{}
	for _, e := range events {
		seqs[e.Seq] = true
	}
	for s := uint64(1); s <= uint64(want); s++ {
		if !seqs[s] {
			t.Fatalf("seq %d missing", s)
		}
	}
	checkChainLinks(t, events)
}

// checkChainLinks checks the hash chain of one host's events: each event's
// prev_hash is the hash of the event before it by seq, the first one's is
// empty. Copies of an event sent twice must be identical.
func checkChainLinks(t *testing.T, events []schemas.Event) {
	t.Helper()
	bySeq := map[uint64]string{}
	var last uint64
	for i := range events {
		e := &events[i]
		h := e.Hash()
		if prev, ok := bySeq[e.Seq]; ok && prev != h {
			t.Fatalf("seq %d sent twice with different content", e.Seq)
		}
		bySeq[e.Seq] = h
		last = max(last, e.Seq)
	}
	prevHash := map[uint64]string{}
	for i := range events {
		prevHash[events[i].Seq] = events[i].PrevHash
	}
	for s := uint64(1); s <= last; s++ {
		want := bySeq[s-1] // "" for seq 1
		if got := prevHash[s]; got != want {
			t.Fatalf("seq %d: prev_hash %q, want the hash of seq %d, %q: the chain is broken", s, got, s-1, want)
		}
	}
}

// checkCheckpoints checks the chain checkpoints read against the events:
// each one's head is the hash of its last event, its link the prev_hash of
// its first, its ts and time the last event's (so that a batch sent again
// is the same message), it covers at most maxBatch events (a flush takes
// at most batch_max_events), and it verifies with pub (when set).
// Bug (mutants): a checkpoint stamped with the time of the flush, and
// batches flushed at one event more than batch_max_events, passed.
func checkCheckpoints(t *testing.T, events []schemas.Event, chain []kafka.Record, pub ed25519.PublicKey, maxBatch int) {
	t.Helper()
	bySeq := map[uint64]*schemas.Event{}
	for i := range events {
		bySeq[events[i].Seq] = &events[i]
	}
	if len(chain) == 0 {
		t.Fatal("no chain checkpoint on the topic")
	}
	for _, e := range decodeAll(t, chain) {
		if err := e.Validate(); err != nil {
			t.Fatal(err)
		}
		last, first := bySeq[e.ChainLast], bySeq[e.ChainFirst]
		if last == nil || first == nil {
			t.Fatalf("checkpoint %d..%d: events missing", e.ChainFirst, e.ChainLast)
		}
		if e.ChainHead != last.Hash() || e.PrevHash != first.PrevHash {
			t.Fatalf("checkpoint %d..%d: head %s link %s, want %s and %s", e.ChainFirst, e.ChainLast, e.ChainHead, e.PrevHash, last.Hash(), first.PrevHash)
		}
		if e.TS != last.TS || e.Time != last.Time {
			t.Fatalf("checkpoint %d..%d: ts %q time %q, want the last event's %q and %q", e.ChainFirst, e.ChainLast, e.TS, e.Time, last.TS, last.Time)
		}
		if e.ChainCount > uint64(maxBatch) {
			t.Fatalf("checkpoint %d..%d covers %d events: a batch larger than batch_max_events %d", e.ChainFirst, e.ChainLast, e.ChainCount, maxBatch)
		}
		if pub != nil {
			if err := e.VerifyChainSig(map[string]ed25519.PublicKey{schemas.ChainKeyID(pub): pub}); err != nil {
				t.Fatalf("checkpoint %d..%d: %v", e.ChainFirst, e.ChainLast, err)
			}
		}
	}
}

// TestRestartExactlyOnce stops the collector in the middle of a file and
// starts it again: every event is in Kafka exactly once, seq contiguous.
// Bug (issue 15, mutant): a collector that ignores its checkpoint (reads
// the file from the start, or restarts seq at 1) passed the all-in-one
// test, whose store deduplicates by event_id. Here the messages on the
// topic are counted, with no deduplication: once the last event of the
// log arrived and the collector stopped, the topic holds exactly one
// message per event.
//
// Issue 9: the hash chain continues across the restart (the first event
// after it links to the last one before, through the checkpoint) and every
// flush emitted a signed chain checkpoint whose head is its last event's
// hash.
func TestRestartExactlyOnce(t *testing.T) {
	kcfg, _ := kafkatest.Start(t, 2)
	dir := t.TempDir()
	cfg := testConfig(t, kcfg, dir)
	cfg.BatchMaxEvents = 40
	cfg.ChainKeyFile = filepath.Join(dir, "chain.key")
	key, _, err := sign.EnsureKeyPair(cfg.ChainKeyFile, cfg.ChainKeyFile+".pub")
	if err != nil {
		t.Fatal(err)
	}
	appendFile(t, cfg.Input.Path, sessionLines(1, 600))
	cons := newConsumer(t, kcfg, schemas.TopicAudit, 2)

	stop := startCollector(t, cfg, nil)
	cons.waitFor(t, "first batches", 20*time.Second, atLeast(80))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// While it is down, the log grows.
	appendFile(t, cfg.Input.Path, sessionLines(601, 100))
	stop = startCollector(t, cfg, nil)
	// The log is read in order: a collector that re-reads it re-sends
	// before it reaches the last event.
	cons.waitFor(t, "the last event", 30*time.Second, hasRecID("700"))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	requireOnTopic(t, kcfg, cons, 700)
	events := decodeAll(t, cons.msgs)
	checkExactlyOnce(t, events, 700)
	checkCheckpoints(t, events, cons.chain, key.PublicKey(), cfg.BatchMaxEvents)
	checkVerifies(t, append(events, decodeAll(t, cons.chain)...), key.PublicKey())
	for _, e := range events {
		if e.Host != cfg.Host {
			t.Fatalf("event %s: host %q, want the configured %q", e.EventID, e.Host, cfg.Host)
		}
	}
	if len(cons.chain) < 700/40 {
		t.Errorf("%d chain checkpoints for 700 events in batches of 40", len(cons.chain))
	}
}

// checkVerifies checks that verify, given the collector's key, finds the
// run's events and checkpoints intact with every event covered by a
// signed checkpoint. Issue 9 review, F1: verify now reports an event that
// no signed checkpoint covers (a forged one at the host's head looks so);
// a clean run must have no such tail, since every flush's batch carries
// its checkpoint, the last one at shutdown too.
func checkVerifies(t *testing.T, evs []schemas.Event, pub ed25519.PublicKey) {
	t.Helper()
	var recs []verify.Record
	for _, e := range evs {
		recs = append(recs, verify.Record{Event: e, Hash: e.Hash(), ContentChecked: true})
	}
	rep := verify.Check(recs, nil, verify.Options{Keys: map[string]ed25519.PublicKey{schemas.ChainKeyID(pub): pub}})
	if !rep.Intact() || len(rep.Hosts) != 1 || rep.Hosts[0].Uncovered != 0 {
		var b strings.Builder
		_ = rep.Write(&b)
		t.Errorf("verify of the run with the collector's key: not intact, or events no signed checkpoint covers:\n%s", b.String())
	}
}

// hasRecID holds once the event with audit serial recID has been read.
func hasRecID(recID string) func([]kafka.Record) bool {
	seen, found := 0, false
	return func(msgs []kafka.Record) bool {
		for ; seen < len(msgs); seen++ {
			var e schemas.Event
			found = found || json.Unmarshal(msgs[seen].Value, &e) == nil && e.RecID == recID
		}
		return found
	}
}

// requireOnTopic fails unless the audit topic holds exactly want events,
// summed over its partitions: a consumer group that never committed lags
// by every message. Counting offsets needs no wait for stragglers: the
// collector has stopped, and its last batch was acknowledged before.
//
// The chain checkpoints are on the topic too, as many as the run's
// batches: cons reads the topic until it has seen every message, and its
// checkpoints are added to want.
func requireOnTopic(t *testing.T, kcfg kafka.Config, cons *consumer, want int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := kcfg.Lag(ctx, "test-count-never-commits", schemas.TopicAudit)
	if err != nil {
		t.Fatal(err)
	}
	cons.waitFor(t, "every message on the topic", 20*time.Second, func([]kafka.Record) bool {
		return int64(len(cons.msgs)+len(cons.chain)) >= n
	})
	want += int64(len(cons.chain))
	if n != want {
		t.Fatalf("the audit topic holds %d messages, want %d (%d chain checkpoints among them): events were sent again after the restart, or lost", n, want, len(cons.chain))
	}
}

// TestRotation rotates the log (rename + new file) while the collector
// runs and while it is stopped.
func TestRotation(t *testing.T) {
	kcfg, _ := kafkatest.Start(t, 1)
	dir := t.TempDir()
	cfg := testConfig(t, kcfg, dir)
	log := cfg.Input.Path
	appendFile(t, log, sessionLines(1, 100))
	cons := newConsumer(t, kcfg, schemas.TopicAudit, 1)
	stop := startCollector(t, cfg, nil)
	cons.waitFor(t, "before rotation", 20*time.Second, atLeast(100))

	// Rotation while running: the old file gets a last write, then is renamed.
	appendFile(t, log, sessionLines(101, 20))
	if err := os.Rename(log, log+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, log, sessionLines(121, 50))
	cons.waitFor(t, "after rotation", 20*time.Second, atLeast(170))
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// Rotation while stopped: more lines in the current file, rotated away,
	// then a new file.
	appendFile(t, log, sessionLines(171, 30))
	if err := os.Rename(log+".1", log+".2"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(log, log+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, log, sessionLines(201, 40))
	stop = startCollector(t, cfg, nil)
	cons.waitFor(t, "after restart", 20*time.Second, hasRecID("240"))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	requireOnTopic(t, kcfg, cons, 240)
	checkExactlyOnce(t, decodeAll(t, cons.msgs), 240)
}

// TestKafkaDown stops the broker: batches go to the spool, then drain in
// order when the broker is back, nothing lost. It runs against the
// embedded broker here, and against a real Apache Kafka in
// TestKafkaDownApache.
func TestKafkaDown(t *testing.T) {
	t.Run("kfake", func(t *testing.T) {
		brokerDir := t.TempDir()
		broker, err := kafka.StartEmbedded(0, brokerDir, 1)
		if err != nil {
			t.Fatal(err)
		}
		port := broker.Port()
		t.Cleanup(func() { broker.Close() })
		kcfg := kafka.Config{Brokers: broker.Brokers()}.WithDefaults()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := kcfg.EnsureTopics(ctx, kafka.PipelineTopics(1)...); err != nil {
			t.Fatal(err)
		}
		testKafkaDown(t, kcfg, kcfg, broker.Close, func() {
			if broker, err = kafka.StartEmbedded(port, brokerDir, 1); err != nil {
				t.Fatal(err)
			}
		})
	})
}

// TestKafkaDownApache is TestKafkaDown against a real Apache Kafka killed
// with SIGKILL, over SASL_SSL with the collector as its own principal (its
// ACLs: write the audit topic, read the grants). A test of its own (not a
// subtest) so that the per-mutant runs of make mutate can leave it out by
// name (-skip matches top-level names; the same lines are covered by the
// kfake leg).
func TestKafkaDownApache(t *testing.T) {
	kcfg, broker := kafkatest.StartApache(t, 1)
	testKafkaDown(t, broker.Client(kafka.RoleCollector), kcfg, func() { broker.Kill(t) }, func() { broker.Start(t) })
}

// testKafkaDown: kcfg is the collector's connection, rcfg reads the topic
// back.
func testKafkaDown(t *testing.T, kcfg, rcfg kafka.Config, down, up func()) {
	kcfg.DialTimeout = time.Second
	dir := t.TempDir()
	cfg := testConfig(t, kcfg, dir)
	cfg.ProduceTimeout = 500 * time.Millisecond
	reg := prometheus.NewRegistry()
	appendFile(t, cfg.Input.Path, sessionLines(1, 50))
	stop := startCollector(t, cfg, reg)
	m := func(name string) float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				return mf.GetMetric()[0].GetGauge().GetValue() + mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		return 0
	}
	waitUntil(t, "first batch produced", 20*time.Second, func() bool { return m("auditpipe_collector_produced_messages_total") >= 50 })
	// On a loaded machine the first push (TLS, SASL, metadata) may outlive
	// produce_timeout with the broker up: it lands, and its spooled copy
	// is sent again. Only then may events pushed before the outage repeat.
	errorsBeforeOutage := m("auditpipe_collector_produce_errors_total")

	down()
	appendFile(t, cfg.Input.Path, sessionLines(51, 100))
	waitUntil(t, "batches spooled", 20*time.Second, func() bool { return m("auditpipe_collector_spool_entries") >= 1 })
	appendFile(t, cfg.Input.Path, sessionLines(151, 50))
	waitUntil(t, "more batches spooled", 20*time.Second, func() bool { return m("auditpipe_collector_spool_entries") >= 2 })
	if m("auditpipe_collector_produce_errors_total") == 0 {
		t.Fatal("no produce error counted while the broker was down")
	}

	up()
	waitUntil(t, "spool drained", 30*time.Second, func() bool { return m("auditpipe_collector_spool_entries") == 0 })
	cons := newConsumer(t, rcfg, schemas.TopicAudit, 1)
	cons.waitFor(t, "all events", 30*time.Second, atLeast(200))
	cons.drain(t)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	events := decodeAll(t, cons.msgs)
	// A push cut short by produce_timeout while the broker was away may
	// have landed all the same (kafka-go keeps the batch it was writing
	// and writes it once it can; Kafka cannot say whether it did): the
	// batch is spooled too, and sent again when the spool drains. So the
	// events written while Kafka was down (seq 51..200) may be there more
	// than once (consumers dedup by event_id): at most once per failed
	// push plus the spool's copy (on a loaded machine a batch may time out
	// more than once, and each try may land). None is lost, none of the
	// events pushed before the outage is repeated (unless a push timed out
	// before it, see errorsBeforeOutage), and the first copies
	// are in collector order (one partition, one host).
	maxCopies := 1 + int(m("auditpipe_collector_produce_errors_total"))
	seen := map[string]int{}
	var firsts []schemas.Event
	for _, e := range events {
		seen[e.EventID]++
		switch n := seen[e.EventID]; {
		case n == 1:
			firsts = append(firsts, e)
		case e.Seq <= 50 && (errorsBeforeOutage == 0 || n > 1+int(errorsBeforeOutage)):
			t.Errorf("seq %d, pushed before the outage (%v failed pushes then), arrived %d times", e.Seq, errorsBeforeOutage, n)
		case n > maxCopies:
			t.Errorf("seq %d arrived %d times: more than once per failed push (%d) plus the spool's copy", e.Seq, n, maxCopies-1)
		}
	}
	checkExactlyOnce(t, firsts, 200)
	for i := 1; i < len(firsts); i++ {
		if firsts[i].Seq <= firsts[i-1].Seq {
			t.Fatalf("out of order after drain: seq %d after %d", firsts[i].Seq, firsts[i-1].Seq)
		}
	}
	if d := len(events) - len(firsts); d > 0 {
		t.Logf("%d extra copies (timed-out pushes that landed, then the spooled copy)", d)
	}
}

// TestDeadLettersAndGrants: rejected lines reach the dead-letter topic with
// their reason and raw text; grants published on the grants topic attribute
// events to their access request.
func TestDeadLettersAndGrants(t *testing.T) {
	kcfg, _ := kafkatest.Start(t, 1)
	dir := t.TempDir()
	policy, pub := grantKey(t, dir)
	publishGrant(t, kcfg, policy, schemas.Grant{LoginID: "USERNAME", ReqAuthID: "ocid1.req.42", AuditType: schemas.AuditCommand})

	cfg := testConfig(t, kcfg, dir)
	cfg.Grants = nil
	yes := true
	cfg.FollowGrants = &yes
	cfg.GrantKeys = []string{pub}
	appendFile(t, cfg.Input.Path, sessionLines(1, 3)+"garbage line\n"+sessionLines(4, 2))
	events := newConsumer(t, kcfg, schemas.TopicAudit, 1)
	dead := newConsumer(t, kcfg, schemas.TopicDeadLetter, 1)
	logs := newLogRecorder(t)
	run := runCollector(t, cfg, prometheus.NewRegistry(), slog.New(logs))
	events.waitFor(t, "events", 20*time.Second, atLeast(5))
	dead.waitFor(t, "dead letter", 20*time.Second, atLeast(1))
	if _, err := run.stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	// Bug (mutants): the grants topic answered at once, yet the collector
	// said it was waiting for it; a clean stop logged the follower as
	// failed.
	for _, msg := range []string{"waiting for the grants topic", "grants: follower stopped"} {
		if n := logs.count(msg); n != 0 {
			t.Errorf("%d log lines %q", n, msg)
		}
	}
	for _, e := range decodeAll(t, events.msgs) {
		if e.ReqAuthID != "ocid1.req.42" {
			t.Errorf("event %s: req_auth_id %q, want the grant's", e.RecID, e.ReqAuthID)
		}
	}
	var d schemas.DeadLetter
	if err := json.Unmarshal(dead.msgs[0].Value, &d); err != nil {
		t.Fatal(err)
	}
	if d.Reason != "no_type" || d.Raw != "garbage line" || d.Component != "collector" || !strings.Contains(d.Source, "audit.log") {
		t.Errorf("dead letter %+v", d)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Regression: an event that started before the oldest open event and
// ended after it was left out of the checkpoint's skip list, so a restart
// re-read its last records and sent a partial copy (same event_id, no
// loginid) that replaced the good row downstream.
func TestInterleavedRestart(t *testing.T) {
	kcfg, _ := kafkatest.Start(t, 1)
	dir := t.TempDir()
	cfg := testConfig(t, kcfg, dir)
	cfg.AllUsers = true
	ev := func(serial int) []string { return strings.SplitAfter(sessionLines(serial, 1), "\n") }
	e, a := ev(10), ev(11) // E completes while A, begun after E, stays open
	appendFile(t, cfg.Input.Path, e[0]+a[0]+e[1]+e[2]+e[3]+e[4])
	cons := newConsumer(t, kcfg, schemas.TopicAudit, 1)
	stop := startCollector(t, cfg, nil)
	cons.waitFor(t, "E", 20*time.Second, atLeast(1))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	appendFile(t, cfg.Input.Path, a[1]+a[2]+a[3]+a[4])
	stop = startCollector(t, cfg, nil)
	// A partial copy of E, if any, comes before A: its records precede A's end.
	cons.waitFor(t, "A", 20*time.Second, hasRecID("11"))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	requireOnTopic(t, kcfg, cons, 2)
	events := decodeAll(t, cons.msgs)
	checkExactlyOnce(t, events, 2)
	for _, e := range events {
		if e.LoginID != "USERNAME" || e.PID == "" {
			t.Errorf("event %s arrived incomplete: loginid %q pid %q", e.RecID, e.LoginID, e.PID)
		}
	}
}

// Regression: a batch over the broker's 1 MB message.max.bytes was refused
// and retried from the spool for ever. Batches are now cut below it, and
// an event larger than max_event_bytes goes to the dead-letter topic.
func TestLargeBatchesAndOversizeEvent(t *testing.T) {
	kcfg, _ := kafkatest.Start(t, 1)
	dir := t.TempDir()
	cfg := testConfig(t, kcfg, dir)
	cfg.FlushInterval = time.Second // one batch of megabytes
	// A command whose argument is 1.2 MB, split over EXECVE records as the
	// kernel does (each line under the 64 KiB line limit).
	const argLen = 1_200_000
	hexArg := strings.Repeat("41", argLen)
	var big strings.Builder
	msg := "msg=audit(1700009999.000:99999):"
	fmt.Fprintf(&big, "type=SYSCALL %s arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=1 ppid=1 pid=9 auid=1001 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=7 comm=\"echo\" exe=\"/usr/bin/echo\" key=(null)\n", msg)
	fmt.Fprintf(&big, "type=EXECVE %s argc=2 a0=\"echo\" a1_len=%d\n", msg, argLen)
	for i, j := 0, 0; i < len(hexArg); i, j = i+60000, j+1 {
		fmt.Fprintf(&big, "type=EXECVE %s a1[%d]=%s\n", msg, j, hexArg[i:min(i+60000, len(hexArg))])
	}
	fmt.Fprintf(&big, "type=EOE %s\n", msg)
	appendFile(t, cfg.Input.Path, sessionLines(1, 3000)+big.String())

	events := newConsumer(t, kcfg, schemas.TopicAudit, 1)
	dead := newConsumer(t, kcfg, schemas.TopicDeadLetter, 1)
	stop := startCollector(t, cfg, nil)
	events.waitFor(t, "3000 events", 30*time.Second, atLeast(3000))
	dead.waitFor(t, "the oversize event", 30*time.Second, atLeast(1))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, decodeAll(t, events.msgs), 3000)
	var d schemas.DeadLetter
	if err := json.Unmarshal(dead.msgs[0].Value, &d); err != nil {
		t.Fatal(err)
	}
	if d.Reason != ReasonEventTooLarge || !d.Truncated || d.RawBytes < argLen || len(d.Raw) != schemas.MaxDeadLetterRaw || len(d.RawSHA256) != 64 {
		t.Errorf("dead letter: reason %q truncated %v raw_bytes %d len(raw) %d sha %q", d.Reason, d.Truncated, d.RawBytes, len(d.Raw), d.RawSHA256)
	}
	if len(dead.msgs[0].Value) > 400<<10 {
		t.Errorf("dead letter of %d bytes", len(dead.msgs[0].Value))
	}
}

// TestOpenEventAcrossFullBatches: the log's first event stays open while
// enough others complete to fill several batches, and the collector is
// restarted before it completes: it arrives whole after the restart.
// Bug (mutant): pruning the line positions at a full batch dropped the
// open event's own first line, so the checkpoint pointed after it and the
// restarted collector never read that record again.
func TestOpenEventAcrossFullBatches(t *testing.T) {
	kcfg, _ := kafkatest.Start(t, 1)
	dir := t.TempDir()
	cfg := testConfig(t, kcfg, dir)
	cfg.BatchMaxEvents = 5
	open := strings.SplitAfter(sessionLines(1, 1), "\n")
	appendFile(t, cfg.Input.Path, open[0]+sessionLines(2, 12))
	cons := newConsumer(t, kcfg, schemas.TopicAudit, 1)
	stop := startCollector(t, cfg, nil)
	cons.waitFor(t, "the 12 complete events", 20*time.Second, hasRecID("13"))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	appendFile(t, cfg.Input.Path, strings.Join(open[1:], ""))
	stop = startCollector(t, cfg, nil)
	cons.waitFor(t, "the open event", 20*time.Second, hasRecID("1"))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	requireOnTopic(t, kcfg, cons, 13)
	events := decodeAll(t, cons.msgs)
	checkExactlyOnce(t, events, 13)
	for _, e := range events {
		if e.LoginID != "USERNAME" || e.PID == "" || len(e.Args) != 2 {
			t.Errorf("event %s arrived incomplete: loginid %q pid %q args %q", e.RecID, e.LoginID, e.PID, e.Args)
		}
	}
}

// TestBatchFullAtMaxBytes: a batch is pushed as soon as its events' bytes
// reach batch_max_bytes. The limit is set to the exact size of the first
// four events (learnt from a first run: the same log gives the same
// bytes), with no other reason to flush: the first chain checkpoint covers
// those four.
// Bug (mutant): a batch was pushed only once it exceeded the limit.
func TestBatchFullAtMaxBytes(t *testing.T) {
	run := func(maxBytes int) *consumer {
		kcfg, _ := kafkatest.Start(t, 1)
		cfg := testConfig(t, kcfg, t.TempDir())
		cfg.BatchMaxEvents, cfg.FlushInterval = 10, time.Hour // the first run: one batch of all 10
		if maxBytes > 0 {
			cfg.BatchMaxEvents, cfg.BatchMaxBytes = 1000, config.Size(maxBytes)
		}
		appendFile(t, cfg.Input.Path, sessionLines(1, 10))
		cons := newConsumer(t, kcfg, schemas.TopicAudit, 1)
		stop := startCollector(t, cfg, nil)
		// The log is one chunk of lines: once the first batch is out, the
		// rest is read and pending, and the last flush pushes it.
		cons.waitFor(t, "the first batch", 20*time.Second, atLeast(1))
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		cons.waitFor(t, "every event", 20*time.Second, atLeast(10))
		cons.drain(t)
		return cons
	}
	first := run(0)
	size := map[uint64]int{}
	for i, e := range decodeAll(t, first.msgs) {
		size[e.Seq] = len(first.msgs[i].Value)
	}
	second := run(size[1] + size[2] + size[3] + size[4])
	for _, e := range decodeAll(t, second.chain) {
		if e.ChainFirst == 1 {
			if e.ChainCount != 4 {
				t.Fatalf("the first batch held %d events, want the 4 whose bytes make batch_max_bytes", e.ChainCount)
			}
			return
		}
	}
	t.Fatal("no chain checkpoint of the first batch")
}
