// Package sshdtest runs a real OpenSSH sshd for tests of operator
// sessions: its own configuration, host key and PAM service in a temporary
// directory, listening on a loopback port, stopped and removed when the
// test ends; and a client that logs in with a key through a pty, as an
// operator's terminal does.
//
// The PAM service: sshd names its PAM service after the name it was run
// by, so the server runs through a symlink auditpipe-sshd-RANDOM and its
// service file /etc/pam.d/auditpipe-sshd-RANDOM (the only file it puts
// outside its directory, removed at the end) holds pam_loginuid
// (required: the login's audit uid, which the agent's audit rules and
// session ending follow), the host agent's keystroke file included when
// Options.TTYAuditInclude names it (the agent's agent.pam_file, the line
// pam_tty_audit.so enable=LOGIN,… it writes), and pam_unix for the account
// (the agent's account expiry) and session. Only public key
// authentication is on; authorized keys are read from
// ~/.ssh/authorized_keys, where the agent writes them.
package sshdtest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/proctest"
	"github.com/auditpipe/auditpipe/internal/testenv"
)

// SSHD is Debian's sshd (openssh-server, scripts/deps.d/55-sshd.sh).
const SSHD = "/usr/sbin/sshd"

// Options tune a Server.
type Options struct {
	// TTYAuditInclude is a PAM file included in the session stack after
	// pam_loginuid (the host agent's agent.pam_file); it must exist when
	// a user logs in. Empty: none, no keystroke auditing.
	TTYAuditInclude string
}

// Server is a running sshd.
type Server struct {
	// Port is the loopback port it listens on.
	Port int
	// Service is its PAM service name.
	Service string
	dir     string
	log     string
}

// Start starts sshd and waits until it listens. It needs root and sshd;
// without them it skips or fails (testenv.SkipOrFail).
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	testenv.RequireRoot(t, "sshd runs as root to log users in")
	for _, p := range []string{SSHD, "/usr/bin/ssh", "/usr/bin/ssh-keygen", "/usr/bin/script"} {
		if _, err := os.Stat(p); err != nil {
			testenv.SkipOrFail(t, testenv.SSHD, "%s missing (scripts/deps.d/55-sshd.sh installs openssh-server)", p)
		}
	}
	dir := t.TempDir()
	// sshd re-executes itself for each connection by its absolute path;
	// the directory must be reachable by the unprivileged child.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	hostKey := filepath.Join(dir, "host_ed25519")
	keygen(t, hostKey)
	// The privilege separation directory Debian's service creates.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	s := &Server{Service: "auditpipe-sshd-" + randHex(t, 4), dir: dir, log: filepath.Join(dir, "sshd.log")}
	pam := filepath.Join("/etc/pam.d", s.Service)
	if err := os.WriteFile(pam, []byte(pamService(opts)), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(pam) })
	bin := filepath.Join(dir, s.Service)
	if err := os.Symlink(SSHD, bin); err != nil {
		t.Fatal(err)
	}
	for tries := 0; ; tries++ {
		s.Port = proctest.FreePorts(t, 1)[0]
		conf := filepath.Join(dir, "sshd_config")
		if err := os.WriteFile(conf, []byte(s.config(hostKey)), 0o600); err != nil {
			t.Fatal(err)
		}
		logf := proctest.LogFile(t, s.log, "sshd")
		cmd := exec.Command(bin, "-D", "-e", "-f", conf)
		cmd.Stdout, cmd.Stderr = logf, logf
		p, err := proctest.Launch(cmd, s.listening, 10*time.Second)
		if err != nil {
			if tries < 3 && bytes.Contains(proctest.Tail(s.log), []byte("Address already in use")) {
				continue
			}
			t.Fatalf("sshdtest: %v\n%s", err, proctest.Tail(s.log))
		}
		t.Cleanup(func() { p.Stop(syscall.SIGTERM, 5*time.Second) })
		return s
	}
}

func (s *Server) listening() error {
	if b, _ := os.ReadFile(s.log); bytes.Contains(b, []byte("Server listening on 127.0.0.1 port "+strconv.Itoa(s.Port))) {
		return nil
	}
	return fmt.Errorf("sshd has not said it listens")
}

