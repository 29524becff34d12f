package auditgen

import (
	"strconv"
	"strings"

	"github.com/auditpipe/auditpipe/schemas"
)

const (
	subjSSHD = "system_u:system_r:sshd_t:s0-s0:c0.c1023"
	subjUser = "unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023"
	// execveChunk is the hex length of one piece of a split argument. The
	// kernel splits an argument whose encoding does not fit its 7 500-byte
	// record (MAX_EXECVE_AUDIT_LEN) into aN[i] pieces.
	execveChunk = 7000
	// proctitleMax is the kernel's MAX_PROCTITLE_AUDIT_LEN.
	proctitleMax = 128
	enrichSep    = 0x1d
)

// name is the user name of uid, as the ENRICHED part writes it.
func (g *Generator) name(uid uint64) string {
	switch uid {
	case 0:
		return "root"
	case uidCellAdmin:
		return "celladmin"
	case uidAuto:
		return "oracle-auto"
	case unset:
		return "unset"
	}
	if i := int(uid) - uidFirstOp; i >= 0 && i < len(g.ops) {
		return g.ops[i].login
	}
	return "unknown(" + strconv.FormatUint(uid, 10) + ")"
}

func (g *Generator) header(dst []byte, node, typ string, ev *Event) []byte {
	if node != "" {
		dst = append(dst, "node="...)
		dst = append(dst, node...)
		dst = append(dst, ' ')
	}
	dst = append(dst, "type="...)
	dst = append(dst, typ...)
	dst = append(dst, " msg=audit("...)
	dst = strconv.AppendInt(dst, ev.Sec, 10)
	dst = append(dst, '.', byte('0'+ev.Msec/100), byte('0'+ev.Msec/10%10), byte('0'+ev.Msec%10), ':')
	dst = strconv.AppendUint(dst, ev.Serial, 10)
	return append(dst, "): "...)
}

func kv(dst []byte, k string, v uint64) []byte {
	dst = append(dst, k...)
	dst = append(dst, '=')
	return strconv.AppendUint(dst, v, 10)
}

func (g *Generator) enrichName(dst []byte, k string, uid uint64) []byte {
	dst = append(dst, k...)
	dst = append(dst, `="`...)
	dst = append(dst, g.name(uid)...)
	return append(dst, '"')
}

// needsHex reports whether the kernel hex-encodes s (audit_string_contains_control:
// a byte below 0x21 or above 0x7e, or a double quote).
func needsHex(s string) bool {
	for i := range len(s) {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' {
			return true
		}
	}
	return false
}

func appendHex(dst []byte, s string) []byte {
	const digits = "0123456789ABCDEF"
	for i := range len(s) {
		dst = append(dst, digits[s[i]>>4], digits[s[i]&0xf])
	}
	return dst
}

