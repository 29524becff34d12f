// Package auditgen generates realistic auditd traffic for the load harness
// and the fault suite: operator sessions (sshd's login records, commands as
// SYSCALL/EXECVE/CWD/PATH/PROCTITLE/EOE, su to a service account, sudo with
// its USER_CMD records, sudo refusals, pam_tty_audit keystrokes, logouts)
// beside noise from users nobody audits (an automation account, daemons
// without a login uid), in auditd's RAW or ENRICHED format, optionally with
// node= prefixes as an aggregating auditd writes them, and with arguments
// long enough that the kernel splits them over several EXECVE records.
//
// A Generator is deterministic for its Config (seeded) except for the
// timestamps, which the caller gives. Every audit event gets a serial of its
// own. For each event it reports whether the collector, run with the
// Generator's passwd and group files and grants (and its defaults otherwise:
// logout_from_session_close off, all_users off), emits exactly one contract
// event for it, and that event's id: the harness checks ClickHouse and the
// SIEM against them. Writer writes a Generator's events into an audit log at
// a target rate and rotates it as auditd does.
package auditgen

import (
	"encoding/hex"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/auditpipe/auditpipe/schemas"
)

// Config configures a Generator. The zero value is usable: every field has
// a default.
type Config struct {
	// Seed makes the traffic reproducible (default 1).
	Seed uint64
	// Host names the events of records without a node= prefix: it must be
	// the collector's host setting. Default "loadgen".
	Host string
	// Nodes are node= prefixes, as an aggregating auditd (audisp-remote)
	// writes them; each session runs on one of them. Empty: no prefix.
	Nodes []string
	// Operators is the number of operator login users, each with a grant.
	// Default 8.
	Operators int
	// CommandAuditEvery gives one operator in CommandAuditEvery a
	// COMMAND_AUDIT grant (its keystrokes are not emitted), the others
	// COMMAND_KEYSTROKE_AUDIT. Default 2; negative: none, as the
	// collector's static grants (collector.grants, --grant), which have no
	// audit type, audit keystrokes.
	CommandAuditEvery int
	// Enriched writes auditd's ENRICHED format (log_format = ENRICHED: the
	// record's ids resolved after a 0x1d separator).
	Enriched bool
	// SplitEvery makes one operator command in SplitEvery carry an
	// argument of 9 000 bytes that the kernel splits over several EXECVE
	// records (aN_len, aN[i]). Default 500; negative: never.
	SplitEvery int
	// NoisePercent is the share of activities by users without a grant
	// (an automation account, daemons with no login uid): records the
	// collector reads and skips. Default 15; negative: none.
	NoisePercent int
	// FirstSerial is the serial of the first event (default 1000).
	FirstSerial uint64
}

// Event describes one audit event (one serial) that Append wrote.
type Event struct {
	// Host is the event's host: its node= prefix, or Config.Host.
	Host   string
	Sec    int64
	Msec   int
	Serial uint64
	// Type is the event's first record type (SYSCALL for a command).
	Type string
	// Records is the number of lines written.
	Records int
	// Kind is the contract event the collector emits for it, or "" when it
	// emits none (noise, PAM records, keystrokes of a COMMAND_AUDIT grant).
	Kind schemas.Kind
}

// Expected reports whether the collector emits a contract event for e.
func (e Event) Expected() bool { return e.Kind != "" }

// ID is the event_id the collector gives e's contract event.
func (e Event) ID() string {
	return string(schemas.AppendEventID(nil, e.Host, e.Sec, e.Msec, e.Serial))
}

// Stats counts what a Generator wrote.
type Stats struct {
	Events   uint64 // audit events (serials)
	Records  uint64 // lines
	Expected uint64 // contract events the collector emits for them
}

// Generator produces audit events. It is not safe for concurrent use.
type Generator struct {
	cfg    Config
	rng    *rand.Rand
	serial uint64
	ops    []*operator
	queue  []step
	stats  Stats
	sesSeq uint64
	pidSeq uint64
	long   []byte
	title  []byte
}

const (
	uidCellAdmin = 1002
	uidAuto      = 1500
	uidFirstOp   = 2001
	unset        = 4294967295
)

// operator is one login user and its session, if any.
type operator struct {
	login    string
	uid      uint64
	keys     bool // keystroke audit
	node     string
	online   bool
	ses      uint64
	sshdPID  uint64 // sshd's session process
	shellPID uint64
	addr     string
	tty      int
	suPID    uint64 // su shell while su'd to celladmin, else 0
}

