package forwarder

// Tests of the delivery guarantee: an offset is committed only for messages
// the SIEM has read (duplicates possible, drops never). Each test names the
// bug it guards against.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/internal/deadletter"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/schemas"
)

// Bug (review 1): when the connection broke, the sink kept each unsettled
// entry's wire position and write time, and with no connection settled()
// only checked the settle time, so stopping while the SIEM was down
// committed every message written to the dead connection. Here the SIEM
// accepts, reads nothing (its kernel still ACKs the bytes), resets the
// connection and stays down; the forwarder is stopped while it retries.
// The SIEM read nothing: nothing may be committed.
// Bug (issue 15): the test never confirmed that the bytes were written: a
// forwarder that wrote nothing passed it. The SIEM now waits until every
// event's bytes are in its socket's receive queue (unread) before it
// resets.
func TestStopWhileSIEMDownCommitsNothing(t *testing.T) {
	requirePeerInspection(t)
	kcfg, _ := kafkatest.Start(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	evs := testEvents(0, 50)
	produce(t, ctx, kcfg, evs)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := Destination{Name: "siem", Address: ln.Addr().String(), PlainTCP: true, Settle: 2 * time.Second}
	want := framedBytes(t, d, evs)
	received := make(chan int, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			received <- 0
			return
		}
		received <- waitUnread(t, c.(*net.TCPConn), want, func(int, bool) bool { return true })
		ln.Close() // down from now on: reconnects are refused
		c.Close()  // unread data: Linux sends RST
	}()
	defer func() { ln.Close(); <-done }()
	reg := prometheus.NewRegistry()
	stop := runForwarder(t, ctx, Config{Kafka: kcfg, Destinations: []Destination{d}}, reg)
	n := <-received
	// Every byte was written by now (the SIEM's socket holds them all).
	writtenBy := time.Now()
	if n != want {
		t.Fatalf("the SIEM's socket received %d bytes, want the %d of all %d events", n, want, len(evs))
	}
	// The forwarder notices and retries against the closed port.
	waitFor(t, 20*time.Second, func() bool { return metricSum(t, reg, "auditpipe_forwarder_connect_errors_total") >= 1 })
	// The settle time of the writes has passed, with the SIEM down, when
	// the forwarder stops (and commits what settled): the bug committed
	// them once it had. A deadline, not a guess: the writes ended before
	// writtenBy (the margin covers the flush's return after its bytes
	// arrived).
	time.Sleep(time.Until(writtenBy.Add(d.Settle + 50*time.Millisecond)))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	requireNoneCommitted(t, ctx, kcfg, 50, "the SIEM read none of them")
}

