//go:build linux

package forwarder

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// requirePeerInspection: Linux can look into a socket (peerSocket).
func requirePeerInspection(*testing.T) {}

// tcpCloseWait is the kernel's TCP_CLOSE_WAIT state: the peer sent its FIN.
const tcpCloseWait = 8

// peerSocket reports what the test SIEM's side of a connection holds,
// without reading it: the bytes received and unread (SIOCINQ), and whether
// the sender has closed its side (the socket is in CLOSE_WAIT).
func peerSocket(t *testing.T, c *net.TCPConn) (unread int, finReceived bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		t.Error(err)
		return 0, false
	}
	var ioErr error
	if err := rc.Control(func(fd uintptr) {
		unread, ioErr = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		if ioErr != nil {
			return
		}
		var info *unix.TCPInfo
		info, ioErr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		if ioErr == nil {
			finReceived = info.State == tcpCloseWait
		}
	}); err != nil || ioErr != nil {
		t.Errorf("inspecting the SIEM's socket: %v %v", err, ioErr)
	}
	return unread, finReceived
}
