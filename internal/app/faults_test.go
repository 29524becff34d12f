//go:build faults

package app

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse/chdb"
	"github.com/auditpipe/auditpipe/collector"
	"github.com/auditpipe/auditpipe/collector/assemble"
	"github.com/auditpipe/auditpipe/collector/builder"
	"github.com/auditpipe/auditpipe/collector/spool"
	"github.com/auditpipe/auditpipe/forwarder"
	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/siemtest"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/internal/testenv"
	"github.com/auditpipe/auditpipe/queryapi"
	"github.com/auditpipe/auditpipe/schemas"
)

// faultParams are the fault suite's knobs, from the environment (make
// test-faults passes them; CI runs a smaller configuration).
type faultParams struct {
	events   int           // AUDITPIPE_FAULT_EVENTS: audited events written (default 200000)
	seed     uint64        // AUDITPIPE_FAULT_SEED: the faults' moments (default: from the clock; printed)
	window   time.Duration // AUDITPIPE_FAULT_WINDOW: traffic is written, and the faults happen, over this time (default 120s)
	siemDown time.Duration // AUDITPIPE_FAULT_SIEM_DOWN: how long rsyslog is stopped (default 60s)
	kills    int           // AUDITPIPE_FAULT_KILLS: kill -9 of each of collector, indexer, forwarder (default 3)
	settle   time.Duration // AUDITPIPE_FAULT_SETTLE: after the window, how long the pipeline has to deliver everything (default 10m)
}

func faultParamsFromEnv(t *testing.T) faultParams {
	t.Helper()
	p := faultParams{events: 200_000, seed: uint64(time.Now().UnixNano()), window: 120 * time.Second,
		siemDown: 60 * time.Second, kills: 3, settle: 10 * time.Minute}
	ints := []struct {
		env string
		dst *int
	}{{"AUDITPIPE_FAULT_EVENTS", &p.events}, {"AUDITPIPE_FAULT_KILLS", &p.kills}}
	for _, v := range ints {
		if s := os.Getenv(v.env); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				t.Fatalf("%s=%q: want a positive integer", v.env, s)
			}
			*v.dst = n
		}
	}
	if s := os.Getenv("AUDITPIPE_FAULT_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("AUDITPIPE_FAULT_SEED=%q: %v", s, err)
		}
		p.seed = n
	}
	durs := []struct {
		env string
		dst *time.Duration
	}{{"AUDITPIPE_FAULT_WINDOW", &p.window}, {"AUDITPIPE_FAULT_SIEM_DOWN", &p.siemDown}, {"AUDITPIPE_FAULT_SETTLE", &p.settle}}
	for _, v := range durs {
		if s := os.Getenv(v.env); s != "" {
			d, err := config.ParseDuration(s)
			if err != nil || d <= 0 {
				t.Fatalf("%s=%q: want a positive duration", v.env, s)
			}
			*v.dst = d
		}
	}
	return p
}

// faultTraffic writes the suite's load: at least n audited events as
// auditd writes them into the audit log at path, at about rate events a
// second, rotating the log as auditd does (path.1, path.2, …), until done
// or ctx ends. The expected events are not its word: the suite decodes
// what was written with the collector's own decoder, the run without
// faults.
type faultTraffic func(ctx context.Context, path string, n int, rate float64) error

// TestFaultSuite is issue 17's fault suite (make test-faults): the three
// split targets as processes of the built binary, each its own principal
// on a real Apache Kafka secured as in production, an rsyslog over TLS as
// the SIEM, while the traffic is written: kill -9 of the collector, the
// indexer and the forwarder at random moments, several times each; the
// broker killed and restarted; rsyslog stopped for a minute; the
// collector's disk filled. Afterwards ClickHouse holds every event once
// (counted without FINAL), rsyslog received every event at least once
// (duplicates counted), `auditpipe verify` finds every chain intact, and
// the collector's spool is empty.
func TestFaultSuite(t *testing.T) {
	if _, err := chdb.FindLibrary(""); err != nil {
		testenv.SkipOrFail(t, testenv.CHDB, "needs libchdb.so (run 'make deps'): %v", err)
	}
	testenv.RequireRoot(t, "the collector's state directory is a tmpfs the suite fills")
	p := faultParamsFromEnv(t)
	t.Logf("fault suite: %d events over %s, %d kills of each target, rsyslog down %s, seed %d (AUDITPIPE_FAULT_SEED=%d repeats the faults' moments)",
		p.events, p.window, p.kills, p.siemDown, p.seed, p.seed)
	runFaultSuite(t, p, sampleTraffic(t))
}

