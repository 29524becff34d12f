package auditreport

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// WriteText prints the report as text: a heading, then each session with
// its login and logout and its commands as a tree (├─ └─, as pstree
// draws one), one command a line:
//
//	TIME PID COMMAND [VIA: FROM → TO] (EXE in CWD, as USER | uid U euid E, RESULT)
//
// Whatever came from the audited host (arguments, paths, keystrokes) is
// quoted when it holds anything but plain characters, so that control
// characters an operator typed cannot act on the reader's terminal.
func WriteText(w io.Writer, r *Report) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "access request %s: %s\n", word(r.ReqAuthID), r.Status)
	fmt.Fprintf(bw, "generated %s: %s on %s, %s, %s", r.GeneratedAt, plural(len(r.Sessions), "session"),
		plural(len(r.Hosts), "host"), plural(r.Commands, "command"), plural(r.Keystrokes, "keystroke event"))
	if r.Conflicts > 0 {
		fmt.Fprintf(bw, ", %s kept apart (auditpipe verify --request says more)", plural(r.Conflicts, "conflicting copy"))
	}
	bw.WriteString("\n")
	if r.Truncated {
		bw.WriteString("TRUNCATED: the request has more events than the report reads; what follows is the first of them\n")
	}
	for _, s := range r.Sessions {
		bw.WriteString("\n")
		writeSession(bw, s)
	}
	return bw.Flush()
}

func writeSession(w *bufio.Writer, s *Session) {
	fmt.Fprintf(w, "session %s ses %s, layer %s, login user %s\n", word(s.Host), word(s.Ses), word(s.Layer), word(s.LoginID))
	if s.SrcHost != "" || s.DestHost != "" || s.TTY != "" {
		fmt.Fprintf(w, "  from %s (%s) on %s\n", word(s.SrcHost), word(s.DestHost), word(s.TTY))
	}
	if s.Login != nil {
		fmt.Fprintf(w, "  login  %s  pid %s  %s\n", s.Login.TS, word(s.Login.PID), word(s.Login.Res))
	} else {
		w.WriteString("  login  not in the trail\n")
	}
	switch {
	case s.Logout != nil:
		fmt.Fprintf(w, "  logout %s  pid %s  %s\n", s.Logout.TS, word(s.Logout.PID), word(s.Logout.Res))
	default:
		w.WriteString("  logout none: the session is open, or its logout is not in the trail\n")
	}
	fmt.Fprintf(w, "  %s, %s\n", plural(s.Commands, "command"), plural(s.Keystrokes, "keystroke event"))
	day := ""
	if s.Login != nil {
		day = dayOf(s.Login.TS)
	}
	if day == "" && len(s.Processes) > 0 {
		day = dayOf(s.Processes[0].TS)
	}
	for i, p := range s.Processes {
		writeProcess(w, p, "  ", i == len(s.Processes)-1, day)
	}
	if len(s.KeystrokeEvents) > 0 {
		w.WriteString("  keystrokes:\n")
		for _, k := range s.KeystrokeEvents {
			fmt.Fprintf(w, "    %s pid %s %s\n", clock(k.TS, day), word(k.PID), strconv.Quote(k.Keys))
		}
	}
}

func writeProcess(w *bufio.Writer, p *Process, indent string, last bool, day string) {
	branch, next := "├─ ", "│  "
	if last {
		branch, next = "└─ ", "   "
	}
	w.WriteString(indent + branch)
	fmt.Fprintf(w, "%s %s %s", clock(p.TS, day), word(p.PID), command(p.Args))
	if uc := p.UserChange; uc != nil {
		to := word(uc.To)
		if uc.FromArgs {
			to += " (from its arguments: no child in the trail)"
		}
		fmt.Fprintf(w, " [%s: %s → %s]", uc.Via, word(uc.From), to)
	}
	users := "as " + word(p.EUID)
	if p.UID != "" && p.UID != p.EUID {
		users = "uid " + word(p.UID) + " euid " + word(p.EUID)
	}
	fmt.Fprintf(w, " (%s in %s, %s, %s)", word(p.Exe), word(p.Cwd), users, word(p.Res))
	if p.ParentMissing {
		fmt.Fprintf(w, " parent %s not in the trail", word(p.PPID))
	}
	w.WriteString("\n")
	for i, c := range p.Children {
		writeProcess(w, c, indent+next, i == len(p.Children)-1, day)
	}
}

// dayOf returns the date of an RFC 3339 time.
func dayOf(ts string) string {
	if len(ts) < 10 {
		return ""
	}
	return ts[:10]
}

// clock prints ts as its time of day when it falls on day, in full
// otherwise.
func clock(ts, day string) string {
	if day != "" && len(ts) > 11 && ts[:10] == day {
		return strings.TrimSuffix(ts[11:], "Z")
	}
	return ts
}

// command prints argv as a shell would read it.
func command(args []string) string {
	if len(args) == 0 {
		return "''"
	}
	parts := make([]string, len(args))
	for i, a := range args {
		parts[i] = word(a)
	}
	return strings.Join(parts, " ")
}

// word prints s as it is when it is plain (letters, digits and
// -_./:@%+=,), in single quotes when it holds other printable characters
// but no quote, and Go-quoted (\x1b, \u202e …) otherwise, so that nothing
// it holds reaches the terminal as a control.
func word(s string) string {
	if s == "" {
		return "''"
	}
	plain, printable := true, utf8.ValidString(s)
	for _, r := range s {
		if !(r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@%+=,", r))) {
			plain = false
		}
		if !unicode.IsPrint(r) || r == '\'' {
			printable = false
		}
	}
	switch {
	case plain:
		return s
	case printable:
		return "'" + s + "'"
	}
	return strconv.Quote(s)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	switch {
	case strings.HasSuffix(what, "copy"):
		return strconv.Itoa(n) + " " + strings.TrimSuffix(what, "y") + "ies"
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// WriteJSON prints the report as indented JSON: the tree as nested
// objects (Report's fields).
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}