func (s *Server) config(hostKey string) string {
	return fmt.Sprintf(`ListenAddress 127.0.0.1
Port %d
HostKey %s
PidFile %s
UsePAM yes
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AuthorizedKeysFile .ssh/authorized_keys
StrictModes yes
X11Forwarding no
PrintMotd no
LogLevel VERBOSE
`, s.Port, hostKey, filepath.Join(s.dir, "sshd.pid"))
}

// pamService is the server's PAM service file. Authentication is by key
// only (sshd does not ask PAM), so auth denies.
func pamService(opts Options) string {
	var b strings.Builder
	b.WriteString("# auditpipe sshdtest: a test's own sshd; removed when the test ends.\n")
	b.WriteString("auth     required pam_deny.so\n")
	b.WriteString("account  required pam_unix.so\n")
	b.WriteString("session  required pam_loginuid.so\n")
	if opts.TTYAuditInclude != "" {
		fmt.Fprintf(&b, "session  include  %s\n", opts.TTYAuditInclude)
	}
	b.WriteString("session  required pam_unix.so\n")
	return b.String()
}

// Log returns what sshd logged so far.
func (s *Server) Log() string { b, _ := os.ReadFile(s.log); return string(b) }

// Key creates an ed25519 key pair in a temporary directory and returns the
// private key's path and the public key's authorized_keys line.
func Key(t testing.TB) (priv, pub string) {
	t.Helper()
	priv = filepath.Join(t.TempDir(), "id_ed25519")
	keygen(t, priv)
	b, err := os.ReadFile(priv + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return priv, strings.TrimSpace(string(b))
}

func keygen(t testing.TB, path string) {
	t.Helper()
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "auditpipe-sshdtest", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
}

func randHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// sshArgs is the client's command line: a forced pty, the key only, the
// server's host key accepted without a known_hosts file.
func (s *Server) sshArgs(key, user string) []string {
	return []string{"ssh", "-tt", "-i", key, "-p", strconv.Itoa(s.Port),
		"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
		user + "@127.0.0.1"}
}

// Session is a client's interactive login: ssh -tt run under script(1),
// so the client's side has a pty too and what Type sends arrives at the
// login's terminal as typed keys (a backspace as the terminal's erase).
type Session struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	mu    sync.Mutex
	out   bytes.Buffer
	done  chan struct{}
	// Ended is when the client exited.
	Ended time.Time
}

// Login starts an interactive session of user with the private key. It
// returns at once; Wait for a prompt's output with WaitOutput.
func (s *Server) Login(t testing.TB, key, user string) *Session {
	t.Helper()
	cmd := exec.Command("script", "-qfec", shellJoin(s.sshArgs(key, user)), "/dev/null")
	cmd.Env = append(os.Environ(), "TERM=dumb")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &Session{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = (*sessionOut)(c), (*sessionOut)(c)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = cmd.Wait()
		c.Ended = time.Now()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
		if t.Failed() {
			t.Logf("ssh session of %s:\n%s", user, c.Output())
		}
	})
	return c
}

type sessionOut Session

func (o *sessionOut) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.out.Write(b)
}

// Type sends text to the session's terminal, as keys typed.
func (c *Session) Type(t testing.TB, text string) {
	t.Helper()
	if _, err := io.WriteString(c.stdin, text); err != nil {
		t.Fatalf("sshdtest: typing into the session: %v", err)
	}
}

// Output is everything the session printed so far.
func (c *Session) Output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

// WaitOutput waits until the session printed want, failing the test
// after d or when the session ends first.
func (c *Session) WaitOutput(t testing.TB, want string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(c.Output(), want) {
		select {
		case <-c.done:
			if strings.Contains(c.Output(), want) {
				return
			}
			t.Fatalf("sshdtest: the session ended without printing %q:\n%s", want, c.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshdtest: the session did not print %q in %s:\n%s", want, d, c.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Done is closed when the client has exited.
func (c *Session) Done() <-chan struct{} { return c.done }

// shellJoin quotes args for sh -c (script runs its command through the
// shell).
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