func runFaultSuite(t *testing.T, p faultParams, traffic faultTraffic) {
	began := time.Now()
	bin := auditpipeBinary(t)
	_, a := kafkatest.StartApache(t, 1)
	dir := t.TempDir()
	sample, err := filepath.Abs("../../deploy/sample")
	if err != nil {
		t.Fatal(err)
	}

	// The indexer: embedded chDB, its query endpoint for the suite's counts
	// and for verify.
	tokens, tok := writeTokens(t, dir, auth.RoleAuditor)
	tokenFile := filepath.Join(dir, "auditor.token")
	if err := os.WriteFile(tokenFile, []byte(tok[auth.RoleAuditor]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ix := DefaultConfig()
	ix.Target = TargetIndexer
	ix.Server.HTTPAddr = "127.0.0.1:0"
	ix.Server.Auth.TokensFile = tokens
	ix.Kafka = a.Client(kafka.RoleIndexer)
	ix.ClickHouse.Embedded.Dir = filepath.Join(dir, "chdb")
	ix.ClickHouse.RetentionDays = 0
	ix.Indexer.Batch.MaxWait = 200 * time.Millisecond
	ix.Indexer.RetryBackoffMax = 2 * time.Second
	indexer := newTargetProc(t, dir, "indexer", bin, ix)

	ca := siemtest.NewCA(t, dir, "siem-ca")
	cert, key := ca.Issue(t, dir, "siem", siemtest.CertOptions{})
	rs := siemtest.StartRsyslog(t, siemtest.RsyslogOptions{CA: ca, CertFile: cert, KeyFile: key})
	fw := DefaultConfig()
	fw.Target = TargetForwarder
	fw.Server.HTTPAddr = "127.0.0.1:0"
	fw.Server.Auth.OpenMetrics = true
	fw.Kafka = a.Client(kafka.RoleForwarder)
	fw.Forwarder.Destinations = []forwarder.Destination{{Name: "siem", Address: rs.Addr, TLS: forwarder.TLS{CAFile: ca.CertPEM}}}
	fwGroup := fw.Forwarder.Destinations[0].WithDefaults().Group
	fwd := newTargetProc(t, dir, "forwarder", bin, fw)

	// The collector's state (checkpoint, spool) on a tmpfs the suite fills.
	state := testenv.MountTmpfs(t, filepath.Join(dir, "state"), 64<<20)
	logPath := filepath.Join(dir, "audit", "audit.log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		t.Fatal(err)
	}
	col := sampleConfig(dir, logPath)
	col.Target = TargetCollector
	col.Collector.Passwd = filepath.Join(sample, "passwd")
	col.Collector.Group = filepath.Join(sample, "group")
	col.Server.Auth.OpenMetrics = true
	col.Kafka = a.Client(kafka.RoleCollector)
	col.Collector.StateDir = state
	col.Collector.SpoolMaxBytes = 32 << 20
	col.Collector.FlushInterval = 200 * time.Millisecond
	col.Collector.ProduceTimeout = 5 * time.Second
	col.Collector.GrantKeys = []string{grantKeyFile(t, dir)}
	col.Collector.ChainKeyFile = filepath.Join(dir, "chain.key")
	if _, _, err := sign.EnsureKeyPair(col.Collector.ChainKeyFile, col.Collector.ChainKeyFile+".pub"); err != nil {
		t.Fatal(err)
	}
	coll := newTargetProc(t, dir, "collector", bin, col)

	for _, pr := range []*targetProc{indexer, fwd, coll} {
		pr.start(t)
	}
	t.Logf("fault suite: broker, rsyslog and the three targets up after %s", time.Since(began).Round(time.Millisecond))

	// The traffic, in the background, over the window.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	written := make(chan error, 1)
	trafficStart := time.Now()
	writtenIn := make(chan time.Duration, 1)
	go func() {
		err := traffic(ctx, logPath, p.events, float64(p.events)/p.window.Seconds())
		writtenIn <- time.Since(trafficStart)
		written <- err
	}()

	// The faults, at moments drawn from the seed, in the test's goroutine.
	do := map[string]func(){
		"kill collector":  coll.kill,
		"start collector": func() { coll.start(t) },
		"kill indexer":    indexer.kill,
		"start indexer":   func() { indexer.start(t) },
		"kill forwarder":  fwd.kill,
		"start forwarder": func() { fwd.start(t) },
		"kill broker":     func() { a.Kill(t) },
		"start broker":    func() { a.Start(t) },
		"stop rsyslog":    func() { rs.Stop(t) },
		"start rsyslog":   func() { rs.Start(t) },
		"fill disk":       func() { testenv.FillDisk(t, filepath.Join(state, "filler")) },
		"free disk": func() {
			if err := os.Remove(filepath.Join(state, "filler")); err != nil {
				t.Fatal(err)
			}
		},
	}
	faultStart := time.Now()
	n := runFaultPlan(faultPlan(p), func(f faultStep, at time.Duration) {
		t.Logf("fault suite: %s at %s (planned %s)", f.what, at.Round(time.Millisecond), f.at.Round(time.Millisecond))
		do[f.what]()
	})
	t.Logf("fault suite: %d faults done after %s", n, time.Since(faultStart).Round(time.Millisecond))
	if err := <-written; err != nil {
		t.Fatalf("writing the traffic: %v", err)
	}
	t.Logf("fault suite: traffic written in %s", (<-writtenIn).Round(time.Millisecond))

	// What was written, decoded as the collector decodes it.
	want, err := expectedEvents(logPath, col)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) < p.events {
		t.Fatalf("the traffic holds %d audited events, want at least %d", len(want), p.events)
	}
	t.Logf("fault suite: %d audited events written", len(want))

	// Everything delivered: every event in ClickHouse, every one at rsyslog.
	q := &queryapi.HTTPClient{URL: indexer.url, Token: config.Secret(tok[auth.RoleAuditor])}
	const counts = "SELECT count(), uniqExact(event_id), sum(reinterpretAsUInt64(unhex(substring(event_id, 1, 16)))) FROM audit_events WHERE event != 'chain' SETTINGS final = 0"
	wantSum := idChecksum(want)
	siem := newSIEMCount(rs)
	deadline := time.Now().Add(p.settle)
	var rows, uniq, sum uint64
	for {
		rows, uniq, sum, err = storeCounts(ctx, q, counts)
		siem.read(t)
		if err == nil && uniq >= uint64(len(want)) && siem.distinct(want) == len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: ClickHouse %d rows, %d event ids (%v); rsyslog %d of %d events", p.settle, rows, uniq, err, siem.distinct(want), len(want))
		}
		time.Sleep(time.Second)
	}
	waitLag(t, a.Config, ix.Indexer.Group, 2*time.Minute)
	waitLag(t, a.Config, fwGroup, 2*time.Minute)
	rows, uniq, sum, err = storeCounts(ctx, q, counts)
	if err != nil {
		t.Fatal(err)
	}
	siem.read(t)
	t.Logf("fault suite: ClickHouse: %d rows (without FINAL), %d distinct event ids, for %d events", rows, uniq, len(want))
	t.Logf("fault suite: rsyslog: %d messages, %d distinct events of %d, %d duplicates", siem.messages, siem.distinct(want), len(want), siem.duplicates())
	if rows != uint64(len(want)) || uniq != uint64(len(want)) {
		t.Errorf("ClickHouse holds %d rows of %d event ids, want %d of %d: each event exactly once", rows, uniq, len(want), len(want))
	}
	if sum != wantSum {
		t.Errorf("the event ids in ClickHouse are not those written (checksum %d, want %d)", sum, wantSum)
	}
	if n := siem.distinct(want); n != len(want) {
		t.Errorf("rsyslog received %d of %d events", n, len(want))
	}
	if extra := siem.unknown(want); extra > 0 {
		t.Errorf("rsyslog received %d events that were never written", extra)
	}

	// The trail's integrity, as an auditor checks it.
	// Every checkpoint must be signed by the collector's key.
	out, err := exec.Command(bin, "verify", "--server", indexer.url, "--token-file", tokenFile, "--pubkey", col.Collector.ChainKeyFile+".pub").CombinedOutput()
	t.Logf("fault suite: auditpipe verify:\n%s", out)
	if err != nil {
		t.Errorf("auditpipe verify: %v", err)
	}
	wantHost := fmt.Sprintf("host %s: %d events, seq 1..%d;", col.Collector.Host, len(want), len(want))
	if !strings.Contains(string(out), wantHost) || !strings.Contains(string(out), "verify: 1 hosts, 1 intact, 0 with findings") || !strings.Contains(string(out), " 0 invalid, 0 unsigned, 0 unverified") {
		t.Errorf("auditpipe verify: want %q, every checkpoint signed and the one host intact", wantHost)
	}

	// The spool is empty: the collector says so, and so does its
	// directory once it stopped.
	if n := coll.metric(t, "auditpipe_collector_spool_entries"); n != 0 {
		t.Errorf("the collector's spool holds %v entries, want 0", n)
	}
	coll.stop(t)
	sp, err := spool.Open(filepath.Join(state, "spool"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	left := sp.Entries()
	sp.Close()
	t.Logf("fault suite: spool: %d entries left", left)
	if left != 0 {
		t.Errorf("the spool holds %d entries after the run, want 0", left)
	}
	for _, pr := range []*targetProc{indexer, fwd} {
		pr.stop(t)
	}
	t.Logf("fault suite: done in %s (seed %d)", time.Since(began).Round(time.Second), p.seed)
}

// faultStep is one step of a fault: at its moment (from the start of the
// plan), what happens (a key of the test's actions). then is the step
// that undoes it, down after this one actually ran: a step that runs late
// (a restart that took long) does not shorten the next outage.
type faultStep struct {
	at   time.Duration
	what string
	then *faultStep
	down time.Duration
}

// faultPlan draws the faults' moments from the seed over the window: each
// target killed p.kills times, once in each of as many slots of the window,
// and started again 0.5-3 s later; the broker killed once and started
// 2-8 s later; rsyslog stopped for p.siemDown; the collector's disk filled
// for 5-10 s. A fault of one part may overlap another's.
func faultPlan(p faultParams) []*faultStep {
	rng := rand.New(rand.NewPCG(p.seed, p.seed^0x9e3779b97f4a7c15))
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo)+1)) }
	var plan []*faultStep
	add := func(at, down time.Duration, stop, start string) {
		plan = append(plan, &faultStep{at: at, what: stop, down: down, then: &faultStep{at: at + down, what: start}})
	}
	slot := p.window / time.Duration(p.kills)
	for _, c := range []string{"collector", "indexer", "forwarder"} {
		for i := range p.kills {
			add(time.Duration(i)*slot+between(0, slot/2), between(500*time.Millisecond, 3*time.Second), "kill "+c, "start "+c)
		}
	}
	add(between(0, p.window), between(2*time.Second, 8*time.Second), "kill broker", "start broker")
	add(between(0, max(p.window-p.siemDown, 0)), p.siemDown, "stop rsyslog", "start rsyslog")
	add(between(0, p.window), between(5*time.Second, 10*time.Second), "fill disk", "free disk")
	return plan
}

