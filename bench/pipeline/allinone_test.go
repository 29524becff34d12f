package pipeline_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse/chdb"
	"github.com/auditpipe/auditpipe/internal/auditgen"
	"github.com/auditpipe/auditpipe/internal/proctest"
	"github.com/auditpipe/auditpipe/internal/siemtest"
	"github.com/auditpipe/auditpipe/internal/testenv"
)

// probe is one event whose arrival the harness watches for.
type probe struct {
	id      string
	written time.Time
	row     time.Duration // line written → row queryable (0: not yet)
	siem    time.Duration // line written → received by rsyslog
}

// probes are the latency probes: one expected event every probeEvery of
// writing.
type probes struct {
	mu   sync.Mutex
	all  []*probe
	byID map[string]*probe
	last time.Time
}

// The harness's own queries share the store with the indexer's inserts,
// so they are few and cheap: a probe every probeEvery of writing, looked
// up (final = 0: the event_id bloom filter, no merge on read) every
// probePoll; the completion count from part metadata every second.
const (
	probeEvery = 200 * time.Millisecond
	probePoll  = 500 * time.Millisecond
)

func (p *probes) offer(evs []auditgen.Event, at time.Time) {
	if at.Sub(p.last) < probeEvery {
		return
	}
	for _, e := range evs {
		if e.Expected() {
			pr := &probe{id: e.ID(), written: at}
			p.mu.Lock()
			p.all = append(p.all, pr)
			p.byID[pr.id] = pr
			p.mu.Unlock()
			p.last = at
			return
		}
	}
}

// pendingRows returns up to n probes not yet seen in ClickHouse.
func (p *probes) pendingRows(n int) []*probe {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*probe
	for _, pr := range p.all {
		if pr.row == 0 {
			out = append(out, pr)
			if len(out) == n {
				break
			}
		}
	}
	return out
}

func (p *probes) latencies(siem bool) (d []time.Duration, missing int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pr := range p.all {
		v := pr.row
		if siem {
			v = pr.siem
		}
		if v == 0 {
			missing++
			continue
		}
		d = append(d, v)
	}
	return d, missing
}

var sdEventID = regexp.MustCompile(`event_id=\\"([0-9a-f]{32})\\"`)

// BenchmarkAllInOne runs the all-in-one (auditpipe all-in-one: embedded
// broker, collector, indexer into chDB, forwarder to a real rsyslog over
// TLS) as its own process on traffic from internal/auditgen and reports:
// the contract events/s it sustained from the first line written to the
// last row in ClickHouse, with every event_id checked there (exactly once)
// and at rsyslog (at least once, copies counted); latency percentiles
// (line written → row inserted for every row, from ClickHouse's own
// inserted_at; → row queryable and → received by rsyslog for a probe
// every 200 ms); peak RSS and CPU of the all-in-one (by thread group:
// chDB's native threads are named, Go's are not), of rsyslog and of this
// process (the generator); the load average. Run it with -benchtime=1x
// (scripts/bench.d/pipeline.sh); settings in loadSettings.
//
// AUDITPIPE_BENCH_RATE > 0 offers that many contract events/s for
// AUDITPIPE_BENCH_DURATION into an audit log that rotates (64 MiB, 5
// files); AUDITPIPE_BENCH_RATE=0 writes AUDITPIPE_BENCH_EVENTS contract
// events first and measures how fast the pipeline drains them.
func BenchmarkAllInOne(b *testing.B) {
	s := loadSettings()
	if _, err := chdb.FindLibrary(""); err != nil {
		testenv.SkipOrFail(b, testenv.CHDB, "the all-in-one needs libchdb: %v", err)
	}
	for b.Loop() {
		runAllInOne(b, s)
	}
}

// traffic is a run's generated load: the generator, its writer, the ids
// the pipeline must deliver and the latency probes.
type traffic struct {
	s        settings
	dir      string
	gen      *auditgen.Generator
	w        *auditgen.Writer
	want     *expectedIDs
	pr       *probes
	log      string // the audit log
	pw, gr   string // passwd, group
	drain    bool
	bin      string
	siem     *siemtest.Rsyslog
	siemCA   string
	siemAddr string
}

