package agent

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// Commands are the programs the live host runs.
type Commands struct {
	// Useradd, Usermod, Userdel manage the login users. Defaults
	// /usr/sbin/useradd, /usr/sbin/usermod, /usr/sbin/userdel.
	Useradd string `yaml:"useradd"`
	Usermod string `yaml:"usermod"`
	Userdel string `yaml:"userdel"`
	// Visudo checks every sudoers fragment before it is installed (also
	// on the rendering host, when it exists). Default /usr/sbin/visudo.
	Visudo string `yaml:"visudo"`
	// Auditctl adds, lists and deletes the audit rules. Default
	// /usr/sbin/auditctl.
	Auditctl string `yaml:"auditctl"`
}

// LiveHost is the host itself: users through useradd, usermod and
// userdel, fragments in the sudoers directory checked with visudo, rules
// through auditctl, the PAM file, and sessions ended by signals. It needs
// root; the agent uses it only with the live switch on.
type LiveHost struct {
	paths   Paths
	cmd     Commands
	sudoers sudoersDir
	// runs are the agent's package runs, spared by EndSessions.
	runs *runGroups
}

// NewLiveHost returns the live host.
func NewLiveHost(paths Paths, cmd Commands) *LiveHost {
	return &LiveHost{paths: paths, cmd: cmd, sudoers: sudoersDir{dir: paths.SudoersDir, visudo: cmd.Visudo, run: runCommand}, runs: &runGroups{}}
}

// runCommand runs name with args; a failure carries the command's
// output (bounded).
func runCommand(name string, args ...string) error {
	_, err := output(name, args...)
	return err
}

func output(name string, args ...string) ([]byte, error) {
	var out bytes.Buffer
	c := exec.Command(name, args...)
	c.Stdout, c.Stderr = &out, &out
	c.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	err := c.Run()
	if err != nil {
		msg := strings.TrimSpace(out.String())
		if len(msg) > 512 {
			msg = msg[:512] + "…"
		}
		if msg != "" {
			return nil, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
		}
		return nil, fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return out.Bytes(), nil
}

// Users implements Host.
func (h *LiveHost) Users() ([]User, error) { return readPasswd(h.paths.Passwd) }

// LookupUser implements Host.
func (h *LiveHost) LookupUser(name string) (User, bool, error) {
	users, err := h.Users()
	if err != nil {
		return User{}, false, err
	}
	u, ok := lookupIn(users, name)
	return u, ok, nil
}

// AddUser implements Host: useradd with a home directory, a group of its
// own and the expiry; useradd leaves the password locked ("!").
func (h *LiveHost) AddUser(spec UserSpec) error {
	args := []string{"--create-home", "--home-dir", spec.Home, "--shell", spec.Shell, "--comment", spec.Gecos, "--user-group"}
	if !spec.Expires.IsZero() {
		args = append(args, "--expiredate", day(spec.Expires))
	}
	return runCommand(h.cmd.Useradd, append(args, "--", spec.Name)...)
}

// SetExpiry implements Host.
func (h *LiveHost) SetExpiry(name string, d time.Time) error {
	e := ""
	if !d.IsZero() {
		e = day(d)
	}
	return runCommand(h.cmd.Usermod, "--expiredate", e, "--", name)
}

// DeleteUser implements Host.
func (h *LiveHost) DeleteUser(name string) error {
	if _, ok, err := h.LookupUser(name); err != nil || !ok {
		return err
	}
	return runCommand(h.cmd.Userdel, "--remove", "--", name)
}

// WriteAuthorizedKeys implements Host.
func (h *LiveHost) WriteAuthorizedKeys(u User, keys []string) error {
	return writeKeys(u.Home, u.UID, u.GID, keys)
}

// Sudoers implements Host.
func (h *LiveHost) Sudoers(prefix string) ([]string, error) { return h.sudoers.list(prefix) }

// ReadSudoers implements Host.
func (h *LiveHost) ReadSudoers(name string) ([]byte, error) { return h.sudoers.read(name) }

// InstallSudoers implements Host.
func (h *LiveHost) InstallSudoers(name string, content []byte) error {
	return h.sudoers.install(name, content)
}

// RemoveSudoers implements Host.
func (h *LiveHost) RemoveSudoers(name string) error { return h.sudoers.remove(name) }

// AuditKeys implements Host: the keys auditctl -l lists.
func (h *LiveHost) AuditKeys() ([]string, error) {
	out, err := output(h.cmd.Auditctl, "-l")
	if err != nil {
		return nil, fmt.Errorf("audit rules: %w", err)
	}
	var keys []string
	for _, l := range strings.Split(string(out), "\n") {
		if k := ruleKey(l); k != "" && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// AddAuditRules implements Host.
func (h *LiveHost) AddAuditRules(key string, rules [][]string) error {
	for _, r := range rules {
		if err := runCommand(h.cmd.Auditctl, r...); err != nil {
			if derr := h.DeleteAuditRules(key); derr != nil {
				err = fmt.Errorf("%w (and deleting the rules added: %v)", err, derr)
			}
			return fmt.Errorf("audit rules: %w", err)
		}
	}
	return nil
}

// DeleteAuditRules implements Host.
func (h *LiveHost) DeleteAuditRules(key string) error {
	if err := runCommand(h.cmd.Auditctl, "-D", "-k", key); err != nil {
		return fmt.Errorf("audit rules: %w", err)
	}
	return nil
}

// TTYAudit implements Host.
func (h *LiveHost) TTYAudit() ([]string, error) { return pamFile(h.paths.PAMFile).users() }

// SetTTYAudit implements Host.
func (h *LiveHost) SetTTYAudit(users []string) error { return pamFile(h.paths.PAMFile).set(users) }

// EndSessions implements Host.
func (h *LiveHost) EndSessions(ctx context.Context, uid int, grace time.Duration) (int, error) {
	return endSessions(ctx, "/proc", uid, grace, h.runs.has)
}
