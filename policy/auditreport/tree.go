package auditreport

import (
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/auditpipe/auditpipe/schemas"
)

// sessionKey identifies a session: the audit session id on a host. The
// kernel gives every login its own ses, and su or sudo keep it, so every
// command of the login carries it.
type sessionKey struct{ host, ses string }

// buildReport builds the report of request id from its events (first copies
// only, in any order).
func buildReport(id string, entries []entry, listKeys bool) *Report {
	entries = slices.Clone(entries)
	sort.SliceStable(entries, func(i, j int) bool { return before(&entries[i], &entries[j]) })
	rep := &Report{ReqAuthID: id, Status: StatusNotAvailable, Hosts: []string{}, Sessions: []*Session{}}
	byKey := map[sessionKey]*building{}
	var order []*building
	for i := range entries {
		e := &entries[i]
		k := sessionKey{e.ev.Host, e.ev.Ses}
		b := byKey[k]
		if b == nil {
			b = &building{s: &Session{Host: e.ev.Host, Ses: e.ev.Ses, Processes: []*Process{}}, lastByPID: map[string]*Process{}}
			byKey[k] = b
			order = append(order, b)
		}
		b.add(e, listKeys)
	}
	// Sessions come in the order of their first events (entries are
	// sorted).
	hosts := map[string]bool{}
	for _, b := range order {
		b.finish()
		rep.Sessions = append(rep.Sessions, b.s)
		rep.Commands += b.s.Commands
		rep.Keystrokes += b.s.Keystrokes
		hosts[b.s.Host] = true
	}
	for h := range hosts {
		rep.Hosts = append(rep.Hosts, h)
	}
	sort.Strings(rep.Hosts)
	if len(entries) > 0 {
		rep.Status = StatusAvailable
	}
	return rep
}

// before orders events: by time, then host, audit serial and event id, so
// that a report is the same however the store returned its rows.
func before(a, b *entry) bool {
	if a.ms != b.ms {
		return a.ms < b.ms
	}
	if a.ev.Host != b.ev.Host {
		return a.ev.Host < b.ev.Host
	}
	if a.serial != b.serial {
		return a.serial < b.serial
	}
	return a.ev.EventID < b.ev.EventID
}

// building is a session being built.
type building struct {
	s *Session
	// lastByPID is the latest command of each pid so far: the parent of a
	// later command with that ppid. Only earlier commands are looked up,
	// so a reused pid cannot make a cycle, and a process is the child of
	// the program its parent pid ran when it started.
	lastByPID map[string]*Process
}

func (b *building) add(e *entry, listKeys bool) {
	s := b.s
	if s.Layer == "" {
		s.Layer = e.ev.Layer
	}
	if s.LoginID == "" {
		s.LoginID = e.ev.LoginID
	}
	switch e.ev.Event {
	case schemas.KindLogin:
		// The first successful login; a failed one only when there is no
		// other.
		if s.Login == nil || s.Login.Res == "failed" && e.ev.Res != "failed" {
			s.Login = &Mark{TS: e.ev.TS, PID: e.ev.PID, Res: e.ev.Res, EventID: e.ev.EventID}
			s.SrcHost, s.DestHost, s.TTY, s.LoginID = e.ev.SrcHost, e.ev.DestHost, e.ev.TTY, e.ev.LoginID
		}
	case schemas.KindLogout:
		s.Logout = &Mark{TS: e.ev.TS, PID: e.ev.PID, Res: e.ev.Res, EventID: e.ev.EventID}
		if s.SrcHost == "" && s.DestHost == "" {
			s.SrcHost, s.DestHost = e.ev.SrcHost, e.ev.DestHost
		}
	case schemas.KindKeys:
		s.Keystrokes++
		if listKeys {
			s.KeystrokeEvents = append(s.KeystrokeEvents, Keystroke{TS: e.ev.TS, PID: e.ev.PID, Keys: e.ev.Keys, EventID: e.ev.EventID})
		}
	case schemas.KindCommand:
		s.Commands++
		p := &Process{
			TS: e.ev.TS, PID: e.ev.PID, PPID: e.ev.PPID, UID: e.uid, EUID: e.ev.EUID, Exe: e.ev.Exe, Cwd: e.ev.Cwd,
			Args: e.ev.Args, Res: e.ev.Res, RecID: e.ev.RecID, EventID: e.ev.EventID,
		}
		if len(p.Args) == 0 && e.ev.Title != "" {
			p.Args = strings.Split(e.ev.Title, "\x00")
		}
		if p.Args == nil {
			p.Args = []string{}
		}
		if sudo := b.lastByPID[p.PID]; refusedBySudo(p) && sudo != nil && suOrSudo(sudo) == "sudo" {
			// sudo's record of a command it refused (the collector's
			// failed command from USER_CMD): the child of that sudo.
			sudo.Children = append(sudo.Children, p)
		} else if parent := b.lastByPID[p.PPID]; parent != nil && p.PPID != "" {
			parent.Children = append(parent.Children, p)
		} else {
			p.ParentMissing = p.PPID != ""
			s.Processes = append(s.Processes, p)
		}
		if p.PID != "" {
			b.lastByPID[p.PID] = p
		}
	}
}

