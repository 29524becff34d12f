package builder

import (
	"strconv"

	"github.com/auditpipe/auditpipe/collector/assemble"
	"github.com/auditpipe/auditpipe/collector/auditlog"
	"github.com/auditpipe/auditpipe/schemas"
)

// A command event's fields (pid, exe, argv, cwd, title…) are read in the
// walk that renders raw_data: appendRecord hands each top-level field of
// the records a command reads to see, by the record's role, and see keeps
// what the event needs. The SYSCALL record is rendered first, on its own
// (the login user and res decide whether the event is built at all); the
// others when raw_data is. Formerly fillCommand walked the SYSCALL, CWD,
// PROCTITLE and EXECVE records a second time (12 % of `auditpipe parse`).

// recRole says what a record is to the command being built.
type recRole uint8

const (
	roleNone      recRole = iota // rendered only
	roleSys                      // the event's SYSCALL record (the last one)
	roleExecve                   // an EXECVE record: argc and the arguments
	roleCwd                      // the event's CWD record (the last one)
	roleProctitle                // the event's PROCTITLE record (the last one)
)

// cmdFields is what see kept of a command's records. A field named twice
// in the SYSCALL record keeps its last value, as assignments in record
// order would; cwd and proctitle their first (as auditlog.Lookup).
type cmdFields struct {
	out                      *schemas.Event
	pid, ppid, ses, tty, exe auditlog.Field
	hasPID, hasPPID, hasSes  bool
	hasTTY, hasExe, hasEUID  bool
	euid                     []byte
	cwd, proctitle           auditlog.Field
	hasCwd, hasProctitle     bool
	execve                   []auditlog.Field // the EXECVE records' fields, in rendering order
	execveStarts             []int            // where each EXECVE record's fields start in execve
}

// reset forgets the previous command and makes out the event being built.
func (c *cmdFields) reset(out *schemas.Event) {
	*c = cmdFields{out: out, euid: c.euid[:0], execve: c.execve[:0], execveStarts: c.execveStarts[:0]}
}

// see keeps field f of a record of role; rendered is its value as
// appendValue rendered it (nil for a bare word).
func (b *Builder) see(role recRole, f auditlog.Field, st *recState, rendered []byte) {
	c := &b.cmd
	switch role {
	case roleSys:
		switch string(f.Key) {
		case "pid":
			c.pid, c.hasPID = f, true
		case "ppid":
			c.ppid, c.hasPPID = f, true
		case "ses":
			c.ses, c.hasSes = f, true
		case "tty":
			c.tty, c.hasTTY = f, true
		case "exe":
			c.exe, c.hasExe = f, true
		case "success":
			c.out.Res = resWord(f.Value)
		case "auid":
			// Rendered as a uid: the same bytes appendID gives.
			if f.Bare {
				rendered = b.appendID(b.scratch[:0], f, st, true)
				b.scratch = rendered
			}
			setLoginID(c.out, rendered)
		case "euid":
			if f.Bare {
				c.euid = b.appendID(c.euid[:0], f, st, true)
			} else {
				c.euid = append(c.euid[:0], rendered...)
			}
			c.hasEUID = true
		}
	case roleExecve:
		c.execve = append(c.execve, f)
	case roleCwd:
		if !c.hasCwd && string(f.Key) == "cwd" {
			c.cwd, c.hasCwd = f, true
		}
	case roleProctitle:
		if !c.hasProctitle && string(f.Key) == "proctitle" {
			c.proctitle, c.hasProctitle = f, true
		}
	}
}

// beginCommand renders the SYSCALL record sys (if any) into b.sysRaw,
// keeping its fields, and sets out's login user and res: what Build needs
// before it knows whether to build the event.
func (b *Builder) beginCommand(sys *auditlog.Record, out *schemas.Event) {
	b.cmd.reset(out)
	b.sysRaw = b.sysRaw[:0]
	if sys != nil {
		b.sysRaw = b.appendRecord(b.sysRaw, sys, roleSys)
	}
}

// appendCommandRecords appends raw_data of a command event: its records in
// ausearch's order (last first), the SYSCALL record sys as beginCommand
// rendered it, the others rendered now, keeping the fields of cwd,
// proctitle and the EXECVE records.
func (b *Builder) appendCommandRecords(dst []byte, ev *assemble.Event, sys, proctitle, cwd *auditlog.Record) []byte {
	c := &b.cmd
	for i := len(ev.Records) - 1; i >= 0; i-- {
		r := &ev.Records[i]
		role := roleNone
		switch {
		case r == sys:
			dst = append(dst, b.sysRaw...)
			continue
		case r == cwd:
			role = roleCwd
		case r == proctitle:
			role = roleProctitle
		case string(r.Type()) == "EXECVE":
			role = roleExecve
			c.execveStarts = append(c.execveStarts, len(c.execve))
		}
		dst = b.appendRecord(dst, r, role)
	}
	return dst
}