// step is one audit event to write.
type step struct {
	kind    stepKind
	op      *operator
	argv    []string
	euid    uint64
	ppid    uint64
	pid     uint64
	cwd     string
	ok      bool
	recType string
	data    string
	auid    uint64
	node    string
}

type stepKind uint8

const (
	stepExec     stepKind = iota // SYSCALL, EXECVE…, CWD, PATH, PATH, PROCTITLE, EOE
	stepPAM                      // one user-space record (USER_AUTH, CRED_ACQ, …)
	stepLoginRec                 // the kernel's LOGIN record (auid set)
	stepTTY                      // pam_tty_audit's TTY record
	stepUserCmd                  // sudo's USER_CMD (ok: res=success)
)

// New returns a Generator.
func New(cfg Config) *Generator {
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.Host == "" {
		cfg.Host = "loadgen"
	}
	if cfg.Operators <= 0 {
		cfg.Operators = 8
	}
	if cfg.CommandAuditEvery == 0 {
		cfg.CommandAuditEvery = 2
	}
	if cfg.SplitEvery == 0 {
		cfg.SplitEvery = 500
	}
	if cfg.NoisePercent == 0 {
		cfg.NoisePercent = 15
	}
	if cfg.FirstSerial == 0 {
		cfg.FirstSerial = 1000
	}
	g := &Generator{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		serial: cfg.FirstSerial, sesSeq: 500, pidSeq: 10000}
	for i := range cfg.Operators {
		var id [16]byte
		for j := range id {
			id[j] = byte(g.rng.Uint32())
		}
		op := &operator{login: hex.EncodeToString(id[:]), uid: uint64(uidFirstOp + i),
			keys: cfg.CommandAuditEvery < 0 || i%cfg.CommandAuditEvery != cfg.CommandAuditEvery-1,
			addr: "10.20." + strconv.Itoa(30+i/250) + "." + strconv.Itoa(1+i%250), tty: i % 64}
		if len(cfg.Nodes) > 0 {
			op.node = cfg.Nodes[i%len(cfg.Nodes)]
		}
		g.ops = append(g.ops, op)
	}
	g.long = make([]byte, 9000)
	for i := range g.long {
		g.long[i] = 'a' + byte(i%26)
		if i%97 == 96 {
			g.long[i] = '\n' // a control byte: the kernel hex-encodes the argument
		}
	}
	return g
}

// Stats returns the counts so far.
func (g *Generator) Stats() Stats { return g.stats }

// Grants returns the operators' grants, as the policy service issues them
// (the collector's static grants or signed grants on opctl.grants.v1).
func (g *Generator) Grants() []schemas.Grant {
	out := make([]schemas.Grant, len(g.ops))
	for i, op := range g.ops {
		t := schemas.AuditCommand
		if op.keys {
			t = schemas.AuditCommandKeystroke
		}
		out[i] = schemas.Grant{LoginID: op.login, ReqAuthID: "REQ-" + strconv.Itoa(1000+i), AuditType: t}
	}
	return out
}

// Passwd returns a passwd file naming every uid the traffic uses.
func (g *Generator) Passwd() []byte {
	b := []byte("root:x:0:0:root:/root:/bin/bash\ncelladmin:x:1002:1002::/home/celladmin:/bin/bash\n" +
		"oracle-auto:x:1500:1500:automation:/home/auto:/sbin/nologin\n")
	for _, op := range g.ops {
		u := strconv.FormatUint(op.uid, 10)
		b = append(b, op.login+":x:"+u+":"+u+":operator:/home/"+op.login+":/bin/bash\n"...)
	}
	return b
}

// Group returns the group file matching Passwd.
func (g *Generator) Group() []byte {
	b := []byte("root:x:0:\ncelladmin:x:1002:\noracle-auto:x:1500:\n")
	for _, op := range g.ops {
		b = append(b, op.login+":x:"+strconv.FormatUint(op.uid, 10)+":\n"...)
	}
	return b
}

// Append appends the lines of the next audit event, stamped now, to dst.
func (g *Generator) Append(dst []byte, now time.Time) ([]byte, Event) {
	for len(g.queue) == 0 {
		g.plan()
	}
	s := g.queue[0]
	g.queue = g.queue[1:]
	g.serial++
	ms := now.UnixMilli()
	ev := Event{Host: g.cfg.Host, Sec: ms / 1000, Msec: int(ms % 1000), Serial: g.serial}
	if s.node != "" {
		ev.Host = s.node
	}
	start := len(dst)
	dst = g.render(dst, &s, &ev)
	for _, c := range dst[start:] {
		if c == '\n' {
			ev.Records++
		}
	}
	g.stats.Events++
	g.stats.Records += uint64(ev.Records)
	if ev.Kind != "" {
		g.stats.Expected++
	}
	return dst, ev
}

