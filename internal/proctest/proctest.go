// Package proctest runs the external daemons that tests talk to (rsyslogd,
// a Kafka broker): started, waited for until they are ready, stopped.
package proctest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proc is a started daemon.
type Proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// ErrExited is wrapped by Launch's error when the daemon exited before it
// was ready.
var ErrExited = errors.New("proctest: the daemon exited at start")

// Launch starts cmd and polls ready until it returns nil: the daemon's
// own word that it serves (it answers a request, it wrote its start line),
// not merely that a port accepts connections. It returns an error wrapping
// ErrExited when the daemon exits first, and one with ready's last error
// when timeout passes (the daemon is then killed).
func Launch(cmd *exec.Cmd, ready func() error, timeout time.Duration) (*Proc, error) {
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("proctest: start: %w", err)
	}
	p := &Proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%w (%v)", ErrExited, cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			p.Stop(os.Kill, time.Minute)
			return nil, fmt.Errorf("proctest: not ready after %s: %w", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Start is Launch, failing the test when the daemon cannot start, exits
// first (with the last 4 KiB of logFile, where cmd writes its output), or
// is not ready within timeout. The daemon is stopped when the test ends
// (SIGTERM, then SIGKILL after 10 s), before the cleanups registered
// earlier (LogFile's): the deploy tests, which drop the Proc, left their
// rsyslogd, syslog-ng and Prometheus running after every make test.
func Start(t testing.TB, name string, cmd *exec.Cmd, ready func() error, timeout time.Duration, logFile string) *Proc {
	t.Helper()
	p, err := Launch(cmd, ready, timeout)
	if err != nil {
		t.Fatalf("proctest: %s: %v\n%s", name, err, Tail(logFile))
	}
	t.Cleanup(func() { p.Stop(syscall.SIGTERM, 10*time.Second) })
	return p
}

// Dials returns a readiness check that addr accepts TCP connections: a
// part of a daemon's readiness, never all of it.
func Dials(addr string) func() error {
	return func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
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

// FreePorts returns n distinct loopback TCP ports that were free a moment
// ago (all held at once, then released). Another process may take one
// before the caller binds it: prefer a daemon that binds port 0 and reports
// its port, or retry on "address already in use" (see Launch and
// ErrExited).
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	// Below Linux's ephemeral range (32768-60999): a port the kernel
	// hands out for port 0 is also what it hands to the next outgoing
	// connection of any process, which then holds it when the daemon
	// binds it later (a broker started after the component that will
	// connect to it, say).
	const lo, hi = 20000, 32000
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries > 1000 {
			t.Fatalf("proctest: no free port in %d-%d", lo, hi)
		}
		p := lo + rand.IntN(hi-lo)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue // taken
		}
		defer l.Close()
		ports = append(ports, p)
	}
	return ports
}

// Pid is the daemon's process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// ExitCode is the daemon's exit status once it has exited (after Stop):
// -1 while it runs, or when a signal ended it.
func (p *Proc) ExitCode() int {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	default:
		return -1
	}
}

// Build builds the Go package pkg (an import path, or a directory
// relative to the test's) with `go build`, niced so the tests running
// beside it keep their CPU, into a temporary directory of the test, and
// returns the binary's path: a test that runs the binary as its own
// process, as an operator does.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), binaryName("", pkg))
	if out, err := goBuild(path, "", pkg); err != nil {
		t.Fatalf("proctest: go build %s: %v\n%s", pkg, err, out)
	}
	return path
}

// Binary is a Go program built once per test binary, for the tests of a
// package that run it as its own process: the first Path builds it, and
// the package's TestMain calls Remove after m.Run.
type Binary struct {
	// Pkg is what go build builds (an import path, or a directory
	// relative to Dir).
	Pkg string
	// Dir is where go build runs: "" for the test's own directory; a
	// module of its own is built from its directory.
	Dir string

	once sync.Once
	dir  string
	path string
	err  error
}

// Path builds b the first time it is called (as Build does) and returns
// the binary's path; a failed build fails every test that asks.
func (b *Binary) Path(t testing.TB) string {
	t.Helper()
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "proctest-bin-"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, binaryName(b.Dir, b.Pkg))
		var out []byte
		if out, b.err = goBuild(b.path, b.Dir, b.Pkg); b.err != nil {
			b.err = fmt.Errorf("%w\n%s", b.err, out)
		}
	})
	if b.err != nil {
		t.Fatalf("proctest: go build %s: %v", b.Pkg, b.err)
	}
	return b.path
}

// Remove deletes the built binary, if a test built it.
func (b *Binary) Remove() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

// binaryName is the name go build gives pkg's program when run in dir:
// the last element of its path ("." is dir's own name).
func binaryName(dir, pkg string) string {
	if name := filepath.Base(pkg); name != "." {
		return name
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "program"
	}
	return filepath.Base(abs)
}

// goBuild builds pkg into path, niced, from dir ("" for the current one).
func goBuild(path, dir, pkg string) ([]byte, error) {
	cmd := exec.Command("nice", "-n", "10", "go", "build", "-o", path, pkg)
	cmd.Dir = dir
	return cmd.CombinedOutput()
}
