package auditreport

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/schemas"
)

// ev builds one entry of a session on host h with audit session ses, at
// ms (also its serial), for the tree tests.
type ev struct {
	kind       schemas.Kind
	h, ses     string
	ms         int64
	pid, ppid  string
	uid, euid  string
	res        string
	args       []string
	exe, keys  string
	serialOver uint64 // serial when not ms
}

func (e ev) entry(i int) entry {
	serial := uint64(e.ms)
	if e.serialOver != 0 {
		serial = e.serialOver
	}
	x := entry{uid: e.uid, ms: e.ms, serial: serial}
	x.ev = schemas.Event{
		Event: e.kind, Host: e.h, Ses: e.ses, PID: e.pid, PPID: e.ppid, EUID: e.euid, Res: e.res, Args: e.args,
		Exe: e.exe, Keys: e.keys, LoginID: "op", Layer: "HOST", ReqAuthID: "r",
		RecID: strconv.FormatUint(serial, 10), EventID: fmt.Sprintf("%032d", i),
		TS: fmt.Sprintf("2026-01-01T00:00:%02d.%03dZ", e.ms/1000%60, e.ms%1000),
	}
	if e.res == "" {
		x.ev.Res = "success"
	}
	return x
}

func run(h, ses string, ms int64, pid, ppid, euid string, args ...string) ev {
	return ev{kind: schemas.KindCommand, h: h, ses: ses, ms: ms, pid: pid, ppid: ppid, euid: euid, uid: euid, args: args, exe: "/usr/bin/" + args[0]}
}

func login(h, ses string, ms int64, res string) ev {
	return ev{kind: schemas.KindLogin, h: h, ses: ses, ms: ms, pid: "1", res: res}
}

func logout(h, ses string, ms int64) ev {
	return ev{kind: schemas.KindLogout, h: h, ses: ses, ms: ms, pid: "1"}
}

// shape prints a report compactly: each session as host/ses, its login
// and logout (+ present, - missing), open, keystroke count, then its trees,
// a missing parent as ^, a user change as {via:from>to}, a change read
// from the arguments with a ?.
func shape(r *Report) string {
	var b strings.Builder
	for i, s := range r.Sessions {
		if i > 0 {
			b.WriteString(" | ")
		}
		mark := func(m *Mark) string {
			if m == nil {
				return "-"
			}
			return "+"
		}
		fmt.Fprintf(&b, "%s/%s %s%s", s.Host, s.Ses, mark(s.Login), mark(s.Logout))
		if s.Open {
			b.WriteString(" open")
		}
		if s.Keystrokes > 0 {
			fmt.Fprintf(&b, " keys=%d/%d", s.Keystrokes, len(s.KeystrokeEvents))
		}
		b.WriteString(":")
		var walk func(ps []*Process)
		walk = func(ps []*Process) {
			for _, p := range ps {
				b.WriteString(" ")
				if p.ParentMissing {
					b.WriteString("^")
				}
				b.WriteString(p.PID)
				if uc := p.UserChange; uc != nil {
					q := ""
					if uc.FromArgs {
						q = "?"
					}
					fmt.Fprintf(&b, "{%s:%s>%s%s}", uc.Via, uc.From, uc.To, q)
				}
				if len(p.Children) > 0 {
					b.WriteString("(")
					walk(p.Children)
					b.WriteString(" )")
				}
			}
		}
		walk(s.Processes)
	}
	return b.String()
}

