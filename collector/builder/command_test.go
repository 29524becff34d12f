package builder

import (
	"bytes"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/auditpipe/auditpipe/collector/assemble"
	"github.com/auditpipe/auditpipe/collector/auditlog"
	"github.com/auditpipe/auditpipe/schemas"
)

// cmdRef is what a command event's records say, as the builder read them
// before it read them in raw_data's walk (see command.go): refCommand is
// that earlier reading (a second walk of the SYSCALL, CWD, PROCTITLE and
// EXECVE records), kept here as the reference the one walk must match.
type cmdRef struct {
	PID, PPID, Ses, TTY, Res, Exe, LoginID, EUID, Cwd, Title string
	Args                                                     []string
	Missing                                                  int
}

func refCommand(b *Builder, recs []auditlog.Record) cmdRef {
	var ref cmdRef
	var sys, proctitle, cwd *auditlog.Record
	for i := range recs {
		switch string(recs[i].Type()) {
		case "SYSCALL":
			sys = &recs[i]
		case "PROCTITLE":
			proctitle = &recs[i]
		case "CWD":
			cwd = &recs[i]
		}
	}
	if sys != nil {
		st := recState{enriched: sys.Enriched()}
		for f := range auditlog.Fields(sys.Body()) {
			switch string(f.Key) {
			case "pid":
				ref.PID = string(f.Value)
			case "ppid":
				ref.PPID = string(f.Value)
			case "ses":
				ref.Ses = string(f.Value)
			case "tty":
				ref.TTY = string(f.Value)
			case "success":
				ref.Res = resWord(f.Value)
			case "exe":
				ref.Exe = string(decodeValue(nil, f))
			case "auid":
				if v := b.appendID(nil, f, &st, true); len(v) > 0 && string(v) != "unset" {
					ref.LoginID = string(v)
				}
			case "euid":
				ref.EUID = string(b.appendID(nil, f, &st, true))
			}
		}
	}
	if cwd != nil {
		if f, ok := auditlog.Lookup(cwd.Body(), "cwd"); ok {
			ref.Cwd = string(decodeValue(nil, f))
		}
	}
	argc := -1
	var args [][]byte
	var present []bool
	for i := range recs {
		if string(recs[i].Type()) != "EXECVE" {
			continue
		}
		for f := range auditlog.Fields(recs[i].Body()) {
			if string(f.Key) == "argc" {
				if n, err := strconv.Atoi(string(f.Value)); err == nil && n >= 0 && n < maxArgs {
					argc = n
				}
				continue
			}
			idx, chunked, ok := argIndex(f.Key)
			if !ok || idx >= maxArgs {
				continue
			}
			for len(args) <= idx {
				args, present = append(args, nil), append(present, false)
			}
			if present[idx] && !chunked {
				continue
			}
			present[idx] = true
			args[idx] = decodeValue(args[idx], f)
		}
	}
	n := max(argc, len(args))
	ref.Args = make([]string, n)
	for i := range n {
		if i < len(args) && present[i] {
			ref.Args[i] = string(args[i])
		} else {
			ref.Missing++
		}
	}
	if proctitle != nil {
		if f, ok := auditlog.Lookup(proctitle.Body(), "proctitle"); ok {
			ref.Title = string(bytes.TrimRight(decodeValue(nil, f), "\x00"))
		}
	}
	if ref.Title == "" && n > 0 {
		ref.Title = strings.Join(ref.Args, "\x00")
	}
	for _, s := range []*string{&ref.Title, &ref.Exe, &ref.Cwd, &ref.TTY, &ref.LoginID, &ref.EUID} {
		if !utf8.ValidString(*s) {
			*s = schemas.EscapeInvalidUTF8(*s)
		}
	}
	if slices.ContainsFunc(ref.Args, func(a string) bool { return !utf8.ValidString(a) }) {
		for i := range ref.Args {
			ref.Args[i] = schemas.EscapeInvalidUTF8(ref.Args[i])
		}
	}
	return ref
}