var commands = [][]string{
	{"ls", "-l", "/var/log"}, {"tail", "-n", "100", "/var/log/messages"}, {"grep", "-ri", "error code", "/etc"},
	{"cat", "/proc/meminfo"}, {"ps", "-ef"}, {"df", "-h"}, {"netstat", "-an"}, {"uptime"},
	{"journalctl", "-u", "cellsrv", "--since", "1 hour ago"}, {"systemctl", "status", "cellsrv"},
	{"find", "/var/log", "-name", "*.gz", "-mtime", "+7"}, {"awk", "{print $1}", "/etc/hosts"},
	{"vi", "/etc/hosts"}, {"ip", "addr", "show"}, {"free", "-m"}, {"cellcli", "-e", "list cell detail"},
}

var sudoCommands = [][]string{
	{"systemctl", "restart", "cellsrv"}, {"yum", "check-update", "--security"}, {"cat", "/var/log/secure"},
	{"dmesg", "-T"},
}

func (g *Generator) pid() uint64 {
	g.pidSeq++
	if g.pidSeq > 4000000 {
		g.pidSeq = 10000
	}
	return g.pidSeq
}

func (g *Generator) node() string {
	if len(g.cfg.Nodes) == 0 {
		return ""
	}
	return g.cfg.Nodes[g.rng.IntN(len(g.cfg.Nodes))]
}

// plan queues the steps of the next activity.
func (g *Generator) plan() {
	if g.cfg.NoisePercent > 0 && g.rng.IntN(100) < g.cfg.NoisePercent {
		n := g.node()
		if g.rng.IntN(3) == 0 { // cron's job: no login uid
			g.queue = append(g.queue,
				step{kind: stepPAM, recType: "CRED_ACQ", auid: unset, node: n, pid: g.pid(), data: "PAM:setcred", ok: true},
				step{kind: stepExec, auid: unset, euid: 0, argv: []string{"/usr/sbin/logrotate", "/etc/logrotate.conf"}, pid: g.pid(), ppid: 1, cwd: "/", node: n, ok: true})
			return
		}
		g.queue = append(g.queue, step{kind: stepExec, auid: uidAuto, euid: uidAuto,
			argv: []string{"/opt/oracle/dcs/bin/dcs-agent", "--health"}, pid: g.pid(), ppid: 8000, cwd: "/home/auto", node: n, ok: true})
		return
	}
	op := g.ops[g.rng.IntN(len(g.ops))]
	if !op.online {
		g.login(op)
		return
	}
	switch r := g.rng.IntN(100); {
	case r < 2:
		g.logout(op)
	case r < 12:
		g.queue = append(g.queue, g.tty(op, "ls -l /var/log\r"))
	case r < 16:
		if op.suPID == 0 {
			g.su(op)
		} else {
			g.exitSu(op)
		}
	case r < 24:
		g.sudo(op)
	default:
		g.command(op, commands[g.rng.IntN(len(commands))], g.rng.IntN(50) != 0)
	}
}

func (g *Generator) login(op *operator) {
	g.sesSeq++
	sshd := g.pid()
	op.online, op.ses, op.sshdPID, op.shellPID, op.suPID = true, g.sesSeq, sshd, g.pid(), 0
	for _, t := range []string{"USER_AUTH", "USER_ACCT", "CRED_ACQ"} {
		g.queue = append(g.queue, step{kind: stepPAM, op: op, recType: t, auid: unset, pid: sshd, node: op.node, ok: true})
	}
	g.queue = append(g.queue,
		step{kind: stepLoginRec, op: op, pid: sshd, auid: op.uid, node: op.node},
		step{kind: stepPAM, op: op, recType: "USER_START", auid: op.uid, pid: sshd, node: op.node, ok: true},
		step{kind: stepPAM, op: op, recType: "USER_LOGIN", auid: op.uid, pid: sshd, node: op.node, ok: true})
}

