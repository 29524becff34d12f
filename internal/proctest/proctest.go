// Package proctest runs the external daemons that tests talk to (rsyslogd,
// a Kafka broker): started, waited for until they listen, stopped.
package proctest

import (
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

// Proc is a started daemon.
type Proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts cmd and waits until addr accepts TCP connections. It fails
// the test when the daemon cannot start, exits first (with the last 4 KiB
// of logFile, where cmd writes its output), or does not listen within
// timeout.
func Start(t testing.TB, name string, cmd *exec.Cmd, addr string, timeout time.Duration, logFile string) *Proc {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("proctest: start %s: %v", name, err)
	}
	p := &Proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(timeout)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("proctest: %s exited at start:\n%s", name, Tail(logFile))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("proctest: %s does not listen on %s after %s", name, addr, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop sends sig and waits for the daemon to exit; after grace it kills
// it. Stopping a daemon that has exited does nothing.
func (p *Proc) Stop(sig os.Signal, grace time.Duration) {
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// LogFile creates path for a daemon's output. When the test ends, after
// the cleanups registered later (the one stopping the daemon), the file is
// closed and, if the test failed, its end is logged under name.
func LogFile(t testing.TB, path, name string) *os.File {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		if t.Failed() {
			t.Logf("%s output (last 4 KiB):\n%s", name, Tail(path))
		}
	})
	return f
}

// Tail returns the last 4 KiB of the file at path (nothing if unreadable).
func Tail(path string) []byte {
	b, _ := os.ReadFile(path)
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return b
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Pid is the daemon's process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }
