package forwarder

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/siemtest"
)

// BenchmarkForwarderVsRaw measures, against the same rsyslog in the same
// run, the forwarder (Kafka consumer group, decode, filter, RFC 5424
// rendering, TLS, settle and commit) and a raw TLS writer sending the same
// pre-framed bytes: the receiver's limit. Both are timed until rsyslog has
// written every message to its file. Rounds alternate the two (raw, then
// forwarder) so that both see the same machine speed, and the median of
// the rounds' ratios is reported.
//
// On a machine with two CPUs or more, rsyslogd is bound to the last CPU
// and this process (the sender: raw writer, or forwarder and in-process
// broker) to the first, as on two machines; otherwise sender and receiver
// share the CPUs and the sender's CPU use lowers the receiver's rate.
// AUDITPIPE_BENCH_BIND=0 turns the binding off; AUDITPIPE_BENCH_ROUNDS sets
// the rounds (default 5). Run with -benchtime=1x.
func BenchmarkForwarderVsRaw(b *testing.B) {
	const n = 100000
	rounds := 5
	if v, err := strconv.Atoi(os.Getenv("AUDITPIPE_BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	rsCPUs := ""
	if runtime.NumCPU() >= 2 && os.Getenv("AUDITPIPE_BENCH_BIND") != "0" && bindProcess(b, 0) {
		rsCPUs = strconv.Itoa(runtime.NumCPU() - 1)
	}
	rsDir := b.TempDir()
	ca := siemtest.NewCA(b, rsDir, "ca")
	cert, key := ca.Issue(b, rsDir, "siem", siemtest.CertOptions{})
	rs := siemtest.StartRsyslog(b, siemtest.RsyslogOptions{CA: ca, CertFile: cert, KeyFile: key, CPUs: rsCPUs})
	kcfg, _ := kafkatest.Start(b, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	evs := testEvents(0, n)
	produce(b, ctx, kcfg, evs)
	d := Destination{Name: "bench", Address: rs.Addr, TLS: TLS{CAFile: ca.CertPEM}}.WithDefaults()
	fm, err := newFormatter(d.format())
	if err != nil {
		b.Fatal(err)
	}
	var framed [][]byte
	var bytesTotal int
	for _, ev := range evs {
		fs, err := fm.frames(ev)
		if err != nil {
			b.Fatal(err)
		}
		framed = append(framed, fs...)
		for _, f := range fs {
			bytesTotal += len(f)
		}
	}
	evs = nil
	bound := "not bound to CPUs"
	if rsCPUs != "" {
		bound = "rsyslogd bound to CPU " + rsCPUs + ", this process to CPU 0"
	}
	b.Logf("%d messages per phase, %.0f bytes each, %d rounds, %s", n, float64(bytesTotal)/float64(n), rounds, bound)

	var res benchRounds
	received, readOff := 0, int64(0)
	for i := 0; b.Loop(); i++ {
		for round := range rounds {
			var r benchRound
			// Raw TLS writer: the same bytes, one connection, 64 KiB buffer.
			dl, err := d.newDialer()
			if err != nil {
				b.Fatal(err)
			}
			c, err := dl.dial(ctx)
			if err != nil {
				b.Fatal(err)
			}
			rs0 := rsyslogCPU(b, rs)
			written := make(chan error, 1)
			go func() {
				bw := bufio.NewWriterSize(c.nc, 64<<10)
				for _, f := range framed {
					if _, err := bw.Write(f); err != nil {
						written <- err
						return
					}
				}
				written <- bw.Flush()
			}()
			rawFirst := waitFirst(b, rs, received)
			received += n
			got := rs.WaitCount(received, 5*time.Minute)
			r.raw = float64(n-1) / time.Since(rawFirst).Seconds()
			r.rsRaw = rsyslogCPU(b, rs) - rs0
			if err := <-written; err != nil {
				b.Fatal(err)
			}
			if got < received {
				b.Fatalf("raw: rsyslog received %d of %d", got-(received-n), n)
			}
			c.close()

			// The forwarder, from Kafka, with a fresh consumer group.
			fd := d
			fd.Name, fd.Group = fmt.Sprintf("bench%d-%d", i, round), ""
			reg := prometheus.NewRegistry()
			f, err := New(Config{Kafka: kcfg, Destinations: []Destination{fd}}, Options{Registerer: reg})
			if err != nil {
				b.Fatal(err)
			}
			cpu0 := processCPU(b)
			rs0 = rsyslogCPU(b, rs)
			fctx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			// Labelled so that a CPU profile can be narrowed to the forwarder
			// (-tagfocus phase=forwarder); the broker's goroutines are not.
			go pprof.Do(fctx, pprof.Labels("phase", "forwarder"), func(fctx context.Context) { done <- f.Run(fctx) })
			fwdFirst := waitFirst(b, rs, received)
			received += n
			got = rs.WaitCount(received, 5*time.Minute)
			r.fwd = float64(n-1) / time.Since(fwdFirst).Seconds()
			stop()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			r.cpu = processCPU(b) - cpu0
			r.rsFwd = rsyslogCPU(b, rs) - rs0
			if got < received {
				b.Fatalf("forwarder: rsyslog received %d of %d", got-(received-n), n)
			}
			b.StopTimer()
			readOff = sameBytes(b, rs, readOff, n, reg, bytesTotal)
			b.StartTimer()
			b.Logf("round %d: raw TLS writer %.0f msgs/s, forwarder %.0f msgs/s: %.0f %%; forwarder process CPU %.2f µs/msg; rsyslogd CPU %.2f µs/msg (raw), %.2f (forwarder)",
				round+1, r.raw, r.fwd, 100*r.fwd/r.raw, perMsg(r.cpu, n), perMsg(r.rsRaw, n), perMsg(r.rsFwd, n))
			res = append(res, r)
		}
	}
	// Rates from the first message in rsyslog's file to the last, so that
	// neither the TLS handshake nor the consumer group's join is counted,
	// and the polling of the file costs both the same.
	b.ReportMetric(res.median(func(r benchRound) float64 { return r.raw }), "raw_msgs/s")
	b.ReportMetric(res.median(func(r benchRound) float64 { return r.fwd }), "forwarder_msgs/s")
	b.ReportMetric(res.median(func(r benchRound) float64 { return 100 * r.fwd / r.raw }), "forwarder_%_of_raw")
	// CPU of this process (forwarder, in-process broker, the polling of
	// rsyslog's file) per message, group join and stop included: steadier
	// than wall-clock rates on a shared machine.
	b.ReportMetric(res.median(func(r benchRound) float64 { return perMsg(r.cpu, n) }), "cpu_µs/msg")
	b.ReportMetric(res.median(func(r benchRound) float64 { return perMsg(r.rsRaw, n) }), "rsyslog_raw_cpu_µs/msg")
	b.ReportMetric(res.median(func(r benchRound) float64 { return perMsg(r.rsFwd, n) }), "rsyslog_fwd_cpu_µs/msg")
}

// benchRound is one round of BenchmarkForwarderVsRaw: rates in msgs/s,
// CPU times of the forwarder phase (this process) and of rsyslogd.
type benchRound struct {
	raw, fwd          float64
	cpu, rsRaw, rsFwd time.Duration
}

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

// sameBytes checks that the raw writer and the forwarder delivered the same
// messages (the n messages from byte offset off of rsyslog's file, then the
// next n, as sets: the forwarder keeps order per partition, not across
// them), and that the forwarder wrote exactly the raw writer's bytes, none
// sent twice. It returns the offset after them.
func sameBytes(b *testing.B, rs *siemtest.Rsyslog, off int64, n int, reg *prometheus.Registry, bytesTotal int) int64 {
	b.Helper()
	msgs, next := rs.MessagesFrom(b, off)
	if len(msgs) != 2*n {
		b.Fatalf("rsyslog holds %d messages after offset %d, want %d", len(msgs), off, 2*n)
	}
	raw := slices.Sorted(slices.Values(msgs[:n]))
	fwd := slices.Sorted(slices.Values(msgs[n:]))
	if !slices.Equal(raw, fwd) {
		b.Fatal("the forwarder's messages differ from the raw writer's")
	}
	sent, resent := metricSum(b, reg, "auditpipe_forwarder_sent_bytes_total"), metricSum(b, reg, "auditpipe_forwarder_messages_resent_total")
	if int(sent) != bytesTotal || resent != 0 {
		b.Fatalf("forwarder wrote %.0f bytes (%.0f messages resent), the raw writer %d", sent, resent, bytesTotal)
	}
	return next
}

// waitFirst waits until rsyslog has written message base+1 and returns when.
func waitFirst(b *testing.B, rs *siemtest.Rsyslog, base int) time.Time {
	b.Helper()
	if got := rs.WaitCount(base+1, time.Minute); got <= base {
		b.Fatalf("no message arrived within a minute")
	}
	return time.Now()
}

func rsyslogCPU(b *testing.B, rs *siemtest.Rsyslog) time.Duration {
	b.Helper()
	d, err := rs.CPU()
	if err != nil {
		b.Fatal(err)
	}
	return d
}