func (g *Generator) logout(op *operator) {
	sshd := op.sshdPID
	g.queue = append(g.queue,
		step{kind: stepPAM, op: op, recType: "USER_END", auid: op.uid, pid: sshd, node: op.node, ok: true},
		step{kind: stepPAM, op: op, recType: "CRED_DISP", auid: op.uid, pid: sshd, node: op.node, ok: true},
		step{kind: stepPAM, op: op, recType: "USER_LOGOUT", auid: op.uid, pid: sshd, node: op.node, ok: true})
	op.online, op.suPID = false, 0
}

// command runs argv in op's current shell (as celladmin after su).
func (g *Generator) command(op *operator, argv []string, ok bool) {
	euid, ppid, cwd := op.uid, op.shellPID, "/home/"+op.login
	if op.suPID != 0 {
		euid, ppid, cwd = uidCellAdmin, op.suPID, "/home/celladmin"
	}
	if g.cfg.SplitEvery > 0 && g.rng.IntN(g.cfg.SplitEvery) == 0 {
		argv = []string{"printf", "%s", string(g.long)}
	}
	g.queue = append(g.queue, step{kind: stepExec, op: op, auid: op.uid, euid: euid, argv: argv, pid: g.pid(),
		ppid: ppid, cwd: cwd, node: op.node, ok: ok})
}

func (g *Generator) tty(op *operator, data string) step {
	return step{kind: stepTTY, op: op, auid: op.uid, pid: op.shellPID, data: data, node: op.node}
}

func (g *Generator) su(op *operator) {
	g.queue = append(g.queue, g.tty(op, "su - celladmin\r"))
	pid := g.pid()
	g.queue = append(g.queue, step{kind: stepExec, op: op, auid: op.uid, euid: 0, argv: []string{"su", "-", "celladmin"},
		pid: pid, ppid: op.shellPID, cwd: "/home/" + op.login, node: op.node, ok: true})
	for _, t := range []string{"USER_AUTH", "USER_ACCT", "CRED_ACQ", "USER_START"} {
		g.queue = append(g.queue, step{kind: stepPAM, op: op, recType: t, auid: op.uid, pid: pid, node: op.node, ok: true,
			data: "su"})
	}
	op.suPID = pid
}

func (g *Generator) exitSu(op *operator) {
	for _, t := range []string{"USER_END", "CRED_DISP"} {
		g.queue = append(g.queue, step{kind: stepPAM, op: op, recType: t, auid: op.uid, pid: op.suPID, node: op.node, ok: true,
			data: "su"})
	}
	op.suPID = 0
}

// sudo runs a command through sudo: sudo's execve, its PAM records and
// USER_CMD, then the command's execve as root; one in five is refused
// (USER_CMD res=failed, no child).
func (g *Generator) sudo(op *operator) {
	argv := sudoCommands[g.rng.IntN(len(sudoCommands))]
	pid := g.pid()
	ppid, cwd := op.shellPID, "/home/"+op.login
	if op.suPID != 0 {
		ppid, cwd = op.suPID, "/home/celladmin"
	}
	g.queue = append(g.queue, step{kind: stepExec, op: op, auid: op.uid, euid: 0, argv: append([]string{"sudo"}, argv...),
		pid: pid, ppid: ppid, cwd: cwd, node: op.node, ok: true})
	if g.rng.IntN(5) == 0 {
		g.queue = append(g.queue, step{kind: stepUserCmd, op: op, auid: op.uid, pid: pid, argv: argv, cwd: cwd, node: op.node, ok: false})
		return
	}
	g.queue = append(g.queue,
		step{kind: stepPAM, op: op, recType: "USER_ACCT", auid: op.uid, pid: pid, node: op.node, ok: true, data: "sudo"},
		step{kind: stepUserCmd, op: op, auid: op.uid, pid: pid, argv: argv, cwd: cwd, node: op.node, ok: true},
		step{kind: stepPAM, op: op, recType: "CRED_REFR", auid: op.uid, pid: pid, node: op.node, ok: true, data: "sudo"},
		step{kind: stepPAM, op: op, recType: "USER_START", auid: op.uid, pid: pid, node: op.node, ok: true, data: "sudo"},
		step{kind: stepExec, op: op, auid: op.uid, euid: 0, argv: append([]string{"/usr/bin/" + argv[0]}, argv[1:]...),
			pid: g.pid(), ppid: pid, cwd: cwd, node: op.node, ok: true},
		step{kind: stepPAM, op: op, recType: "USER_END", auid: op.uid, pid: pid, node: op.node, ok: true, data: "sudo"},
		step{kind: stepPAM, op: op, recType: "CRED_DISP", auid: op.uid, pid: pid, node: op.node, ok: true, data: "sudo"})
}
