package kafka

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// TestAuthConnIdleDeadline: an authenticated connection that keeps
// sending, more often than its idle timeout, is never timed out, however
// long it lasts (the deadline moves with its requests); one that stops is
// timed out after about the idle timeout.
func TestAuthConnIdleDeadline(t *testing.T) {
	const idle = 400 * time.Millisecond
	client, server := net.Pipe()
	defer client.Close()
	c := &authConn{Conn: server, idle: idle, authed: true}
	defer c.Close()
	go func() {
		for range 12 { // 1.2 s, three idle timeouts
			if _, err := client.Write([]byte("r")); err != nil {
				return
			}
			time.Sleep(idle / 4)
		}
	}()
	var b [1]byte
	for i := range 12 {
		if _, err := c.Read(b[:]); err != nil {
			t.Fatalf("read %d of a connection sending every %v, idle timeout %v: %v", i, idle/4, idle, err)
		}
	}
	start := time.Now()
	// Without an idle deadline the read would wait for ever: the pipe is
	// closed after four idle timeouts, failing the test instead.
	watchdog := time.AfterFunc(4*idle, func() { server.Close() })
	defer watchdog.Stop()
	_, err := c.Read(b[:])
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read of a silent connection: %v, want a timeout", err)
	}
	if d := time.Since(start); d > idle+200*time.Millisecond {
		t.Errorf("silent connection timed out after %v, idle timeout %v", d, idle)
	}
}
