// Package builder turns assembled audit events into the contract events of
// package schemas: it classifies them (login, logout, command, keys),
// renders raw_data in interpreted form, extracts title, args and the other
// fields, ties the login user to its access request through grants, and
// leaves out sessions that no grant covers unless told otherwise.
package builder

import (
	"bytes"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/auditpipe/auditpipe/collector/assemble"
	"github.com/auditpipe/auditpipe/collector/auditlog"
	"github.com/auditpipe/auditpipe/schemas"
)

// Grants finds the grant of a login user.
type Grants interface {
	Lookup(loginID string) (schemas.Grant, bool)
}

// StaticGrants is a fixed set of grants, keyed by login user.
type StaticGrants map[string]schemas.Grant

// Lookup implements Grants.
func (g StaticGrants) Lookup(loginID string) (schemas.Grant, bool) {
	gr, ok := g[loginID]
	return gr, ok
}

// Config configures a Builder.
type Config struct {
	// Layer is written to every event (CPS, HOST, CELL, GUESTVM, SWITCH, ILOM).
	Layer string
	// Host names events whose records carry no node= prefix.
	Host string
	// AllUsers emits events of users without a grant (req_auth_id empty).
	AllUsers bool
	// LogoutFromSessionClose makes sshd's PAM session close (USER_END with
	// op=PAM:session_close and exe /usr/sbin/sshd) a logout, for hosts
	// whose sshd writes no USER_LOGOUT (Debian's).
	LogoutFromSessionClose bool
	// Names resolves ids; nil resolves nothing (ids print as unknown(N)).
	Names *Names
	// Grants ties login users to access requests; nil means none.
	Grants Grants
	// RawDataInBuffer leaves raw_data out of the events built: it is
	// rendered into the builder's buffer, which Builder.RawData returns
	// until the next build, and Event.RawData stays empty (unless the
	// rendering is not valid UTF-8: then it is escaped into RawData as
	// always). For a consumer that encodes each event at once
	// (schemas.Event.AppendJSONWithRawData), as the collector's decoder
	// does: no string of raw_data is made per event. Default false.
	RawDataInBuffer bool
}

// Outcome says what Build did with an event.
type Outcome uint8

// Outcomes of Build.
const (
	Emitted      Outcome = iota
	NotAudited           // not a login, logout, command or keystroke event
	NoGrant              // the user has no grant (and AllUsers is off)
	KeysNotAsked         // keystrokes of a grant with COMMAND_AUDIT only
	Replayed             // already delivered before a restart (see SetSkip)
)

// String names the outcome for metrics.
func (o Outcome) String() string {
	switch o {
	case Emitted:
		return "emitted"
	case NotAudited:
		return "not_audited"
	case NoGrant:
		return "no_grant"
	case KeysNotAsked:
		return "keys_not_asked"
	case Replayed:
		return "replayed"
	}
	return "unknown"
}

// Builder is not safe for concurrent use.
type Builder struct {
	cfg                Config
	names              *Names
	seq                map[string]uint64
	tab                strtab
	scratch            []byte
	argBufs            [][]byte
	present            []bool
	argc               int
	sysRaw             []byte    // a command's SYSCALL record, rendered
	cmd                cmdFields // what a command's records said
	raw                []byte    // raw_data, with Config.RawDataInBuffer
	rawOut             bool      // raw holds the last event's raw_data
	times              timeCache
	memo               lookupMemo
	uidCache, gidCache idCache
	skip               map[string]struct{}
	idBuf              []byte
	// MissingArgs counts command arguments that argc announced but no
	// EXECVE record carried.
	MissingArgs uint64
}

// New returns a Builder.
func New(cfg Config) *Builder {
	return &Builder{cfg: cfg, names: cfg.Names, seq: map[string]uint64{}}
}

// Seq returns the last sequence number given per host (for checkpoints).
func (b *Builder) Seq() map[string]uint64 {
	m := make(map[string]uint64, len(b.seq))
	for k, v := range b.seq {
		m[k] = v
	}
	return m
}

// SetSeq restores sequence numbers from a checkpoint.
func (b *Builder) SetSeq(m map[string]uint64) {
	for k, v := range m {
		b.seq[k] = v
	}
}