// runFaultPlan runs the steps in the order of their moments, each when its
// moment came (run is passed the step and the time since the start), and
// returns the number of steps run. A step's then is due down after the step
// ran.
func runFaultPlan(plan []*faultStep, run func(f faultStep, at time.Duration)) int {
	start := time.Now()
	due := map[*faultStep]time.Duration{}
	pending := slices.Clone(plan)
	for _, f := range plan {
		due[f] = f.at
	}
	n := 0
	for len(pending) > 0 {
		slices.SortStableFunc(pending, func(a, b *faultStep) int { return cmp.Compare(due[a], due[b]) })
		f := pending[0]
		pending = pending[1:]
		if d := time.Until(start.Add(due[f])); d > 0 {
			time.Sleep(d)
		}
		at := time.Since(start)
		run(*f, at)
		n++
		if f.then != nil {
			due[f.then] = time.Since(start) + f.down
			pending = append(pending, f.then)
		}
	}
	return n
}

// expectedEvents decodes the audit log at path and its rotated files
// (oldest first), as the collector configured by cfg does, and returns
// the event ids of the audited events.
func expectedEvents(path string, cfg Config) (map[string]bool, error) {
	names, err := builder.LoadNames(cfg.Collector.Passwd, cfg.Collector.Group)
	if err != nil {
		return nil, err
	}
	// The collector's static grants, as it takes them (keystrokes audited).
	grants := builder.StaticGrants{}
	for login, id := range cfg.Collector.Grants {
		grants[login] = schemas.Grant{LoginID: login, ReqAuthID: id, AuditType: schemas.AuditCommandKeystroke}
	}
	ids := map[string]bool{}
	d := collector.NewDecoder(builder.Config{
		Layer: cfg.Collector.Layer, Host: cfg.Collector.Host, AllUsers: cfg.Collector.AllUsers, Names: names, Grants: grants,
	}, assemble.Options{}, func(ev *schemas.Event, _ *assemble.Event) { ids[ev.EventID] = true }, func(collector.Reject) {})
	files := []string{path}
	for i := 1; ; i++ {
		if _, err := os.Stat(fmt.Sprintf("%s.%d", path, i)); err != nil {
			break
		}
		files = append(files, fmt.Sprintf("%s.%d", path, i))
	}
	slices.Reverse(files)
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		err = collector.ReadLines(f, collector.DefaultMaxLineBytes, func(line []byte, err error) error {
			if err != nil {
				return err
			}
			d.Line(line, 0, time.Now())
			return nil
		})
		f.Close()
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("decoding %s: %w", name, err)
		}
	}
	d.Flush()
	return ids, nil
}

