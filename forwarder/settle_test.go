package forwarder

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestSinkUnflushedEntriesNeverSettle: entries added after a flush that
// settled are in the connection's buffer only: none of them settles,
// however much of the wire the peer acknowledged, until they are flushed.
// Bug (mutant): an added entry marked at wire position 1 instead of "not
// flushed" settled with the earlier ones (committed before it was written).
func TestSinkUnflushedEntriesNeverSettle(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(io.Discard, c) // reads everything
		c.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := testSink(ln.Addr().String())
	defer func() { s.drop(); ln.Close(); <-done }()
	s.cfg.settle = 0
	if err := s.add(ctx, testEntries(0, 10)...); err != nil {
		t.Fatal(err)
	}
	if err := s.flush(ctx); err != nil {
		t.Fatal(err)
	}
	var got []*entry
	waitFor(t, 5*time.Second, func() bool {
		got = append(got, s.settled(time.Now())...)
		return len(got) == 10
	})
	if err := s.add(ctx, testEntries(10, 20)...); err != nil {
		t.Fatal(err)
	}
	if late := s.settled(time.Now().Add(time.Hour)); len(late) != 0 {
		t.Fatalf("entries %v settled before they were flushed", offsets(late))
	}
	if err := s.flush(ctx); err != nil {
		t.Fatal(err)
	}
	got = nil
	waitFor(t, 5*time.Second, func() bool {
		got = append(got, s.settled(time.Now())...)
		return len(got) == 10
	})
}

// TestSinkSkippedEntriesNeedNoConnection: entries the filter skipped
// carry nothing to send: with the SIEM down they are added without a
// connection attempt and settle (their offsets may be committed).
// Bug (mutant): a batch of skipped entries only made the sink connect,
// and with the SIEM down it failed.
func TestSinkSkippedEntriesNeedNoConnection(t *testing.T) {
	addr := downAddr(t)
	s := testSink(addr)
	s.cfg.maxAttempts = 1
	if err := s.add(context.Background(), testEntries(0, 5, 0, 1, 2, 3, 4)...); err != nil {
		t.Fatalf("adding skipped entries with the SIEM down: %v", err)
	}
	if err := s.flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := s.settled(time.Now()); len(got) != 5 {
		t.Fatalf("%d of 5 skipped entries settled without a connection", len(got))
	}
	if v := testutil.ToFloat64(s.m.connectErrors); v != 0 {
		t.Fatalf("%v connection attempts for skipped entries", v)
	}
}

// TestSinkSkippedFirstOnAFreshConnection: the first entries on a new
// connection are skipped ones, flushed when nothing was written yet (wire
// position 0); they settle, and so do the messages after them.
// Bug (mutant): position 0 taken for "not flushed" kept the skipped
// entries at the head of the window for ever: nothing after them settled.
func TestSinkSkippedFirstOnAFreshConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(io.Discard, c)
		c.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := testSink(ln.Addr().String())
	defer func() { s.drop(); ln.Close(); <-done }()
	s.cfg.settle = 0
	if err := s.ensureConn(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.add(ctx, testEntries(0, 3, 0, 1, 2)...); err != nil {
		t.Fatal(err)
	}
	if err := s.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.add(ctx, testEntries(3, 10)...); err != nil {
		t.Fatal(err)
	}
	if err := s.flush(ctx); err != nil {
		t.Fatal(err)
	}
	var got []*entry
	waitFor(t, 5*time.Second, func() bool {
		got = append(got, s.settled(time.Now())...)
		return len(got) == 10
	})
}

// TestSinkGivesUpAfterMaxAttempts: with max attempts set (auditpipe
// forward), a SIEM that stays down is tried exactly that many times, then
// the sink gives up saying so.
// Bug (mutants): the sink gave up after the first attempt, or after two
// more than asked.
func TestSinkGivesUpAfterMaxAttempts(t *testing.T) {
	addr := downAddr(t)
	for _, max := range []int{1, 3} {
		s := testSink(addr)
		s.cfg.maxAttempts = max
		err := s.add(context.Background(), testEntries(0, 2)...)
		if want := fmt.Sprintf("giving up after %d attempts", max); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("max %d: add returned %v, want %q", max, err, want)
		}
		if v := testutil.ToFloat64(s.m.connectErrors); v != float64(max) {
			t.Fatalf("max %d: %v connection attempts", max, v)
		}
	}
}

// TestSinkFlushRepairsABrokenConnection: the SIEM closes the connection
// after messages were buffered on it; the flush that finds it broken
// reconnects and writes them all on the new connection.
// Bug (mutant): a flush that found the connection broken returned success
// with no connection and nothing written.
func TestSinkFlushRepairsABrokenConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	es := testEntries(0, 10)
	want := 0
	for _, e := range es {
		want += len(e.frames[0])
	}
	got := make(chan int, 1)
	done := make(chan struct{})
	connected := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		<-connected
		c.Close() // the first connection: closed once in use, read nothing
		c, err = ln.Accept()
		if err != nil {
			return
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _ := io.ReadAtLeast(c, make([]byte, want), want)
		got <- n
		io.Copy(io.Discard, c)
		c.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := testSink(ln.Addr().String())
	defer func() { s.drop(); ln.Close(); <-done }()
	if err := s.ensureConn(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.add(ctx, es...); err != nil { // buffered, not written yet
		t.Fatal(err)
	}
	first := s.conn
	close(connected)
	waitFor(t, 5*time.Second, func() bool { return first.alive() != nil })
	if err := s.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if s.conn == nil || s.conn == first {
		t.Fatal("the flush left no new connection")
	}
	if n := <-got; n != want {
		t.Fatalf("the new connection carried %d bytes, want the %d of every message", n, want)
	}
}

// TestPipelineReturnsTheSinksError: a sink that gives up (max attempts
// set, the SIEM down) stops the pipeline with its error, not with nil as
// if the stop had been asked for; a cancelled pipeline returns nil.
// Bug: stop returned nil whatever stopped the sender, so a destination
// that gave up ended as though it had been told to.
func TestPipelineReturnsTheSinksError(t *testing.T) {
	addr := downAddr(t)
	d := Destination{Name: "x", Address: addr}.WithDefaults()
	newPipeline := func(maxAttempts int) (*pipeline, chan *entry) {
		p := &pipeline{d: d, log: slog.New(slog.DiscardHandler), m: newMetrics(nil).forDestination("x"), sink: testSink(addr)}
		p.sink.cfg.maxAttempts = maxAttempts
		items := make(chan *entry, 4)
		for _, e := range testEntries(0, 2) {
			items <- e
		}
		return p, items
	}
	p, items := newPipeline(2)
	if err := p.send(context.Background(), items); err == nil || !strings.Contains(err.Error(), "giving up after 2 attempts") {
		t.Fatalf("send = %v, want the sink's giving up", err)
	}
	p, items = newPipeline(0) // retries until cancelled
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := p.send(ctx, items); err != nil {
		t.Fatalf("send, cancelled = %v, want nil", err)
	}
}

// downAddr is a loopback address where no SIEM listens: a port that was
// free a moment ago, its listener closed.
func downAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
