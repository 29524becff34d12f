package builder

import (
	"bytes"
	"strconv"
	"syscall"

	"github.com/elastic/go-libaudit/v2/auparse"

	"github.com/auditpipe/auditpipe/collector/auditlog"
)

// This file renders records in interpreted form, as `ausearch -i` does:
// ids resolved to names, hex-encoded strings decoded, arch, syscall, exit
// code and file mode made symbolic, the timestamp in UTC calendar form.

// fieldKind says how a field's value is interpreted.
type fieldKind uint8

const (
	kindPlain fieldKind = iota
	kindUID
	kindGID
	kindEncoded // hex when unquoted, literal when quoted
	kindProctitle
	kindArch
	kindSyscall
	kindExit
	kindSyscallArg
	kindMode
	kindRes
	kindTTYData
	kindNested // msg='…' of user-space records
	kindSession
	kindCap // capability set, hex bitmap
	kindKey // audit rule keys, encoded, several separated by 0x01
)

func classifyField(key []byte, recType []byte) fieldKind {
	switch string(key) {
	case "auid", "uid", "euid", "suid", "fsuid", "ouid", "oauid", "obj_uid", "id",
		"old-auid", "new-auid", "sauid", "inode_uid", "iuid", "loginuid":
		return kindUID
	case "gid", "egid", "sgid", "fsgid", "ogid", "obj_gid", "new_gid", "inode_gid", "igid":
		return kindGID
	case "key":
		return kindKey
	case "comm", "exe", "name", "cwd", "path", "acct", "cmd", "ocomm",
		"root_dir", "watch", "dir", "file", "old_name", "new_name":
		return kindEncoded
	case "proctitle":
		return kindProctitle
	case "arch":
		return kindArch
	case "syscall":
		return kindSyscall
	case "exit":
		return kindExit
	case "a0", "a1", "a2", "a3":
		if string(recType) == "EXECVE" {
			return kindEncoded
		}
		if string(recType) == "SYSCALL" {
			return kindSyscallArg
		}
		return kindPlain
	case "mode":
		return kindMode
	case "res", "result":
		return kindRes
	case "data":
		// Only the kernel's TTY record carries hex keystrokes; ausearch
		// prints USER_TTY's data as it is.
		if string(recType) == "TTY" {
			return kindTTYData
		}
		return kindPlain
	case "cap_fp", "cap_fi", "cap_pp", "cap_pi", "cap_pe", "cap_pa",
		"old_pp", "old_pi", "old_pe", "old_pa":
		return kindCap
	case "fp", "fi", "pp", "pi", "pe", "pa":
		if string(recType) == "BPRM_FCAPS" {
			return kindCap
		}
		return kindPlain
	case "msg":
		return kindNested
	case "ses", "old-ses":
		return kindSession
	}
	if string(recType) == "EXECVE" && isExecveArgKey(key) {
		return kindEncoded
	}
	return kindPlain
}

// isExecveArgKey matches aN and aN[M] (not argc, not aN_len).
func isExecveArgKey(k []byte) bool {
	if len(k) < 2 || k[0] != 'a' {
		return false
	}
	i := 1
	for i < len(k) && k[i] >= '0' && k[i] <= '9' {
		i++
	}
	if i == 1 {
		return false
	}
	if i == len(k) {
		return true
	}
	if k[i] != '[' || k[len(k)-1] != ']' {
		return false
	}
	for j := i + 1; j < len(k)-1; j++ {
		if k[j] < '0' || k[j] > '9' {
			return false
		}
	}
	return len(k)-1 > i+1
}

// recState carries what later fields of a record need from earlier ones.
type recState struct {
	arch     string
	enriched []byte
}

// appendRecord appends rec in interpreted form, ending in " \n". Each of
// its top-level fields is also handed to b.see for role (see recRole).
func (b *Builder) appendRecord(dst []byte, rec *auditlog.Record, role recRole) []byte {
	if n := rec.Node(); len(n) > 0 {
		dst = append(dst, "node="...)
		dst = append(dst, n...)
		dst = append(dst, ' ')
	}
	dst = append(dst, "type="...)
	dst = append(dst, rec.Type()...)
	dst = append(dst, " msg=audit("...)
	b.times.set(rec.Sec)
	dst = append(dst, b.times.audit...)
	dst = append(dst, '.', byte('0'+rec.Msec/100), byte('0'+rec.Msec/10%10), byte('0'+rec.Msec%10))
	dst = append(dst, ':')
	dst = strconv.AppendUint(dst, rec.Serial, 10)
	dst = append(dst, ") : "...)
	st := recState{enriched: rec.Enriched()}
	dst = b.appendFields(dst, rec.Body(), rec.Type(), &st, role)
	return append(dst, " \n"...)
}