// newTraffic prepares the load (in drain mode: writes it) and, when asked,
// starts rsyslog.
func newTraffic(b *testing.B, s settings) *traffic {
	t := &traffic{s: s, dir: b.TempDir(), want: &expectedIDs{}, pr: &probes{byID: map[string]*probe{}}, drain: s.rate == 0}
	t.bin = buildAuditpipe(b)
	share := expectedShare(s.gen)
	t.gen = auditgen.New(s.gen)
	t.pw, t.gr, t.log = filepath.Join(t.dir, "passwd"), filepath.Join(t.dir, "group"), filepath.Join(t.dir, "audit.log")
	if err := os.WriteFile(t.pw, t.gen.Passwd(), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(t.gr, t.gen.Group(), 0o644); err != nil {
		b.Fatal(err)
	}
	t.w = &auditgen.Writer{Path: t.log, Gen: t.gen, MaxBytes: s.maxBytes, NumLogs: s.numLogs,
		OnWrite: func(evs []auditgen.Event, at time.Time) {
			for _, e := range evs {
				if e.Expected() {
					t.want.add(e.ID())
				}
			}
			if !t.drain {
				t.pr.offer(evs, at)
			}
		}}
	if t.drain {
		// Pre-written, not rotated: the whole log is there at start.
		t.w.MaxBytes, t.w.Limit = 1<<40, uint64(float64(s.events)/share)
		if err := t.w.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
	} else {
		t.w.Rate = s.rate / share
		t.w.Limit = uint64(t.w.Rate * s.duration.Seconds())
		if err := os.WriteFile(t.log, nil, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	if s.siem {
		ca := siemtest.NewCA(b, t.dir, "siem-ca")
		cert, key := ca.Issue(b, t.dir, "siem", siemtest.CertOptions{})
		t.siem = siemtest.StartRsyslog(b, siemtest.RsyslogOptions{CA: ca, CertFile: cert, KeyFile: key})
		t.siemCA, t.siemAddr = ca.CertPEM, t.siem.Addr
	}
	return t
}

// startProc starts one auditpipe process and waits until its /-/ready
// answers; it is stopped with SIGTERM when the benchmark ends.
func startProc(b *testing.B, t *traffic, name, httpAddr string, args ...string) int {
	logPath := filepath.Join(t.dir, name+".log")
	out := proctest.LogFile(b, logPath, name)
	cmd := exec.Command(t.bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	p := proctest.Start(b, name, cmd, func() error {
		resp, err := http.Get("http://" + httpAddr + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("ready: %s", resp.Status)
		}
		return nil
	}, 3*time.Minute, logPath)
	b.Cleanup(func() { p.Stop(syscall.SIGTERM, time.Minute) })
	return p.Pid()
}

// component is a process whose CPU and memory the report gives.
type component struct {
	name    string
	pid     int
	metrics string // its /metrics address, or ""
	threads bool   // CPU by thread group too
}

func runAllInOne(b *testing.B, s settings) {
	t := newTraffic(b, s)
	args := []string{"all-in-one", "--data", filepath.Join(t.dir, "data"), "--audit-log", t.log,
		"--flush-interval", s.flush.String(), "--layer", "CELL", "--host", "loadgen", "--passwd", t.pw, "--group", t.gr,
		"--retention-days", "0"}
	for _, gt := range t.gen.Grants() {
		args = append(args, "--grant", gt.LoginID+"="+gt.ReqAuthID)
	}
	if t.siem != nil {
		args = append(args, "--siem", t.siemAddr, "--siem-ca", t.siemCA)
	}
	if s.config != "" {
		args = append(args, "--config", s.config)
	}
	ports := proctest.FreePorts(b, 2)
	httpAddr := "127.0.0.1:" + strconv.Itoa(ports[0])
	args = append(args, "--http", httpAddr, "--kafka-listen", "127.0.0.1:"+strconv.Itoa(ports[1]))
	started := time.Now()
	pid := startProc(b, t, "all-in-one", httpAddr, args...)
	ready := time.Now()
	token, err := os.ReadFile(filepath.Join(t.dir, "data", "admin.token"))
	if err != nil {
		b.Fatal(err)
	}
	q := &querier{base: "http://" + httpAddr + "/", token: strings.TrimSpace(string(token)), client: &http.Client{Timeout: time.Minute}}
	drive(b, t, q, []component{{name: "all-in-one", pid: pid, metrics: httpAddr, threads: true}}, started, ready)
}

// drive writes the load (rate mode), waits until ClickHouse and rsyslog
// hold every expected event, checks them, and reports.
func drive(b *testing.B, t *traffic, q *querier, comps []component, started, ready time.Time) {
	s, w, want, pr, rs, drain := t.s, t.w, t.want, t.pr, t.siem, t.drain
	rep := &report{b: b}
	defer rep.write(s.out)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	cpu0 := map[string]time.Duration{}
	for _, c := range comps {
		if ps, err := readProc(c.pid, false); err == nil {
			cpu0[c.name] = ps.cpu
		}
	}
	self0 := selfCPU()
	var rs0 time.Duration
	if rs != nil {
		rs0, _ = rs.CPU()
	}
	// The probes' arrival in ClickHouse.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			time.Sleep(probePoll)
			pend := pr.pendingRows(50)
			if len(pend) == 0 {
				continue
			}
			ids := make([]string, len(pend))
			for i, p := range pend {
				ids[i] = "'" + p.id + "'"
			}
			out, err := q.query(ctx, "SELECT event_id FROM audit_events WHERE event_id IN ("+strings.Join(ids, ",")+") SETTINGS final = 0 FORMAT TSV")
			now := time.Now()
			if err != nil {
				if ctx.Err() == nil {
					b.Logf("probe query: %v", err)
				}
				continue
			}
			pr.mu.Lock()
			for id := range strings.FieldsSeq(out) {
				if p := pr.byID[id]; p != nil && p.row == 0 {
					p.row = now.Sub(p.written)
				}
			}
			pr.mu.Unlock()
		}
	}()
	// What rsyslog received: the first 8 bytes of every event_id (sorted
	// and compared with the expected set at the end), and the probes.
	var siemOff int64
	var siemMu sync.Mutex
	var siemIDs []uint64
	var siemOther, siemParts int
	tailSIEM := func() {
		lines, off := rs.LinesFrom(b, siemOff)
		siemOff = off
		now := time.Now()
		siemMu.Lock()
		defer siemMu.Unlock()
		for _, l := range lines {
			m := sdEventID.FindStringSubmatch(l)
			if m == nil || strings.Contains(l, `event=\"chain\"`) {
				siemOther++ // chain checkpoints, lifecycle events
				continue
			}
			if strings.Contains(l, ` part=\"`) && !strings.Contains(l, ` part=\"1\"`) {
				siemParts++ // the second and later parts of an event split for the SIEM's size limit
				continue
			}
			k, _ := idKey(m[1])
			siemIDs = append(siemIDs, k)
			pr.mu.Lock()
			if p := pr.byID[m[1]]; p != nil && p.siem == 0 {
				p.siem = now.Sub(p.written)
			}
			pr.mu.Unlock()
		}
	}
	siemDone, siemStop := make(chan struct{}), make(chan struct{})
	if rs != nil {
		go func() {
			defer close(siemDone)
			for {
				select {
				case <-siemStop:
					tailSIEM()
					return
				case <-time.After(100 * time.Millisecond):
					tailSIEM()
				}
			}
		}()
	} else {
		close(siemDone)
	}
	// Peak RSS: VmHWM, sampled (it covers the time between samples).
	var peakMu sync.Mutex
	peak := map[string]int64{}
	sample := func() {
		for _, c := range comps {
			if ps, err := readProc(c.pid, false); err == nil {
				peakMu.Lock()
				peak[c.name] = max(peak[c.name], ps.hwm)
				peakMu.Unlock()
			}
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			time.Sleep(500 * time.Millisecond)
			sample()
		}
	}()
	load0 := loadavg()
	writeStart := time.Now()
	if s.perf {
		after, d := s.duration/3, s.duration/3
		if drain {
			after, d = 5*time.Second, 20*time.Second
		}
		go perfRecord(b, comps, t.dir, after, d)
	}
	if !drain {
		if err := w.Run(ctx); err != nil {
			b.Fatal(err)
		}
	}
	writeEnd := time.Now()
	wst := w.Stats()
	load1 := loadavg()
	total := int(wst.Expected)
	if len(want.ids) != total {
		b.Fatalf("writer counted %d expected events, %d ids reported", total, len(want.ids))
	}
	slices.Sort(want.ids)

	// Wait until ClickHouse holds them all (no progress for a minute:
	// give up and report what is there).
	// The count of all rows (chain checkpoints included, copies not
	// folded) comes from the parts' metadata; once it reaches the total,
	// the exact count of events, every 2 s.
	var rows int
	lastProgress := time.Now()
	for {
		out, err := q.query(ctx, "SELECT count() FROM audit_events SETTINGS final = 0")
		if err == nil {
			n, _ := strconv.Atoi(out)
			if n > rows {
				rows, lastProgress = n, time.Now()
			}
			if n >= total {
				out, err := q.query(ctx, "SELECT count() FROM audit_events WHERE event != 'chain' SETTINGS final = 0")
				if m, _ := strconv.Atoi(out); err == nil && m >= total {
					break
				}
				time.Sleep(time.Second)
			}
		}
		if time.Since(lastProgress) > time.Minute {
			b.Errorf("ClickHouse holds %d rows (chain checkpoints included) for %d events after a minute without progress", rows, total)
			break
		}
		time.Sleep(time.Second)
	}
	allRows := time.Now()
	if rs != nil {
		// rsyslog: until it received them all, or a minute without progress.
		lastProgress, n := time.Now(), 0
		for time.Since(lastProgress) < time.Minute {
			time.Sleep(250 * time.Millisecond)
			siemMu.Lock()
			m := len(siemIDs)
			siemMu.Unlock()
			if m > n {
				n, lastProgress = m, time.Now()
			}
			if n >= total {
				break
			}
		}
		close(siemStop)
		<-siemDone
	}
	sample()
	end := map[string]procSample{}
	for _, c := range comps {
		ps, _ := readProc(c.pid, c.threads)
		end[c.name] = ps
	}
	var metrics []string
	for _, c := range comps {
		if c.metrics != "" {
			for _, m := range scrape(q, c.metrics) {
				metrics = append(metrics, c.name+": "+m)
			}
		}
	}
	self1 := selfCPU()
	var rs1 time.Duration
	if rs != nil {
		rs1, _ = rs.CPU()
	}
	cancel()
	wg.Wait()

	// Every event_id in ClickHouse once: rows (FINAL off: copies would
	// count), distinct ids, and the sum of their first 8 bytes against the
	// generator's.
	chk, err := q.query(context.Background(), "SELECT count(), uniqExact(event_id), sum(reinterpretAsUInt64(unhex(substring(event_id, 1, 16)))), "+
		"toUnixTimestamp64Milli(min(inserted_at)), toUnixTimestamp64Milli(max(inserted_at)), "+
		"quantilesExact(0.5, 0.9, 0.99, 0.999)(dateDiff('millisecond', ts, inserted_at)), max(dateDiff('millisecond', ts, inserted_at)) "+
		"FROM audit_events WHERE event != 'chain' SETTINGS final = 0 FORMAT TSV")
	if err != nil {
		b.Fatal(err)
	}
	f := fields(chk)
	chRows, _ := strconv.Atoi(f[0])
	chUniq, _ := strconv.Atoi(f[1])
	chSum, _ := strconv.ParseUint(f[2], 10, 64)
	firstIns, _ := strconv.ParseInt(f[3], 10, 64)
	lastIns, _ := strconv.ParseInt(f[4], 10, 64)
	lossOK := chRows == total && chUniq == total && chSum == want.sum
	if !lossOK {
		b.Errorf("ClickHouse: %d rows, %d distinct event_ids, id sum %d; want %d events, id sum %d", chRows, chUniq, chSum, total, want.sum)
	}
	var siemMissing, siemDups int
	if rs != nil {
		slices.Sort(siemIDs)
		siemMissing, siemDups = multisetDiff(want.ids, siemIDs)
		if siemMissing > 0 {
			b.Errorf("rsyslog: %d of %d events not received", siemMissing, total)
		}
	}

	// The figures.
	start := writeStart
	if drain {
		start = started
	}
	last := time.UnixMilli(lastIns)
	rate := float64(total) / last.Sub(start).Seconds()
	names := make([]string, len(comps))
	for i, c := range comps {
		names[i] = c.name
	}
	rep.printf("run: %s; machine: %d CPUs; load average %s at the start, %s at the end of the load", strings.Join(names, ", "), runtime.NumCPU(), load0, load1)
	if drain {
		rep.printf("mode: drain a pre-written log of %d audit events (%d contract events, %.0f MB), flush interval %v, siem %v",
			wst.Events, total, float64(wst.Bytes)/1e6, s.flush, s.siem)
		rep.printf("sustained: %.0f events/s from the start of the processes to the last row (%v; ready after %v); %.0f events/s from the first row inserted to the last",
			rate, last.Sub(start).Round(time.Millisecond), ready.Sub(started).Round(time.Millisecond), float64(total)/time.UnixMilli(lastIns).Sub(time.UnixMilli(firstIns)).Seconds())
	} else {
		rep.printf("mode: offered %.0f contract events/s (%.0f audit events/s, %.0f lines/s) for %v into an audit log rotated at %d MiB × %d; flush interval %v; siem %v",
			s.rate, w.Rate, float64(wst.Records)/writeEnd.Sub(writeStart).Seconds(), s.duration, s.maxBytes>>20, s.numLogs, s.flush, s.siem)
		rep.printf("written: %d audit events, %d contract events, %d lines, %.0f MB, %d rotations in %v (writer achieved %.0f contract events/s)",
			wst.Events, total, wst.Records, float64(wst.Bytes)/1e6, wst.Rotations, writeEnd.Sub(writeStart).Round(time.Millisecond), float64(total)/writeEnd.Sub(writeStart).Seconds())
		rep.printf("sustained: %.0f contract events/s from the first line written to the last row in ClickHouse (%v; all rows seen after %v)",
			rate, last.Sub(start).Round(time.Millisecond), allRows.Sub(start).Round(time.Millisecond))
		rep.printf("latency line → row inserted (every row, inserted_at − ts, ms): p50 %s p90 %s p99 %s p99.9 %s max %s", qs(f[5], 0), qs(f[5], 1), qs(f[5], 2), qs(f[5], 3), f[6])
		rowLat, rowMiss := pr.latencies(false)
		p := percentiles(rowLat, 0.5, 0.9, 0.99, 1)
		rep.printf("latency line → row queryable (%d probes, polled every 500 ms; %d not seen): p50 %v p90 %v p99 %v max %v", len(rowLat), rowMiss, ms(p[0]), ms(p[1]), ms(p[2]), ms(p[3]))
		if rs != nil {
			sl, sm := pr.latencies(true)
			p := percentiles(sl, 0.5, 0.9, 0.99, 1)
			rep.printf("latency line → received by rsyslog (%d probes, file polled every 100 ms; %d not seen): p50 %v p90 %v p99 %v max %v", len(sl), sm, ms(p[0]), ms(p[1]), ms(p[2]), ms(p[3]))
		}
	}
	rep.printf("zero loss: ClickHouse %d rows, %d distinct event_ids of %d expected, id sum matches: %v", chRows, chUniq, total, chSum == want.sum)
	if rs != nil {
		rep.printf("zero loss: rsyslog received %d messages of expected events (besides %d further parts of split events, %d others: chain, lifecycle), %d expected events missing, %d copies",
			len(siemIDs), siemParts, siemOther, siemMissing, siemDups)
	}
	wall := allRows.Sub(start)
	for _, c := range comps {
		span := end[c.name].cpu - cpu0[c.name]
		rep.printf("%s: peak RSS %.0f MiB; CPU %.1f s over %.1f s (%.2f CPUs), %.1f µs per contract event", c.name, mib(peak[c.name]), span.Seconds(), wall.Seconds(), span.Seconds()/wall.Seconds(), float64(span.Microseconds())/float64(total))
		if c.threads {
			rep.printf("%s CPU by thread group (whole process life, live threads): %s", c.name, threadSummary(end[c.name].thread, end[c.name].cpu))
		}
	}
	if rs != nil {
		rep.printf("rsyslog: CPU %.1f s (%.1f µs per event)", (rs1 - rs0).Seconds(), float64((rs1-rs0).Microseconds())/float64(total))
	}
	rep.printf("harness (generator, pollers): CPU %.1f s (%.1f µs per audit event written)", (self1 - self0).Seconds(), float64((self1-self0).Microseconds())/float64(max(wst.Events, 1)))
	if !drain {
		target(rep, "≥ 50 000 events/s with zero loss", rate >= 50000 && lossOK, "%.0f events/s", rate)
		rowLat, _ := pr.latencies(false)
		p99 := percentiles(rowLat, 0.99)[0]
		target(rep, "p99 line → row queryable ≤ flush interval + 1 s ("+(s.flush+time.Second).String()+")", p99 <= s.flush+time.Second, "%.0f ms", float64(p99.Milliseconds()))
	}
	// The collector must have assembled every event whole: an event
	// emitted without its EOE (assembly timeout) and the records that came
	// after it (rejected as late, dead-lettered) reach ClickHouse with
	// part of their records, which the id checks above cannot see.
	var incomplete, rejects float64
	for _, m := range metrics {
		_, series, _ := strings.Cut(m, ": ")
		name, val, _ := strings.Cut(series, " ")
		v, _ := strconv.ParseFloat(val, 64)
		switch {
		case name == "auditpipe_collector_incomplete_events_total":
			incomplete += v
		case strings.HasPrefix(name, "auditpipe_collector_rejects_total"):
			rejects += v
		}
	}
	rep.printf("integrity: collector emitted %.0f events incomplete (no EOE within the assembly timeout) and rejected %.0f records", incomplete, rejects)
	if incomplete > 0 || rejects > 0 {
		b.Errorf("the collector emitted %.0f incomplete events and rejected %.0f records of well-formed traffic", incomplete, rejects)
	}
	for _, m := range metrics {
		rep.printf("metric %s", m)
	}
	b.ReportMetric(rate, "events/s")
}

// multisetDiff compares sorted want (distinct) with sorted got: the wanted
// values got lacks, and got's extra copies of wanted values.
func multisetDiff(want, got []uint64) (missing, dups int) {
	j := 0
	for _, w := range want {
		for j < len(got) && got[j] < w {
			j++
		}
		n := 0
		for j < len(got) && got[j] == w {
			n++
			j++
		}
		if n == 0 {
			missing++
		} else {
			dups += n - 1
		}
	}
	return missing, dups
}

// qs picks the i-th value of a ClickHouse array "[a,b,c]".
func qs(arr string, i int) string {
	v := strings.Split(strings.Trim(arr, "[]"), ",")
	if i < len(v) {
		return v[i]
	}
	return "?"
}

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) + "ms" }