// commandRecords parses the lines of one command event; lines that do not
// parse, or whose records no command reads (logins, keystrokes, sudo's),
// are left out.
func commandRecords(types *auditlog.Types, lines []string) []auditlog.Record {
	var recs []auditlog.Record
	for _, l := range lines {
		var r auditlog.Record
		if types.Parse([]byte(l), &r) != nil {
			continue
		}
		switch string(r.Type()) {
		case "SYSCALL", "EXECVE", "CWD", "PROCTITLE", "PATH", "EOE":
			recs = append(recs, r)
		}
	}
	return recs
}

var commandNames = NewNames(map[uint64]string{0: "root", 1001: "op"}, map[uint64]string{0: "root"})

// checkCommand builds recs as one event and compares the command's fields
// with refCommand's; an event that is not a command fails the test when
// mustEmit (the table's rows are all commands), and is skipped otherwise.
func checkCommand(t *testing.T, types *auditlog.Types, lines []string, mustEmit bool) {
	t.Helper()
	recs := commandRecords(types, lines)
	b := New(Config{Host: "h", AllUsers: true, Names: commandNames})
	var out schemas.Event
	if o := b.Build(&assemble.Event{Records: recs, Complete: true}, &out); o != Emitted || out.Event != schemas.KindCommand {
		if mustEmit {
			t.Fatalf("outcome %v, event %q: not a command", o, out.Event)
		}
		return
	}
	want := refCommand(New(Config{Names: commandNames}), recs)
	got := cmdRef{PID: out.PID, PPID: out.PPID, Ses: out.Ses, TTY: out.TTY, Res: out.Res, Exe: out.Exe,
		LoginID: out.LoginID, EUID: out.EUID, Cwd: out.Cwd, Title: out.Title, Args: out.Args, Missing: int(b.MissingArgs)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("command fields\n got %+v\nwant %+v", got, want)
	}
}

const (
	cmdSyscall = `type=SYSCALL msg=audit(1700000000.123:42): arch=c000003e syscall=59 success=yes exit=0 a0=55d0 a1=55d1 a2=55d2 a3=0 items=2 ppid=100 pid=101 auid=1001 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3 comm="ls" exe="/usr/bin/ls" key=(null)`
	cmdExecve  = `type=EXECVE msg=audit(1700000000.123:42): argc=2 a0="ls" a1="-l"`
	cmdCwd     = `type=CWD msg=audit(1700000000.123:42): cwd="/root"`
	cmdTitle   = `type=PROCTITLE msg=audit(1700000000.123:42): proctitle=6C73002D6C`
	cmdEOE     = `type=EOE msg=audit(1700000000.123:42): `
)

