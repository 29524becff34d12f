package agent

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/auditpipe/auditpipe/schemas"
)

// The names the agent gives what it creates, so that it finds them again
// (reconcile) and touches nothing else.
const (
	// markerPrefix starts the GECOS field of every user the agent
	// created; the access request follows it.
	markerPrefix = "auditpipe-agent"
	// sudoersPrefix starts the name of every sudoers fragment it installs
	// (sudo reads files of /etc/sudoers.d without a dot in their name).
	sudoersPrefix = "auditpipe-"
	// auditKeyPrefix starts the key of every audit rule it adds.
	auditKeyPrefix = "auditpipe-agent-"
)

// loginRe is the only form of login the agent manages: the policy
// service's 32 hex digits. A grant for any other name (root, an existing
// account) is refused before anything is changed.
var loginRe = regexp.MustCompile(`^[0-9a-f]{32}$`)

func validLogin(login string) bool { return loginRe.MatchString(login) }

// marker is the GECOS field of login's user: the marker and the access
// request, reduced to characters GECOS may hold.
func marker(reqAuthID string) string {
	clean := strings.Map(func(r rune) rune {
		if r < 0x80 && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '.' || r == '-' || r == '_') {
			return r
		}
		return '_'
	}, reqAuthID)
	return markerPrefix + " " + clean
}

// managed reports whether u is a user the agent created.
func managed(u User) bool {
	return validLogin(u.Name) && (u.Gecos == markerPrefix || strings.HasPrefix(u.Gecos, markerPrefix+" "))
}

// reqFromMarker returns the access request a managed user's GECOS names.
func reqFromMarker(gecos string) string {
	return strings.TrimPrefix(strings.TrimPrefix(gecos, markerPrefix), " ")
}

func sudoersName(login string) string { return sudoersPrefix + login }
func auditKey(login string) string    { return auditKeyPrefix + login }

// expiryDay is the account expiry for a grant that ends at exp: the day
// after exp (UTC), since an account expires at the start of its day and
// the agent itself removes the user at exp. Zero when exp is zero.
func expiryDay(exp time.Time) time.Time {
	if exp.IsZero() {
		return time.Time{}
	}
	d := exp.UTC().Truncate(24 * time.Hour)
	return d.Add(24 * time.Hour)
}

// auditRules are the rules on uid's commands: execve and execveat, both
// arches, tagged with key.
func auditRules(uid int, key string) [][]string {
	var rules [][]string
	for _, arch := range []string{"b64", "b32"} {
		rules = append(rules, []string{"-a", "always,exit", "-F", "arch=" + arch, "-S", "execve,execveat", "-F", fmt.Sprintf("auid=%d", uid), "-k", key})
	}
	return rules
}

// sudoTime is sudoers' NOTBEFORE/NOTAFTER form.
func sudoTime(t time.Time) string { return t.UTC().Format("20060102150405Z") }