// finish marks the session open or closed and su/sudo with their change
// of user: from the user that ran it (its parent's effective user when the
// parent is in the trail, else its own real uid, which a setuid program
// keeps from its caller, else the login user) to the effective user of its
// first child (or, with no child in the trail, the user its arguments ask
// for).
func (b *building) finish() {
	s := b.s
	s.Open = s.Logout == nil
	var walk func(ps []*Process, parent *Process)
	walk = func(ps []*Process, parent *Process) {
		for _, p := range ps {
			if via := suOrSudo(p); via != "" {
				uc := &UserChange{Via: via, From: s.LoginID}
				switch {
				case parent != nil && parent.EUID != "":
					uc.From = parent.EUID
				case p.UID != "":
					uc.From = p.UID
				}
				if i := slices.IndexFunc(p.Children, func(c *Process) bool { return !refusedBySudo(c) }); i >= 0 {
					uc.To = p.Children[i].EUID
				} else {
					uc.To, uc.FromArgs = targetUser(via, p.Args), true
				}
				p.UserChange = uc
			}
			walk(p.Children, p)
		}
	}
	walk(s.Processes, nil)
}

// refusedBySudo reports whether p is sudo's record of a command it
// refused: failed, written by sudo (its exe), for a command that is not
// sudo itself. It ran nothing, so it is not a sudo run of its own.
func refusedBySudo(p *Process) bool {
	return p.Res == "failed" && path.Base(p.Exe) == "sudo" && path.Base(first(p.Args)) != "sudo"
}

// suOrSudo returns "su" or "sudo" when p runs one of them (by argv[0] or
// the executable, as the named query su-sudo tells them), else "".
func suOrSudo(p *Process) string {
	if refusedBySudo(p) {
		return ""
	}
	for _, name := range []string{p.Exe, first(p.Args)} {
		switch path.Base(name) {
		case "su":
			return "su"
		case "sudo":
			return "sudo"
		}
	}
	return ""
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// targetUser is the user su or sudo asks for in args: su's first operand
// (after its options), sudo's -u/--user; root when none is given.
func targetUser(via string, args []string) string {
	if len(args) < 2 {
		return "root"
	}
	rest := args[1:]
	if via == "sudo" {
		for i := 0; i < len(rest); i++ {
			a := rest[i]
			switch {
			case a == "-u" || a == "--user":
				if i+1 < len(rest) {
					return rest[i+1]
				}
			case strings.HasPrefix(a, "--user="):
				return strings.TrimPrefix(a, "--user=")
			case strings.HasPrefix(a, "-u") && len(a) > 2:
				return a[2:]
			case a == "--" || !strings.HasPrefix(a, "-"):
				return "root" // the command begins
			}
		}
		return "root"
	}
	// su [options] [-] [user [args]]: options that take a value.
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		switch {
		case a == "-" || a == "-l" || a == "--login" || a == "-m" || a == "-p" || a == "-f" ||
			strings.HasPrefix(a, "--") && strings.Contains(a, "="):
		case a == "-c" || a == "--command" || a == "-s" || a == "--shell" || a == "-g" || a == "--group" ||
			a == "-G" || a == "--supp-group" || a == "-w" || a == "--whitelist-environment" || a == "--session-command":
			i++
		case a == "--":
			if i+1 < len(rest) {
				return rest[i+1]
			}
			return "root"
		case strings.HasPrefix(a, "-"):
			// other flags (-P, --preserve-environment, -c'cmd' glued …)
		default:
			return a
		}
	}
	return "root"
}
