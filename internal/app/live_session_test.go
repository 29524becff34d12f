package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/collector/netlinksrc"
	"github.com/auditpipe/auditpipe/forwarder"
	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/audittest"
	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/siemtest"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/internal/sshdtest"
	"github.com/auditpipe/auditpipe/internal/testenv"
	"github.com/auditpipe/auditpipe/schemas"
)

// EnvLiveCapture names a file the live-session test copies the raw audit
// records of its operator's first session to (the fixture under
// collector/testdata/live/ was made this way).
const EnvLiveCapture = "AUDITPIPE_LIVE_CAPTURE"

// TestLiveOperatorSession is a real operator session on this host (issue
// 11): the all-in-one's broker, store, indexer and collector, the
// collector reading the kernel's audit records over netlink, and the host
// agent live, following a signed grant for a fresh 32-hex login with an
// SSH key, keystroke auditing and INFRA_DIAG-like privileges (sudo
// /usr/bin/id only). A real sshd (internal/sshdtest: pam_loginuid, the
// agent's pam_tty_audit file) logs the operator in with ssh -tt through a
// pty; the session runs ls /, a script running commands, sudo /usr/bin/id
// (allowed) and sudo cat /etc/shadow (refused), types a line with a
// backspace and exits. ClickHouse then holds the login, the commands (args,
// cwd, euid, root after sudo), the keystrokes and the logout, all with the
// grant's req_auth_id. A second session is left open and the signed
// revocation published: the session ends within 2 s and the user is gone.
// The forwarder delivers the same events to rsyslog (internal/siemtest).
// Root only; it takes the kernel audit lock and restores the audit state.
func TestLiveOperatorSession(t *testing.T) {
	k := audittest.Take(t)
	for _, tool := range []string{"/usr/sbin/visudo", "/usr/bin/sudo", "/usr/sbin/auditctl"} {
		if _, err := os.Stat(tool); err != nil {
			testenv.SkipOrFail(t, testenv.HostTools, "%s missing (scripts/deps.d/50-host-agent.sh)", tool)
		}
	}
	probe, err := netlinksrc.Open(netlinksrc.Options{})
	if err != nil {
		testenv.SkipOrFail(t, testenv.KernelAudit, "audit netlink multicast socket: %v", err)
	}
	k.Enable(t)

	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	// The all-in-one's own grant key, made before its first start (which
	// keeps it): the test signs grants as the policy service would.
	signer, _, err := sign.EnsureKeyPair(filepath.Join(data, GrantsKeyName), filepath.Join(data, GrantsPublicKeyName))
	if err != nil {
		t.Fatal(err)
	}
	login := newHexLogin(t)
	t.Cleanup(func() { removeUser(t, login) })
	pamFile := filepath.Join(dir, "auditpipe-tty-audit")
	srv := sshdtest.Start(t, sshdtest.Options{TTYAuditInclude: pamFile})
	key, pub := sshdtest.Key(t)

	ca := siemtest.NewCA(t, dir, "ca")
	cert, certKey := ca.Issue(t, dir, "siem", siemtest.CertOptions{})
	rs := siemtest.StartRsyslog(t, siemtest.RsyslogOptions{CA: ca, CertFile: cert, KeyFile: certKey})

	const host = "livehost"
	cfg := DefaultConfig()
	cfg.Target = TargetAll
	cfg.Embedded.DataDir = data
	cfg.Embedded.KafkaListen = "127.0.0.1:0"
	cfg.Server.HTTPAddr = "127.0.0.1:0"
	cfg.Collector.Input.Type = "netlink"
	cfg.Collector.Host = host
	cfg.Collector.Grants = nil
	cfg.Collector.FlushInterval = 200 * time.Millisecond
	cfg.Collector.LogoutFromSessionClose = true // Debian's sshd writes no USER_LOGOUT
	cfg.Forwarder.Destinations = []forwarder.Destination{{Address: rs.Addr, TLS: forwarder.TLS{CAFile: ca.CertPEM}}}
	cfg.Agent.Live = true
	cfg.Agent.Host = host
	cfg.Agent.GrantKeys = []string{filepath.Join(data, GrantsPublicKeyName)}
	cfg.Agent.PAMFile = pamFile
	r := startLive(t, cfg)

	// Every raw record of the operator's sessions, beside the collector.
	capture := captureAudit(t, probe)

	now := time.Now().UTC().Truncate(time.Millisecond)
	g := schemas.Grant{
		LoginID: login, ReqAuthID: "ocid1.accessrequest.live" + login[:8], Resource: "exacc-main",
		Actions: []string{"INFRA_DIAG"}, AuditType: schemas.AuditCommandKeystroke,
		Hosts: []string{host}, Start: now.Add(-time.Minute), Expires: now.Add(time.Hour),
		SSHAuthorizedKeys: []string{pub},
		Privileges: &schemas.Privileges{
			Layers: []string{"HOST"}, SudoCommands: []string{"/usr/bin/id"},
			Commands: []string{"ls", "cat", "id", "uname"}, DeniedCommands: []string{"/usr/sbin/auditctl"},
		},
	}
	rec, err := grants.Record(signer, g)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, r.app.kafkaFor(kafka.RolePolicy), rec)
	waitMetric(t, r.app.Registry(), "the grant deployed", "auditpipe_agent_grants", 1)
	waitMetric(t, r.app.Registry(), "the collector has the grant", "auditpipe_collector_grants", 1)
	uid := strings.TrimSpace(runCmd(t, "id", "-u", login))

	// The first session: commands, sudo allowed and refused, keystrokes.
	s := srv.Login(t, key, login)
	s.Type(t, "echo READY-$(cat /proc/self/loginuid)\n")
	s.WaitOutput(t, "READY-"+uid, 30*time.Second)
	s.Type(t, "ls /\n")
	s.Type(t, "printf 'uname -r\\nid -un\\n' > ~/diag.sh && sh ~/diag.sh\n")
	s.Type(t, "sudo -n /usr/bin/id; echo SUDO-ID-$?\n")
	s.WaitOutput(t, "SUDO-ID-0", 10*time.Second)
	s.Type(t, "sudo -n cat /etc/shadow; echo SUDO-SHADOW-$?\n")
	s.WaitOutput(t, "SUDO-SHADOW-1", 10*time.Second)
	s.Type(t, "echo typed-abcX\x7fd\n")
	s.WaitOutput(t, "typed-abcd", 10*time.Second)
	s.Type(t, "exit\n")
	select {
	case <-s.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the session did not end after exit")
	}

	req := g.ReqAuthID
	q := func(where string) string {
		return fmt.Sprintf("SELECT count() FROM audit_events WHERE loginid = '%s' AND req_auth_id = '%s' AND %s", login, req, where)
	}
	loggedOut := eventually(30*time.Second, func() bool { return count(t, r, q("event = 'logout'")) == "1" })
	saveCapture(t, capture(), uid)
	if !loggedOut {
		t.Errorf("no logout event in 30s; the store holds %s", count(t, r, "SELECT groupArray(tuple(event, loginid, req_auth_id, res)) FROM audit_events"))
		dumpMetrics(t, r.app, "auditpipe_collector_")
		t.FailNow()
	}
	for _, c := range []struct{ what, where string }{
		{"the login", "event = 'login' AND res = 'success'"},
		{"ls /", "event = 'command' AND args[1] = 'ls' AND has(args, '/') AND euid = '" + login + "' AND cwd = '/home/" + login + "'"},
		{"the script", "event = 'command' AND args = ['sh', '/home/" + login + "/diag.sh']"},
		{"a command of the script", "event = 'command' AND args = ['uname', '-r']"},
		{"sudo id", "event = 'command' AND args = ['sudo', '-n', '/usr/bin/id']"},
		{"id as root after sudo", "event = 'command' AND args = ['/usr/bin/id'] AND euid = 'root'"},
		{"sudo cat /etc/shadow", "event = 'command' AND args = ['sudo', '-n', 'cat', '/etc/shadow']"},
		{"the keystrokes", "event = 'keys' AND position(keys, concat('typed-abcX', char(127), 'd')) > 0"},
	} {
		if got := count(t, r, q(c.where)); got == "0" {
			t.Errorf("%s: no event (%s)", c.what, c.where)
		}
	}
	if got := count(t, r, q("event = 'command' AND args = ['cat', '/etc/shadow']")); got != "0" {
		t.Errorf("the refused cat /etc/shadow ran: %s events", got)
	}
	if got := count(t, r, fmt.Sprintf("SELECT count() FROM audit_events WHERE loginid = '%s' AND req_auth_id != '%s'", login, req)); got != "0" {
		t.Errorf("%s events of the login without the grant's req_auth_id", got)
	}
	// The SIEM received the same events.
	stored := count(t, r, fmt.Sprintf("SELECT arrayStringConcat(groupArray(toString(event_id)), ',') FROM audit_events WHERE loginid = '%s'", login))
	want := strings.Split(stored, ",")
	if !eventually(30*time.Second, func() bool { return len(missingAt(rs.Messages(t), want)) == 0 }) {
		t.Errorf("rsyslog lacks %d of the %d stored events: %v", len(missingAt(rs.Messages(t), want)), len(want), missingAt(rs.Messages(t), want))
	} else {
		t.Logf("rsyslog received all %d event ids of the session", len(want))
	}
	t.Logf("events of the session:\n%s", count(t, r, fmt.Sprintf("SELECT groupArray(tuple(event, res, euid, cwd, args, keys)) FROM (SELECT * FROM audit_events WHERE loginid = '%s' ORDER BY seq)", login)))

	// The second session, left open; then the revocation.
	s2 := srv.Login(t, key, login)
	s2.Type(t, "echo OPEN-$(cat /proc/self/loginuid)\n")
	s2.WaitOutput(t, "OPEN-"+uid, 30*time.Second)
	rev, err := grants.Revocation(signer, login)
	if err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	publish(t, r.app.kafkaFor(kafka.RolePolicy), rev)
	select {
	case <-s2.Done():
		d := s2.Ended.Sub(revoked)
		t.Logf("MEASURED: the open ssh session ended %s after the revocation was published", d.Round(time.Millisecond))
		if d > 2*time.Second {
			t.Errorf("the session ended %s after the revocation, more than 2s", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the ssh session still open 10s after the revocation")
	}
	waitMetric(t, r.app.Registry(), "the grant undeployed", "auditpipe_agent_grants", 0)
	deadline := time.Now().Add(10 * time.Second)
	for exec.Command("getent", "passwd", login).Run() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the user still exists 10s after the revocation")
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitMetric(t, r.app.Registry(), "UNDEPLOYED reported", `auditpipe_agent_reports_total{state="UNDEPLOYED"}`, 1)
	r.stop(t)
}

// startLive is start with the agent among the all-in-one's modules.
func startLive(t *testing.T, cfg Config) *running {
	t.Helper()
	a, err := newApp(cfg, Deps{Log: slog.New(slog.NewTextHandler(testLog{t}, nil))}, modules(),
		map[string][]string{TargetAll: {"broker", "server", "query", "indexer", "forwarder", "collector", "agent"}})
	if err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	a.deps.Ready = func(s string) { addr <- s }
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1), app: a}
	go func() { r.done <- a.Run(ctx) }()
	select {
	case s := <-addr:
		r.url = fmt.Sprintf("http://%s/", s)
		tok, err := os.ReadFile(filepath.Join(cfg.Embedded.DataDir, auth.AdminTokenName))
		if err != nil {
			t.Fatal(err)
		}
		r.token = config.Secret(strings.TrimSpace(string(tok)))
	case err := <-r.done:
		t.Fatalf("did not start: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("did not start in 60s")
	}
	t.Cleanup(func() { r.stop(t) })
	return r
}