// SetSkip names events already delivered: Build reports them as Replayed
// (once each) without giving them a sequence number. The collector uses it
// for events it re-reads after a restart.
func (b *Builder) SetSkip(eventIDs []string) {
	b.skip = make(map[string]struct{}, len(eventIDs))
	for _, id := range eventIDs {
		b.skip[id] = struct{}{}
	}
}

// RefreshNames reads the passwd and group files again if they changed
// (Names.Refresh), and then forgets the ids it resolved lately, so that a
// uid freed and given to another user resolves to the new user's name.
func (b *Builder) RefreshNames() {
	if b.names.Refresh() {
		b.uidCache, b.gidCache = idCache{}, idCache{}
	}
}

// Build fills out from ev when it is an audited event of a covered user.
// out is overwritten either way.
func (b *Builder) Build(ev *assemble.Event, out *schemas.Event) Outcome {
	return b.build(ev, out, false)
}

// BuildUngranted fills out from ev as Build does for a covered user, but
// looks up no grant: req_auth_id and seq are left empty, for Grant to fill
// in once the grant of out.LoginID is known. The names in out (raw_data's,
// the login user's) are those of the moment. It reports NotAudited as
// Build does, and Emitted otherwise.
func (b *Builder) BuildUngranted(ev *assemble.Event, out *schemas.Event) Outcome {
	return b.build(ev, out, true)
}

// Grant completes out, made by BuildUngranted, with grant, as Build would
// have: it reports KeysNotAsked for keystrokes of a grant that did not ask
// for them, Replayed for an event named by SetSkip, and otherwise gives out
// the next sequence number of its host and reports Emitted.
func (b *Builder) Grant(out *schemas.Event, grant schemas.Grant) Outcome {
	out.ReqAuthID = grant.ReqAuthID
	if out.Event == schemas.KindKeys && !grant.Keystrokes() {
		return KeysNotAsked
	}
	if b.replayed(out.EventID) {
		return Replayed
	}
	b.seq[out.Host]++
	out.Seq = b.seq[out.Host]
	return Emitted
}

// replayed reports, once, whether id is an event named by SetSkip.
func (b *Builder) replayed(id string) bool {
	if _, ok := b.skip[id]; ok {
		delete(b.skip, id)
		return true
	}
	return false
}

// RawData returns the raw_data of the event the last Build or
// BuildUngranted built, when Config.RawDataInBuffer left it out of the
// event; it is valid until the next build. ok is false when the event
// holds its raw_data (or none was built).
func (b *Builder) RawData() (raw []byte, ok bool) {
	return b.raw, b.rawOut
}