// idChecksum is what the suite's query sums over the stored ids: the
// first 8 bytes of each id, little-endian, added modulo 2^64.
func idChecksum(ids map[string]bool) uint64 {
	var sum uint64
	for id := range ids {
		b, _ := hex.DecodeString(id[:16])
		sum += binary.LittleEndian.Uint64(b)
	}
	return sum
}

// storeCounts runs counts (rows, distinct ids, id checksum).
func storeCounts(ctx context.Context, q *queryapi.HTTPClient, counts string) (rows, uniq, sum uint64, err error) {
	res, err := q.Query(ctx, counts)
	if err != nil {
		return 0, 0, 0, err
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 3 {
		return 0, 0, 0, fmt.Errorf("%s: %v", counts, res.Rows)
	}
	var v [3]uint64
	for i, c := range res.Rows[0] {
		if v[i], err = strconv.ParseUint(strings.TrimSpace(fmt.Sprint(c)), 10, 64); err != nil {
			return 0, 0, 0, fmt.Errorf("%s: column %d: %w", counts, i, err)
		}
	}
	return v[0], v[1], v[2], nil
}

// siemCount counts what rsyslog received, by event id, reading its file
// on from where it stopped.
type siemCount struct {
	rs       *siemtest.Rsyslog
	off      int64
	messages int
	ids      map[string]int
}

func newSIEMCount(rs *siemtest.Rsyslog) *siemCount { return &siemCount{rs: rs, ids: map[string]int{}} }

func (s *siemCount) read(t *testing.T) {
	t.Helper()
	msgs, off := s.rs.MessagesFrom(t, s.off)
	s.off = off
	for _, m := range msgs {
		// <PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD]...: the chain
		// checkpoints (MSGID chain) are not audited events.
		if f := strings.SplitN(m, " ", 7); len(f) == 7 && f[5] == string(schemas.KindChain) {
			continue
		}
		i := strings.Index(m, `event_id="`)
		if i < 0 || len(m) < i+42 {
			t.Fatalf("not an auditpipe message at rsyslog: %q", m)
		}
		s.messages++
		s.ids[m[i+10:i+42]]++
	}
}

// distinct is how many of want arrived.
func (s *siemCount) distinct(want map[string]bool) int {
	n := 0
	for id := range want {
		if s.ids[id] > 0 {
			n++
		}
	}
	return n
}

// unknown is how many ids arrived that are not in want.
func (s *siemCount) unknown(want map[string]bool) int {
	n := 0
	for id := range s.ids {
		if !want[id] {
			n++
		}
	}
	return n
}

// duplicates is the copies beyond the first of each event.
func (s *siemCount) duplicates() int {
	n := 0
	for _, c := range s.ids {
		n += c - 1
	}
	return n
}

// sampleTraffic is the bundled sample (18 audited events) repeated with
// shifted serials and times: a stand-in for the load generator of branch
// loadgen until it is merged.
func sampleTraffic(t *testing.T) faultTraffic {
	first, second := sampleHalves(t)
	lines := strings.SplitAfter(first+second, "\n")
	return func(ctx context.Context, path string, n int, rate float64) error {
		const perCopy = 18
		copies := (n + perCopy - 1) / perCopy
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		w := bufio.NewWriterSize(f, 1<<20)
		var size int64
		start := time.Now()
		for k := range copies {
			for _, l := range lines {
				l = shiftSample(l, k)
				w.WriteString(l)
				size += int64(len(l))
			}
			if due := start.Add(time.Duration(float64((k+1)*perCopy) / rate * float64(time.Second))); time.Until(due) > 0 {
				if err := w.Flush(); err != nil {
					return err
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Until(due)):
				}
			}
			if size > 16<<20 { // rotate as auditd does
				if err := w.Flush(); err != nil {
					return err
				}
				f.Close()
				if err := rotate(path); err != nil {
					return err
				}
				if f, err = os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
					return err
				}
				w.Reset(f)
				size = 0
			}
		}
		if err := w.Flush(); err != nil {
			return err
		}
		return f.Close()
	}
}

