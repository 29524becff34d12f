//go:build linux

package forwarder

import (
	"context"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSinkSettlesOnlyWhatThePeerAcknowledged: the SIEM reads nothing and
// its receive buffer is small, so part of what was flushed stays in our
// send queue, unacknowledged: nothing of that flush settles, however long
// ago it was written; once the SIEM reads, everything does.
// Bug (mutants): the acknowledged position computed as written plus the
// unacknowledged bytes settled entries the peer never received.
func TestSinkSettlesOnlyWhatThePeerAcknowledged(t *testing.T) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096) }); err != nil {
			return err
		}
		return serr
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	read := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
		<-read
		io.Copy(io.Discard, c)
		c.Close()
	}()
	s := testSink(ln.Addr().String())
	defer func() { s.drop(); ln.Close(); <-done }()
	s.cfg.settle = 0
	// 12 KiB: more than the SIEM's receive buffer takes, less than our
	// send buffer holds (the write does not block).
	var es []*entry
	for i := range 12 {
		es = append(es, &entry{ref: commitRef{offset: int64(i)}, frames: [][]byte{fmt.Appendf(make([]byte, 0, 1024), "%01023d\n", i)}})
	}
	if err := s.add(ctx, es...); err != nil {
		t.Fatal(err)
	}
	if err := s.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if <-accepted == nil {
		t.Fatal("no connection")
	}
	waitFor(t, 5*time.Second, func() bool { n, ok := unackedBytes(s.conn.raw); return ok && n > 0 })
	if got := s.settled(time.Now().Add(time.Hour)); len(got) != 0 {
		n, _ := unackedBytes(s.conn.raw)
		t.Fatalf("entries %v settled with %d bytes of their flush unacknowledged", offsets(got), n)
	}
	close(read)
	var got []*entry
	waitFor(t, 5*time.Second, func() bool {
		got = append(got, s.settled(time.Now())...)
		return len(got) == len(es)
	})
}