// appendValue writes s quoted, or in hex when the kernel would.
func appendValue(dst []byte, s string) []byte {
	if needsHex(s) {
		return appendHex(dst, s)
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

func (s *step) ses() uint64 {
	switch {
	case s.op != nil && s.auid != unset:
		return s.op.ses
	case s.auid == uidAuto:
		return 900
	}
	return unset
}

func (s *step) tty() string {
	if s.op == nil {
		return "(none)"
	}
	return "pts" + strconv.Itoa(s.op.tty)
}

func (g *Generator) render(dst []byte, s *step, ev *Event) []byte {
	switch s.kind {
	case stepExec:
		ev.Type = "SYSCALL"
		if s.op != nil {
			ev.Kind = schemas.KindCommand
		}
		return g.renderExec(dst, s, ev)
	case stepPAM:
		ev.Type = s.recType
		if s.op != nil {
			switch s.recType {
			case "USER_LOGIN":
				ev.Kind = schemas.KindLogin
			case "USER_LOGOUT":
				ev.Kind = schemas.KindLogout
			}
		}
		return g.renderPAM(dst, s, ev)
	case stepLoginRec:
		ev.Type = "LOGIN"
		dst = g.header(dst, s.node, "LOGIN", ev)
		dst = kv(dst, "pid", s.pid)
		dst = append(dst, " uid=0 subj="+subjSSHD+" old-auid=4294967295 "...)
		dst = kv(dst, "auid", s.auid)
		dst = append(dst, " tty=(none) old-ses=4294967295 "...)
		dst = kv(dst, "ses", s.op.ses)
		dst = append(dst, " res=1"...)
		if g.cfg.Enriched {
			dst = append(dst, enrichSep)
			dst = append(dst, `UID="root" OLD-AUID="unset" `...)
			dst = g.enrichName(dst, "AUID", s.auid)
		}
		return append(dst, '\n')
	case stepTTY:
		ev.Type = "TTY"
		if s.op.keys {
			ev.Kind = schemas.KindKeys
		}
		dst = g.header(dst, s.node, "TTY", ev)
		dst = kv(dst, "tty pid", s.pid)
		dst = kv(append(dst, ' '), "uid", s.auid)
		dst = kv(append(dst, ' '), "auid", s.auid)
		dst = kv(append(dst, ' '), "ses", s.op.ses)
		dst = append(dst, " major=136 "...)
		dst = kv(dst, "minor", uint64(s.op.tty))
		dst = append(dst, ` comm="bash" data=`...)
		dst = appendHex(dst, s.data)
		if g.cfg.Enriched {
			dst = append(dst, enrichSep)
			dst = g.enrichName(dst, "UID", s.auid)
			dst = g.enrichName(append(dst, ' '), "AUID", s.auid)
		}
		return append(dst, '\n')
	case stepUserCmd:
		ev.Type = "USER_CMD"
		if !s.ok {
			ev.Kind = schemas.KindCommand
		}
		dst = g.header(dst, s.node, "USER_CMD", ev)
		dst = kv(dst, "pid", s.pid)
		dst = kv(append(dst, ' '), "uid", s.auid)
		dst = kv(append(dst, ' '), "auid", s.auid)
		dst = kv(append(dst, ' '), "ses", s.ses())
		dst = append(dst, " subj="+subjUser+" msg='cwd="...)
		dst = appendValue(dst, s.cwd)
		dst = append(dst, " cmd="...)
		dst = appendValue(dst, strings.Join(s.argv, " "))
		dst = append(dst, ` exe="/usr/bin/sudo" terminal=pts/`...)
		dst = strconv.AppendInt(dst, int64(s.op.tty), 10)
		if s.ok {
			dst = append(dst, " res=success'"...)
		} else {
			dst = append(dst, " res=failed'"...)
		}
		if g.cfg.Enriched {
			dst = append(dst, enrichSep)
			dst = g.enrichName(dst, "UID", s.auid)
			dst = g.enrichName(append(dst, ' '), "AUID", s.auid)
		}
		return append(dst, '\n')
	}
	panic("auditgen: unknown step kind")
}

func (g *Generator) renderPAM(dst []byte, s *step, ev *Event) []byte {
	dst = g.header(dst, s.node, s.recType, ev)
	uid := uint64(0)
	exe, acct, term, host := "/usr/sbin/sshd", "", "ssh", "?"
	subj := subjSSHD
	if s.op != nil {
		acct, host = s.op.login, s.op.addr
		switch s.data {
		case "su":
			uid, exe, acct, term, host, subj = s.op.uid, "/usr/bin/su", "celladmin", "pts/"+strconv.Itoa(s.op.tty), "?", subjUser
		case "sudo":
			uid, exe, acct, term, host, subj = s.op.uid, "/usr/bin/sudo", "root", "/dev/pts/"+strconv.Itoa(s.op.tty), "?", subjUser
		}
	} else {
		exe, acct, term, subj = "/usr/sbin/cron", "root", "cron", "system_u:system_r:crond_t:s0-s0:c0.c1023"
	}
	dst = kv(dst, "pid", s.pid)
	dst = kv(append(dst, ' '), "uid", uid)
	dst = kv(append(dst, ' '), "auid", s.auid)
	dst = kv(append(dst, ' '), "ses", s.ses())
	dst = append(dst, " subj="...)
	dst = append(dst, subj...)
	dst = append(dst, " msg='op="...)
	login := s.recType == "USER_LOGIN" || s.recType == "USER_LOGOUT"
	switch {
	case login:
		dst = append(dst, "login "...)
		dst = kv(dst, "id", s.auid)
		term = "/dev/pts/" + strconv.Itoa(s.op.tty)
	default:
		switch s.recType {
		case "USER_AUTH":
			dst = append(dst, "PAM:authentication grantors=pam_unix"...)
		case "USER_ACCT":
			dst = append(dst, "PAM:accounting grantors=pam_unix,pam_localuser"...)
		case "USER_START":
			dst = append(dst, "PAM:session_open grantors=pam_selinux,pam_loginuid,pam_keyinit,pam_limits,pam_systemd,pam_unix"...)
		case "USER_END":
			dst = append(dst, "PAM:session_close grantors=pam_selinux,pam_loginuid,pam_keyinit,pam_limits,pam_systemd,pam_unix"...)
		default: // CRED_ACQ, CRED_DISP, CRED_REFR
			dst = append(dst, "PAM:setcred grantors=pam_unix"...)
		}
		dst = append(dst, ` acct="`...)
		dst = append(dst, acct...)
		dst = append(dst, '"')
	}
	dst = append(dst, ` exe="`...)
	dst = append(dst, exe...)
	dst = append(dst, `" hostname=`...)
	dst = append(dst, host...)
	dst = append(dst, " addr="...)
	dst = append(dst, host...)
	dst = append(dst, " terminal="...)
	dst = append(dst, term...)
	dst = append(dst, " res=success'"...)
	if g.cfg.Enriched {
		dst = append(dst, enrichSep)
		dst = g.enrichName(dst, "UID", uid)
		dst = g.enrichName(append(dst, ' '), "AUID", s.auid)
		if login {
			dst = g.enrichName(append(dst, ' '), "ID", s.auid)
		}
	}
	return append(dst, '\n')
}

func (g *Generator) renderExec(dst []byte, s *step, ev *Event) []byte {
	uid, euid := s.euid, s.euid
	if s.op != nil && s.euid == 0 { // su, sudo: setuid root, the caller's uid kept
		uid = s.auid
	}
	if s.op != nil && s.euid == uidCellAdmin {
		uid = uidCellAdmin
	}
	exe := s.argv[0]
	if !strings.HasPrefix(exe, "/") {
		exe = "/usr/bin/" + exe
	}
	comm := exe[strings.LastIndexByte(exe, '/')+1:]
	if len(comm) > 15 {
		comm = comm[:15]
	}
	items := uint64(2)
	if !s.ok {
		items = 1
	}
	dst = g.header(dst, s.node, "SYSCALL", ev)
	if s.ok {
		dst = append(dst, "arch=c000003e syscall=59 success=yes exit=0 a0=55d5a1e0 a1=55d5a2f0 a2=55d5a300 a3=0 "...)
	} else {
		dst = append(dst, "arch=c000003e syscall=59 success=no exit=-2 a0=55d5a1e0 a1=55d5a2f0 a2=55d5a300 a3=0 "...)
	}
	dst = kv(dst, "items", items)
	dst = kv(append(dst, ' '), "ppid", s.ppid)
	dst = kv(append(dst, ' '), "pid", s.pid)
	dst = kv(append(dst, ' '), "auid", s.auid)
	dst = kv(append(dst, ' '), "uid", uid)
	dst = kv(append(dst, ' '), "gid", uid)
	for _, k := range []string{" euid", " suid", " fsuid", " egid", " sgid", " fsgid"} {
		dst = kv(dst, k, euid)
	}
	dst = append(dst, " tty="...)
	dst = append(dst, s.tty()...)
	dst = kv(append(dst, ' '), "ses", s.ses())
	dst = append(dst, ` comm="`...)
	dst = append(dst, comm...)
	dst = append(dst, `" exe="`...)
	dst = append(dst, exe...)
	dst = append(dst, `" subj=`+subjUser+` key="opctl_cmd"`...)
	if g.cfg.Enriched {
		dst = append(dst, enrichSep)
		dst = append(dst, "ARCH=x86_64 SYSCALL=execve "...)
		dst = g.enrichName(dst, "AUID", s.auid)
		dst = g.enrichName(append(dst, ' '), "UID", uid)
		dst = g.enrichName(append(dst, ' '), "GID", uid)
		for _, k := range []string{" EUID", " SUID", " FSUID", " EGID", " SGID", " FSGID"} {
			dst = g.enrichName(dst, k, euid)
		}
	}
	dst = append(dst, '\n')
	if s.ok {
		dst = g.renderExecve(dst, s, ev)
	}
	dst = g.header(dst, s.node, "CWD", ev)
	dst = append(dst, "cwd="...)
	dst = appendValue(dst, s.cwd)
	dst = append(dst, '\n')
	if s.ok {
		dst = g.path(dst, s, ev, 0, exe, "NORMAL")
		dst = g.path(dst, s, ev, 1, "/lib64/ld-linux-x86-64.so.2", "NORMAL")
	} else {
		dst = g.path(dst, s, ev, 0, exe, "UNKNOWN")
	}
	dst = g.header(dst, s.node, "PROCTITLE", ev)
	dst = append(dst, "proctitle="...)
	g.title = g.title[:0]
	for i, a := range s.argv {
		if i > 0 {
			g.title = append(g.title, 0)
		}
		g.title = append(g.title, a...)
	}
	if len(g.title) > proctitleMax {
		g.title = g.title[:proctitleMax]
	}
	dst = appendHex(dst, string(g.title))
	dst = append(dst, '\n')
	dst = g.header(dst, s.node, "EOE", ev)
	return append(dst, '\n')
}

func (g *Generator) path(dst []byte, s *step, ev *Event, item uint64, name, nametype string) []byte {
	dst = g.header(dst, s.node, "PATH", ev)
	dst = kv(dst, "item", item)
	dst = append(dst, ` name="`...)
	dst = append(dst, name...)
	if nametype == "UNKNOWN" {
		dst = append(dst, `" nametype=UNKNOWN cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0`...)
	} else {
		dst = kv(append(dst, `" `...), "inode", 1180000+uint64(len(name)))
		dst = append(dst, " dev=fd:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0"...)
		if g.cfg.Enriched {
			dst = append(dst, enrichSep)
			dst = append(dst, `OUID="root" OGID="root"`...)
		}
	}
	return append(dst, '\n')
}

// renderExecve writes the EXECVE records: one, or several when an argument
// is split (aN_len=LEN aN[0]=… then one record per further piece; the
// arguments after it start a record of their own).
func (g *Generator) renderExecve(dst []byte, s *step, ev *Event) []byte {
	dst = g.header(dst, s.node, "EXECVE", ev)
	dst = kv(dst, "argc", uint64(len(s.argv)))
	for i, a := range s.argv {
		if 2*len(a) <= execveChunk {
			dst = strconv.AppendInt(append(dst, " a"...), int64(i), 10)
			dst = appendValue(append(dst, '='), a)
			continue
		}
		dst = strconv.AppendInt(append(dst, " a"...), int64(i), 10)
		dst = kv(dst, "_len", uint64(len(a)))
		for piece := 0; len(a) > 0; piece++ {
			n := min(len(a), execveChunk/2)
			if piece > 0 {
				dst = append(dst, '\n')
				dst = g.header(dst, s.node, "EXECVE", ev)
			} else {
				dst = append(dst, ' ')
			}
			dst = strconv.AppendInt(append(dst, 'a'), int64(i), 10)
			dst = strconv.AppendInt(append(dst, '['), int64(piece), 10)
			dst = appendHex(append(dst, "]="...), a[:n])
			a = a[n:]
		}
		if i+1 < len(s.argv) {
			dst = append(dst, '\n')
			dst = g.header(dst, s.node, "EXECVE", ev)
			dst = dst[:len(dst)-1] // the header's trailing space: each argument writes its own
		}
	}
	return append(dst, '\n')
}
