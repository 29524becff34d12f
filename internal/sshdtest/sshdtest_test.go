package sshdtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/audittest"
)

// TestLogin: a user with a key in ~/.ssh/authorized_keys logs in through
// the server's own PAM service (pam_loginuid sets the login's audit uid),
// a typed line with a backspace reaches the shell as the terminal edited
// it, exit ends the session; a key not authorized is refused.
func TestLogin(t *testing.T) {
	priv, pub := Key(t)
	user := "apt" + randHex(t, 6)
	tty := filepath.Join(t.TempDir(), "tty-audit")
	if err := os.WriteFile(tty, []byte("session required pam_tty_audit.so enable="+user+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := Start(t, Options{TTYAuditInclude: tty})
	// Users are global state: the agent's live tests create and delete
	// theirs under the machine-wide lock, and a useradd beside them can make
	// their rollback's userdel fail (/etc/passwd locked): a likely cause,
	// not proven, of TestLiveStepFailures finding a user left once in CI.
	audittest.Take(t)
	if out, err := exec.Command("useradd", "--create-home", "--user-group", "--shell", "/bin/bash", user).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v: %s", err, out)
	}
	t.Cleanup(func() {
		_ = exec.Command("pkill", "-KILL", "-U", user).Run()
		_ = exec.Command("userdel", "--remove", "--force", user).Run()
	})
	home := "/home/" + user
	if err := os.MkdirAll(home+"/.ssh", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(home+"/.ssh/authorized_keys", []byte(pub+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chown", "-R", user+":"+user, home+"/.ssh").CombinedOutput(); err != nil {
		t.Fatalf("chown: %v: %s", err, out)
	}
	uid := strings.TrimSpace(run(t, "id", "-u", user))

	c := s.Login(t, priv, user)
	c.Type(t, "echo LOGINUID=$(cat /proc/self/loginuid)\n")
	c.WaitOutput(t, "LOGINUID="+uid, 30*time.Second)
	c.Type(t, "echo typed-abcX\x7fd\n")
	c.WaitOutput(t, "typed-abcd", 10*time.Second)
	c.Type(t, "exit\n")
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the session did not end after exit")
	}
	if !strings.Contains(s.Log(), "Accepted publickey for "+user) {
		t.Errorf("sshd log lacks the login:\n%s", s.Log())
	}

	other, _ := Key(t)
	out, err := exec.Command(s.sshArgs(other, user)[0], append(s.sshArgs(other, user)[1:], "true")...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Permission denied") {
		t.Errorf("a key not authorized: %v: %s", err, out)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