func threadSummary(m map[string]time.Duration, total time.Duration) string {
	type kv struct {
		k string
		v time.Duration
	}
	var all []kv
	var sum time.Duration
	for k, v := range m {
		all = append(all, kv{k, v})
		sum += v
	}
	slices.SortFunc(all, func(a, b kv) int { return int(b.v - a.v) })
	var parts []string
	for i, e := range all {
		if i == 12 {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.1fs", e.k, e.v.Seconds()))
	}
	parts = append(parts, fmt.Sprintf("exited threads %.1fs", (total-sum).Seconds()))
	return strings.Join(parts, ", ")
}

// perfRecord samples each component with perf (call graphs off, 999 Hz)
// for d after waiting for after, and writes, per component, perf's report
// by shared object and symbol and the same summed by Go package (chDB,
// the kernel and the JVM as one group each): where the time goes. Best
// effort: a machine without perf, or without the permission, logs why.
func perfRecord(b *testing.B, comps []component, dir string, after, d time.Duration) {
	time.Sleep(after)
	outDir := os.Getenv("AUDITPIPE_BENCH_PERF_DIR")
	if outDir == "" {
		outDir = dir
	}
	var wg sync.WaitGroup
	for _, c := range comps {
		if c.metrics == "" {
			continue // the broker's JVM: perf cannot name its JIT frames
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := strings.ReplaceAll(c.name, " ", "-")
			data := filepath.Join(dir, "perf-"+name+".data")
			rec := exec.Command("perf", "record", "-F", "999", "-p", strconv.Itoa(c.pid), "-o", data, "--", "sleep", strconv.Itoa(int(d.Seconds())))
			if out, err := rec.CombinedOutput(); err != nil {
				b.Logf("perf record %s: %v\n%s", c.name, err, out)
				return
			}
			out, err := exec.Command("perf", "report", "-i", data, "--no-children", "--sort", "dso,sym", "--stdio", "--percent-limit", "0").Output()
			if err != nil {
				b.Logf("perf report %s: %v", c.name, err)
				return
			}
			sym := filepath.Join(outDir, "perf-"+name+"-sym.txt")
			pkg := filepath.Join(outDir, "perf-"+name+"-pkg.txt")
			if err := os.WriteFile(sym, out, 0o644); err != nil {
				b.Log(err)
			}
			if err := os.WriteFile(pkg, []byte(perfByPackage(string(out))), 0o644); err != nil {
				b.Log(err)
			}
			b.Logf("perf of %s: %s, %s", c.name, pkg, sym)
		}()
	}
	wg.Wait()
}

// perfByPackage sums a perf report's "percent dso [.] symbol" lines by
// Go package (module prefix dropped), or by shared object otherwise.
func perfByPackage(report string) string {
	sums := map[string]float64{}
	for line := range strings.Lines(report) {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasSuffix(f[0], "%") || strings.HasPrefix(f[0], "#") {
			continue
		}
		pct, err := strconv.ParseFloat(strings.TrimSuffix(f[0], "%"), 64)
		if err != nil {
			continue
		}
		dso, sym := f[1], strings.Join(f[3:], " ")
		group := dso
		switch {
		case dso == "[kernel.kallsyms]":
			group = "kernel"
		case strings.HasPrefix(dso, "libchdb"):
			group = "chDB (libchdb.so)"
		case dso == "auditpipe":
			group = goPackage(sym)
		}
		sums[group] += pct
	}
	type kv struct {
		k string
		v float64
	}
	var all []kv
	for k, v := range sums {
		all = append(all, kv{k, v})
	}
	slices.SortFunc(all, func(a, b kv) int {
		switch {
		case a.v > b.v:
			return -1
		case a.v < b.v:
			return 1
		}
		return strings.Compare(a.k, b.k)
	})
	var sb strings.Builder
	for _, e := range all {
		fmt.Fprintf(&sb, "%6.2f%%  %s\n", e.v, e.k)
	}
	return sb.String()
}

// goPackage is the package of a Go symbol, without this module's prefix:
// "github.com/auditpipe/auditpipe/collector/builder.(*Builder).Build" is
// collector/builder, "runtime.mallocgc" runtime.
func goPackage(sym string) string {
	sym = strings.TrimPrefix(sym, "github.com/auditpipe/auditpipe/")
	slash := strings.LastIndexByte(sym, '/')
	if i := strings.IndexByte(sym[slash+1:], '.'); i >= 0 {
		return sym[:slash+1+i]
	}
	return sym
}

// scrapedMetrics are the /metrics series the report quotes: where the
// stages spent their time and what they counted.
var scrapedMetrics = []string{
	"auditpipe_collector_records_read_total", "auditpipe_collector_events_total", "auditpipe_collector_skipped_events_total",
	"auditpipe_collector_rejects_total", "auditpipe_collector_input_gaps_total", "auditpipe_collector_incomplete_events_total",
	"auditpipe_collector_produce_duration_seconds_sum", "auditpipe_collector_produce_duration_seconds_count",
	"auditpipe_collector_batch_size_events_sum", "auditpipe_collector_batch_size_events_count", "auditpipe_collector_spool_entries",
	"auditpipe_indexer_insert_duration_seconds_sum", "auditpipe_indexer_insert_duration_seconds_count",
	"auditpipe_indexer_batch_rows_sum", "auditpipe_indexer_batch_rows_count", "auditpipe_indexer_duplicates_total",
	"auditpipe_forwarder_", "go_gc_duration_seconds_count", "go_memstats_heap_inuse_bytes",
}

func scrape(q *querier, addr string) []string {
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil
	}
	req.Header.Set("Authorization", "Bearer "+q.token)
	resp, err := q.client.Do(req)
	if err != nil {
		return []string{"(scrape: " + err.Error() + ")"}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out []string
	for line := range strings.Lines(string(body)) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") || strings.Contains(line, "_bucket{") || strings.HasSuffix(line, " 0") {
			continue
		}
		for _, p := range scrapedMetrics {
			if strings.HasPrefix(line, p) {
				out = append(out, line)
				break
			}
		}
	}
	return out
}