// Bug (review 2): the graceful close took any end of the peer's side,
// a connection reset included, as "the SIEM read everything". Linux resets
// exactly when the receiver closes with unread data. Here the SIEM reads
// nothing and resets the connection while the stopping forwarder waits for
// it to close: nothing may be committed.
// Bug (issue 15): the test never confirmed that the bytes were written,
// and timed the reset with sleeps. The SIEM now waits until every event's
// bytes are in its receive queue, and resets once the forwarder's FIN
// arrived (the forwarder is then waiting for the SIEM's close).
func TestCloseResetBySIEMCommitsNothing(t *testing.T) {
	requirePeerInspection(t)
	kcfg, _ := kafkatest.Start(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	evs := testEvents(0, 50)
	produce(t, ctx, kcfg, evs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// A settle time longer than the test: only the close could settle.
	d := Destination{Name: "siem", Address: ln.Addr().String(), PlainTCP: true, Settle: 30 * time.Second}
	want := framedBytes(t, d, evs)
	received := make(chan int, 1)
	finBeforeReset := make(chan bool, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			received <- 0
			finBeforeReset <- false
			return
		}
		tc := c.(*net.TCPConn)
		received <- waitUnread(t, tc, want, func(int, bool) bool { return true })
		fin := false
		waitUnread(t, tc, want, func(_ int, f bool) bool { fin = f; return f })
		tc.SetLinger(0)
		tc.Close() // RST: nothing was read
		finBeforeReset <- fin
	}()
	defer func() { ln.Close(); <-done }()
	stop := runForwarder(t, ctx, Config{Kafka: kcfg, Destinations: []Destination{d}}, prometheus.NewRegistry())
	if n := <-received; n != want {
		t.Fatalf("the SIEM's socket received %d bytes, want the %d of all %d events", n, want, len(evs))
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !<-finBeforeReset {
		t.Fatal("the forwarder never closed its side gracefully: the reset did not come while it waited for the SIEM's close")
	}
	requireNoneCommitted(t, ctx, kcfg, 50, "the SIEM reset the connection without reading")
}

// framedBytes returns the bytes d writes to the SIEM for evs.
func framedBytes(t *testing.T, d Destination, evs []*schemas.Event) int {
	t.Helper()
	fm, err := newFormatter(d.WithDefaults().format())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range evs {
		frames, err := fm.frames(ev)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range frames {
			n += len(f)
		}
	}
	return n
}

// waitUnread polls the SIEM's socket, without reading from it, until want
// bytes are in its receive queue and done holds, or 20 s passed; it returns
// the unread bytes. The kernel offers no notification for either.
func waitUnread(t *testing.T, c *net.TCPConn, want int, done func(unread int, fin bool) bool) int {
	deadline := time.Now().Add(20 * time.Second)
	for {
		n, fin := peerSocket(t, c)
		if n >= want && done(n, fin) || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// requireNoneCommitted fails the test unless the destination "siem" left
// all n events of the audit topic uncommitted.
func requireNoneCommitted(t *testing.T, ctx context.Context, kcfg kafka.Config, n int64, because string) {
	t.Helper()
	lag, err := kcfg.Lag(ctx, "auditpipe-forwarder-siem", schemas.TopicAudit)
	if err != nil {
		t.Fatal(err)
	}
	if lag != n {
		t.Fatalf("%d of %d events committed although %s", n-lag, n, because)
	}
}

// testSink returns a sink to addr over plain TCP with a settle time the
// tests step over by passing settled a time in the future.
func testSink(addr string) *sink {
	dl := &dialer{addr: addr, timeout: 5 * time.Second}
	return newSink(sinkConfig{
		name: "t", dialer: dl, settle: time.Hour, writeTimeout: 5 * time.Second,
		backoffMin: 10 * time.Millisecond, backoffMax: 50 * time.Millisecond, closeTimeout: 5 * time.Second,
	}, slog.New(slog.DiscardHandler), newMetrics(nil).forDestination("t"))
}

// testEntries returns entries from..to-1, each with one frame "msg-i\n";
// those whose index is in skipped have no frames (a filtered event).
func testEntries(from, to int, skipped ...int) []*entry {
	var es []*entry
	for i := from; i < to; i++ {
		e := &entry{ref: commitRef{offset: int64(i)}}
		skip := false
		for _, s := range skipped {
			skip = skip || s == i
		}
		if !skip {
			e.frames = [][]byte{fmt.Appendf(nil, "msg-%03d\n", i)}
		}
		es = append(es, e)
	}
	return es
}

func offsets(es []*entry) []int64 {
	var out []int64
	for _, e := range es {
		out = append(out, e.ref.offset)
	}
	return out
}

// Bug (review 1), at the sink: after the connection breaks, no entry
// written to it settles, however long ago that was, and close() without a
// connection returns nothing written; then the reconnect writes the whole
// window again, in order, and every entry settles exactly once.
func TestSinkBrokenConnectionUnwritesAndResendsInOrder(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reset := make(chan struct{}) // closed by the test: reset the first connection
	var second bytes.Buffer      // what the second connection read, until our FIN
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		<-reset
		c.(*net.TCPConn).SetLinger(0)
		c.Close() // nothing read: RST
		c, err = ln.Accept()
		if err != nil {
			return
		}
		io.Copy(&second, c) // read everything, then close cleanly
		c.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := testSink(ln.Addr().String())
	var resetOnce sync.Once
	defer func() { // also when the test fails midway
		s.drop()
		ln.Close()
		resetOnce.Do(func() { close(reset) })
		wg.Wait()
	}()
	later := func() time.Time { return time.Now().Add(2 * time.Hour) } // past the settle time
	var got []*entry
	// Entries 0 and 5 are skipped (no frames): they settle in order too.
	if err := s.add(ctx, testEntries(0, 10, 0, 5)...); err != nil {
		t.Fatal(err)
	}
	if err := s.flush(ctx); err != nil {
		t.Fatal(err)
	}
	// The peer's kernel acknowledges the bytes without anyone reading them.
	waitFor(t, 5*time.Second, func() bool {
		acked, ok := s.conn.acked()
		return !ok || acked == s.conn.counted.written()
	})
	resetOnce.Do(func() { close(reset) })
	waitFor(t, 5*time.Second, func() bool { return s.conn.alive() != nil })

	got = append(got, s.settled(later())...) // notices the break
	if s.conn != nil {
		t.Fatal("the sink kept a connection the peer reset")
	}
	got = append(got, s.settled(later())...) // no connection
	if len(got) != 0 {
		t.Fatalf("settled %v after the connection broke, written only to the connection that broke", offsets(got))
	}
	if s.unflushed != len(s.unsettled) {
		t.Errorf("unflushed %d after the break, want the whole window (%d)", s.unflushed, len(s.unsettled))
	}
	for _, e := range s.unsettled {
		if e.pos != -1 {
			t.Errorf("entry %d keeps wire position %d of the dropped connection", e.ref.offset, e.pos)
		}
	}

	// New entries reconnect; the window goes first, in order.
	if err := s.add(ctx, testEntries(10, 20, 12)...); err != nil {
		t.Fatal(err)
	}
	if err := s.flush(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool {
		got = append(got, s.settled(later())...)
		n, _ := s.inFlight()
		return n == 0
	})
	if rest := s.close(ctx); len(rest) != 0 {
		t.Errorf("close returned %v, all settled before", offsets(rest))
	}
	wg.Wait()

	var want []int64
	for i := range 20 {
		want = append(want, int64(i))
	}
	if fmt.Sprint(offsets(got)) != fmt.Sprint(want) {
		t.Errorf("settled %v, want each of 0..19 once, in order", offsets(got))
	}
	var wantBytes []byte
	for _, e := range testEntries(0, 20, 0, 5, 12) {
		for _, f := range e.frames {
			wantBytes = append(wantBytes, f...)
		}
	}
	if !bytes.Equal(second.Bytes(), wantBytes) {
		t.Errorf("the second connection carried\n%s\nwant\n%s", second.Bytes(), wantBytes)
	}
}

// Bug (review 1), at close(): a sink whose connection broke and that is
// closed before it reconnects returns nothing written to the dead
// connection, even with the settle time long past.
func TestSinkCloseWithoutConnectionReturnsNothingWritten(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	flushed := make(chan struct{})
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		<-flushed  // the entries went to this connection
		ln.Close() // down from now on
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := testSink(ln.Addr().String())
	defer func() { s.drop(); ln.Close(); wg.Wait() }()
	s.cfg.settle = 0 // settle time never holds anything back
	if err := s.add(ctx, testEntries(0, 10)...); err != nil {
		t.Fatal(err)
	}
	if err := s.flush(ctx); err != nil {
		t.Fatal(err)
	}
	close(flushed)
	waitFor(t, 5*time.Second, func() bool { return s.conn.alive() != nil })
	s.broken(s.conn.alive())
	if got := s.close(ctx); len(got) != 0 {
		t.Fatalf("close without a connection returned %v, written only to the connection that broke", offsets(got))
	}
	if n, _ := s.inFlight(); n != 10 {
		t.Fatalf("%d entries in flight after close, want 10", n)
	}
}

// Bug (review 2), at the connection: closeGracefully reports drained only
// for a clean close (EOF) with every byte acknowledged, never for a reset.
func TestCloseGracefullyDrainedOnlyOnCleanClose(t *testing.T) {
	// What the client writes: the peers wait until it is all in their
	// receive queue (unread) and, but for the first, until the client's FIN
	// came (it is then waiting in closeGracefully), instead of sleeping.
	entries := testEntries(0, 100)
	total := 0
	for _, e := range entries {
		for _, f := range e.frames {
			total += len(f)
		}
	}
	finAfterAll := func(t *testing.T, c *net.TCPConn, want int) {
		if n := waitUnread(t, c, want, func(_ int, fin bool) bool { return fin }); n < want {
			t.Errorf("the peer's socket holds %d unread bytes, want %d", n, want)
		}
	}
	tests := []struct {
		name string
		// peer is what the SIEM does with the connection; returned is
		// closed once closeGracefully returned.
		peer  func(t *testing.T, c *net.TCPConn, returned <-chan struct{})
		drain bool
	}{
		{name: "reads everything then closes", peer: func(_ *testing.T, c *net.TCPConn, _ <-chan struct{}) {
			io.Copy(io.Discard, c)
			c.Close()
		}, drain: true},
		{name: "reads nothing, closes with unread data (RST)", peer: func(t *testing.T, c *net.TCPConn, _ <-chan struct{}) {
			finAfterAll(t, c, total)
			c.Close()
		}},
		{name: "reads nothing, resets (linger 0)", peer: func(t *testing.T, c *net.TCPConn, _ <-chan struct{}) {
			finAfterAll(t, c, total)
			c.SetLinger(0)
			c.Close()
		}},
		{name: "reads part, then resets", peer: func(t *testing.T, c *net.TCPConn, _ <-chan struct{}) {
			io.CopyN(io.Discard, c, 100)
			finAfterAll(t, c, total-100)
			c.SetLinger(0)
			c.Close()
		}},
		{name: "never closes (timeout)", peer: func(_ *testing.T, c *net.TCPConn, returned <-chan struct{}) {
			<-returned // closeGracefully timed out: the peer closes only now
			io.Copy(io.Discard, c)
			c.Close()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			wg.Add(1)
			returned := make(chan struct{})
			go func() {
				defer wg.Done()
				c, err := ln.Accept()
				if err != nil {
					return
				}
				tc.peer(t, c.(*net.TCPConn), returned)
			}()
			defer func() { ln.Close(); wg.Wait() }()
			dl := &dialer{addr: ln.Addr().String(), timeout: 5 * time.Second}
			c, err := dl.dial(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer c.close() // closeGracefully closes too; close is idempotent
			for _, e := range entries {
				if err := c.write(e.frames, 5*time.Second); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := c.flush(5 * time.Second); err != nil {
				t.Fatal(err)
			}
			got := c.closeGracefully(time.Second)
			close(returned)
			if got != tc.drain {
				t.Fatalf("drained = %v, want %v (read ended with %v)", got, tc.drain, c.deadErr)
			}
		})
	}
}

// failingWriter is a dead-letter topic that refuses every write.
type failingWriter struct{ calls chan struct{} }

func (w failingWriter) Write(context.Context, ...kafka.Record) error {
	select {
	case w.calls <- struct{}{}:
	default:
	}
	return errors.New("dead-letter topic unavailable")
}

// A partition's batch is being handled when the group rebalances (its
// context ends) while a dead letter cannot be written: the handler gives
// up without an error, hands nothing on, and so commits nothing. Returning
// the context's error would stop the whole forwarder.
func TestHandleGivesUpQuietlyWhenRebalancedDuringADeadLetter(t *testing.T) {
	d := Destination{Name: "x", Address: "127.0.0.1:1", BackoffMin: time.Millisecond, BackoffMax: 10 * time.Millisecond}.WithDefaults()
	fm, err := newFormatter(d.format())
	if err != nil {
		t.Fatal(err)
	}
	calls := make(chan struct{}, 1)
	p := &pipeline{d: d, log: slog.New(slog.DiscardHandler), m: newMetrics(nil).forDestination("x"), fm: fm, dlw: deadletter.NewWriter("forwarder", failingWriter{calls}, nil)}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-calls // the dead letter is being retried
		cancel()
	}()
	out := make(chan *entry, 1)
	b := kafka.Batch{Topic: schemas.TopicAudit, Records: []kafka.Record{{Topic: schemas.TopicAudit, Value: []byte("not json")}}}
	if err := p.handle(ctx, b, out); err != nil {
		t.Fatalf("handle = %v, want nil", err)
	}
	if len(out) != 0 {
		t.Fatal("an entry was handed on although its dead letter was never written")
	}
}
