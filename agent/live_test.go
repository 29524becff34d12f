package agent

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/audittest"
	"github.com/auditpipe/auditpipe/internal/testenv"
	"github.com/auditpipe/auditpipe/schemas"
)

// liveHarness is a harness with the live switch on: root, the kernel's
// audit state taken (audittest: the machine-wide lock, the rules checked
// to be restored), and every login the test names removed from the host
// when it ends, whatever the agent did.
func liveHarness(t *testing.T, logins ...string) *harness {
	t.Helper()
	testenv.RequireRoot(t, "the live host creates users, installs sudoers fragments and audit rules")
	kernel := audittest.Take(t)
	for _, tool := range []string{"/usr/sbin/visudo", "/usr/bin/sudo", "/usr/sbin/auditctl"} {
		if _, err := os.Stat(tool); err != nil {
			testenv.SkipOrFail(t, testenv.HostTools, "%s missing (scripts/deps.d/50-host-agent.sh installs sudo and auditd)", tool)
		}
	}
	h := newHarness(t)
	h.kernel = kernel
	h.cfg.Live = true
	h.cfg.PAMFile = filepath.Join(t.TempDir(), "auditpipe-tty-audit") // not read by any service here
	t.Cleanup(func() {
		for _, l := range logins {
			if _, err := exec.Command("getent", "passwd", l).Output(); err == nil {
				t.Errorf("user %s left on the host", l)
				_ = exec.Command("pkill", "-KILL", "-U", l).Run()
				_ = exec.Command("userdel", "--remove", "--force", l).Run()
			}
			if err := os.Remove(filepath.Join("/etc/sudoers.d", sudoersName(l))); err == nil {
				t.Errorf("sudoers fragment of %s left on the host", l)
			}
			_ = exec.Command("auditctl", "-D", "-k", auditKey(l)).Run()
		}
	})
	return h
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// sessionProc starts, as root, a process whose loginuid is uid (written
// to /proc/self/loginuid before exec, as pam_loginuid does at login) and
// that runs as runAs: the operator's shell, or what su/sudo made of it.
// With stubborn it ignores SIGHUP and SIGTERM: only SIGKILL ends it.
func sessionProc(t *testing.T, uid, runAs int, stubborn bool) (*exec.Cmd, chan time.Time) {
	t.Helper()
	trap := ""
	if stubborn {
		trap = "trap '' HUP TERM; "
	}
	script := fmt.Sprintf("echo %d > /proc/self/loginuid && exec setpriv --reuid=%d --regid=%d --clear-groups sh -c \"%ssleep 600; :\"", uid, runAs, runAs, trap)
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ended := make(chan time.Time, 1)
	go func() {
		_ = cmd.Wait()
		ended <- time.Now()
	}()
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	// Running once its loginuid is set and its uid changed.
	deadline := time.Now().Add(10 * time.Second)
	for !ofSession("/proc", cmd.Process.Pid, uid) || !ranAs(cmd.Process.Pid, runAs) {
		if time.Now().After(deadline) {
			t.Fatalf("session process %d never ran with loginuid %d as %d", cmd.Process.Pid, uid, runAs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cmd, ended
}

func ranAs(pid, uid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	return err == nil && strings.Contains(string(b), fmt.Sprintf("\nUid:\t%d\t", uid))
}

// TestLiveDeployRevoke: with the live switch a grant creates a real
// user (locked password, expiry, home, key), a sudoers fragment that
// sudo -l shows as the privileges say, and audit rules auditctl -l
// lists; on revocation the user's session processes — one running as
// the user, one su'd to another user, one that ignores SIGTERM — end
// within 2 s of the revocation being published, and the user, its home,
// fragment and rules are gone.
func TestLiveDeployRevoke(t *testing.T) {
	login := newLogin(t)
	h := liveHarness(t, login)
	g := diagGrant(login)
	h.start(nil)
	h.grant(g)
	h.waitReport(login, schemas.AgentDeployed)

	pw := strings.Split(strings.TrimSpace(run(t, "getent", "passwd", login)), ":")
	if len(pw) != 7 || pw[4] != marker(g.ReqAuthID) || pw[5] != "/home/"+login || pw[6] != "/bin/bash" {
		t.Fatalf("passwd entry %q", pw)
	}
	uid, _ := strconv.Atoi(pw[2])
	if st := strings.Fields(run(t, "passwd", "-S", login)); st[1] != "L" {
		t.Errorf("password not locked: %v", st)
	}
	if ch := run(t, "chage", "-l", login); !strings.Contains(strings.Join(strings.Fields(ch), " "), "Account expires : "+expiryDay(g.Expires).Format("Jan 02, 2006")) {
		t.Errorf("account expiry:\n%s", ch)
	}
	keys := "/home/" + login + "/.ssh/authorized_keys"
	if fi, err := os.Stat(keys); err != nil || fi.Mode().Perm() != 0o600 || fi.Sys().(*syscall.Stat_t).Uid != uint32(uid) {
		t.Errorf("authorized_keys: %v %v", fi, err)
	} else if b, _ := os.ReadFile(keys); string(b) != g.SSHAuthorizedKeys[0]+"\n" {
		t.Errorf("authorized_keys holds %q", b)
	}
	sudo := run(t, "sudo", "-l", "-U", login)
	for _, want := range []string{
		"(root) NOTBEFORE=" + sudoTime(g.Start) + " NOTAFTER=" + sudoTime(g.Expires) + " NOEXEC: NOPASSWD: /usr/bin/systemctl restart dbcs-*, /usr/bin/id, EXEC: /usr/bin/su - daemon, /usr/bin/su daemon, !/usr/sbin/auditctl",
	} {
		if !strings.Contains(strings.Join(strings.Fields(sudo), " "), want) {
			t.Errorf("sudo -l -U %s lacks %q:\n%s", login, want, sudo)
		}
	}
	if strings.Count(sudo, "NOPASSWD") != 1 {
		t.Errorf("sudo -l shows more than the grant's rule:\n%s", sudo)
	}
	rules := run(t, "auditctl", "-l")
	for _, arch := range []string{"b64", "b32"} {
		want := fmt.Sprintf("-a always,exit -F arch=%s -S execve,execveat -F auid=%d -F key=%s", arch, uid, auditKey(login))
		if !strings.Contains(rules, want) {
			t.Errorf("auditctl -l lacks %q:\n%s", want, rules)
		}
	}
	if b, _ := os.ReadFile(h.cfg.PAMFile); !strings.Contains(string(b), "enable="+login) {
		t.Errorf("pam file:\n%s", b)
	}

	// Sessions: the shell, a su to nobody (loginuid kept), a stubborn one.
	_, shell := sessionProc(t, uid, uid, false)
	_, su := sessionProc(t, uid, 65534, false)
	_, stubborn := sessionProc(t, uid, uid, true)
	revoked := h.revoke(login)
	var last time.Duration
	for name, ended := range map[string]chan time.Time{"shell": shell, "su child": su, "stubborn": stubborn} {
		select {
		case at := <-ended:
			d := at.Sub(revoked)
			t.Logf("%s ended %s after the revocation was published", name, d.Round(time.Millisecond))
			last = max(last, d)
		case <-time.After(10 * time.Second):
			t.Fatalf("%s still running 10s after the revocation", name)
		}
	}
	rep := h.waitReport(login, schemas.AgentUndeployed)
	done := rep.Time.Sub(revoked)
	t.Logf("MEASURED: every session process ended %s, UNDEPLOYED (user deleted) %s after the revocation was published", last.Round(time.Millisecond), done.Round(time.Millisecond))
	if last > 2*time.Second {
		t.Errorf("sessions ended %s after the revocation, more than 2s", last)
	}
	if _, err := exec.Command("getent", "passwd", login).Output(); err == nil {
		t.Error("user still exists")
	}
	for _, p := range []string{"/home/" + login, "/etc/sudoers.d/" + sudoersName(login)} {
		if exists(p) {
			t.Errorf("%s still exists", p)
		}
	}
	if rules := run(t, "auditctl", "-l"); strings.Contains(rules, login) {
		t.Errorf("rules left:\n%s", rules)
	}
}

// TestLiveStepFailures: on the live host each failing step is reported
// DEPLOYFAILED with its reason and leaves nothing of the grant behind: a
// login that a user the agent did not create already has (useradd would
// fail; that user is left as it was), a fragment visudo -cf refuses (a
// relative command path), auditctl unavailable.
func TestLiveStepFailures(t *testing.T) {
	taken, badSudo, noAuditctl := newLogin(t), newLogin(t), newLogin(t)
	h := liveHarness(t, taken, badSudo, noAuditctl)
	run(t, "useradd", "--comment", "a person", "--no-create-home", taken)
	t.Cleanup(func() { _ = exec.Command("userdel", taken).Run() })
	before := run(t, "getent", "passwd", taken)
	stop := h.start(nil)
	h.grant(diagGrant(taken))
	r := h.waitReport(taken, schemas.AgentDeployFailed)
	if r.Step != StepUser || !strings.Contains(r.Reason, "not created by the agent") {
		t.Errorf("report %+v", r)
	}
	if got := run(t, "getent", "passwd", taken); got != before {
		t.Errorf("the existing user changed: %s, was %s", got, before)
	}
	if exists("/etc/sudoers.d/" + sudoersName(taken)) {
		t.Error("a fragment for the taken login")
	}
	if err := exec.Command("userdel", taken).Run(); err != nil {
		t.Fatal(err)
	}

	g := diagGrant(badSudo)
	g.Privileges.SudoCommands = append(g.Privileges.SudoCommands, "reboot")
	h.grant(g)
	r = h.waitReport(badSudo, schemas.AgentDeployFailed)
	if r.Step != StepSudoers || !strings.Contains(r.Reason, "expected a fully-qualified path name") {
		t.Errorf("report %+v", r)
	}
	stop()

	h.cfg.Commands.Auditctl = "/nonexistent/auditctl"
	h.start(nil)
	h.grant(diagGrant(noAuditctl))
	r = h.waitReport(noAuditctl, schemas.AgentDeployFailed)
	if r.Step != StepAuditRules || !strings.Contains(r.Reason, "/nonexistent/auditctl") {
		t.Errorf("report %+v", r)
	}
	// The second agent applies every grant of the topic again, in the
	// order of their logins: badSudo's second failure may come after
	// noAuditctl's, its user and temporary fragment still there until its
	// rollback (CI once checked in between).
	h.waitReports(badSudo, schemas.AgentDeployFailed, 2)
	for _, l := range []string{badSudo, noAuditctl} {
		if _, err := exec.Command("getent", "passwd", l).Output(); err == nil {
			t.Errorf("user %s left after its failed deployment", l)
		}
		for _, p := range []string{"/home/" + l, "/etc/sudoers.d/" + sudoersName(l)} {
			if exists(p) {
				t.Errorf("%s left after the failed deployment", p)
			}
		}
	}
	if rules := run(t, "auditctl", "-l"); strings.Contains(rules, badSudo) || strings.Contains(rules, noAuditctl) {
		t.Errorf("rules left:\n%s", rules)
	}
	if ents, _ := filepath.Glob("/etc/sudoers.d/.auditpipe-*"); len(ents) > 0 {
		t.Errorf("temporary fragments left: %v", ents)
	}
}

// TestLiveSudoEscapes is the attack on the sudoers fragment, with real
// sudo run as the grant's user (issue 11, regression): privileges that
// grant root commands but no su to root and no shell must not give a
// root shell. The plain ways (sudo -s, -i, su, sh -c, another runas
// user, a command line environment) are refused by the rule itself; the
// way through an allowed command that starts another program (find
// -exec here, as a pager's or editor's !sh would) was open until the
// commands were made NOEXEC: the allowed command still runs as root, the
// program it starts does not run. sudo -l -U shows the tags.
func TestLiveSudoEscapes(t *testing.T) {
	login := newLogin(t)
	h := liveHarness(t, login)
	g := diagGrant(login)
	g.Privileges.SudoCommands = []string{"/usr/bin/id", "/usr/bin/find /var/log -name *"}
	h.start(nil)
	h.grant(g)
	h.waitReport(login, schemas.AgentDeployed)
	defer func() {
		h.revoke(login)
		h.waitReport(login, schemas.AgentUndeployed)
	}()

	listed := strings.Join(strings.Fields(run(t, "sudo", "-l", "-U", login)), " ")
	if want := "NOEXEC: NOPASSWD: /usr/bin/id, /usr/bin/find /var/log -name *, EXEC: /usr/bin/su - daemon, /usr/bin/su daemon, !/usr/sbin/auditctl"; !strings.Contains(listed, want) {
		t.Errorf("sudo -l -U %s lacks %q:\n%s", login, want, listed)
	}
	// as runs sh -c script as the grant's user (a login environment's
	// PATH), and returns its output and whether it succeeded.
	as := func(script string) (string, bool) {
		cmd := exec.Command("runuser", "-u", login, "--", "/bin/sh", "-c", script)
		cmd.Dir = "/"
		cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/home/" + login, "SHELL=/bin/bash"}
		out, err := cmd.CombinedOutput()
		return string(out), err == nil
	}
	// What the grant allows runs as root.
	if out, ok := as("sudo -n /usr/bin/id -u"); !ok || strings.TrimSpace(out) != "0" {
		t.Fatalf("the allowed sudo /usr/bin/id -u: %v %q", ok, out)
	}
	if out, ok := as("sudo -n /usr/bin/find /var/log -name log -maxdepth 0"); !ok || strings.TrimSpace(out) != "/var/log" {
		t.Errorf("the allowed find: %v %q", ok, out)
	}
	marker := filepath.Join(t.TempDir(), "escaped")
	if err := os.Chmod(filepath.Dir(marker), 0o777); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, script string }{
		{"a root shell", "sudo -n -s id -u"},
		{"a root login shell", "sudo -n -i id -u"},
		{"su to root", "sudo -n /usr/bin/su -c 'id -u'"},
		{"su - to root", "sudo -n /usr/bin/su - root -c 'id -u'"},
		{"su to an allowed user with a command", "sudo -n /usr/bin/su - daemon -s /bin/sh -c 'id -u'"},
		{"sh -c", "sudo -n /bin/sh -c 'id -u'"},
		{"bash by its path", "sudo -n /usr/bin/bash -c 'id -u'"},
		{"another runas user", "sudo -n -u daemon /usr/bin/id -u"},
		{"a chroot", "sudo -n -R / /usr/bin/id -u"},
		{"LD_PRELOAD on the command line", "sudo -n LD_PRELOAD=/tmp/x.so /usr/bin/id -u"},
		{"the caller's environment", "sudo -n -E /usr/bin/id -u"},
		{"sudoedit", "sudoedit -n /etc/shadow"},
		{"the denied command", "sudo -n /usr/sbin/auditctl -l"},
		// The way through an allowed command: its * matches spaces, so
		// the rule allows -exec; NOEXEC keeps find from starting it.
		{"find -exec a shell", "sudo -n /usr/bin/find /var/log -name log -maxdepth 0 -exec /bin/sh -c 'id -u > " + marker + "' ';'"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, _ := as(tt.script)
			if strings.Contains("\n"+out, "\n0\n") {
				t.Errorf("%s ran as root: %q", tt.script, out)
			}
			if b, err := os.ReadFile(marker); err == nil {
				t.Errorf("%s ran a program as %s", tt.script, strings.TrimSpace(string(b)))
				os.Remove(marker)
			}
			t.Logf("%s: %s", tt.script, strings.TrimSpace(out))
		})
	}
}