// appendFields appends the fields of body in interpreted form. Unless role
// is roleNone, each field is handed to b.see with its rendered value (not
// those nested in msg='…', which the builder never reads).
func (b *Builder) appendFields(dst, body, recType []byte, st *recState, role recRole) []byte {
	first := true
	for f := range auditlog.Fields(body) {
		if !first {
			dst = append(dst, ' ')
		}
		first = false
		dst = append(dst, f.Key...)
		if f.Bare {
			if role != roleNone {
				b.see(role, f, st, nil)
			}
			continue
		}
		dst = append(dst, '=')
		start := len(dst)
		dst = b.appendValue(dst, f, recType, st)
		if role != roleNone {
			b.see(role, f, st, dst[start:])
		}
	}
	return dst
}

func (b *Builder) appendValue(dst []byte, f auditlog.Field, recType []byte, st *recState) []byte {
	switch classifyField(f.Key, recType) {
	case kindUID:
		return b.appendID(dst, f, st, true)
	case kindGID:
		return b.appendID(dst, f, st, false)
	case kindEncoded:
		return appendDecoded(dst, f, false)
	case kindProctitle:
		return appendDecoded(dst, f, true)
	case kindKey:
		return b.appendKeys(dst, f)
	case kindArch:
		st.arch = b.archName(f.Value)
		if st.arch != "" {
			return append(dst, st.arch...)
		}
	case kindSyscall:
		if name := b.syscallName(st.arch, f.Value); name != "" {
			return append(dst, name...)
		}
	case kindExit:
		return appendExit(dst, f.Value)
	case kindSyscallArg:
		if f.Quote == 0 && len(f.Value) > 0 && !bytes.HasPrefix(f.Value, []byte("0x")) {
			dst = append(dst, "0x"...)
		}
	case kindMode:
		return appendMode(dst, f.Value)
	case kindRes:
		return append(dst, resWord(f.Value)...)
	case kindTTYData:
		if f.Quote == 0 && auditlog.IsHex(f.Value) {
			return appendReadableKeys(dst, auditlog.AppendHexDecoded(b.scratch[:0], f.Value))
		}
		return appendReadableKeys(dst, f.Value)
	case kindSession:
		if string(f.Value) == "4294967295" {
			return append(dst, "unset"...)
		}
	case kindCap:
		if f.Quote == 0 {
			return appendCaps(dst, f.Value)
		}
	case kindPlain:
		// ausearch prints a field it does not interpret as it is,
		// quotes included.
		if f.Quote != 0 {
			dst = append(dst, f.Quote)
			dst = append(dst, f.Value...)
			return append(dst, f.Quote)
		}
		return append(dst, f.Value...)
	case kindNested:
		if f.Quote == '\'' {
			dst = append(dst, '\'')
			dst = b.appendFields(dst, f.Value, recType, st, roleNone)
			return append(dst, '\'')
		}
	}
	if f.Quote == '"' {
		return append(dst, f.Value...)
	}
	if f.Quote != 0 {
		dst = append(dst, f.Quote)
		dst = append(dst, f.Value...)
		return append(dst, f.Quote)
	}
	return append(dst, f.Value...)
}

// appendID resolves a uid or gid: the ENRICHED section's name first (the
// host resolved it when it wrote the record), then the passwd/group files.
func (b *Builder) appendID(dst []byte, f auditlog.Field, st *recState, user bool) []byte {
	if f.Quote != 0 {
		return append(dst, f.Value...)
	}
	if v, ok := lookupEnriched(st.enriched, f.Key); ok {
		return append(dst, v...)
	}
	cache := &b.gidCache
	if user {
		cache = &b.uidCache
	}
	if name, ok := cache.get(f.Value); ok {
		return append(dst, name...)
	}
	start := len(dst)
	dst = b.appendResolvedID(dst, f.Value, user)
	// An id not found is not remembered: its user may be created later
	// (the agent's operator), and Names reads the file again.
	if !bytes.HasPrefix(dst[start:], []byte("unknown(")) {
		cache.put(f.Value, dst[start:])
	}
	return dst
}

