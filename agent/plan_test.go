package agent

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/schemas"
)

// TestRenderSudoers: each privilege set becomes the rule it allows and
// nothing more, and every rendered fragment passes visudo -cf.
func TestRenderSudoers(t *testing.T) {
	visudo := requireVisudo(t)
	start := time.Date(2026, 3, 2, 9, 15, 0, 0, time.UTC)
	base := schemas.Grant{LoginID: "830916abb78e4157b9e45b641e34fcf6", ReqAuthID: "ocid1.req.1", Actions: []string{"X"}, Start: start, Expires: start.Add(4 * time.Hour)}
	const head = "830916abb78e4157b9e45b641e34fcf6 ALL=(root) NOTBEFORE=20260302091500Z NOTAFTER=20260302131500Z NOPASSWD: "
	tests := []struct {
		name string
		p    *schemas.Privileges
		want string // the rule line; "" when no fragment
	}{
		{"no privileges", nil, ""},
		{"commands as itself only", &schemas.Privileges{Layers: []string{"HOST"}, Commands: []string{"ls"}, AllCommands: false}, ""},
		{"sudo commands, denied negated after", &schemas.Privileges{Layers: []string{"HOST"}, SudoCommands: []string{"/usr/bin/systemctl restart dbcs-*", "/usr/sbin/exachk"}, DeniedCommands: []string{"/usr/sbin/auditctl", "rm"}},
			head + `NOEXEC: /usr/bin/systemctl restart dbcs-*, /usr/sbin/exachk, !/usr/sbin/auditctl`},
		{"sudo commands NOEXEC, su EXEC", &schemas.Privileges{Layers: []string{"HOST"}, SudoCommands: []string{"/usr/bin/id"}, SuUsers: []string{"celladmin"}, DeniedCommands: []string{"/usr/sbin/auditctl"}},
			head + `NOEXEC: /usr/bin/id, EXEC: /usr/bin/su - celladmin, /usr/bin/su celladmin, !/usr/sbin/auditctl`},
		{"su users", &schemas.Privileges{Layers: []string{"HOST"}, SuUsers: []string{"celladmin"}},
			head + `EXEC: /usr/bin/su - celladmin, /usr/bin/su celladmin`},
		{"su root", &schemas.Privileges{Layers: []string{"HOST"}, SuRoot: true},
			head + `EXEC: /usr/bin/su "", /usr/bin/su -, /usr/bin/su - root, /usr/bin/su root, /usr/bin/su -l, /usr/bin/su -l root`},
		{"sudo all", &schemas.Privileges{Layers: []string{"HOST"}, SudoAll: true, SuRoot: true, SuUsers: []string{"oracle"}}, head + `ALL`},
		{"special characters escaped", &schemas.Privileges{Layers: []string{"HOST"}, SudoCommands: []string{`/usr/bin/printf a,b:c=d\e#1`}},
			head + `NOEXEC: /usr/bin/printf a\,b\:c\=d\\e\#1`},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := base
			g.Privileges = tt.p
			b, err := renderSudoers(g, "/usr/bin/su")
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				if b != nil {
					t.Fatalf("a fragment:\n%s", b)
				}
				return
			}
			lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			if last := lines[len(lines)-1]; last != tt.want {
				t.Errorf("rule\n got %s\nwant %s", last, tt.want)
			}
			for _, l := range lines[:len(lines)-1] {
				if !strings.HasPrefix(l, "#") {
					t.Errorf("a line beside the rule that is not a comment: %q", l)
				}
			}
			path := filepath.Join(dir, "f")
			if err := os.WriteFile(path, b, 0o440); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(visudo, "-c", "-f", path).CombinedOutput(); err != nil {
				t.Errorf("visudo -cf: %v: %s\n%s", err, out, b)
			}
		})
	}
}

// TestRenderSudoersRefuses: what sudo would read as more than a command,
// and control characters (a second rule smuggled on a new line), are
// refused before visudo sees them.
func TestRenderSudoersRefuses(t *testing.T) {
	for _, c := range []string{"ALL", "list", "^/usr/bin/.*$", "!/bin/sh", "sha256:abcd /bin/ls", "/bin/ls\nALL ALL=(ALL) ALL", "/bin/ls\x00"} {
		g := schemas.Grant{LoginID: "830916abb78e4157b9e45b641e34fcf6", ReqAuthID: "r", Privileges: &schemas.Privileges{Layers: []string{"HOST"}, SudoCommands: []string{c}}}
		if b, err := renderSudoers(g, "/usr/bin/su"); err == nil {
			t.Errorf("%q accepted:\n%s", c, b)
		}
	}
	g := schemas.Grant{LoginID: "830916abb78e4157b9e45b641e34fcf6", ReqAuthID: "r", Privileges: &schemas.Privileges{Layers: []string{"HOST"}, SuUsers: []string{"root ALL"}}}
	if _, err := renderSudoers(g, "/usr/bin/su"); err == nil {
		t.Error("a su user that is not a user name accepted")
	}
}

// TestExpiryDayAndLiveness: the account expires the day after the grant
// (an account expires at the start of its day); a grant is live from
// its start until its expiry.
func TestExpiryDayAndLiveness(t *testing.T) {
	exp := time.Date(2026, 3, 2, 23, 59, 0, 0, time.UTC)
	if got := expiryDay(exp); !got.Equal(time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("expiry day %s", got)
	}
	g := schemas.Grant{Start: exp.Add(-time.Hour), Expires: exp}
	for _, tt := range []struct {
		at   time.Time
		live bool
	}{{exp.Add(-2 * time.Hour), false}, {exp.Add(-time.Hour), true}, {exp.Add(-time.Nanosecond), true}, {exp, false}} {
		if liveAt(g, tt.at) != tt.live {
			t.Errorf("live at %s: %v", tt.at, !tt.live)
		}
	}
}
