package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Files of the rendering host, under its root directory.
const (
	RenderPasswd     = "etc/passwd"
	RenderShadow     = "etc/shadow"
	RenderAuditRules = "audit.rules"
	RenderPlanLog    = "plan.log"
	renderFirstUID   = 60000
)

// RenderHost is the host the agent changes without the live switch: it
// renders the plan under a root directory. Users go to root/etc/passwd and
// root/etc/shadow (passwd(5) and shadow(5) lines: locked password, the
// expiry day), homes and authorized_keys under root/home, sudoers
// fragments to root/etc/sudoers.d (checked with visudo -cf when visudo is
// there), audit rules to root/audit.rules (one auditctl command line
// each), the PAM file to root/etc/pam.d; sessions it would end are
// written to root/plan.log, as is every change, one line each. Nothing
// outside root is touched and nothing needs root.
type RenderHost struct {
	root    string
	paths   Paths
	sudoers sudoersDir

	mu sync.Mutex // the files of users and rules
}

// NewRenderHost returns the rendering host for root; visudo ("" or a
// path that does not exist: none) checks the fragments.
func NewRenderHost(root string, paths Paths, visudo string) (*RenderHost, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("agent.root: %w", err)
	}
	if _, err := os.Stat(visudo); visudo != "" && err != nil {
		visudo = ""
	}
	h := &RenderHost{root: root}
	h.paths = Paths{
		Passwd:     filepath.Join(root, RenderPasswd),
		HomeDir:    filepath.Join(root, paths.HomeDir),
		SudoersDir: filepath.Join(root, paths.SudoersDir),
		PAMFile:    filepath.Join(root, paths.PAMFile),
	}
	h.sudoers = sudoersDir{dir: h.paths.SudoersDir, visudo: visudo, run: runCommand}
	return h, nil
}

// Paths are where a host keeps what the agent changes.
type Paths struct {
	Passwd     string
	HomeDir    string
	SudoersDir string
	PAMFile    string
}

func (h *RenderHost) plan(format string, args ...any) {
	line := time.Now().UTC().Format(time.RFC3339Nano) + " " + fmt.Sprintf(format, args...) + "\n"
	f, err := os.OpenFile(filepath.Join(h.root, RenderPlanLog), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = f.WriteString(line)
}

// Users implements Host.
func (h *RenderHost) Users() ([]User, error) { return readPasswd(h.paths.Passwd) }

// LookupUser implements Host.
func (h *RenderHost) LookupUser(name string) (User, bool, error) {
	users, err := h.Users()
	if err != nil {
		return User{}, false, err
	}
	u, ok := lookupIn(users, name)
	return u, ok, nil
}

// AddUser implements Host: a passwd and a shadow line, the home directory.
// An existing name fails as useradd does.
func (h *RenderHost) AddUser(spec UserSpec) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	users, err := h.Users()
	if err != nil {
		return err
	}
	if _, ok := lookupIn(users, spec.Name); ok {
		return fmt.Errorf("useradd: user '%s' already exists", spec.Name)
	}
	uid := renderFirstUID
	for _, u := range users {
		if u.UID >= uid {
			uid = u.UID + 1
		}
	}
	if err := os.MkdirAll(filepath.Dir(h.paths.Passwd), 0o755); err != nil {
		return fmt.Errorf("useradd: %w", err)
	}
	if err := appendLine(h.paths.Passwd, fmt.Sprintf("%s:x:%d:%d:%s:%s:%s", spec.Name, uid, uid, spec.Gecos, spec.Home, spec.Shell)); err != nil {
		return fmt.Errorf("useradd: %w", err)
	}
	if err := appendLine(h.shadow(), shadowLine(spec.Name, spec.Expires)); err != nil {
		return fmt.Errorf("useradd: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(h.root, spec.Home), 0o755); err != nil {
		return fmt.Errorf("useradd: %w", err)
	}
	h.plan("useradd name=%s uid=%d home=%s shell=%s expiredate=%s password=locked", spec.Name, uid, spec.Home, spec.Shell, day(spec.Expires))
	return nil
}

func (h *RenderHost) shadow() string { return filepath.Join(h.root, RenderShadow) }

func shadowLine(name string, exp time.Time) string {
	e := ""
	if !exp.IsZero() {
		e = fmt.Sprint(exp.Unix() / 86400)
	}
	return fmt.Sprintf("%s:!:%d:0:99999:7::%s:", name, time.Now().Unix()/86400, e)
}

func day(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.DateOnly)
}

// SetExpiry implements Host.
func (h *RenderHost) SetExpiry(name string, d time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := editLines(h.shadow(), name, shadowLine(name, d)); err != nil {
		return fmt.Errorf("usermod: %w", err)
	}
	h.plan("usermod name=%s expiredate=%s", name, day(d))
	return nil
}