// idCache remembers the last few ids resolved: a log repeats the same
// handful (root, the operator, the service account) on every record.
type idCache struct {
	keys, names [4][]byte
	next        int
}

func (c *idCache) get(id []byte) ([]byte, bool) {
	for i := range c.keys {
		if c.names[i] != nil && bytes.Equal(c.keys[i], id) {
			return c.names[i], true
		}
	}
	return nil, false
}

func (c *idCache) put(id, name []byte) {
	i := c.next
	c.keys[i] = append(c.keys[i][:0], id...)
	c.names[i] = append(c.names[i][:0], name...)
	c.next = (i + 1) % len(c.keys)
}

// appendResolvedID resolves a numeric id through the passwd/group files.
func (b *Builder) appendResolvedID(dst, v []byte, user bool) []byte {
	id, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return append(dst, v...)
	}
	if id == -1 || id == 4294967295 {
		return append(dst, "unset"...)
	}
	var name string
	var ok bool
	if user {
		name, ok = b.names.User(uint64(id))
	} else {
		name, ok = b.names.Group(uint64(id))
	}
	if ok {
		return append(dst, name...)
	}
	dst = append(dst, "unknown("...)
	dst = append(dst, v...)
	return append(dst, ')')
}

// lookupEnriched finds KEY (the upper-case name of key) in the ENRICHED part.
func lookupEnriched(enriched, key []byte) ([]byte, bool) {
	for f := range auditlog.Fields(enriched) {
		if bytes.EqualFold(f.Key, key) {
			return f.Value, true
		}
	}
	return nil, false
}

// appendDecoded decodes an encoded string: quoted means literal, unquoted
// hex is decoded, anything else ("(null)", "?") stays. nulAsSpace renders
// proctitle's NUL separators as spaces, as ausearch does.
func appendDecoded(dst []byte, f auditlog.Field, nulAsSpace bool) []byte {
	if f.Quote != 0 || !auditlog.IsHex(f.Value) {
		return append(dst, f.Value...)
	}
	start := len(dst)
	dst = auditlog.AppendHexDecoded(dst, f.Value)
	if nulAsSpace {
		end := len(dst)
		for end > start && dst[end-1] == 0 {
			end--
		}
		dst = dst[:end]
		for i := start; i < end; i++ {
			if dst[i] == 0 {
				dst[i] = ' '
			}
		}
	}
	return escapeControls(dst, start)
}

// escapeControls writes each byte below 0x20 of dst[start:] as a
// backslash and three octal digits (a newline becomes \012), as ausearch
// does for decoded strings, so that a record stays on one line. It works
// in place, from the end, without a second buffer.
func escapeControls(dst []byte, start int) []byte {
	n := 0
	for _, c := range dst[start:] {
		if c < 0x20 {
			n++
		}
	}
	if n == 0 {
		return dst
	}
	old := len(dst)
	dst = append(dst, make([]byte, 3*n)...)
	j := len(dst)
	for i := old - 1; i >= start; i-- {
		c := dst[i]
		if c >= 0x20 {
			j--
			dst[j] = c
			continue
		}
		j -= 4
		dst[j], dst[j+1], dst[j+2], dst[j+3] = '\\', '0'+c>>6, '0'+(c>>3)&7, '0'+c&7
	}
	return dst
}

// appendKeys renders a key field. A record of an event that matched
// several keyed rules carries them hex-encoded, separated by 0x01;
// ausearch prints each as a key= field of its own (key=opctl key=execs).
func (b *Builder) appendKeys(dst []byte, f auditlog.Field) []byte {
	if f.Quote != 0 || !auditlog.IsHex(f.Value) {
		return append(dst, f.Value...)
	}
	b.scratch = auditlog.AppendHexDecoded(b.scratch[:0], f.Value)
	rest := b.scratch
	for {
		seg := rest
		j := bytes.IndexByte(rest, 0x01)
		if j >= 0 {
			seg = rest[:j]
		}
		start := len(dst)
		dst = escapeControls(append(dst, seg...), start)
		if j < 0 {
			return dst
		}
		dst = append(dst, " key="...)
		rest = rest[j+1:]
	}
}

