package siemtest

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/proctest"
	"github.com/auditpipe/auditpipe/internal/testenv"
)

// SyslogNGOptions configure a test syslog-ng.
type SyslogNGOptions struct {
	// CA, CertFile and KeyFile are syslog-ng's TLS identity (required).
	CA                *CA
	CertFile, KeyFile string
	// Template, when set, is the file destination's template instead of
	// the JSON line that Messages reads (a benchmark's cheaper one; read
	// the lines with LinesFrom), in syslog-ng's string syntax without the
	// quotes (\n for a newline; no '"'). It must write one line per message.
	Template string
	// CPUs, when set, is the CPU list (taskset -c syntax, e.g. "1") that
	// syslog-ng and all its threads are bound to.
	CPUs string
}

// SyslogNG is a syslog-ng run in the foreground by a test, from the
// private directory that scripts/deps.d/25-syslog-ng.sh unpacks Debian's
// syslog-ng-core into (it conflicts with rsyslog as a package). It receives
// RFC 5425 (syslog over TLS, octet counting) with its syslog() source at
// its defaults, and writes each message as one JSON line: what syslog-ng
// parsed (PRI, the SD-PARAMs of every SD-ELEMENT and MSG, as it keeps them).
type SyslogNG struct {
	Addr string // 127.0.0.1:port
	dir  string
	out  string
	proc *proctest.Proc

	counter lineCounter
}

// SyslogNGMessage is one message as syslog-ng stored it.
type SyslogNGMessage struct {
	PRI string `json:"pri"`
	// SD maps "SD-ID.PARAM-NAME" to the value, as syslog-ng's
	// .SDATA.SD-ID.PARAM-NAME macros hold them.
	SD  map[string]string `json:"sd"`
	MSG string            `json:"msg"`
}

// SyslogNGDir is where 25-syslog-ng.sh unpacks syslog-ng.
func SyslogNGDir() string {
	cache := os.Getenv("AUDITPIPE_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "auditpipe")
	}
	return filepath.Join(cache, "syslog-ng")
}

// syslogNGBinary returns the unpacked syslog-ng, or skips the test.
func syslogNGBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(SyslogNGDir(), "usr", "sbin", "syslog-ng")
	if _, err := os.Stat(bin); err != nil {
		testenv.SkipOrFail(t, testenv.SyslogNG, "siemtest: syslog-ng not unpacked at %s (scripts/deps.d/25-syslog-ng.sh); run `make deps`", bin)
	}
	return bin
}

