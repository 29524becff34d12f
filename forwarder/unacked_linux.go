//go:build linux

package forwarder

import (
	"net"

	"golang.org/x/sys/unix"
)

// unackedBytes returns the bytes in the socket's send queue that the peer
// has not acknowledged yet (SIOCOUTQ).
func unackedBytes(c net.Conn) (int, bool) {
	tcp, ok := c.(*net.TCPConn)
	if !ok {
		return 0, false
	}
	rc, err := tcp.SyscallConn()
	if err != nil {
		return 0, false
	}
	var n int
	var ioErr error
	if err := rc.Control(func(fd uintptr) {
		n, ioErr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
	}); err != nil || ioErr != nil {
		return 0, false
	}
	return n, true
}
