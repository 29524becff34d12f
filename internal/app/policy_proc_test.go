package app

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/auditpipe/auditpipe/clickhouse/chdb"
	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/pgtest"
	"github.com/auditpipe/auditpipe/internal/proctest"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/internal/testenv"
	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/schemas"
)

// The policy processes of the multi-process tests are this test binary,
// run again with policyChildEnv set: TestPolicyChild runs target policy
// on the parent's PostgreSQL and Kafka until it is killed.
const policyChildEnv = "AUDITPIPE_POLICY_CHILD"

// policyChildConfig is what TestPolicyChild gets from its parent.
type policyChildConfig struct {
	DSN string
	// Kafka is the broker connection: the policy role's principal on a
	// secured broker.
	Kafka   kafka.Config
	KeyFile string
	Dir     string // its own directory (the tokens file)
	// Work, when positive, is how many access requests the process
	// creates (auto-approved on Resource) and revokes once it runs,
	// printing "COMMITTED <i> <request id>" after each revocation.
	Work     int
	Resource string
	// Target is the process's target: policy (default) or scheduler.
	Target string
}

// leaderComponent is the component whose election the child's led
// channel reports: the scheduler's in target scheduler (whose process
// elects a policy leader too), else the policy's.
func (c policyChildConfig) leaderComponent() string {
	if c.Target == TargetScheduler {
		return "scheduler"
	}
	return "policy"
}

// TestPolicyChild is not a test: it is the policy process that the
// multi-process tests start and kill with SIGKILL. It runs only when the
// parent sets AUDITPIPE_POLICY_CHILD. It logs JSON lines on stdout and
// prints READY once every module is initialised.
func TestPolicyChild(t *testing.T) {
	raw := os.Getenv(policyChildEnv)
	if raw == "" {
		t.Skip("helper process of the policy process tests, run by them")
	}
	var c policyChildConfig
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		t.Fatal(err)
	}
	tokens, _, err := auth.Bootstrap(c.Dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Target = TargetPolicy
	if c.Target != "" {
		cfg.Target = c.Target
		cfg.Scheduler.TickInterval = 100 * time.Millisecond
	}
	cfg.Kafka = c.Kafka
	cfg.Server.HTTPAddr = "127.0.0.1:0"
	cfg.Server.Auth.TokensFile = tokens
	cfg.Policy.Store.Driver = policy.DriverPostgres
	cfg.Policy.Store.DSN = config.Secret(c.DSN)
	cfg.Policy.KeyFile = c.KeyFile
	ready := make(chan struct{})
	a, err := New(cfg, Deps{Log: slog.New(slog.NewJSONHandler(os.Stdout, nil)), Ready: func(string) { close(ready) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("policy process did not start: %v", err)
	}
	fmt.Println("READY")
	for i := range c.Work {
		r := diagRequest(t, a.shared.policy, c.Resource)
		if _, err := a.shared.policy.Revoke(ctx, approver, r.ID, "done", 0); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("COMMITTED %d %s\n", i, r.ID)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// policyChild is a started TestPolicyChild.
type policyChild struct {
	name  string
	cmd   *exec.Cmd
	lines chan string // its protocol lines (READY, COMMITTED …), closed at its end
	// led receives the time it logged that it became the leader.
	led chan time.Time
}

// startPolicyChild starts a policy process; its output goes to a file
// the test logs when it fails. The process is killed when the test ends.
func startPolicyChild(t *testing.T, name string, c policyChildConfig) *policyChild {
	t.Helper()
	c.Dir = filepath.Join(t.TempDir(), name)
	raw, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestPolicyChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), policyChildEnv+"="+string(raw))
	logf := proctest.LogFile(t, filepath.Join(t.TempDir(), name+".log"), "policy process "+name)
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &policyChild{name: name, cmd: cmd, lines: make(chan string, 1024), led: make(chan time.Time, 16)}
	var mu sync.Mutex
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l := sc.Text()
			mu.Lock()
			fmt.Fprintln(logf, l)
			mu.Unlock()
			if strings.HasPrefix(l, "{") {
				var rec struct {
					Time      time.Time `json:"time"`
					Msg       string    `json:"msg"`
					Component string    `json:"component"`
				}
				if json.Unmarshal([]byte(l), &rec) == nil && rec.Msg == "became the leader" && rec.Component == c.leaderComponent() {
					p.led <- rec.Time
				}
				continue
			}
			p.lines <- l
		}
	}()
	t.Cleanup(p.kill)
	return p
}

// kill ends the process with SIGKILL, as a crash would, and waits for it.
func (p *policyChild) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	for range p.lines { // until its stdout closes
	}
	_ = p.cmd.Wait()
}

