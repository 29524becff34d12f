package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/auditpipe/auditpipe/collector/netlinksrc"
	"github.com/auditpipe/auditpipe/forwarder"
	"github.com/auditpipe/auditpipe/internal/audittest"
	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/proctest"
	"github.com/auditpipe/auditpipe/internal/siemtest"
	"github.com/auditpipe/auditpipe/internal/sshdtest"
	"github.com/auditpipe/auditpipe/internal/testenv"
	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/policy/client"
	"github.com/auditpipe/auditpipe/schemas"
)

// EnvLiveCapture names a file the live-session test copies the raw audit
// records of its operator's first session to (the fixture under
// collector/testdata/live/ was made this way).
const EnvLiveCapture = "AUDITPIPE_LIVE_CAPTURE"

// TestLiveOperatorSession is a real operator session on this host (issue
// 11), governed by the policy service: the all-in-one (broker, store,
// indexer, forwarder, policy, collector reading the kernel's audit records
// over netlink) with the host agent live. Over the policy API the admin
// makes this host a resource's host under the control system_diag
// (INFRA_DIAG pre-approved, assigned for good) and the operator asks for
// INFRA_DIAG with their SSH key and keystroke auditing: auto-approved (the
// seed's example 1-1), the grant the policy service signs makes the agent
// create the user, and the request becomes DEPLOYED. A real sshd
// (internal/sshdtest: pam_loginuid, the agent's pam_tty_audit file) logs
// the operator in with ssh -tt through a pty; the session runs ls /, a
// script running commands, sudo of INFRA_DIAG's systemctl restart dbcs-*
// (allowed, runs as root) and sudo cat /etc/shadow (refused, audited as a
// failed command), types a line with a backspace and exits. ClickHouse
// then holds the login, the commands (args, cwd, euid, root after sudo),
// the keystrokes and the logout, all with the request's id as
// req_auth_id; rsyslog has the same event ids; `auditpipe request report`
// (the CLI, against the all-in-one) prints the process tree. A second
// session is left open and the request revoked over the API: the session
// ends within 2 s, the user is gone, the request is REVOKED and rsyslog
// has the request's lifecycle events. Root only; it takes the kernel
// audit lock and restores the audit state.
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
	// The all-in-one's tokens file as its first start makes it (the admin
	// token), plus an operator's: the operator asks for access over the
	// API with a token of their own.
	tokensFile, _, err := auth.Bootstrap(data)
	if err != nil {
		t.Fatal(err)
	}
	opToken := addToken(t, tokensFile, operatorID.Name, auth.RoleOperator)
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
	// The all-in-one's grant key, which its policy service signs with
	// (made at the first start, before the agent is built).
	cfg.Agent.GrantKeys = []string{filepath.Join(data, GrantsPublicKeyName)}
	cfg.Agent.PAMFile = pamFile
	r := startLive(t, cfg)
	ctx := context.Background()
	admin := &client.Client{BaseURL: strings.TrimSuffix(r.url, "/"), Token: r.token}
	operator := &client.Client{BaseURL: admin.BaseURL, Token: config.Secret(opToken)}

	// Every raw record of the operator's sessions, beside the collector.
	capture := captureAudit(t, probe)

	// The seed's example 1-1 over the API: this host is a resource's
	// host, under the control system_diag (INFRA_DIAG pre-approved),
	// assigned for good; the operator asks for INFRA_DIAG with their SSH
	// key and keystroke auditing, and is approved at once.
	if _, err := admin.CreateCompartment(ctx, policy.CompartmentInput{ID: "ocid1.compartment.live", Name: "live"}); err != nil {
		t.Fatal(err)
	}
	res, err := admin.CreateResource(ctx, policy.ResourceInput{ID: "ocid1.exadatainfrastructure.live", Name: host, ResourceType: policy.ResourceExadataInfra,
		CompartmentID: "ocid1.compartment.live", Hosts: []policy.Host{{Name: host, Layer: "HOST"}}})
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := admin.CreateControl(ctx, policy.ControlInput{OperatorControlName: "system_diag", CompartmentID: "ocid1.compartment.live",
		ResourceType: policy.ResourceExadataInfra, PreApprovedOpActions: []string{"INFRA_DIAG"}, ApprovalRequiredOpActions: []string{"INFRA_UPDATE_RESTART"},
		ApproverGroupsList: []string{"EXPLICIT_APPROVED_POLICY_USERS"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateAssignment(ctx, policy.AssignmentInput{OperatorControlID: ctl.ID, ResourceID: res.ID,
		AssignmentWindow: policy.AssignmentWindow{IsEnforcedAlways: true}}); err != nil {
		t.Fatal(err)
	}
	ar, err := operator.CreateRequest(ctx, policy.RequestInput{ResourceID: res.ID, ActionRequests: []string{"INFRA_DIAG"},
		Reason: "cell disk latency on " + host, Severity: policy.SeverityS2, DurationHours: 1,
		AuditType: schemas.AuditCommandKeystroke, SSHPublicKeys: []string{pub}})
	if err != nil {
		t.Fatal(err)
	}
	if ar.LifecycleState != policy.StatePreApproved || !ar.IsAutoApproved || len(ar.UserID) != 32 {
		t.Fatalf("the request: %s, auto-approved %v, login %q; want PREAPPROVED with a login", ar.LifecycleState, ar.IsAutoApproved, ar.UserID)
	}
	login, req := ar.UserID, ar.ID
	t.Cleanup(func() { removeUser(t, login) })
	waitMetric(t, r.app.Registry(), "the grant deployed", "auditpipe_agent_grants", 1)
	waitMetric(t, r.app.Registry(), "the collector has the grant", "auditpipe_collector_grants", 1)
	requestState := func() policy.RequestState {
		got, err := admin.GetRequest(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return got.LifecycleState
	}
	if !eventually(30*time.Second, func() bool { return requestState() == policy.StateDeployed }) {
		t.Fatalf("the request is %s 30s after the agent deployed its grant, want DEPLOYED", requestState())
	}
	uid := strings.TrimSpace(runCmd(t, "id", "-u", login))

	// The first session: commands, sudo allowed and refused, keystrokes.
	s := srv.Login(t, key, login)
	s.Type(t, "echo READY-$(cat /proc/self/loginuid)\n")
	s.WaitOutput(t, "READY-"+uid, 30*time.Second)
	s.Type(t, "ls /\n")
	s.Type(t, "printf 'uname -r\\nid -un\\n' > ~/diag.sh && sh ~/diag.sh\n")
	// INFRA_DIAG's sudo commands include /usr/bin/systemctl restart
	// dbcs-*: sudo runs it as root (systemctl then fails: no systemd
	// here, which does not matter to the trail). The quotes keep the
	// echo of the typed line from matching.
	s.Type(t, "sudo -n /usr/bin/systemctl restart dbcs-agent; echo SUDO-DIAG-\"DONE\"\n")
	s.WaitOutput(t, "SUDO-DIAG-DONE", 10*time.Second)
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
		{"the allowed sudo", "event = 'command' AND args = ['sudo', '-n', '/usr/bin/systemctl', 'restart', 'dbcs-agent']"},
		{"systemctl as root after sudo", "event = 'command' AND args = ['/usr/bin/systemctl', 'restart', 'dbcs-agent'] AND euid = 'root'"},
		{"sudo cat /etc/shadow", "event = 'command' AND args = ['sudo', '-n', 'cat', '/etc/shadow']"},
		{"the keystrokes", "event = 'keys' AND position(keys, concat('typed-abcX', char(127), 'd')) > 0"},
	} {
		if got := count(t, r, q(c.where)); got == "0" {
			t.Errorf("%s: no event (%s)", c.what, c.where)
		}
	}
	// The refused sudo is a failed command (sudo's USER_CMD res=failed),
	// as the user, and cat never ran.
	if got := count(t, r, q("event = 'command' AND args = ['cat', '/etc/shadow'] AND res = 'failed' AND euid = '"+login+"' AND exe = '/usr/bin/sudo'")); got != "1" {
		t.Errorf("the refused sudo cat /etc/shadow: %s failed command events, want 1", got)
	}
	if got := count(t, r, q("event = 'command' AND has(args, '/etc/shadow') AND res = 'failed'")); got != "1" {
		t.Errorf("%s failed command events name /etc/shadow, want 1 (the refusal only)", got)
	}
	if got := count(t, r, q("event = 'command' AND args = ['cat', '/etc/shadow'] AND res = 'success'")); got != "0" {
		t.Errorf("the refused cat /etc/shadow ran: %s events", got)
	}
	if got := count(t, r, q("event = 'command' AND args = ['/usr/bin/systemctl', 'restart', 'dbcs-agent'] AND res = 'failed'")); got != "0" {
		t.Errorf("the allowed sudo is audited as refused: %s events", got)
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

	// The request's audit log report, by the real CLI against the
	// all-in-one's query endpoint: the session's process tree.
	report := requestReport(t, r, req)
	t.Logf("auditpipe request report %s:\n%s", req, report)
	for _, want := range []string{
		"access request " + req + ": AVAILABLE",
		"login user " + login,
		"ls --color=auto /",
		"sh /home/" + login + "/diag.sh",
		"│  ├─ ", // the script's commands are its children
		"uname -r",
		// sudo runs its command from a forked child of its own (use_pty),
		// which never execs: the command's parent is not in the trail,
		// so the report names the user change from sudo's arguments.
		"sudo -n /usr/bin/systemctl restart dbcs-agent [sudo: " + login + " → root",
		"/usr/bin/systemctl restart dbcs-agent (/usr/bin/systemctl in /home/" + login + ", as root,",
		"sudo -n cat /etc/shadow",
		"cat /etc/shadow (/usr/bin/sudo in /home/" + login + ", as " + login + ", failed)",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("the report lacks %q", want)
		}
	}

	// The second session, left open; then the revocation over the API.
	s2 := srv.Login(t, key, login)
	s2.Type(t, "echo OPEN-$(cat /proc/self/loginuid)\n")
	s2.WaitOutput(t, "OPEN-"+uid, 30*time.Second)
	revoked := time.Now()
	if _, err := admin.Revoke(ctx, req, 0, "diagnosis done"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s2.Done():
		d := s2.Ended.Sub(revoked)
		t.Logf("MEASURED: the open ssh session ended %s after the revocation was requested over the API", d.Round(time.Millisecond))
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
	if st := requestState(); st != policy.StateRevoked {
		t.Errorf("the request is %s after the revocation, want REVOKED", st)
	}
	// The SIEM has the request's lifecycle: asked, approved, deployed by
	// the agent, revoked, undeployed by the agent.
	kinds := []string{"created", "auto_approved", "deployed", "revoked", "undeployed"}
	lifecycleMissing := func() []string {
		var missing []string
		msgs := rs.Messages(t)
		for _, k := range kinds {
			if !slices.ContainsFunc(msgs, func(m string) bool {
				return strings.Contains(m, `kind="access_request.`+k+`"`) && strings.Contains(m, `object_id="`+req+`"`)
			}) {
				missing = append(missing, k)
			}
		}
		return missing
	}
	if !eventually(30*time.Second, func() bool { return len(lifecycleMissing()) == 0 }) {
		t.Errorf("rsyslog lacks the request's lifecycle events %v", lifecycleMissing())
	} else {
		t.Logf("rsyslog received the request's lifecycle events %v", kinds)
	}
	r.stop(t)
}

// requestReport runs `auditpipe request report ID --server URL
// --token-file DATA/admin.token`, the binary built from cmd/auditpipe,
// and returns what it printed.
func requestReport(t *testing.T, r *running, id string) string {
	t.Helper()
	bin := proctest.Build(t, "github.com/auditpipe/auditpipe/cmd/auditpipe")
	var out []byte
	var err error
	// The report reads ClickHouse, where the last events may still be
	// on their way: retry until the session's logout is in it.
	eventually(30*time.Second, func() bool {
		out, err = exec.Command(bin, "request", "report", id, "--server", r.url,
			"--token-file", filepath.Join(r.app.Config.Embedded.DataDir, auth.AdminTokenName)).CombinedOutput()
		return err == nil && strings.Contains(string(out), "logout 2")
	})
	if err != nil {
		t.Fatalf("auditpipe request report: %v: %s", err, out)
	}
	return string(out)
}

// addToken adds a token for name with role to the tokens file and
// returns it.
func addToken(t *testing.T, file, name, role string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var f auth.File
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	tok, e, err := auth.NewToken(name, role)
	if err != nil {
		t.Fatal(err)
	}
	f.Tokens = append(f.Tokens, e)
	if b, err = yaml.Marshal(f); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return tok
}

// startLive is start with the agent among the all-in-one's modules (the
// host agent beside its policy service, collector and the rest).
func startLive(t *testing.T, cfg Config) *running {
	t.Helper()
	a, err := newApp(cfg, Deps{Log: slog.New(slog.NewTextHandler(testLog{t}, nil))}, modules(),
		map[string][]string{TargetAll: {"broker", "server", "query", "indexer", "forwarder", "policy", "collector", "agent"}})
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