func publish(t *testing.T, kc kafka.Config, recs ...kafka.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := grants.Publish(ctx, kc, recs...); err != nil {
		t.Fatal(err)
	}
}

// captureAudit reads the kernel's audit records from src until the
// returned function is called, which returns them.
func captureAudit(t *testing.T, src *netlinksrc.Source) func() []string {
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu    sync.Mutex
		lines []string
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			l, err := src.Next(ctx)
			if errors.Is(err, netlinksrc.ErrOverrun) {
				continue
			}
			if err != nil {
				return
			}
			mu.Lock()
			lines = append(lines, string(l))
			mu.Unlock()
		}
	})
	var once sync.Once
	stop := func() []string {
		once.Do(func() {
			cancel()
			wg.Wait()
			src.Close()
		})
		mu.Lock()
		defer mu.Unlock()
		return lines
	}
	t.Cleanup(func() { stop() })
	return stop
}

// saveCapture keeps the records of the operator's audit uid and writes
// them where EnvLiveCapture says.
func saveCapture(t *testing.T, lines []string, uid string) {
	t.Helper()
	var events = map[string]bool{}
	for _, l := range lines {
		if strings.Contains(l, " auid="+uid+" ") || strings.Contains(l, " uid="+uid+" ") {
			if i := strings.Index(l, "msg=audit("); i >= 0 {
				if j := strings.IndexByte(l[i:], ')'); j > 0 {
					events[l[i:i+j+1]] = true
				}
			}
		}
	}
	var b strings.Builder
	n := 0
	for _, l := range lines {
		i := strings.Index(l, "msg=audit(")
		if i < 0 {
			continue
		}
		j := strings.IndexByte(l[i:], ')')
		if j > 0 && events[l[i:i+j+1]] {
			b.WriteString(l)
			b.WriteByte('\n')
			n++
		}
	}
	t.Logf("captured %d raw audit records of the operator (%d read)", n, len(lines))
	if p := os.Getenv(EnvLiveCapture); p != "" {
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func newHexLogin(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// removeUser takes the login off the host if the agent left it.
func removeUser(t *testing.T, login string) {
	if exec.Command("getent", "passwd", login).Run() == nil {
		t.Errorf("user %s left on the host", login)
		_ = exec.Command("pkill", "-KILL", "-U", login).Run()
		_ = exec.Command("userdel", "--remove", "--force", login).Run()
	}
	if err := os.Remove("/etc/sudoers.d/auditpipe-" + login); err == nil {
		t.Errorf("sudoers fragment of %s left on the host", login)
	}
	_ = exec.Command("auditctl", "-D", "-k", "auditpipe-agent-"+login).Run()
}

func runCmd(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// missingAt returns the event ids of want that no syslog message names.
func missingAt(msgs, want []string) []string {
	got := map[string]bool{}
	for _, m := range msgs {
		if i := strings.Index(m, `event_id="`); i >= 0 && len(m) >= i+42 {
			got[m[i+10:i+42]] = true
		}
	}
	var missing []string
	for _, id := range want {
		if !got[id] {
			missing = append(missing, id)
		}
	}
	return missing
}

// eventually polls cond until it holds or d passes.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

// dumpMetrics logs the series whose name starts with prefix.
func dumpMetrics(t *testing.T, a *App, prefix string) {
	mfs, err := a.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), prefix) {
			continue
		}
		for _, m := range mf.GetMetric() {
			t.Logf("%s %v %v%v", mf.GetName(), m.GetLabel(), m.GetCounter().GetValue(), m.GetGauge().GetValue())
		}
	}
}