// TestCommandFieldsOneWalk: the fields of a command event read in the walk
// that renders raw_data are those the second walk read, in the cases where
// the order of the walk matters (a field twice, argv chunks across
// records, several records of a type) and where rendering and reading a
// value differ (bare words, quotes, hex, unset ids).
func TestCommandFieldsOneWalk(t *testing.T) {
	types := auditlog.NewTypes()
	sys := func(repl ...string) string { return strings.NewReplacer(repl...).Replace(cmdSyscall) }
	tests := []struct {
		name  string
		lines []string
	}{
		{"plain", []string{cmdSyscall, cmdExecve, cmdCwd, cmdTitle, cmdEOE}},
		{"fields twice: the last wins", []string{sys("pid=101", "pid=101 pid=102", "exe=\"/usr/bin/ls\"", "exe=\"/a\" exe=2F62", "euid=0", "euid=0 euid=1001"), cmdExecve}},
		{"auid twice, the last unset", []string{sys("auid=1001", "auid=1001 auid=4294967295"), cmdExecve}},
		{"auid and euid bare", []string{sys("auid=1001", "auid", "euid=0", "euid"), cmdExecve}},
		{"auid quoted", []string{sys("auid=1001", `auid="x y"`), cmdExecve}},
		{"unknown ids", []string{sys("auid=1001", "auid=4242", "euid=0", "euid=777"), cmdExecve}},
		{"bare pid, exe, success", []string{sys("pid=101", "pid", "exe=\"/usr/bin/ls\"", "exe", "success=yes", "success"), cmdExecve}},
		{"unset session", []string{sys("ses=3", "ses=4294967295"), cmdExecve}},
		{"no SYSCALL", []string{cmdExecve, cmdCwd}},
		{"two SYSCALL records: the last", []string{cmdSyscall, sys("pid=101", "pid=999", "auid=1001", "auid=0"), cmdExecve}},
		{"argv chunks across records", []string{cmdSyscall,
			`type=EXECVE msg=audit(1700000000.123:42): argc=3 a0="echo" a1_len=8 a1[0]=61626364`,
			`type=EXECVE msg=audit(1700000000.123:42): a1[1]=65666768 a2="z"`, cmdCwd, cmdEOE}},
		{"argv repeated and missing", []string{cmdSyscall, `type=EXECVE msg=audit(1700000000.123:42): argc=4 a0="a" a0="b" a2=6869`}},
		{"no proctitle: argv joined", []string{cmdSyscall, cmdExecve}},
		{"proctitle of NULs only", []string{cmdSyscall, cmdExecve, `type=PROCTITLE msg=audit(1700000000.123:42): proctitle=0000`}},
		{"two CWD and PROCTITLE records, fields twice", []string{cmdSyscall, cmdExecve,
			`type=CWD msg=audit(1700000000.123:42): cwd="/a"`, `type=CWD msg=audit(1700000000.123:42): cwd="/b" cwd="/c"`,
			`type=PROCTITLE msg=audit(1700000000.123:42): proctitle="x"`, `type=PROCTITLE msg=audit(1700000000.123:42): proctitle=6869 proctitle="y"`}},
		{"bare cwd", []string{cmdSyscall, cmdExecve, `type=CWD msg=audit(1700000000.123:42): cwd`}},
		{"control bytes and invalid UTF-8", []string{sys(`exe="/usr/bin/ls"`, "exe=2F0A62FF", "tty=pts0", "tty=pts\xff"), `type=EXECVE msg=audit(1700000000.123:42): argc=2 a0=6C0A a1=FF`, `type=CWD msg=audit(1700000000.123:42): cwd=2F0962`}},
		{"nested msg in SYSCALL is not read", []string{sys("pid=101", "pid=101 msg='pid=7 exe=/x'"), cmdExecve}},
		{"enriched names", []string{cmdSyscall + "\x1dAUID=\"alice\" EUID=\"bob\"", cmdExecve}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkCommand(t, types, tt.lines, true)
		})
	}
}

// TestMissingArgsOfUnbuiltCommands: a command Build does not build (no
// grant) still has its missing arguments counted, as when argv was read
// before the grant was looked up.
func TestMissingArgsOfUnbuiltCommands(t *testing.T) {
	types := auditlog.NewTypes()
	recs := commandRecords(types, []string{cmdSyscall, `type=EXECVE msg=audit(1700000000.123:42): argc=3 a0="ls"`})
	b := New(Config{Host: "h", Names: commandNames})
	var out schemas.Event
	if o := b.Build(&assemble.Event{Records: recs, Complete: true}, &out); o != NoGrant {
		t.Fatalf("outcome %v, want no_grant", o)
	}
	if b.MissingArgs != 2 {
		t.Errorf("MissingArgs %d, want 2", b.MissingArgs)
	}
}

// FuzzCommandFields compares the command fields of arbitrary records with
// refCommand's (lines separated by \n, one event).
func FuzzCommandFields(f *testing.F) {
	f.Add(strings.Join([]string{cmdSyscall, cmdExecve, cmdCwd, cmdTitle, cmdEOE}, "\n"))
	f.Add(strings.Join([]string{cmdSyscall, `type=EXECVE msg=audit(1700000000.123:42): argc=3 a0="echo" a1_len=8 a1[0]=61626364`,
		`type=EXECVE msg=audit(1700000000.123:42): a1[1]=65666768 a2="z"`}, "\n"))
	f.Add(strings.Join([]string{strings.Replace(cmdSyscall, "auid=1001", "auid euid", 1), cmdExecve}, "\n"))
	types := auditlog.NewTypes()
	f.Fuzz(func(t *testing.T, data string) {
		checkCommand(t, types, strings.Split(data, "\n"), false)
	})
}