// decodeValue returns the decoded bytes of an encoded field, appended to dst.
func decodeValue(dst []byte, f auditlog.Field) []byte {
	if f.Quote != 0 || !auditlog.IsHex(f.Value) {
		return append(dst, f.Value...)
	}
	return auditlog.AppendHexDecoded(dst, f.Value)
}

// lookupMemo remembers the last arch and syscall resolved: a collector
// sees the same few values over and over.
type lookupMemo struct {
	archHex, arch []byte
	archName      string
	sysArch       string
	sysNum        []byte
	sysName       string
	archCached    bool
}

func (b *Builder) archName(v []byte) string {
	m := &b.memo
	if m.archCached && bytes.Equal(v, m.archHex) {
		return m.archName
	}
	name := ""
	if n, err := strconv.ParseUint(string(v), 16, 32); err == nil {
		name = auparse.AuditArchNames[auparse.AuditArch(n)]
	}
	m.archHex, m.archName, m.archCached = append(m.archHex[:0], v...), name, true
	return name
}

func (b *Builder) syscallName(arch string, v []byte) string {
	if arch == "" {
		arch = "x86_64"
	}
	m := &b.memo
	if m.sysName != "" && arch == m.sysArch && bytes.Equal(v, m.sysNum) {
		return m.sysName
	}
	n, err := strconv.Atoi(string(v))
	if err != nil {
		return ""
	}
	name := auparse.AuditSyscalls[arch][n]
	m.sysArch, m.sysNum, m.sysName = arch, append(m.sysNum[:0], v...), name
	return name
}

// appendExit renders a negative exit code as ausearch does:
// ENOENT(No such file or directory).
func appendExit(dst, v []byte) []byte {
	n, err := strconv.Atoi(string(v))
	if err != nil || n >= 0 {
		return append(dst, v...)
	}
	name, ok := auparse.AuditErrnoToName[-n]
	if !ok {
		return append(dst, v...)
	}
	dst = append(dst, name...)
	msg := syscall.Errno(-n).Error()
	if msg == "" {
		return dst
	}
	dst = append(dst, '(')
	if c := msg[0]; c >= 'a' && c <= 'z' {
		dst = append(dst, c-'a'+'A')
		msg = msg[1:]
	}
	dst = append(dst, msg...)
	return append(dst, ')')
}

// appendMode renders an octal st_mode as ausearch does: file,755 or dir,sticky,777.
func appendMode(dst, v []byte) []byte {
	m, err := strconv.ParseUint(string(v), 8, 32)
	if err != nil {
		return append(dst, v...)
	}
	switch m & 0o170000 {
	case 0o140000:
		dst = append(dst, "socket,"...)
	case 0o120000:
		dst = append(dst, "link,"...)
	case 0o100000:
		dst = append(dst, "file,"...)
	case 0o060000:
		dst = append(dst, "block,"...)
	case 0o040000:
		dst = append(dst, "dir,"...)
	case 0o020000:
		dst = append(dst, "character,"...)
	case 0o010000:
		dst = append(dst, "fifo,"...)
	}
	if m&0o4000 != 0 {
		dst = append(dst, "suid,"...)
	}
	if m&0o2000 != 0 {
		dst = append(dst, "sgid,"...)
	}
	if m&0o1000 != 0 {
		dst = append(dst, "sticky,"...)
	}
	p := m & 0o777
	return append(dst, byte('0'+p>>6), byte('0'+(p>>3)&7), byte('0'+p&7))
}

func resWord(v []byte) string {
	switch string(v) {
	case "1", "success", "yes":
		return "success"
	case "0", "failed", "fail", "no":
		return "failed"
	}
	return string(v)
}

