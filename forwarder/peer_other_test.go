//go:build !linux

package forwarder

import (
	"net"
	"testing"
)

// requirePeerInspection skips tests that look into the SIEM's socket.
func requirePeerInspection(t *testing.T) {
	t.Skip("inspecting a socket's receive queue and TCP state needs Linux (SIOCINQ, TCP_INFO)")
}

func peerSocket(t *testing.T, c *net.TCPConn) (unread int, finReceived bool) { return 0, false }