func (b *Builder) build(ev *assemble.Event, out *schemas.Event, ungranted bool) Outcome {
	*out = schemas.Event{}
	b.rawOut = false
	var sys, login, keys *auditlog.Record
	var proctitle, cwd, refused *auditlog.Record
	hasExecve := false
	kind := schemas.Kind("")
	for i := range ev.Records {
		r := &ev.Records[i]
		switch string(r.Type()) {
		case "SYSCALL":
			sys = r
		case "EXECVE":
			hasExecve = true
		case "PROCTITLE":
			proctitle = r
		case "CWD":
			cwd = r
		case "USER_LOGIN":
			login, kind = r, schemas.KindLogin
		case "USER_LOGOUT":
			login, kind = r, schemas.KindLogout
		case "USER_END":
			if b.cfg.LogoutFromSessionClose && isSshdSessionClose(r.Body()) {
				login, kind = r, schemas.KindLogout
			}
		case "TTY", "USER_TTY":
			keys, kind = r, schemas.KindKeys
		case "USER_CMD":
			if isRefusedCommand(r.Body()) {
				refused, kind = r, schemas.KindCommand
			}
		}
	}
	if kind == "" && (hasExecve || (sys != nil && b.isExecSyscall(sys))) {
		kind = schemas.KindCommand
	}
	if kind == "" {
		return NotAudited
	}
	b.tab.reset()
	// command: a command event read from its records (see command.go),
	// not sudo's refusal.
	command := kind == schemas.KindCommand && refused == nil
	out.Event = kind
	out.Layer = b.cfg.Layer
	out.Host = ev.Node
	if out.Host == "" {
		out.Host = b.cfg.Host
	}

	switch kind {
	case schemas.KindLogin, schemas.KindLogout:
		b.fillLogin(login, out)
	case schemas.KindCommand:
		if refused != nil {
			b.fillRefused(refused, out)
		} else {
			b.beginCommand(sys, out)
		}
	case schemas.KindKeys:
		b.fillKeys(keys, out)
	}

	if !ungranted {
		var grant schemas.Grant
		var ok bool
		if b.cfg.Grants != nil && out.LoginID != "" {
			grant, ok = b.cfg.Grants.Lookup(out.LoginID)
		}
		switch {
		case ok:
			out.ReqAuthID = grant.ReqAuthID
			if kind == schemas.KindKeys && !grant.Keystrokes() {
				return KeysNotAsked
			}
		case !b.cfg.AllUsers:
			return b.unbuilt(command, ev, out, NoGrant)
		}
	}

	b.idBuf = schemas.AppendEventID(b.idBuf[:0], out.Host, ev.Sec, ev.Msec, ev.Serial)
	if !ungranted && len(b.skip) > 0 {
		if _, ok := b.skip[string(b.idBuf)]; ok {
			delete(b.skip, string(b.idBuf))
			return b.unbuilt(command, ev, out, Replayed)
		}
	}

	t := &b.tab
	m := t.mark()
	t.buf = strconv.AppendUint(t.buf, ev.Serial, 10)
	t.setFrom(&out.RecID, m)

	// raw_data: the records in ausearch's order (last record first).
	if b.cfg.RawDataInBuffer {
		b.raw = b.appendRawData(b.raw[:0], ev, command, sys, proctitle, cwd)
		b.rawOut = true
	} else {
		m = t.mark()
		t.buf = b.appendRawData(t.buf, ev, command, sys, proctitle, cwd)
		t.setFrom(&out.RawData, m)
	}
	if command {
		b.finishCommand(out)
	}

	b.times.set(ev.Sec)
	t.set(&out.Time, b.times.ctime)
	m = t.mark()
	t.buf = append(t.buf, b.times.iso...)
	t.buf = append(t.buf, '.', byte('0'+ev.Msec/100), byte('0'+ev.Msec/10%10), byte('0'+ev.Msec%10), 'Z')
	t.setFrom(&out.TS, m)
	t.set(&out.EventID, b.idBuf)
	t.commit()

	if !ungranted {
		b.seq[out.Host]++
		out.Seq = b.seq[out.Host]
	}
	if b.rawOut && !utf8.Valid(b.raw) {
		// Escaped into the event, as without RawDataInBuffer.
		out.RawData = string(b.raw)
		b.rawOut = false
	}
	escapeInvalid(out)
	return Emitted
}

// appendRawData appends the records of ev in interpreted form, in
// ausearch's order (last record first): raw_data.
func (b *Builder) appendRawData(dst []byte, ev *assemble.Event, command bool, sys, proctitle, cwd *auditlog.Record) []byte {
	if command {
		return b.appendCommandRecords(dst, ev, sys, proctitle, cwd)
	}
	for i := len(ev.Records) - 1; i >= 0; i-- {
		dst = b.appendRecord(dst, &ev.Records[i], roleNone)
	}
	return dst
}

// unbuilt returns o for an event Build leaves unbuilt. A command's
// arguments are counted all the same (MissingArgs), as when they were read
// before the grant was looked up.
func (b *Builder) unbuilt(command bool, ev *assemble.Event, out *schemas.Event, o Outcome) Outcome {
	if command {
		out.Args = b.args(ev)
		b.cmd.reset(nil)
	}
	return o
}

// timeCache keeps the formatted forms of the last second seen: events
// come in bursts within one second.
type timeCache struct {
	sec   int64
	valid bool
	ctime []byte // Thu Oct 29 03:20:22 2020
	iso   []byte // 2020-10-29T03:20:22
	audit []byte // 10/29/2020 03:20:22
}

func (c *timeCache) set(sec int64) {
	if c.valid && c.sec == sec {
		return
	}
	t := time.Unix(sec, 0).UTC()
	c.sec, c.valid = sec, true
	c.ctime = t.AppendFormat(c.ctime[:0], schemas.CtimeLayout)
	c.iso = t.AppendFormat(c.iso[:0], "2006-01-02T15:04:05")
	c.audit = t.AppendFormat(c.audit[:0], "01/02/2006 15:04:05")
}