// TestTree: the process tree and the sessions, edge by edge. Every case
// is also built from its events in reverse order, which must give the
// same report.
func TestTree(t *testing.T) {
	tests := []struct {
		name string
		evs  []ev
		keys bool
		want string
	}{
		{"children under parents, orphans off the session root", []ev{
			login("h", "1", 1000, "success"),
			run("h", "1", 2000, "10", "5", "op", "ls"),
			run("h", "1", 3000, "11", "5", "op", "bash", "x.sh"),
			run("h", "1", 4000, "12", "11", "op", "grep", "a"),
			run("h", "1", 5000, "13", "11", "op", "tail", "b"),
			run("h", "1", 6000, "14", "12", "op", "cut", "-c1"),
			logout("h", "1", 7000),
		}, false, "h/1 ++: ^10 ^11( 12( 14 ) 13 )"},
		{"a cycle in pid/ppid from pid reuse is not followed", []ev{
			run("h", "1", 1000, "10", "20", "op", "a"),
			run("h", "1", 2000, "20", "10", "op", "b"),
			run("h", "1", 3000, "10", "20", "op", "c"),
		}, false, "h/1 -- open: ^10( 20( 10 ) )"},
		{"a process naming itself as parent", []ev{
			run("h", "1", 1000, "7", "7", "op", "a"),
			run("h", "1", 2000, "8", "7", "op", "b"),
			run("h", "1", 3000, "7", "7", "op", "c"),
		}, false, "h/1 -- open: ^7( 8 7 )"},
		{"a reused pid: children go to the program the pid ran when they started", []ev{
			run("h", "1", 1000, "100", "1", "op", "first"),
			run("h", "1", 2000, "101", "100", "op", "child-of-first"),
			run("h", "1", 3000, "100", "1", "op", "second"),
			run("h", "1", 4000, "102", "100", "op", "child-of-second"),
		}, false, "h/1 -- open: ^100( 101 ) ^100( 102 )"},
		{"a parent recorded after its child is not its parent", []ev{
			run("h", "1", 1000, "31", "30", "op", "child"),
			run("h", "1", 2000, "30", "1", "op", "parent"),
		}, false, "h/1 -- open: ^31 ^30"},
		{"the same pid in two sessions: one tree each, never linked across", []ev{
			login("h", "1", 1000, "success"),
			login("h", "2", 1500, "success"),
			run("h", "1", 2000, "50", "5", "op", "a"),
			run("h", "2", 3000, "50", "6", "op", "b"),
			run("h", "2", 4000, "51", "50", "op", "c"),
			run("h", "1", 5000, "52", "51", "op", "d"),
		}, false, "h/1 +- open: ^50 ^52 | h/2 +- open: ^50( 51 )"},
		{"the same ses on two hosts: two sessions", []ev{
			run("b", "1", 1000, "10", "1", "op", "x"),
			run("a", "1", 1000, "11", "10", "op", "y"),
		}, false, "a/1 -- open: ^11 | b/1 -- open: ^10"},
		{"a missing logout leaves the session open; a logout without a login closes one", []ev{
			login("h", "1", 1000, "success"),
			run("h", "1", 2000, "10", "", "op", "a"),
			logout("h", "2", 3000),
		}, false, "h/1 +- open: 10 | h/2 -+:"},
		{"a failed login gives way to the successful one", []ev{
			login("h", "1", 1000, "failed"),
			login("h", "1", 2000, "success"),
			logout("h", "1", 3000),
		}, false, "h/1 ++:"},
		{"su and sudo: the user change is what the first child runs as", []ev{
			run("h", "1", 1000, "10", "5", "op", "bash"),
			{kind: schemas.KindCommand, h: "h", ses: "1", ms: 2000, pid: "11", ppid: "10", uid: "op", euid: "root", args: []string{"sudo", "-u", "oracle", "x"}, exe: "/usr/bin/sudo"},
			run("h", "1", 3000, "12", "11", "oracle", "x"),
			{kind: schemas.KindCommand, h: "h", ses: "1", ms: 4000, pid: "13", ppid: "10", uid: "op", euid: "root", args: []string{"su", "-", "grid"}, exe: "/usr/bin/su"},
			run("h", "1", 5000, "14", "13", "grid", "id"),
			run("h", "1", 6000, "15", "14", "grid", "sudo", "id"),
		}, false, "h/1 -- open: ^10( 11{sudo:op>oracle}( 12 ) 13{su:op>grid}( 14( 15{sudo:grid>root?} ) ) )"},
		{"su with no child in the trail: the user its arguments name", []ev{
			{kind: schemas.KindCommand, h: "h", ses: "1", ms: 1000, pid: "10", ppid: "5", uid: "op", euid: "root", args: []string{"su", "-l", "oracle"}, exe: "/usr/bin/su"},
			{kind: schemas.KindCommand, h: "h", ses: "1", ms: 2000, pid: "11", ppid: "5", euid: "root", args: []string{"/bin/su"}, exe: "/bin/su"},
		}, false, "h/1 -- open: ^10{su:op>oracle?} ^11{su:op>root?}"},
		{"a command sudo refused: the child of that sudo, no sudo run of its own, no user change", []ev{
			{kind: schemas.KindCommand, h: "h", ses: "1", ms: 1000, pid: "20", ppid: "5", uid: "op", euid: "root", args: []string{"sudo", "-n", "/usr/bin/id"}, exe: "/usr/bin/sudo"},
			run("h", "1", 1100, "22", "21", "root", "/usr/bin/id"),
			{kind: schemas.KindCommand, h: "h", ses: "1", ms: 2000, pid: "30", ppid: "5", uid: "op", euid: "root", args: []string{"sudo", "-n", "cat", "/etc/shadow"}, exe: "/usr/bin/sudo"},
			{kind: schemas.KindCommand, h: "h", ses: "1", ms: 2001, pid: "30", euid: "op", res: "failed", args: []string{"cat", "/etc/shadow"}, exe: "/usr/bin/sudo"},
			{kind: schemas.KindCommand, h: "h", ses: "1", ms: 3000, pid: "40", euid: "op", res: "failed", args: []string{"/usr/bin/su"}, exe: "/usr/bin/sudo"},
		}, false, "h/1 -- open: ^20{sudo:op>root?} ^22 ^30{sudo:op>root?}( 30 ) 40"},
		{"ties in time go by audit serial", []ev{
			{kind: schemas.KindCommand, h: "h", ses: "1", ms: 1000, serialOver: 9, pid: "3", ppid: "2", euid: "op", args: []string{"c"}},
			{kind: schemas.KindCommand, h: "h", ses: "1", ms: 1000, serialOver: 7, pid: "1", ppid: "0", euid: "op", args: []string{"a"}},
			{kind: schemas.KindCommand, h: "h", ses: "1", ms: 1000, serialOver: 8, pid: "2", ppid: "1", euid: "op", args: []string{"b"}},
		}, false, "h/1 -- open: ^1( 2( 3 ) )"},
		{"keystrokes counted, and listed when asked", []ev{
			{kind: schemas.KindKeys, h: "h", ses: "1", ms: 1000, pid: "5", keys: "ls\r"},
			{kind: schemas.KindKeys, h: "h", ses: "1", ms: 2000, pid: "5", keys: "exit\r"},
		}, true, "h/1 -- open keys=2/2:"},
		{"keystrokes counted only", []ev{
			{kind: schemas.KindKeys, h: "h", ses: "1", ms: 1000, pid: "5", keys: "ls\r"},
		}, false, "h/1 -- open keys=1/0:"},
		{"no events", nil, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries := make([]entry, len(tt.evs))
			for i, e := range tt.evs {
				entries[i] = e.entry(i)
			}
			rep := buildReport("r", entries, tt.keys)
			if got := shape(rep); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			wantStatus := StatusAvailable
			if len(tt.evs) == 0 {
				wantStatus = StatusNotAvailable
			}
			if rep.Status != wantStatus {
				t.Errorf("status %s, want %s", rep.Status, wantStatus)
			}
			reversed := slices.Clone(entries)
			slices.Reverse(reversed)
			a, _ := json.Marshal(rep)
			b, _ := json.Marshal(buildReport("r", reversed, tt.keys))
			if string(a) != string(b) {
				t.Errorf("the events in reverse order give another report:\n%s\n%s", a, b)
			}
		})
	}
}