// shiftSample moves a sample line's audit(SEC.MS:SERIAL) by copy k.
func shiftSample(l string, k int) string {
	i := strings.Index(l, "msg=audit(")
	if i < 0 {
		return l
	}
	j := strings.IndexByte(l[i:], ')')
	stamp := l[i+len("msg=audit(") : i+j]
	dot, colon := strings.IndexByte(stamp, '.'), strings.IndexByte(stamp, ':')
	sec, _ := strconv.ParseInt(stamp[:dot], 10, 64)
	serial, _ := strconv.ParseUint(stamp[colon+1:], 10, 64)
	return fmt.Sprintf("%smsg=audit(%d.%s:%d)%s", l[:i], sec+int64(k)*200, stamp[dot+1:colon], serial+uint64(k)*100, l[i+j+1:])
}

// rotate renames path to path.1, path.1 to path.2, and so on.
func rotate(path string) error {
	n := 1
	for ; ; n++ {
		if _, err := os.Stat(fmt.Sprintf("%s.%d", path, n)); err != nil {
			break
		}
	}
	for ; n > 1; n-- {
		if err := os.Rename(fmt.Sprintf("%s.%d", path, n-1), fmt.Sprintf("%s.%d", path, n)); err != nil {
			return err
		}
	}
	return os.Rename(path, path+".1")
}
