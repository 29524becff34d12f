//go:build faults

package app

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
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
	"github.com/auditpipe/auditpipe/collector/spool"
	"github.com/auditpipe/auditpipe/internal/auditgen"
	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/proctest"
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
	began := time.Now()
	bin := proctest.Build(t, "../../cmd/auditpipe")
	_, a := kafkatest.StartApache(t, 1)
	dir := t.TempDir()

	// The indexer: embedded chDB, its query endpoint for the suite's counts
	// and for verify.
	ix, tok := securedIndexerConfig(t, a, dir)
	tokenFile := filepath.Join(dir, "auditor.token")
	if err := os.WriteFile(tokenFile, []byte(tok[auth.RoleAuditor]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ix.Indexer.RetryBackoffMax = 2 * time.Second
	indexer := newTargetProc(t, dir, "indexer", bin, ix)

	fw, rs := securedForwarderConfig(t, a, dir)
	fwGroup := fw.Forwarder.Destinations[0].WithDefaults().Group
	fwd := newTargetProc(t, dir, "forwarder", bin, fw)

	// The collector's state (checkpoint, spool) on a tmpfs the suite fills.
	state := testenv.MountTmpfs(t, filepath.Join(dir, "state"), 64<<20)
	logPath := filepath.Join(dir, "audit", "audit.log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		t.Fatal(err)
	}
	// The traffic (internal/auditgen): operator sessions on two nodes of an
	// aggregating auditd, ENRICHED, with noise; the collector is given the
	// generator's users and grants (static grants audit keystrokes: so do
	// the generator's grants with CommandAuditEvery -1).
	gcfg := auditgen.Config{Seed: p.seed, Host: "cell00", Nodes: []string{"cell01", "cell02"}, Enriched: true, CommandAuditEvery: -1}
	gen := auditgen.New(gcfg)
	col := DefaultConfig()
	col.Target = TargetCollector
	col.Server.HTTPAddr = "127.0.0.1:0"
	col.Collector.Host = gcfg.Host
	col.Collector.Input.Path = logPath
	col.Collector.Passwd = filepath.Join(dir, "passwd")
	col.Collector.Group = filepath.Join(dir, "group")
	for path, b := range map[string][]byte{col.Collector.Passwd: gen.Passwd(), col.Collector.Group: gen.Group()} {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	col.Collector.Grants = map[string]string{}
	for _, g := range gen.Grants() {
		col.Collector.Grants[g.LoginID] = g.ReqAuthID
	}
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

	// The traffic, in the background, over the window, until at least
	// p.events audited events are written. Every rotated file is kept: the
	// collector may be down over rotations, and what auditd's num_logs
	// drops unread is not the fault under test.
	ctx := t.Context()
	wctx, stopWriting := context.WithCancel(ctx)
	defer stopWriting()
	want := map[string]bool{}
	perHost := map[string]int{}
	w := &auditgen.Writer{Path: logPath, Gen: gen, Rate: auditRate(gcfg, p), MaxBytes: 32 << 20, NumLogs: 10_000,
		OnWrite: func(evs []auditgen.Event, _ time.Time) {
			for _, ev := range evs {
				if ev.Expected() { // all of the last write's too: they are in the log
					want[ev.ID()] = true
					perHost[ev.Host]++
				}
			}
			if len(want) >= p.events {
				stopWriting()
			}
		}}
	written := make(chan error, 1)
	trafficStart := time.Now()
	writtenIn := make(chan time.Duration, 1)
	go func() {
		err := w.Run(wctx)
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
	faultsTook := time.Since(faultStart)
	t.Logf("fault suite: %d faults done after %s", n, faultsTook.Round(time.Millisecond))
	if err := <-written; err != nil {
		t.Fatalf("writing the traffic: %v", err)
	}
	t.Logf("fault suite: traffic written in %s", (<-writtenIn).Round(time.Millisecond))

	st := w.Stats()
	t.Logf("fault suite: %d audited events written (%d audit events, %d records, %d bytes, %d rotations)", len(want), st.Events, st.Records, st.Bytes, st.Rotations)
	if len(want) < p.events {
		t.Fatalf("the traffic holds %d audited events, want %d", len(want), p.events)
	}

	// Everything delivered: every event in ClickHouse, every one at rsyslog.
	q := &queryapi.HTTPClient{URL: indexer.url, Token: config.Secret(tok[auth.RoleAuditor])}
	const counts = "SELECT count(), uniqExact(event_id), sum(reinterpretAsUInt64(unhex(substring(event_id, 1, 16)))) FROM audit_events WHERE event != 'chain' SETTINGS final = 0"
	wantSum := idChecksum(want)
	siem := newSIEMCount(rs)
	deadline := time.Now().Add(p.settle)
	var rows, uniq, sum uint64
	var err error
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
	t.Logf("fault suite: every event in ClickHouse and at rsyslog %s after the last fault (%s after the traffic began)",
		time.Since(faultStart.Add(faultsTook)).Round(time.Second), time.Since(trafficStart).Round(time.Second))
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
	for host, n := range perHost {
		if line := fmt.Sprintf("host %s: %d events, seq 1..%d;", host, n, n); !strings.Contains(string(out), line) {
			t.Errorf("auditpipe verify: no %q", line)
		}
	}
	if sum := fmt.Sprintf("verify: %d hosts, %d intact, 0 with findings", len(perHost), len(perHost)); !strings.Contains(string(out), sum) || strings.Count(string(out), " 0 invalid, 0 unsigned, 0 unverified;") != len(perHost) {
		t.Errorf("auditpipe verify: want %q and every checkpoint signed", sum)
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
// plan), what happens (a key of the test's actions) to part. then is the
// step that undoes it, due down after this one actually ran: a step that
// runs late (a restart that took long) does not shorten the outage.
type faultStep struct {
	at         time.Duration
	part, what string
	then       *faultStep
	down       time.Duration
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
	add := func(part string, at, down time.Duration, stop, start string) {
		plan = append(plan, &faultStep{at: at, part: part, what: stop + " " + part, down: down,
			then: &faultStep{at: at + down, part: part, what: start + " " + part}})
	}
	slot := p.window / time.Duration(p.kills)
	for _, c := range []string{"collector", "indexer", "forwarder"} {
		for i := range p.kills {
			add(c, time.Duration(i)*slot+between(0, slot/2), between(500*time.Millisecond, 3*time.Second), "kill", "start")
		}
	}
	add("broker", between(0, p.window), between(2*time.Second, 8*time.Second), "kill", "start")
	add("rsyslog", between(0, max(p.window-p.siemDown, 0)), p.siemDown, "stop", "start")
	add("disk", between(0, p.window), between(5*time.Second, 10*time.Second), "fill", "free")
	return plan
}

// runFaultPlan runs the steps in the order of their moments, each when its
// moment came (run is passed the step and the time since the start), and
// returns the number of steps run. A step's then is due down after the
// step ran; until it ran, the part's next fault waits (a part is not
// killed twice).
func runFaultPlan(plan []*faultStep, run func(f faultStep, at time.Duration)) int {
	start := time.Now()
	due := map[*faultStep]time.Duration{}
	pending := slices.Clone(plan)
	for _, f := range plan {
		due[f] = f.at
	}
	undo := map[*faultStep]bool{}
	down := map[string]bool{}
	n := 0
	for len(pending) > 0 {
		slices.SortStableFunc(pending, func(a, b *faultStep) int { return cmp.Compare(due[a], due[b]) })
		i := slices.IndexFunc(pending, func(f *faultStep) bool { return undo[f] || !down[f.part] })
		f := pending[i]
		pending = slices.Delete(pending, i, i+1)
		if d := time.Until(start.Add(due[f])); d > 0 {
			time.Sleep(d)
		}
		run(*f, time.Since(start))
		n++
		down[f.part] = !undo[f]
		if f.then != nil {
			due[f.then] = time.Since(start) + f.down
			undo[f.then] = true
			pending = append(pending, f.then)
		}
	}
	return n
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

// auditRate is the writer's rate in audit events a second (noise and PAM
// records included) that writes p.events audited events over the window:
// the generator's share of audited events, measured on a copy of it.
func auditRate(cfg auditgen.Config, p faultParams) float64 {
	g := auditgen.New(cfg)
	const probe = 5000
	var buf []byte
	audited := 0
	for range probe {
		var ev auditgen.Event
		buf, ev = g.Append(buf[:0], time.Now())
		if ev.Expected() {
			audited++
		}
	}
	return float64(p.events) / p.window.Seconds() * probe / float64(max(audited, 1))
}

// The plan is the seed's: the same seed, the same moments; every part
// has its faults, each undone, at moments within the window (a restart
// may end after it).
func TestFaultPlan(t *testing.T) {
	p := faultParams{seed: 7, window: 2 * time.Minute, siemDown: time.Minute, kills: 3}
	moments := func(plan []*faultStep) []string {
		var out []string
		for _, f := range plan {
			out = append(out, fmt.Sprintf("%s@%s+%s", f.what, f.at, f.down))
		}
		return out
	}
	a, b := faultPlan(p), faultPlan(p)
	if !slices.Equal(moments(a), moments(b)) {
		t.Fatalf("one seed, two plans:\n%v\n%v", moments(a), moments(b))
	}
	p.seed = 8
	if slices.Equal(moments(a), moments(faultPlan(p))) {
		t.Fatal("another seed, the same plan")
	}
	count := map[string]int{}
	for _, f := range a {
		count[f.what]++
		if f.then == nil || f.then.part != f.part {
			t.Errorf("%s is not undone", f.what)
		}
		if f.at < 0 || f.at > p.window {
			t.Errorf("%s at %s, outside the window", f.what, f.at)
		}
	}
	want := map[string]int{"kill collector": 3, "kill indexer": 3, "kill forwarder": 3, "kill broker": 1, "stop rsyslog": 1, "fill disk": 1}
	if !maps.Equal(count, want) {
		t.Errorf("plan %v, want %v", count, want)
	}
}

// A part's next fault waits until its last one is undone, however late
// the undo runs: a target is never killed twice, nor started twice. (Only
// the order of each part's steps is checked, not the moments: the machine
// may be slow.)
func TestFaultPlanOrder(t *testing.T) {
	ms := time.Millisecond
	step := func(part string, at, down time.Duration) *faultStep {
		return &faultStep{at: at, part: part, what: "kill " + part, down: down, then: &faultStep{part: part, what: "start " + part}}
	}
	// The first kill of x is undone 30ms after it; its second kill is due
	// before that and must wait. y's fault comes in between.
	plan := []*faultStep{step("x", 0, 30*ms), step("x", 10*ms, 5*ms), step("y", 15*ms, 5*ms)}
	got := map[string][]string{}
	n := runFaultPlan(plan, func(f faultStep, _ time.Duration) { got[f.part] = append(got[f.part], f.what) })
	want := map[string][]string{"x": {"kill x", "start x", "kill x", "start x"}, "y": {"kill y", "start y"}}
	if n != 6 || !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("ran %d steps %v, want %v", n, got, want)
	}
}
