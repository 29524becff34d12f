package forwarder

import (
	"bufio"
	"context"
	"fmt"
	"runtime/pprof"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/siemtest"
	"github.com/auditpipe/auditpipe/schemas"
)

// BenchmarkForwarderVsRaw measures, against the same rsyslog in the same
// run, the forwarder (Kafka consumer group, decode, filter, RFC 5424
// rendering, TLS, settle and commit) and a raw TLS writer sending the same
// pre-framed bytes: the receiver's limit. Both are timed until rsyslog has
// written every message to its file. Run with -benchtime=1x.
func BenchmarkForwarderVsRaw(b *testing.B) {
	const n = 100000
	rsDir := b.TempDir()
	ca := siemtest.NewCA(b, rsDir, "ca")
	cert, key := ca.Issue(b, rsDir, "siem", siemtest.CertOptions{})
	rs := siemtest.StartRsyslog(b, siemtest.RsyslogOptions{CA: ca, CertFile: cert, KeyFile: key})
	kcfg, _ := kafkatest.Start(b, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	evs := make([]*schemas.Event, n)
	for i := range evs {
		evs[i] = testEvent(i)
	}
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
	received := 0
	for i := 0; b.Loop(); i++ {
		// Raw TLS writer: the same bytes, one connection, 64 KiB buffer.
		dl, err := d.newDialer()
		if err != nil {
			b.Fatal(err)
		}
		c, err := dl.dial(ctx)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
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
		raw := time.Since(rawFirst)
		rawTotal := time.Since(start)
		if err := <-written; err != nil {
			b.Fatal(err)
		}
		if got < received {
			b.Fatalf("raw: rsyslog received %d of %d", got-(received-n), n)
		}
		c.close()

		// The forwarder, from Kafka, with a fresh consumer group.
		fd := d
		fd.Name, fd.Group = fmt.Sprintf("bench%d", i), ""
		reg := prometheus.NewRegistry()
		f, err := New(Config{Kafka: kcfg, Destinations: []Destination{fd}}, Options{Registerer: reg})
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		cpu0 := processCPU(b)
		fctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		// Labelled so that a CPU profile can be narrowed to the forwarder
		// (-tagfocus phase=forwarder); the broker's goroutines are not.
		go pprof.Do(fctx, pprof.Labels("phase", "forwarder"), func(fctx context.Context) { done <- f.Run(fctx) })
		fwdFirst := waitFirst(b, rs, received)
		received += n
		got = rs.WaitCount(received, 5*time.Minute)
		fwd := time.Since(fwdFirst)
		fwdTotal := time.Since(start)
		stop()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		cpu := processCPU(b) - cpu0
		if got < received {
			b.Fatalf("forwarder: rsyslog received %d of %d", got-(received-n), n)
		}
		b.StopTimer()
		sameBytes(b, rs, received-2*n, n, reg, bytesTotal)
		b.StartTimer()
		// Both: from the first message in rsyslog's file to the last, so
		// neither the TLS handshake nor the consumer group's join is
		// counted, and the polling of the file costs both the same.
		rawRate, fwdRate := float64(n-1)/raw.Seconds(), float64(n-1)/fwd.Seconds()
		b.ReportMetric(rawRate, "raw_msgs/s")
		b.ReportMetric(fwdRate, "forwarder_msgs/s")
		b.ReportMetric(100*fwdRate/rawRate, "forwarder_%_of_raw")
		// CPU of this process (forwarder, in-process broker, the polling
		// of rsyslog's file) per message, group join and stop included:
		// steadier than wall-clock rates on a shared machine.
		b.ReportMetric(float64(cpu.Microseconds())/n, "cpu_µs/msg")
		b.Logf("%d messages, %.0f bytes each: raw TLS writer %.0f msgs/s (first to last %s, total %s), forwarder %.0f msgs/s (first to last %s, total %s with group join), %.0f %%; process CPU in the forwarder phase %s",
			n, float64(bytesTotal)/float64(n), rawRate, raw.Round(time.Millisecond), rawTotal.Round(time.Millisecond),
			fwdRate, fwd.Round(time.Millisecond), fwdTotal.Round(time.Millisecond), 100*fwdRate/rawRate, cpu.Round(time.Millisecond))
	}
}

// sameBytes checks that the raw writer and the forwarder delivered the same
// messages (messages base to base+n, then the next n, as sets: the
// forwarder keeps order per partition, not across them), and that the
// forwarder wrote exactly the raw writer's bytes, none sent twice.
func sameBytes(b *testing.B, rs *siemtest.Rsyslog, base, n int, reg *prometheus.Registry, bytesTotal int) {
	b.Helper()
	msgs := rs.Messages(b)
	if len(msgs) < base+2*n {
		b.Fatalf("rsyslog holds %d messages, want %d", len(msgs), base+2*n)
	}
	raw := slices.Sorted(slices.Values(msgs[base : base+n]))
	fwd := slices.Sorted(slices.Values(msgs[base+n : base+2*n]))
	if !slices.Equal(raw, fwd) {
		b.Fatal("the forwarder's messages differ from the raw writer's")
	}
	sent, resent := metricSum(b, reg, "auditpipe_forwarder_sent_bytes_total"), metricSum(b, reg, "auditpipe_forwarder_messages_resent_total")
	if int(sent) != bytesTotal || resent != 0 {
		b.Fatalf("forwarder wrote %.0f bytes (%.0f messages resent), the raw writer %d", sent, resent, bytesTotal)
	}
}

// waitFirst waits until rsyslog has written message base+1 and returns when.
func waitFirst(b *testing.B, rs *siemtest.Rsyslog, base int) time.Time {
	b.Helper()
	if got := rs.WaitCount(base+1, time.Minute); got <= base {
		b.Fatalf("no message arrived within a minute")
	}
	return time.Now()
}
