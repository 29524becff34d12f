package forwarder

import (
	"bufio"
	"context"
	"fmt"
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
		bw := bufio.NewWriterSize(c.nc, 64<<10)
		for _, f := range framed {
			if _, err := bw.Write(f); err != nil {
				b.Fatal(err)
			}
		}
		if err := bw.Flush(); err != nil {
			b.Fatal(err)
		}
		received += n
		if got := rs.WaitCount(received, 5*time.Minute); got < received {
			b.Fatalf("raw: rsyslog received %d of %d", got, received)
		}
		raw := time.Since(start)
		c.close()

		// The forwarder, from Kafka, with a fresh consumer group.
		fd := d
		fd.Name, fd.Group = fmt.Sprintf("bench%d", i), ""
		f, err := New(Config{Kafka: kcfg, Destinations: []Destination{fd}}, Options{Registerer: prometheus.NewRegistry()})
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		fctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- f.Run(fctx) }()
		fwdFirst := waitFirst(b, rs, received)
		received += n
		got := rs.WaitCount(received, 5*time.Minute)
		fwd := time.Since(fwdFirst)
		fwdTotal := time.Since(start)
		stop()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		if got < received {
			b.Fatalf("forwarder: rsyslog received %d of %d", got-(received-n), n)
		}
		// Raw: from the first write (connected) to the last message in
		// rsyslog's file. Forwarder: from the first message in the file to
		// the last, so the consumer group's join is not counted.
		rawRate, fwdRate := float64(n)/raw.Seconds(), float64(n-1)/fwd.Seconds()
		b.ReportMetric(rawRate, "raw_msgs/s")
		b.ReportMetric(fwdRate, "forwarder_msgs/s")
		b.ReportMetric(100*fwdRate/rawRate, "forwarder_%_of_raw")
		b.Logf("%d messages, %.0f bytes each: raw TLS writer %.0f msgs/s (%s), forwarder %.0f msgs/s (first to last %s, total %s with group join), %.0f %%",
			n, float64(bytesTotal)/float64(n), rawRate, raw.Round(time.Millisecond),
			fwdRate, fwd.Round(time.Millisecond), fwdTotal.Round(time.Millisecond), 100*fwdRate/rawRate)
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