// appendReadableKeys renders keystrokes as ausearch does for TTY data:
// named keys as <ret>, <backspace>, <up>, <^C>…, and the runs of other
// bytes in double quotes (with \" and \\, and bytes below 0x20 or from
// 0x7f up in octal), all separated by commas: <up>,"ls -l",<ret>.
func appendReadableKeys(dst, keys []byte) []byte {
	inRun := false
	for i := 0; i < len(keys); {
		name, n := namedKey(keys[i:])
		if n > 0 {
			if inRun {
				dst = append(dst, '"')
				inRun = false
			}
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '<')
			dst = append(dst, name...)
			dst = append(dst, '>')
			i += n
			continue
		}
		if !inRun {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '"')
			inRun = true
		}
		switch c := keys[i]; {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20 || c >= 0x7f:
			dst = append(dst, '\\', '0'+c>>6, '0'+(c>>3)&7, '0'+c&7)
		default:
			dst = append(dst, c)
		}
		i++
	}
	if inRun {
		dst = append(dst, '"')
	}
	return dst
}

// ctrlNames are the names of the control keys ausearch 3.0.9 names, by byte
// (empty: printed in a quoted run).
var ctrlNames = [0x20]string{
	1: "^A", 2: "^B", 3: "^C", 4: "^D", 5: "^E", 6: "^F", 7: "^G", 8: "backspace",
	9: "tab", 10: "nl", 11: "^K", 12: "^L", 13: "ret", 14: "^N", 15: "^O", 16: "^P",
	17: "^Q", 18: "^R", 19: "^S", 20: "^T", 21: "^U", 22: "^V", 23: "^W", 24: "^X",
	25: "^Y", 26: "^Z", 27: "esc",
}

// escKeys are the escape sequences ausearch 3.0.9 names (checked against
// it), after ESC.
var escKeys = [...]struct{ seq, name string }{
	{"[A", "up"}, {"[B", "down"}, {"[C", "right"}, {"[D", "left"},
	{"OA", "up"}, {"OB", "down"}, {"OC", "right"}, {"OD", "left"},
	{"[H", "home"}, {"[F", "end"}, {"[Z", "back-tab"},
	{"[1~", "home"}, {"[2~", "insert"}, {"[3~", "delete"}, {"[4~", "end"},
	{"[5~", "page-up"}, {"[6~", "page-down"},
	{"OP", "F1"}, {"OQ", "F2"}, {"OR", "F3"}, {"OS", "F4"},
	{"[11~", "F1"}, {"[12~", "F2"}, {"[13~", "F3"}, {"[14~", "F4"}, {"[15~", "F5"},
	{"[17~", "F6"}, {"[18~", "F7"}, {"[19~", "F8"}, {"[20~", "F9"}, {"[21~", "F10"},
	{"[23~", "F11"}, {"[24~", "F12"},
}

// namedKey returns the name of the key that b starts with and its length
// in bytes, or 0.
func namedKey(b []byte) (string, int) {
	c := b[0]
	if c == 0x7f {
		return "backspace", 1
	}
	if c >= 0x20 {
		return "", 0
	}
	if c == 0x1b {
		for _, k := range escKeys {
			if len(b) > len(k.seq) && string(b[1:1+len(k.seq)]) == k.seq {
				return k.name, 1 + len(k.seq)
			}
		}
	}
	if name := ctrlNames[c]; name != "" {
		return name, 1
	}
	return "", 0
}

// capNames are the capability names ausearch prints, by bit
// (linux/capability.h, as libcap-ng names them).
var capNames = [...]string{
	"chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid",
	"setpcap", "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw",
	"ipc_lock", "ipc_owner", "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
	"sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time", "sys_tty_config", "mknod",
	"lease", "audit_write", "audit_control", "setfcap", "mac_override", "mac_admin", "syslog",
	"wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
}

// appendCaps renders a capability set (hex bitmap) as ausearch does:
// chown,net_bind_service, or none. A value that is not hex, or a bit
// without a name, leaves the value as it is.
func appendCaps(dst, v []byte) []byte {
	m, err := strconv.ParseUint(string(v), 16, 64)
	if err != nil || m>>len(capNames) != 0 {
		return append(dst, v...)
	}
	if m == 0 {
		return append(dst, "none"...)
	}
	first := true
	for i, name := range capNames {
		if m&(1<<i) != 0 {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = append(dst, name...)
		}
	}
	return dst
}