func TestTargetUser(t *testing.T) {
	tests := []struct {
		via  string
		args []string
		want string
	}{
		{"su", []string{"su"}, "root"},
		{"su", []string{"su", "-"}, "root"},
		{"su", []string{"su", "-", "celladmin"}, "celladmin"},
		{"su", []string{"su", "-l", "oracle"}, "oracle"},
		{"su", []string{"su", "-c", "id", "grid"}, "grid"},
		{"su", []string{"su", "--shell", "/bin/sh", "--login", "opc"}, "opc"},
		{"su", []string{"su", "--command=id", "opc"}, "opc"},
		{"su", []string{"su", "--", "-weird"}, "-weird"},
		{"su", []string{"su", "-P", "oracle", "-c", "id"}, "oracle"},
		{"sudo", []string{"sudo", "systemctl", "restart", "x"}, "root"},
		{"sudo", []string{"sudo", "-u", "celladmin", "cellcli"}, "celladmin"},
		{"sudo", []string{"sudo", "-ucelladmin", "cellcli"}, "celladmin"},
		{"sudo", []string{"sudo", "--user=grid", "id"}, "grid"},
		{"sudo", []string{"sudo", "-i"}, "root"},
		{"sudo", []string{"sudo", "-n", "-u", "oracle", "id"}, "oracle"},
		{"sudo", []string{"sudo", "id", "-u", "oracle"}, "root"},
		{"sudo", []string{"sudo", "-u"}, "root"},
	}
	for _, tt := range tests {
		if got := targetUser(tt.via, tt.args); got != tt.want {
			t.Errorf("targetUser(%s, %q) = %q, want %q", tt.via, tt.args, got, tt.want)
		}
	}
}

// TestWord: what the audited host sent reaches the text report plain,
// quoted, or escaped, never as a terminal control.
func TestWord(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ls", "ls"},
		{"/var/log/messages", "/var/log/messages"},
		{"--user=grid", "--user=grid"},
		{"", "''"},
		{"list cell detail", "'list cell detail'"},
		{"it's", `"it's"`},
		{"\x1b[2J\x1b[Hclear", `"\x1b[2J\x1b[Hclear"`},
		{"a\nb", `"a\nb"`},
		{"evil\u202egnp.exe", `"evil\u202egnp.exe"`},
		{"\xff\xfe", `"\xff\xfe"`},
		{"日本語", "'日本語'"},
	}
	for _, tt := range tests {
		if got := word(tt.in); got != tt.want {
			t.Errorf("word(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