func (b *Builder) isExecSyscall(sys *auditlog.Record) bool {
	f, ok := auditlog.Lookup(sys.Body(), "syscall")
	if !ok {
		return false
	}
	arch := ""
	if a, ok := auditlog.Lookup(sys.Body(), "arch"); ok {
		arch = b.archName(a.Value)
	}
	name := b.syscallName(arch, f.Value)
	return name == "execve" || name == "execveat"
}

// setLoginID sets the login user from a resolved id, ignoring "unset".
func setLoginID(out *schemas.Event, v []byte) {
	if len(v) > 0 && string(v) != "unset" {
		out.LoginID = string(v)
	}
}

// isSshdSessionClose reports whether a USER_END record's body is sshd's
// PAM session close (sudo and su write USER_END too).
func isSshdSessionClose(body []byte) bool {
	return bytes.Contains(body, []byte("op=PAM:session_close ")) &&
		(bytes.Contains(body, []byte(` exe="/usr/sbin/sshd" `)) || bytes.Contains(body, []byte(" exe=/usr/sbin/sshd ")))
}

// fillLogin reads a USER_LOGIN / USER_LOGOUT record. Its fields live in the
// nested msg='…': op, id or acct, exe, hostname, addr, terminal, res.
func (b *Builder) fillLogin(r *auditlog.Record, out *schemas.Event) {
	st := recState{enriched: r.Enriched()}
	var auid []byte
	body := r.Body()
	for f := range auditlog.Fields(body) {
		switch string(f.Key) {
		case "pid":
			b.tab.set(&out.PID, f.Value)
		case "ses":
			b.tab.set(&out.Ses, f.Value)
		case "auid":
			auid = b.appendID(auid[:0], f, &st, true)
		case "msg":
			b.fillLoginMsg(f.Value, &st, out)
		}
	}
	if out.LoginID == "" {
		setLoginID(out, auid)
	}
}

func (b *Builder) fillLoginMsg(msg []byte, st *recState, out *schemas.Event) {
	for f := range auditlog.Fields(msg) {
		switch string(f.Key) {
		case "id":
			b.scratch = b.appendID(b.scratch[:0], f, st, true)
			setLoginID(out, b.scratch)
		case "acct":
			if out.LoginID == "" {
				b.scratch = decodeValue(b.scratch[:0], f)
				setLoginID(out, b.scratch)
			}
		case "hostname":
			b.tab.set(&out.SrcHost, f.Value)
		case "addr":
			b.tab.set(&out.DestHost, f.Value)
		case "terminal":
			b.tab.set(&out.TTY, f.Value)
		case "res":
			out.Res = resWord(f.Value)
		}
	}
}

// isRefusedCommand reports whether a USER_CMD record's body is a command
// sudo refused (res=failed in its msg='…'). The commands sudo ran are
// events of their own execve; sudo's record of them adds nothing.
func isRefusedCommand(body []byte) bool {
	f, ok := auditlog.Lookup(body, "msg")
	if !ok {
		return false
	}
	res, ok := auditlog.Lookup(f.Value, "res")
	return ok && resWord(res.Value) == "failed"
}

// fillRefused reads sudo's USER_CMD record of a command it refused: a
// command event with res failed. The command never ran, so there is no
// argv: args are sudo's cmd= split at spaces (sudo logs the command line
// joined by spaces), title the same joined by NUL; exe is sudo (the
// program that wrote the record), euid the user refused (nothing ran as
// anyone else), pid sudo's; there is no ppid in the record.
func (b *Builder) fillRefused(r *auditlog.Record, out *schemas.Event) {
	t := &b.tab
	st := recState{enriched: r.Enriched()}
	out.Res = "failed"
	for f := range auditlog.Fields(r.Body()) {
		switch string(f.Key) {
		case "pid":
			t.set(&out.PID, f.Value)
		case "ses":
			t.set(&out.Ses, f.Value)
		case "auid":
			b.scratch = b.appendID(b.scratch[:0], f, &st, true)
			setLoginID(out, b.scratch)
		case "uid":
			m := t.mark()
			t.buf = b.appendID(t.buf, f, &st, true)
			t.setFrom(&out.EUID, m)
		case "msg":
			for g := range auditlog.Fields(f.Value) {
				switch string(g.Key) {
				case "cwd":
					m := t.mark()
					t.buf = decodeValue(t.buf, g)
					t.setFrom(&out.Cwd, m)
				case "cmd":
					b.scratch = decodeValue(b.scratch[:0], g)
					out.Args = strings.Fields(string(b.scratch))
					m := t.mark()
					t.buf = append(t.buf, strings.Join(out.Args, "\x00")...)
					t.setFrom(&out.Title, m)
				case "exe":
					m := t.mark()
					t.buf = decodeValue(t.buf, g)
					t.setFrom(&out.Exe, m)
				case "terminal":
					t.set(&out.TTY, g.Value)
				}
			}
		}
	}
}