// finishCommand sets the command's fields that see kept, after raw_data:
// pid, ppid, ses, tty, exe, euid, cwd, args and title.
func (b *Builder) finishCommand(out *schemas.Event) {
	t, c := &b.tab, &b.cmd
	if c.hasPID {
		t.set(&out.PID, c.pid.Value)
	}
	if c.hasPPID {
		t.set(&out.PPID, c.ppid.Value)
	}
	if c.hasSes {
		t.set(&out.Ses, c.ses.Value)
	}
	if c.hasTTY {
		t.set(&out.TTY, c.tty.Value)
	}
	if c.hasExe {
		m := t.mark()
		t.buf = decodeValue(t.buf, c.exe)
		t.setFrom(&out.Exe, m)
	}
	if c.hasEUID {
		t.set(&out.EUID, c.euid)
	}
	if c.hasCwd {
		m := t.mark()
		t.buf = decodeValue(t.buf, c.cwd)
		t.setFrom(&out.Cwd, m)
	}
	// The EXECVE records were rendered last first: their fields are
	// read back in record order, as argv's chunks follow one another.
	b.startArgs()
	for k := len(c.execveStarts) - 1; k >= 0; k-- {
		end := len(c.execve)
		if k+1 < len(c.execveStarts) {
			end = c.execveStarts[k+1]
		}
		for _, f := range c.execve[c.execveStarts[k]:end] {
			b.argField(f)
		}
	}
	out.Args = b.endArgs()
	b.setTitle(out)
	clear(c.execve) // no references into the event's lines
	c.out = nil
}

// setTitle sets the command's title: proctitle's, decoded, without its
// trailing NULs, or else argv joined by NUL.
func (b *Builder) setTitle(out *schemas.Event) {
	t, c := &b.tab, &b.cmd
	hasTitle := false
	if c.hasProctitle {
		m := t.mark()
		t.buf = decodeValue(t.buf, c.proctitle)
		for len(t.buf) > m && t.buf[len(t.buf)-1] == 0 {
			t.buf = t.buf[:len(t.buf)-1]
		}
		t.setFrom(&out.Title, m)
		hasTitle = len(t.buf) > m
	}
	if !hasTitle && len(out.Args) > 0 {
		m := t.mark()
		for i := range out.Args {
			if i > 0 {
				t.buf = append(t.buf, 0)
			}
			if i < len(b.argBufs) && b.present[i] {
				t.buf = append(t.buf, b.argBufs[i]...)
			}
		}
		t.setFrom(&out.Title, m)
	}
}

// args collects argv from every EXECVE record of the event (see argField)
// in a walk of its own: for a command Build does not build (no grant,
// replayed), whose missing arguments are counted all the same.
func (b *Builder) args(ev *assemble.Event) []string {
	b.startArgs()
	for i := range ev.Records {
		r := &ev.Records[i]
		if string(r.Type()) != "EXECVE" {
			continue
		}
		for f := range auditlog.Fields(r.Body()) {
			b.argField(f)
		}
	}
	return b.endArgs()
}

// startArgs begins collecting argv.
func (b *Builder) startArgs() {
	b.argc = -1
	b.argBufs, b.present = b.argBufs[:0], b.present[:0]
}

// argField reads one field of an EXECVE record: argc, aN=VALUE, or
// aN_len=L with aN[0]=…, aN[1]=… chunks.
func (b *Builder) argField(f auditlog.Field) {
	if string(f.Key) == "argc" {
		if n, err := strconv.Atoi(string(f.Value)); err == nil && n >= 0 && n < maxArgs {
			b.argc = n
		}
		return
	}
	idx, chunked, ok := argIndex(f.Key)
	if !ok || idx >= maxArgs {
		return
	}
	bufs, present := b.argBufs, b.present
	for len(bufs) <= idx {
		if len(bufs) < cap(bufs) {
			bufs = bufs[:len(bufs)+1]
			bufs[len(bufs)-1] = bufs[len(bufs)-1][:0]
		} else {
			bufs = append(bufs, nil)
		}
		present = append(present, false)
	}
	b.argBufs, b.present = bufs, present
	if present[idx] && !chunked {
		return // a repeated aN: keep the first
	}
	present[idx] = true
	bufs[idx] = decodeValue(bufs[idx], f)
}

// endArgs returns argv. Arguments that argc announces but no record
// carries become empty strings and are counted in MissingArgs.
func (b *Builder) endArgs() []string {
	bufs, present := b.argBufs, b.present
	n := max(b.argc, len(bufs))
	args := make([]string, n)
	missing := 0
	for i := range n {
		if i < len(bufs) && present[i] {
			b.tab.set(&args[i], bufs[i])
		} else {
			missing++
		}
	}
	b.MissingArgs += uint64(missing)
	return args
}
