package forwarder

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/siemtest"
)

// The senders of BenchmarkSIEMThroughput, in the order each round runs them.
const (
	senderRaw       = iota // a raw TLS writer of the pre-framed bytes: the receiver's limit
	senderForward          // `auditpipe forward FILE`, the CLI subcommand, as a child process
	senderForwarder        // the forwarder module: Kafka consumer group → SIEM
	numSenders
)

var senderNames = [numSenders]string{"raw", "forward", "forwarder"}

// BenchmarkSIEMThroughput measures, against syslog-ng and against rsyslog
// (both real, TLS, RFC 5425 octet counting, started for the benchmark) in
// the same run, three senders of the same RFC 5424 frames: a raw TLS writer
// (the receiver's limit: no work but TLS), `auditpipe forward` (the CLI
// subcommand, built and run as a child process on a file of JSON events)
// and the forwarder module (in-process Kafka broker, consumer group,
// decode, filter, rendering, TLS, settle, commit). Each round runs raw,
// forward, forwarder against one receiver, then the same against the
// other, so that all see the same machine speed; no sender is rate
// limited. A rate is from the first message in the receiver's file to the
// last (n-1 intervals), so neither process start, TLS handshake nor group
// join is counted. After each round the benchmark checks that the three
// delivered the same messages, byte for byte as the receiver wrote them,
// and that the forwarder wrote exactly the raw writer's bytes with nothing
// resent. It reports, per receiver, the median over the rounds of each
// round's forward/raw and forwarder/raw ratio (RECEIVER_SENDER_%_of_raw),
// and the forwarder's flushes of its send buffer (RECEIVER_forwarder_flushes,
// to tell batching from the receiver's pace):
// scripts/bench.d/forwarder.sh fails when one is below its target.
//
// Unbound by default: sender and receiver share the machine's CPUs.
// AUDITPIPE_BENCH_BIND=1 binds the receivers to the last CPU and the
// senders to the first (as on two machines). AUDITPIPE_BENCH_ROUNDS sets the
// rounds (default 5), AUDITPIPE_BENCH_MESSAGES the messages per phase
// (default 100000), AUDITPIPE_BENCH_RECEIVERS the receivers ("syslog-ng,rsyslog").
// Run with -benchtime=1x.
func BenchmarkSIEMThroughput(b *testing.B) {
	rounds := envInt("AUDITPIPE_BENCH_ROUNDS", 5)
	n := envInt("AUDITPIPE_BENCH_MESSAGES", 100000)
	rcvCPUs := ""
	if runtime.NumCPU() >= 2 && os.Getenv("AUDITPIPE_BENCH_BIND") == "1" && bindProcess(b, 0) {
		rcvCPUs = strconv.Itoa(runtime.NumCPU() - 1)
	}
	names := strings.Split(cmp.Or(os.Getenv("AUDITPIPE_BENCH_RECEIVERS"), "syslog-ng,rsyslog"), ",")
	dir := b.TempDir()
	ca := siemtest.NewCA(b, dir, "ca")
	cert, key := ca.Issue(b, dir, "siem", siemtest.CertOptions{})
	var rcvs []*benchReceiver
	for _, name := range names {
		rcvs = append(rcvs, startBenchReceiver(b, name, ca, cert, key, rcvCPUs))
	}
	bin := buildAuditpipe(b)
	kcfg, _ := kafkatest.Start(b, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()

	evs := testEvents(0, n)
	produce(b, ctx, kcfg, evs)
	input := filepath.Join(dir, "events.jsonl")
	var lines []byte
	for _, ev := range evs {
		lines = append(ev.AppendJSON(lines), '\n')
	}
	if err := os.WriteFile(input, lines, 0o600); err != nil {
		b.Fatal(err)
	}
	lines = nil
	fm, err := newFormatter(Destination{}.WithDefaults().format())
	if err != nil {
		b.Fatal(err)
	}
	var framed [][]byte
	bytesTotal := 0
	for _, ev := range evs {
		fs, err := fm.frames(ev)
		if err != nil {
			b.Fatal(err)
		}
		if len(fs) != 1 {
			b.Fatalf("event %s: %d frames, want 1", ev.EventID, len(fs))
		}
		framed = append(framed, fs[0])
		bytesTotal += len(fs[0])
	}
	evs = nil
	bound := "unbound: senders and receivers share the CPUs"
	if rcvCPUs != "" {
		bound = "receivers bound to CPU " + rcvCPUs + ", senders to CPU 0"
	}
	b.Logf("%d messages per phase, %.0f bytes each, %d rounds, %s", n, float64(bytesTotal)/float64(n), rounds, bound)

	for i := 0; b.Loop(); i++ {
		for round := range rounds {
			for _, rc := range rcvs {
				var r benchRound
				d := Destination{Name: "bench", Address: rc.addr, TLS: TLS{CAFile: ca.CertPEM}}.WithDefaults()
				for s := range numSenders {
					cpu0, rcpu0 := processCPU(b), rc.cpuNow(b)
					var finish func() time.Duration // waits for the sender, returns its CPU
					var reg *prometheus.Registry
					switch s {
					case senderRaw:
						finish = rawWriter(b, ctx, d, framed)
					case senderForward:
						finish = forwardCLI(b, ctx, bin, rc.addr, ca.CertPEM, input, n)
					case senderForwarder:
						reg = prometheus.NewRegistry()
						fd := d
						fd.Name, fd.Group = fmt.Sprintf("bench%d-%d-%s", i, round, rc.name), ""
						finish = runBenchForwarder(b, ctx, kcfg, fd, reg)
					}
					first := rc.waitFirst(b)
					rc.received += n
					got := rc.count(rc.received, 5*time.Minute)
					r.rate[s] = float64(n-1) / time.Since(first).Seconds()
					r.rcvCPU[s] = rc.cpuNow(b) - rcpu0
					if got < rc.received {
						b.Fatalf("%s to %s: received %d of %d", senderNames[s], rc.name, got-(rc.received-n), n)
					}
					child := finish()
					r.cpu[s] = processCPU(b) - cpu0 + child
					if reg != nil {
						sent, resent := metricSum(b, reg, "auditpipe_forwarder_sent_bytes_total"), metricSum(b, reg, "auditpipe_forwarder_messages_resent_total")
						if int(sent) != bytesTotal || resent != 0 {
							b.Fatalf("forwarder wrote %.0f bytes (%.0f messages resent), the raw writer %d", sent, resent, bytesTotal)
						}
						r.flushes = metricSamples(b, reg, "auditpipe_forwarder_write_duration_seconds")
					}
				}
				b.StopTimer()
				rc.sameMessages(b, n)
				b.StartTimer()
				b.Logf("round %d, %s: raw %.0f msgs/s, forward %.0f (%.0f %%), forwarder %.0f (%.0f %%); sender CPU µs/msg raw %.2f, forward %.2f, forwarder %.2f; %s CPU µs/msg %.2f, %.2f, %.2f; forwarder flushes %.0f (%.0f bytes each)",
					round+1, rc.name, r.rate[senderRaw], r.rate[senderForward], r.ratio(senderForward), r.rate[senderForwarder], r.ratio(senderForwarder),
					perMsg(r.cpu[senderRaw], n), perMsg(r.cpu[senderForward], n), perMsg(r.cpu[senderForwarder], n),
					rc.name, perMsg(r.rcvCPU[senderRaw], n), perMsg(r.rcvCPU[senderForward], n), perMsg(r.rcvCPU[senderForwarder], n),
					r.flushes, float64(bytesTotal)/r.flushes)
				rc.rounds = append(rc.rounds, r)
			}
		}
	}
	for _, rc := range rcvs {
		rs := rc.rounds
		b.ReportMetric(rs.median(func(r benchRound) float64 { return r.rate[senderRaw] }), rc.name+"_raw_msgs/s")
		for _, s := range []int{senderForward, senderForwarder} {
			b.ReportMetric(rs.median(func(r benchRound) float64 { return r.rate[s] }), rc.name+"_"+senderNames[s]+"_msgs/s")
			b.ReportMetric(rs.median(func(r benchRound) float64 { return r.ratio(s) }), rc.name+"_"+senderNames[s]+"_%_of_raw")
			// CPU of the sender per message (the forwarder's includes the
			// in-process broker): steadier than rates on a shared machine.
			b.ReportMetric(rs.median(func(r benchRound) float64 { return perMsg(r.cpu[s], n) }), rc.name+"_"+senderNames[s]+"_cpu_µs/msg")
		}
		// Flushes of the forwarder's buffer: each writes what the send
		// loop gathered (Go's TLS writes it one 16 KiB record per call).
		b.ReportMetric(rs.median(func(r benchRound) float64 { return r.flushes }), rc.name+"_forwarder_flushes")
	}
}

// benchRound is one round against one receiver: each sender's rate in
// msgs/s, its CPU (this process's, plus the child's for forward) and the
// receiver's CPU during its phase.
type benchRound struct {
	rate        [numSenders]float64
	cpu, rcvCPU [numSenders]time.Duration
	flushes     float64 // the forwarder's flushes to the SIEM connection
}

func (r benchRound) ratio(s int) float64 { return 100 * r.rate[s] / r.rate[senderRaw] }

type benchRounds []benchRound

func (rs benchRounds) median(f func(benchRound) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func perMsg(d time.Duration, n int) float64 { return float64(d.Microseconds()) / float64(n) }

// benchReceiver is a receiver of BenchmarkSIEMThroughput with what the
// benchmark reads of it.
type benchReceiver struct {
	name  string
	addr  string
	count func(n int, timeout time.Duration) int
	cpu   func() (time.Duration, error)
	lines func(tb testing.TB, off int64) ([]string, int64)

	received int   // messages received so far
	off      int64 // output file offset after the last round checked
	rounds   benchRounds
}

func startBenchReceiver(b *testing.B, name string, ca *siemtest.CA, cert, key, cpus string) *benchReceiver {
	b.Helper()
	switch name {
	case "rsyslog":
		rs := siemtest.StartRsyslog(b, siemtest.RsyslogOptions{CA: ca, CertFile: cert, KeyFile: key, CPUs: cpus, Defaults: true})
		return &benchReceiver{name: name, addr: rs.Addr, count: rs.WaitCount, cpu: rs.CPU, lines: rs.LinesFrom}
	case "syslog-ng":
		ng := siemtest.StartSyslogNG(b, siemtest.SyslogNGOptions{CA: ca, CertFile: cert, KeyFile: key, CPUs: cpus, Template: benchSyslogNGTemplate})
		return &benchReceiver{name: name, addr: ng.Addr, count: ng.WaitCount, cpu: ng.CPU, lines: ng.LinesFrom}
	}
	b.Fatalf("unknown receiver %q (rsyslog, syslog-ng)", name)
	return nil
}

// benchSyslogNGTemplate is syslog-ng's file template in the benchmark: the
// whole message, one line, cheaper for syslog-ng than the JSON line of the
// interop tests (format-json of every SD-PARAM costs it about three times
// the CPU, and it would be the limit of all three senders).
const benchSyslogNGTemplate = `${PRI} ${SDATA} $(base64-encode ${MSG})\n`

// waitFirst waits until the receiver has written the first message of the
// phase and returns when.
func (rc *benchReceiver) waitFirst(b *testing.B) time.Time {
	b.Helper()
	if got := rc.count(rc.received+1, time.Minute); got <= rc.received {
		b.Fatalf("%s: no message arrived within a minute", rc.name)
	}
	return time.Now()
}

func (rc *benchReceiver) cpuNow(b *testing.B) time.Duration {
	b.Helper()
	d, err := rc.cpu()
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// sameMessages checks that the round's senders delivered the same n
// messages each, as the receiver wrote them (as sets: the forwarder keeps
// order per partition, not across them).
func (rc *benchReceiver) sameMessages(b *testing.B, n int) {
	b.Helper()
	msgs, next := rc.lines(b, rc.off)
	if len(msgs) != numSenders*n {
		b.Fatalf("%s holds %d messages after offset %d, want %d", rc.name, len(msgs), rc.off, numSenders*n)
	}
	raw := slices.Sorted(slices.Values(msgs[:n]))
	for s := senderRaw + 1; s < numSenders; s++ {
		if got := slices.Sorted(slices.Values(msgs[s*n : (s+1)*n])); !slices.Equal(raw, got) {
			b.Fatalf("%s: the messages of %s differ from the raw writer's", rc.name, senderNames[s])
		}
	}
	rc.off = next
}

// rawWriter starts writing frames over one TLS connection through a
// 64 KiB buffer; its finish waits until it is written and closed.
func rawWriter(b *testing.B, ctx context.Context, d Destination, frames [][]byte) func() time.Duration {
	b.Helper()
	dl, err := d.newDialer()
	if err != nil {
		b.Fatal(err)
	}
	c, err := dl.dial(ctx)
	if err != nil {
		b.Fatal(err)
	}
	written := make(chan error, 1)
	go func() {
		bw := bufio.NewWriterSize(c.nc, 64<<10)
		for _, f := range frames {
			if _, err := bw.Write(f); err != nil {
				written <- err
				return
			}
		}
		written <- bw.Flush()
	}()
	return func() time.Duration {
		if err := <-written; err != nil {
			b.Fatal(err)
		}
		c.close()
		return 0
	}
}

// forwardCLI starts `auditpipe forward` on the file of JSON events; its
// finish waits for the process to exit, checks that it sent n events as n
// messages and returns the child's CPU.
func forwardCLI(b *testing.B, ctx context.Context, bin, addr, ca, input string, n int) func() time.Duration {
	b.Helper()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "forward", "--siem", addr, "--ca", ca, input)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	return func() time.Duration {
		if err := cmd.Wait(); err != nil {
			b.Fatalf("auditpipe forward: %v\n%s", err, stderr.Bytes())
		}
		if want := fmt.Sprintf("forward: %d events sent as %d messages, 0 lines rejected", n, n); !strings.Contains(stderr.String(), want) {
			b.Fatalf("auditpipe forward said %q, want %q", stderr.Bytes(), want)
		}
		return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
}

// runBenchForwarder starts the forwarder for d; its finish stops it.
func runBenchForwarder(b *testing.B, ctx context.Context, kcfg kafka.Config, d Destination, reg *prometheus.Registry) func() time.Duration {
	b.Helper()
	f, err := New(Config{Kafka: kcfg, Destinations: []Destination{d}}, Options{Registerer: reg})
	if err != nil {
		b.Fatal(err)
	}
	fctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	// Labelled so that a CPU profile can be narrowed to the forwarder
	// (-tagfocus phase=forwarder); the broker's goroutines are not.
	go pprof.Do(fctx, pprof.Labels("phase", "forwarder"), func(fctx context.Context) { done <- f.Run(fctx) })
	return func() time.Duration {
		stop()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		return 0
	}
}

// buildAuditpipe builds the auditpipe binary into a temporary directory.
func buildAuditpipe(b *testing.B) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "auditpipe")
	if out, err := exec.Command("go", "build", "-o", path, "github.com/auditpipe/auditpipe/cmd/auditpipe").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return path
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// metricSamples returns the number of observations of the histogram name,
// summed over its labels.
func metricSamples(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			n += m.GetHistogram().GetSampleCount()
		}
	}
	return float64(n)
}