// renderSudoers returns g's sudoers fragment, nil when its privileges
// grant nothing through sudo. The fragment holds nothing beyond the
// privileges: sudo_all or the sudo commands (denied commands negated
// after them), su to root and su to the listed users (as root, through
// su_path), all without a password (the user has none), valid only from
// the grant's start to its expiry (sudo's NOTBEFORE/NOTAFTER, a second
// line of defence). The commands are NOEXEC (they cannot start another
// program, so none becomes a shell the privileges do not grant), su
// EXEC. Commands are passed to sudo as written, special
// characters escaped; visudo -cf judges them before the fragment is
// installed. A word sudo would read as more than a command (ALL, a
// regular expression, a digest, list) and control characters are refused
// here.
func renderSudoers(g schemas.Grant, suPath string) ([]byte, error) {
	p := g.Privileges
	if p == nil {
		return nil, nil
	}
	// The commands run as root NOEXEC: a command the privileges allow
	// cannot start another program (a pager's or editor's !sh, find
	// -exec, ip netns exec), so it cannot become a root shell the catalog
	// did not grant. su is the one command whose purpose is to start a
	// shell (of a user the privileges name): it keeps EXEC.
	var cmds, su []string
	if p.SudoAll {
		cmds = append(cmds, "ALL")
	} else {
		for i, c := range p.SudoCommands {
			s, err := sudoCommand(c)
			if err != nil {
				return nil, fmt.Errorf("privileges.sudo_commands[%d]: %w", i, err)
			}
			cmds = append(cmds, s)
		}
	}
	if p.SuRoot && !p.SudoAll {
		for _, args := range []string{`""`, "-", "- root", "root", "-l", "-l root"} {
			su = append(su, sudoEscape(suPath)+" "+args)
		}
	}
	if !p.SudoAll {
		for _, u := range p.SuUsers {
			if !validUserName(u) {
				return nil, fmt.Errorf("privileges.su_users: %q is not a user name", u)
			}
			su = append(su, sudoEscape(suPath)+" - "+u, sudoEscape(suPath)+" "+u)
		}
	}
	if len(cmds) == 0 && len(su) == 0 {
		return nil, nil
	}
	if len(cmds) > 0 && !p.SudoAll {
		cmds[0] = "NOEXEC: " + cmds[0]
	}
	if len(su) > 0 {
		su[0] = "EXEC: " + su[0]
		cmds = append(cmds, su...)
	}
	if !p.SudoAll {
		for i, c := range p.DeniedCommands {
			if !strings.HasPrefix(c, "/") {
				continue // a command of the user's own shell, not of sudo
			}
			s, err := sudoCommand(c)
			if err != nil {
				return nil, fmt.Errorf("privileges.denied_commands[%d]: %w", i, err)
			}
			cmds = append(cmds, "!"+s)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# auditpipe host agent: grant %s of access request %s, actions %s.\n", g.LoginID, oneLine(g.ReqAuthID), oneLine(strings.Join(g.Actions, ",")))
	fmt.Fprintf(&b, "# Written and removed by the agent; do not edit. Privileges not enforced by sudo: chroot=%t all_commands=%t commands=%s\n",
		p.Chroot, p.AllCommands, oneLine(strings.Join(p.Commands, ",")))
	opts := ""
	if !g.Start.IsZero() {
		opts += " NOTBEFORE=" + sudoTime(g.Start)
	}
	if !g.Expires.IsZero() {
		opts += " NOTAFTER=" + sudoTime(g.Expires)
	}
	fmt.Fprintf(&b, "%s ALL=(root)%s NOPASSWD: %s\n", g.LoginID, opts, strings.Join(cmds, ", "))
	return []byte(b.String()), nil
}

// sudoCommand is one command of a sudoers rule: the path and its
// arguments escaped; refused when sudo would read it as more than one
// command.
func sudoCommand(c string) (string, error) {
	if strings.ContainsFunc(c, unicode.IsControl) {
		return "", fmt.Errorf("%q holds a control character", c)
	}
	c = strings.TrimSpace(c)
	first, _, _ := strings.Cut(c, " ")
	switch {
	case first == "ALL" || first == "list" || strings.HasPrefix(first, "^") || strings.HasPrefix(first, "!"):
		return "", fmt.Errorf("%q: %q is a sudoers keyword, a pattern or a negation, not a command", c, first)
	case slices.ContainsFunc([]string{"sha224:", "sha256:", "sha384:", "sha512:"}, func(p string) bool { return strings.HasPrefix(first, p) }):
		return "", fmt.Errorf("%q: a digest is not a command", c)
	}
	return sudoEscape(c), nil
}

// sudoEscape escapes the characters sudoers gives a meaning in a
// command.
func sudoEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `,`, `\,`, `:`, `\:`, `=`, `\=`, `#`, `\#`)
	return r.Replace(s)
}

var userNameRe = regexp.MustCompile(`^[a-z_][a-z0-9_-]*$`)

func validUserName(s string) bool { return len(s) <= 32 && userNameRe.MatchString(s) }

// oneLine keeps a value on its comment line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// ttyPAM is the agent's PAM file for users (pam_tty_audit's enable=).
func ttyPAM(users []string) []byte {
	var b strings.Builder
	b.WriteString("# auditpipe host agent: keystroke (TTY) auditing for the login users of\n")
	b.WriteString("# COMMAND_KEYSTROKE_AUDIT grants. Written by the agent; do not edit.\n")
	b.WriteString("# Include it in the session stack of sshd (and login): @include auditpipe-tty-audit\n")
	if len(users) > 0 {
		fmt.Fprintf(&b, "session required pam_tty_audit.so enable=%s\n", strings.Join(users, ","))
	}
	return []byte(b.String())
}

// parseTTYPAM returns the users a PAM file written by ttyPAM enables.
func parseTTYPAM(b []byte) []string {
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "session" || !strings.HasSuffix(f[2], "pam_tty_audit.so") {
			continue
		}
		for _, arg := range f[3:] {
			if v, ok := strings.CutPrefix(arg, "enable="); ok && v != "" {
				return strings.Split(v, ",")
			}
		}
	}
	return nil
}

// liveAt reports whether g is in force at now: started, not expired.
func liveAt(g schemas.Grant, now time.Time) bool {
	if !g.Start.IsZero() && now.Before(g.Start) {
		return false
	}
	return g.Expires.IsZero() || now.Before(g.Expires)
}
