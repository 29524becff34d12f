package siemtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/proctest"
	"github.com/auditpipe/auditpipe/internal/testenv"
)

// RsyslogOptions configure a test rsyslog.
type RsyslogOptions struct {
	// CA, CertFile and KeyFile are rsyslog's TLS identity (required).
	CA                *CA
	CertFile, KeyFile string
	// ClientAuth requires a client certificate signed by CA (mutual TLS).
	ClientAuth bool
	// MaxMessageSize is rsyslog's maxMessageSize. Default 8k, rsyslog's own default.
	MaxMessageSize int
	// Defaults keeps rsyslog's text-changing parser defaults as installed
	// (control characters escaped as #ooo, a trailing LF dropped) instead
	// of turning them off: what a customer's rsyslog does.
	Defaults bool
	// CPUs, when set, is the CPU list (taskset -c syntax, e.g. "1") that
	// rsyslogd and all its threads are bound to.
	CPUs string
}

// Rsyslog is an rsyslogd run in the foreground by a test, receiving
// RFC 5425 (syslog over TLS, octet counting) on a loopback port and writing
// each received message's raw bytes, JSON-escaped, as one line of a file.
type Rsyslog struct {
	Addr string // 127.0.0.1:port, the port rsyslogd chose at its first start

	dir, conf, out, pid string
	portFile, internal  string
	opts                RsyslogOptions
	proc                *proctest.Proc
	log                 *os.File
	bin                 string
	cpus                string

	counter lineCounter
}

// Binary returns the path of rsyslogd, or skips the test with the reason.
func Binary(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"rsyslogd", "/usr/sbin/rsyslogd", "/sbin/rsyslogd"} {
		if path, err := exec.LookPath(p); err == nil {
			// The GnuTLS driver is a separate Debian package.
			if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so"); err != nil {
				if m, _ := filepath.Glob("/usr/lib/*/rsyslog/lmnsd_gtls.so"); len(m) == 0 {
					testenv.SkipOrFail(t, testenv.Rsyslog, "siemtest: rsyslog-gnutls (lmnsd_gtls.so) not installed; run `make deps`")
				}
			}
			return path
		}
	}
	testenv.SkipOrFail(t, testenv.Rsyslog, "siemtest: rsyslogd not found (Debian packages rsyslog and rsyslog-gnutls); run `make deps`")
	return ""
}

// StartRsyslog writes a configuration into a fresh directory, starts
// rsyslogd on a loopback port it chooses, and waits until it is ready.
// It is stopped when the test ends.
func StartRsyslog(t testing.TB, o RsyslogOptions) *Rsyslog {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	if o.MaxMessageSize == 0 {
		o.MaxMessageSize = 8192
	}
	r := &Rsyslog{
		dir:      dir,
		conf:     filepath.Join(dir, "rsyslog.conf"),
		out:      filepath.Join(dir, "received.jsonl"),
		pid:      filepath.Join(dir, "rsyslogd.pid"),
		portFile: filepath.Join(dir, "port"),
		internal: filepath.Join(dir, "internal.log"),
	}
	r.counter.path = r.out
	r.log = proctest.LogFile(t, filepath.Join(dir, "rsyslogd.log"), "rsyslogd")
	t.Cleanup(func() {
		r.Stop(t)
		r.counter.close()
		if t.Failed() {
			t.Logf("rsyslog internal log (last 4 KiB):\n%s", proctest.Tail(r.internal))
		}
	})
	r.bin = bin
	r.cpus = o.CPUs
	r.opts = o
	r.Start(t)
	return r
}

// config is rsyslog.conf for a listen port ("0": rsyslogd binds a free
// port itself and writes it to portFile, so no port is chosen here that
// another process could take before rsyslogd binds it).
func (r *Rsyslog) config(port string) string {
	o := r.opts
	auth := "anon"
	if o.ClientAuth {
		auth = "x509/certvalid"
	}
	return fmt.Sprintf(`# written by siemtest
global(
  workDirectory=%q
  processInternalMessages="on"
  maxMessageSize="%d"
  defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile=%q
  defaultNetstreamDriverCertFile=%q
  defaultNetstreamDriverKeyFile=%q%s
)
main_queue(queue.timeoutShutdown="10000" queue.timeoutActionCompletion="10000")
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode=%q)
input(type="imtcp" address="127.0.0.1" port=%q listenPortFileName=%q)
template(name="rawjson" type="list") {
  constant(value="{\"raw\":\"")
  property(name="rawmsg" format="json")
  constant(value="\"}\n")
}
if $inputname == "imtcp" then {
  action(type="omfile" file=%q template="rawjson")
  stop
}
action(type="omfile" file=%q)
`, r.dir, o.MaxMessageSize, o.CA.CertPEM, o.CertFile, o.KeyFile, parserOptions(o.Defaults), auth, port, r.portFile, r.out, r.internal)
}

// parserOptions are the global() lines that turn rsyslog's text-changing
// parser defaults off, unless defaults is set.
func parserOptions(defaults bool) string {
	if defaults {
		return ""
	}
	return `
  parser.escapeControlCharactersOnReceive="off"
  parser.dropTrailingLFOnReception="off"`
}