// DeleteUser implements Host.
func (h *RenderHost) DeleteUser(name string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	u, ok, err := h.LookupUser(name)
	if err != nil || !ok {
		return err
	}
	if err := editLines(h.paths.Passwd, name, ""); err != nil {
		return fmt.Errorf("userdel: %w", err)
	}
	if err := editLines(h.shadow(), name, ""); err != nil {
		return fmt.Errorf("userdel: %w", err)
	}
	if err := os.RemoveAll(filepath.Join(h.root, u.Home)); err != nil {
		return fmt.Errorf("userdel: %w", err)
	}
	h.plan("userdel --remove name=%s", name)
	return nil
}

// WriteAuthorizedKeys implements Host.
func (h *RenderHost) WriteAuthorizedKeys(u User, keys []string) error {
	if err := writeKeys(filepath.Join(h.root, u.Home), -1, -1, keys); err != nil {
		return err
	}
	h.plan("authorized_keys user=%s keys=%d owner=%d:%d mode=0600", u.Name, len(keys), u.UID, u.GID)
	return nil
}

// Sudoers implements Host.
func (h *RenderHost) Sudoers(prefix string) ([]string, error) { return h.sudoers.list(prefix) }

// ReadSudoers implements Host.
func (h *RenderHost) ReadSudoers(name string) ([]byte, error) { return h.sudoers.read(name) }

// InstallSudoers implements Host.
func (h *RenderHost) InstallSudoers(name string, content []byte) error {
	if err := h.sudoers.install(name, content); err != nil {
		return err
	}
	checked := "checked with " + h.sudoers.visudo
	if h.sudoers.visudo == "" {
		checked = "not checked (no visudo)"
	}
	h.plan("sudoers install %s (%s)", name, checked)
	return nil
}

// RemoveSudoers implements Host.
func (h *RenderHost) RemoveSudoers(name string) error {
	if err := h.sudoers.remove(name); err != nil {
		return err
	}
	h.plan("sudoers remove %s", name)
	return nil
}

func (h *RenderHost) rulesFile() string { return filepath.Join(h.root, RenderAuditRules) }

func (h *RenderHost) rules() ([]string, error) {
	b, err := os.ReadFile(h.rulesFile())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit rules: %w", err)
	}
	return strings.FieldsFunc(string(b), func(r rune) bool { return r == '\n' }), nil
}

// AuditKeys implements Host.
func (h *RenderHost) AuditKeys() ([]string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	lines, err := h.rules()
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, l := range lines {
		if k := ruleKey(l); k != "" && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// AddAuditRules implements Host.
func (h *RenderHost) AddAuditRules(key string, rules [][]string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	lines, err := h.rules()
	if err != nil {
		return err
	}
	for _, r := range rules {
		lines = append(lines, "auditctl "+strings.Join(r, " "))
	}
	if err := writeAtomic(h.rulesFile(), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return fmt.Errorf("audit rules: %w", err)
	}
	h.plan("audit rules add key=%s rules=%d", key, len(rules))
	return nil
}

// DeleteAuditRules implements Host.
func (h *RenderHost) DeleteAuditRules(key string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	lines, err := h.rules()
	if err != nil {
		return err
	}
	kept := slices.DeleteFunc(lines, func(l string) bool { return ruleKey(l) == key })
	data := strings.Join(kept, "\n")
	if len(kept) > 0 {
		data += "\n"
	}
	if err := writeAtomic(h.rulesFile(), []byte(data), 0o644); err != nil {
		return fmt.Errorf("audit rules: %w", err)
	}
	h.plan("audit rules delete key=%s", key)
	return nil
}

// ruleKey is the key of one rule line, as auditctl -l prints it
// (-F key=K) or as it was added (-k K).
func ruleKey(line string) string {
	f := strings.Fields(line)
	for i, w := range f {
		if v, ok := strings.CutPrefix(w, "key="); ok {
			return v
		}
		if w == "-k" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

// TTYAudit implements Host.
func (h *RenderHost) TTYAudit() ([]string, error) { return pamFile(h.paths.PAMFile).users() }

// SetTTYAudit implements Host.
func (h *RenderHost) SetTTYAudit(users []string) error {
	if err := pamFile(h.paths.PAMFile).set(users); err != nil {
		return err
	}
	h.plan("pam_tty_audit enable=%s", strings.Join(users, ","))
	return nil
}

// EndSessions implements Host: the plan says which sessions would end.
func (h *RenderHost) EndSessions(_ context.Context, uid int, grace time.Duration) (int, error) {
	h.plan("end sessions loginuid=%d (SIGHUP, SIGTERM, SIGKILL after %s)", uid, grace)
	return 0, nil
}

func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(line + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// editLines replaces the line of name (its first field) by repl, or
// deletes it when repl is "".
func editLines(path, name, repl string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l == "" {
			continue
		}
		if strings.HasPrefix(l, name+":") {
			if repl != "" {
				out = append(out, repl)
			}
			continue
		}
		out = append(out, l)
	}
	data := strings.Join(out, "\n")
	if len(out) > 0 {
		data += "\n"
	}
	return writeAtomic(path, []byte(data), 0o644)
}