// StartSyslogNG writes a configuration into a fresh directory, starts
// syslog-ng on a free loopback port, and waits until it accepts
// connections. It is stopped when the test ends.
func StartSyslogNG(t testing.TB, o SyslogNGOptions) *SyslogNG {
	t.Helper()
	bin := syslogNGBinary(t)
	root := SyslogNGDir()
	dir := t.TempDir()
	s := &SyslogNG{
		Addr: "127.0.0.1:" + strconv.Itoa(proctest.FreePorts(t, 1)[0]),
		dir:  dir,
		out:  filepath.Join(dir, "received.jsonl"),
	}
	_, port, _ := net.SplitHostPort(s.Addr)
	template := o.Template
	if template == "" {
		template = `$(format-json --scope none --pair pri=$PRI --pair msg=$(base64-encode $MSG) --key .SDATA.* --shift-levels 1)\n`
	}
	// The syslog() source speaks RFC 5424 with RFC 5425/6587 octet
	// counting; nothing but the TLS identity is set. The file destination
	// writes what syslog-ng parsed, JSON-encoded by format-json, one line a
	// message: $MSG as syslog-ng keeps it (base64), and every SD-PARAM.
	conf := fmt.Sprintf(`@version: 3.38
# written by siemtest
options { stats_freq(0); };
source s_tls {
  syslog(ip("127.0.0.1") port(%s) transport("tls")
    tls(key-file(%q) cert-file(%q) peer-verify(optional-untrusted)));
};
destination d_file {
  file(%q template("%s"));
};
log { source(s_tls); destination(d_file); };
`, port, o.KeyFile, o.CertFile, s.out, template)
	confPath := filepath.Join(dir, "syslog-ng.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "syslog-ng.log")
	logf := proctest.LogFile(t, logPath, "syslog-ng")
	libs := filepath.Join(root, "usr/lib/syslog-ng") + ":" + filepath.Join(root, "usr/lib/x86_64-linux-gnu") + ":" + filepath.Join(root, "lib/x86_64-linux-gnu")
	args := []string{bin, "-F", "-f", confPath,
		"--module-path=" + filepath.Join(root, "usr/lib/syslog-ng/3.38"),
		"--persist-file=" + filepath.Join(dir, "syslog-ng.persist"),
		"--pidfile=" + filepath.Join(dir, "syslog-ng.pid"),
		"--control=" + filepath.Join(dir, "syslog-ng.ctl"),
		"--no-caps", "--stderr"}
	if o.CPUs != "" {
		ts, err := exec.LookPath("taskset")
		if err != nil {
			t.Fatalf("siemtest: binding syslog-ng to CPUs %s: %v", o.CPUs, err)
		}
		// taskset execs syslog-ng: the process (and its pid) is syslog-ng's.
		args = append([]string{ts, "-c", o.CPUs}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+libs)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = dir
	s.proc = proctest.Start(t, "syslog-ng", cmd, proctest.Dials(s.Addr), 15*time.Second, logPath)
	s.counter.path = s.out
	t.Cleanup(func() {
		s.Stop(t)
		s.counter.close()
	})
	return s
}

// Stop stops syslog-ng with SIGTERM (it flushes its destinations) and waits.
func (s *SyslogNG) Stop(t testing.TB) {
	t.Helper()
	if s.proc == nil {
		return
	}
	s.proc.Stop(syscall.SIGTERM, 20*time.Second)
	s.proc = nil
}

// Messages returns the messages written so far, in order.
func (s *SyslogNG) Messages(t testing.TB) []SyslogNGMessage {
	t.Helper()
	f, err := os.Open(s.out)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []SyslogNGMessage
	br := bufio.NewReaderSize(f, 1<<20)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return out // EOF: the last line may be half written
		}
		var raw struct {
			PRI  string                       `json:"pri"`
			MSG  string                       `json:"msg"`
			Data map[string]map[string]string `json:"SDATA"`
		}
		if err := json.Unmarshal(line, &raw); err != nil {
			t.Fatalf("siemtest: syslog-ng output: %v: %q", err, line)
		}
		msg, err := base64.StdEncoding.DecodeString(raw.MSG)
		if err != nil {
			t.Fatalf("siemtest: syslog-ng output: msg: %v: %q", err, line)
		}
		m := SyslogNGMessage{PRI: raw.PRI, MSG: string(msg), SD: map[string]string{}}
		for id, params := range raw.Data {
			for k, v := range params {
				m.SD[id+"."+k] = v
			}
		}
		out = append(out, m)
	}
}

// WaitMessages waits until at least n messages were written, timeout, or
// t failed, and returns what was.
func (s *SyslogNG) WaitMessages(t testing.TB, n int, timeout time.Duration) []SyslogNGMessage {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := s.Messages(t)
		if len(got) >= n || time.Now().After(deadline) || t.Failed() {
			return got
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// WaitCount waits until at least n messages were written, or timeout, and
// returns how many were. Like Rsyslog.WaitCount it reads only what was
// appended since its last call: cheap enough for benchmarks.
func (s *SyslogNG) WaitCount(n int, timeout time.Duration) int {
	return s.counter.wait(n, timeout)
}

// LinesFrom returns the output lines (one a message, as the template
// wrote it, without the newline) from byte offset off on, and the offset
// after the last complete one.
func (s *SyslogNG) LinesFrom(t testing.TB, off int64) ([]string, int64) {
	t.Helper()
	return linesFrom(t, s.out, off)
}

// CPU returns the user and system CPU time syslog-ng (all its threads)
// used so far, from /proc (Linux only; 10 ms resolution).
func (s *SyslogNG) CPU() (time.Duration, error) {
	if s.proc == nil {
		return 0, fmt.Errorf("siemtest: syslog-ng is not running")
	}
	return processCPU("syslog-ng", s.proc.Pid())
}