// Start starts rsyslogd (again, after Stop, on the same port) and waits
// until it is ready: it wrote its start line and its listener accepts
// connections.
func (r *Rsyslog) Start(t testing.TB) {
	t.Helper()
	port := "0"
	if r.Addr != "" {
		_, port, _ = net.SplitHostPort(r.Addr)
	}
	if err := os.WriteFile(r.conf, []byte(r.config(port)), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{r.bin, "-n", "-f", r.conf, "-i", r.pid}
	if r.cpus != "" {
		ts, err := exec.LookPath("taskset")
		if err != nil {
			t.Fatalf("siemtest: binding rsyslogd to CPUs %s: %v", r.cpus, err)
		}
		// taskset execs rsyslogd: the process (and its pid) is rsyslogd's.
		args = append([]string{ts, "-c", r.cpus}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = r.log, r.log
	cmd.Dir = r.dir
	r.proc = proctest.Start(t, "rsyslogd", cmd, func() error { return r.ready(cmd) }, 15*time.Second, r.log.Name())
}

// ready reports whether the rsyslogd of cmd serves: its start line (with
// its pid) is in the internal log, and its port accepts connections. At
// the first start, on port 0, the port is the one rsyslogd wrote to
// portFile, and ready sets Addr.
func (r *Rsyslog) ready(cmd *exec.Cmd) error {
	b, err := os.ReadFile(r.internal)
	if err != nil {
		return fmt.Errorf("no internal log yet: %w", err)
	}
	if !bytes.Contains(b, fmt.Appendf(nil, `x-pid="%d" x-info="https://www.rsyslog.com"] start`, cmd.Process.Pid)) {
		return fmt.Errorf("no start line of pid %d in %s", cmd.Process.Pid, r.internal)
	}
	addr := r.Addr
	if addr == "" {
		// The first start, on port 0: the port it chose.
		pb, err := os.ReadFile(r.portFile)
		if err != nil {
			return fmt.Errorf("no listener port file yet: %w", err)
		}
		port, err := strconv.Atoi(strings.TrimSpace(string(pb)))
		if err != nil || port <= 0 {
			return fmt.Errorf("listener port file holds %q", pb)
		}
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	if err := proctest.Dials(addr)(); err != nil {
		return err
	}
	r.Addr = addr
	return nil
}

// Stop stops rsyslogd with SIGTERM (it drains its queues) and waits.
func (r *Rsyslog) Stop(t testing.TB) {
	t.Helper()
	if r.proc == nil {
		return
	}
	r.proc.Stop(syscall.SIGTERM, 20*time.Second)
	r.proc = nil
	_ = os.Remove(r.pid)
}

// Messages returns the raw messages received so far, in order.
func (r *Rsyslog) Messages(t testing.TB) []string {
	t.Helper()
	msgs, _ := r.MessagesFrom(t, 0)
	return msgs
}

// MessagesFrom returns the raw messages written to the output file from
// byte offset off on, in order, and the offset after the last complete
// one: the off of the next call, for reading a long stream in parts.
func (r *Rsyslog) MessagesFrom(t testing.TB, off int64) ([]string, int64) {
	t.Helper()
	f, err := os.Open(r.out)
	if os.IsNotExist(err) {
		return nil, off
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	var out []string
	br := bufio.NewReaderSize(f, 1<<20)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return out, off // EOF: the last line may be half written
		}
		var m struct {
			Raw string `json:"raw"`
		}
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("siemtest: received.jsonl: %v: %q", err, line)
		}
		out = append(out, m.Raw)
		off += int64(len(line))
	}
}

// LinesFrom returns the lines of the output file (one a message: its raw
// bytes JSON-escaped) from byte offset off on, without their newlines, and
// the offset after the last complete one: cheaper than MessagesFrom where
// lines need only be compared.
func (r *Rsyslog) LinesFrom(t testing.TB, off int64) ([]string, int64) {
	t.Helper()
	return linesFrom(t, r.out, off)
}

// WaitMessages waits until at least n messages were received, timeout,
// or t failed (a test that failed already need not wait), and returns
// what was received.
func (r *Rsyslog) WaitMessages(t testing.TB, n int, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := r.Messages(t)
		if len(got) >= n || time.Now().After(deadline) || t.Failed() {
			return got
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// WaitCount waits until at least n messages were received, or timeout,
// and returns how many were. It reads only what was appended since its
// last call, through one reused buffer, so it is cheap enough for
// benchmarks (it runs beside what they measure).
func (r *Rsyslog) WaitCount(n int, timeout time.Duration) int {
	return r.counter.wait(n, timeout)
}

// CPU returns the user and system CPU time rsyslogd (all its threads) used
// so far, from /proc (Linux only; 10 ms resolution).
func (r *Rsyslog) CPU() (time.Duration, error) {
	if r.proc == nil {
		return 0, fmt.Errorf("siemtest: rsyslogd is not running")
	}
	// Under taskset too: taskset execs rsyslogd in its own process.
	return processCPU("rsyslogd", r.proc.Pid())
}
