// Package connlimittest holds what the tests of the connection bounds
// (connlimit, httpserve, the embedded broker) check on a connection and
// on the process.
package connlimittest

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// ClosedBy reports whether the peer closed c by deadline: a read returns
// the end of the stream (or a reset) rather than time out.
func ClosedBy(c net.Conn, deadline time.Time) bool {
	_ = c.SetReadDeadline(deadline)
	var b [1]byte
	_, err := c.Read(b[:])
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// OpenFiles returns the number of file descriptors the process has open
// (from /proc/self/fd; the test is skipped where there is none).
func OpenFiles(t testing.TB) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count open files: %v", err)
	}
	return len(fds)
}