// expect waits for the process's next protocol line starting with prefix.
func (p *policyChild) expect(t *testing.T, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("policy process %s ended before printing %s", p.name, prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-deadline:
			t.Fatalf("policy process %s did not print %s within %s", p.name, prefix, timeout)
		}
	}
}

// policyKey creates a signing key pair under dir and returns the private
// key's path and its signer.
func policyKey(t *testing.T, dir string) (string, *sign.Signer) {
	t.Helper()
	path := filepath.Join(dir, "policy.key")
	s, _, err := sign.EnsureKeyPair(path, path+".pub")
	if err != nil {
		t.Fatal(err)
	}
	return path, s
}

// openPolicy opens the policy store of dsn with a service on it (the
// parent's view of the processes' database).
func openPolicy(t *testing.T, dsn string, signer *sign.Signer, now func() time.Time) *policy.Service {
	t.Helper()
	cfg := policy.DefaultStoreConfig()
	cfg.Driver, cfg.DSN = policy.DriverPostgres, config.Secret(dsn)
	st, err := policy.OpenStore(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return serviceOn(t, st, signer, now)
}

func serviceOn(t *testing.T, st *policy.Store, signer *sign.Signer, now func() time.Time) *policy.Service {
	t.Helper()
	cat, err := policy.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	svc, err := policy.NewService(st, cat, signer, policy.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// lifecycleOf decodes the lifecycle events of records (outbox or Kafka
// values).
func lifecycleOf(t *testing.T, values [][]byte) []schemas.Lifecycle {
	t.Helper()
	out := make([]schemas.Lifecycle, 0, len(values))
	for _, v := range values {
		l, err := schemas.DecodeLifecycle(v)
		if err != nil {
			t.Fatalf("lifecycle event: %v", err)
		}
		out = append(out, l)
	}
	return out
}

// outboxValues returns the values of the outbox's records of topic, in
// id order, and how many are still pending.
func outboxValues(t *testing.T, st *policy.Store, topic string) (values [][]byte, pending int) {
	t.Helper()
	recs, err := st.Outbox(context.Background(), 0, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Topic == topic {
			values = append(values, r.Value)
			if r.Published.IsZero() {
				pending++
			}
		}
	}
	return values, pending
}

func outboxDepth(t *testing.T, st *policy.Store) int {
	t.Helper()
	s, err := st.OutboxStats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s.Pending
}

// TestTwoPolicyProcessesOneLeader: two policy processes on one real
// PostgreSQL (internal/pgtest) and one Kafka; requests expire one after
// another over a few seconds. One process leads (it alone ticks and
// relays); it is killed with SIGKILL half way, and the other takes over:
// every request expires once (one access_request.expired event per
// request in the outbox, and one event id per request on Kafka), some
// by the killed leader and the rest by the new one, whose relay also
// publishes what the killed one left pending.
func TestTwoPolicyProcessesOneLeader(t *testing.T) {
	dsn := pgtest.Start(t)
	broker := kafkatest.StartSecure(t, 1)
	dir := t.TempDir()
	keyFile, signer := policyKey(t, dir)
	svc := openPolicy(t, dsn, signer, time.Now)
	resource := cellResource(t, svc, "cell01")

	// Requests last an hour at least: services whose clocks are an hour
	// (less the lead) behind create requests that expire 8 s from now
	// and then every 400 ms.
	const n = 16
	base := time.Now().Add(8 * time.Second)
	ids := map[string]string{} // request → login
	for i := range n {
		offset := base.Add(time.Duration(i) * 400 * time.Millisecond).Add(-time.Hour).Sub(time.Now())
		r := diagRequest(t, serviceOn(t, svc.Store(), signer, func() time.Time { return time.Now().Add(offset) }), resource)
		ids[r.ID] = r.UserID
	}
	// The processes are the policy role's principal: its ACLs are all
	// they need.
	cc := policyChildConfig{DSN: dsn, Kafka: broker.Client(kafka.RolePolicy), KeyFile: keyFile}
	procs := []*policyChild{startPolicyChild(t, "p0", cc), startPolicyChild(t, "p1", cc)}
	leader, other := -1, -1
	select {
	case <-procs[0].led:
		leader, other = 0, 1
	case <-procs[1].led:
		leader, other = 1, 0
	case <-time.After(60 * time.Second):
		t.Fatal("no policy process became the leader within 60s")
	}
	expired := func() int {
		rs, _, err := svc.ListRequests(context.Background(), policy.RequestFilter{State: policy.StateExpired, Page: policy.Page{Limit: 1000}})
		if err != nil {
			t.Fatal(err)
		}
		return len(rs)
	}
	until(t, "half the requests expired", 60*time.Second, func() bool { return expired() >= n/2 })
	killed := time.Now()
	procs[leader].kill()
	select {
	case at := <-procs[other].led:
		t.Logf("%s led %v after %s was killed", procs[other].name, at.Sub(killed).Round(time.Millisecond), procs[leader].name)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not take over within 30s", procs[other].name)
	}
	until(t, "every request expired", 60*time.Second, func() bool { return expired() == n })
	until(t, "the outbox published", 60*time.Second, func() bool { return outboxDepth(t, svc.Store()) == 0 })
	select {
	case <-procs[other].led:
		t.Fatalf("%s lost and took the leadership again", procs[other].name)
	default:
	}

	// The outbox: one expiry event per request.
	values, _ := outboxValues(t, svc.Store(), schemas.TopicLifecycle)
	perRequest := map[string]int{}
	var before, after int
	for _, l := range lifecycleOf(t, values) {
		if l.Kind != "access_request.expired" {
			continue
		}
		perRequest[l.ObjectID]++
		if l.Time.Before(killed) {
			before++
		} else {
			after++
		}
	}
	for id := range ids {
		if perRequest[id] != 1 {
			t.Errorf("request %s: %d expiry events in the outbox, want 1", id, perRequest[id])
		}
	}
	if before == 0 || after == 0 {
		t.Errorf("expiries before the kill %d, after %d: want both (the killed leader's and its successor's)", before, after)
	}
	// Kafka: one event id per request (a batch the killed leader
	// published but did not mark is there twice, with the same ids).
	var kvalues [][]byte
	for _, r := range kafkatest.ReadAll(t, broker.Admin(), schemas.TopicLifecycle, 30*time.Second) {
		kvalues = append(kvalues, r.Value)
	}
	eventIDs := map[string]map[string]bool{}
	copies := 0
	for _, l := range lifecycleOf(t, kvalues) {
		if l.Kind != "access_request.expired" {
			continue
		}
		if eventIDs[l.ObjectID] == nil {
			eventIDs[l.ObjectID] = map[string]bool{}
		}
		eventIDs[l.ObjectID][l.EventID] = true
		copies++
	}
	for id := range ids {
		if len(eventIDs[id]) != 1 {
			t.Errorf("request %s: %d distinct expiry events on Kafka, want 1", id, len(eventIDs[id]))
		}
	}
	t.Logf("%d requests expired, %d by the killed leader and %d by its successor; %d expiry records on Kafka", n, before, after, copies)
}

// TestOutboxCrashLosesNothing: a policy process killed (SIGKILL) between
// the commit of its changes and their publication loses no lifecycle
// event, and one killed after Kafka acknowledged a batch but before the
// batch was marked published duplicates none in ClickHouse: the indexer
// stores lifecycle events in lifecycle_events, first write wins by
// event_id, so the second copy of the batch is counted as a duplicate and
// not inserted (rows counted without FINAL).
//
//   - A: the process commits changes (auto-approved requests, revoked)
//     while Kafka is unreachable, and is killed: everything is pending.
//   - B: a process starts with Kafka back while the test holds row locks
//     on the pending records (SELECT … FOR UPDATE): its relay publishes
//     the first batch, blocks marking it, and is killed then (the
//     backend still waiting is ended before the locks go, as a dead
//     client's would be).
//   - C: a third process publishes everything, the first batch again.
func TestOutboxCrashLosesNothing(t *testing.T) {
	if _, err := chdb.FindLibrary(""); err != nil {
		testenv.SkipOrFail(t, testenv.CHDB, "needs libchdb.so (run 'make deps'): %v", err)
	}
	dsn := pgtest.Start(t)
	dir := t.TempDir()
	// This process is the pipeline's end: the embedded broker and the
	// indexer into chDB.
	cfg := DefaultConfig()
	cfg.Embedded.DataDir = filepath.Join(dir, "data")
	cfg.Embedded.KafkaListen = "127.0.0.1:0"
	cfg.Server.HTTPAddr = "127.0.0.1:0"
	a, stop := startWith(t, cfg, "server", "broker", "store", "indexer")
	defer stop()
	keyFile, signer := policyKey(t, dir)
	svc := openPolicy(t, dsn, signer, time.Now)
	resource := cellResource(t, svc, "cell01")
	st := svc.Store()
	setup, _ := outboxValues(t, st, schemas.TopicLifecycle)

	// A: commits, Kafka away, killed.
	const work = 6
	policyRole := a.shared.broker.Client(kafka.RolePolicy)
	unreachable := policyRole
	unreachable.Brokers = []string{kafka.HostPort("127.0.0.1", proctest.FreePorts(t, 1)[0])}
	away := policyChildConfig{DSN: dsn, Kafka: unreachable, KeyFile: keyFile, Work: work, Resource: resource}
	pa := startPolicyChild(t, "a", away)
	pa.expect(t, fmt.Sprintf("COMMITTED %d ", work-1), 60*time.Second)
	pa.kill()
	values, pending := outboxValues(t, st, schemas.TopicLifecycle)
	if want := len(setup) + 3*work; len(values) != want || pending != len(values) {
		// Each request: created, auto_approved, revoked.
		t.Fatalf("after A: %d lifecycle events in the outbox, %d pending; want %d, all pending", len(values), pending, want)
	}
	depth := outboxDepth(t, st)

	// B: published, not marked, killed.
	recs, err := st.PendingOutbox(context.Background(), policy.DefaultConfig().Relay.BatchSize)
	if err != nil {
		t.Fatal(err)
	}
	firstRun := 0
	for firstRun < len(recs) && recs[firstRun].Topic == recs[0].Topic {
		firstRun++
	}
	if recs[0].Topic != schemas.TopicLifecycle {
		t.Fatalf("the first pending record is on %s; the test wants a lifecycle batch first", recs[0].Topic)
	}
	lockConn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer lockConn.Close(context.Background())
	lockTx, err := lockConn.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockTx.Exec(context.Background(), "SELECT id FROM outbox WHERE published_ms IS NULL FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	back := policyChildConfig{DSN: dsn, Kafka: policyRole, KeyFile: keyFile}
	pb := startPolicyChild(t, "b", back)
	until(t, "the first batch on Kafka", 60*time.Second, func() bool {
		return len(kafkatest.ReadAll(t, a.shared.kafka, schemas.TopicLifecycle, 30*time.Second)) >= firstRun
	})
	until(t, "the relay waiting to mark the batch", 30*time.Second, func() bool {
		var n int
		err := lockConn.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'").Scan(&n)
		return err == nil && n > 0
	})
	pb.kill()
	if _, err := lockConn.Exec(context.Background(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"); err != nil {
		t.Fatal(err)
	}
	if err := lockTx.Rollback(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := outboxDepth(t, st); d != depth {
		t.Fatalf("after B: %d records pending, want all %d (the batch published was not marked)", d, depth)
	}

	// C: everything published.
	pc := startPolicyChild(t, "c", back)
	until(t, "the outbox published", 60*time.Second, func() bool { return outboxDepth(t, st) == 0 })
	pc.kill()

	// ClickHouse: every event of the outbox once. The indexer stores
	// lifecycle events first write wins by event_id: the batch published
	// twice is a duplicate the second time, counted and not inserted.
	want := map[string]bool{}
	for _, l := range lifecycleOf(t, values) {
		want[l.EventID] = true
	}
	q := "SELECT count(), uniqExact(event_id) FROM lifecycle_events SETTINGS final = 0"
	var rows, distinct int
	until(t, "the lifecycle events in ClickHouse", 60*time.Second, func() bool {
		res, err := a.shared.engine.Query(context.Background(), q)
		if err != nil || len(res.Rows) != 1 {
			return false
		}
		rows, distinct = toInt(res.Rows[0][0]), toInt(res.Rows[0][1])
		return distinct >= len(want)
	})
	// The copies of the batch published twice have reached the indexer.
	waitMetric(t, a.Registry(), "the second copies counted as duplicates", "auditpipe_indexer_duplicates_total", float64(firstRun))
	res, err := a.shared.engine.Query(context.Background(), "SELECT event_id FROM lifecycle_events SETTINGS final = 0")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range res.Rows {
		got[fmt.Sprint(r[0])]++
	}
	for id := range want {
		if got[id] != 1 {
			t.Errorf("lifecycle event %s of the outbox is in ClickHouse %d times, want once", id, got[id])
		}
	}
	if len(res.Rows) != len(want) {
		t.Errorf("%d lifecycle rows in ClickHouse (without FINAL), %d events in the outbox", len(res.Rows), len(want))
	}
	t.Logf("%d lifecycle events in the outbox (%d committed by process A, killed before publishing), %d published by process B, killed before marking them, and again by C; ClickHouse holds %d rows, %d distinct event ids", len(want), 3*work, firstRun, rows, distinct)
}

func toInt(v any) int {
	var n int
	fmt.Sscan(fmt.Sprint(v), &n)
	return n
}