// maxArgs bounds argc and argument indexes (the kernel's own limit on
// arguments is far lower for real input).
const maxArgs = 1 << 17

// argIndex parses aN and aN[M] keys.
func argIndex(k []byte) (idx int, chunked, ok bool) {
	if !isExecveArgKey(k) {
		return 0, false, false
	}
	i := 1
	for i < len(k) && k[i] >= '0' && k[i] <= '9' {
		idx = idx*10 + int(k[i]-'0')
		if idx >= maxArgs {
			return idx, false, true
		}
		i++
	}
	return idx, i < len(k), true
}

// fillKeys reads a TTY or USER_TTY record.
func (b *Builder) fillKeys(r *auditlog.Record, out *schemas.Event) {
	st := recState{enriched: r.Enriched()}
	var major, minor []byte
	haveTTY := false
	var walk func(body []byte)
	walk = func(body []byte) {
		for f := range auditlog.Fields(body) {
			switch string(f.Key) {
			case "pid":
				b.tab.set(&out.PID, f.Value)
			case "ses":
				b.tab.set(&out.Ses, f.Value)
			case "auid":
				b.scratch = b.appendID(b.scratch[:0], f, &st, true)
				setLoginID(out, b.scratch)
			case "major":
				major = f.Value
			case "minor":
				minor = f.Value
			case "tty", "terminal":
				if !f.Bare {
					b.tab.set(&out.TTY, f.Value)
					haveTTY = true
				}
			case "data":
				m := b.tab.mark()
				b.tab.buf = decodeValue(b.tab.buf, f)
				b.tab.setFrom(&out.Keys, m)
			case "msg":
				if f.Quote == '\'' {
					walk(f.Value)
				}
			}
		}
	}
	walk(r.Body())
	if major != nil && !haveTTY {
		if name := ttyName(major, minor); name != "" {
			b.tab.set(&out.TTY, []byte(name))
		}
	}
}

// ttyName names a terminal from its device numbers: pts for majors 136-143,
// ttyN for major 4.
func ttyName(major, minor []byte) string {
	ma, err1 := strconv.Atoi(string(major))
	mi, err2 := strconv.Atoi(string(minor))
	if err1 != nil || err2 != nil {
		return ""
	}
	switch {
	case ma >= 136 && ma <= 143:
		return "pts" + strconv.Itoa((ma-136)*256+mi)
	case ma == 4 && mi < 64:
		return "tty" + strconv.Itoa(mi)
	}
	return strconv.Itoa(ma) + ":" + strconv.Itoa(mi)
}

// escapeInvalid makes the event's strings valid UTF-8 reversibly: a value
// with invalid bytes gets its backslashes doubled and each invalid byte
// written \xNN, and its field name listed in Escaped. Valid values are
// left exactly as they are.
func escapeInvalid(e *schemas.Event) {
	fix := func(name string, s *string) {
		if utf8.ValidString(*s) {
			return
		}
		*s = schemas.EscapeInvalidUTF8(*s)
		e.Escaped = append(e.Escaped, name)
	}
	fix("title", &e.Title)
	fix("raw_data", &e.RawData)
	fix("keys", &e.Keys)
	fix("exe", &e.Exe)
	fix("cwd", &e.Cwd)
	fix("tty", &e.TTY)
	fix("srchost", &e.SrcHost)
	fix("desthost", &e.DestHost)
	fix("loginid", &e.LoginID)
	fix("euid", &e.EUID)
	argsBad := false
	for _, a := range e.Args {
		if !utf8.ValidString(a) {
			argsBad = true
			break
		}
	}
	if argsBad {
		for i := range e.Args {
			e.Args[i] = schemas.EscapeInvalidUTF8(e.Args[i])
		}
		e.Escaped = append(e.Escaped, "args")
	}
}
