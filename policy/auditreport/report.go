package auditreport

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/schemas"
)

// Report statuses, as OCI's AuditLogReport.audit_report_status names them.
const (
	// StatusAvailable: the store holds events of the request.
	StatusAvailable = "AVAILABLE"
	// StatusNotAvailable: the store holds no event of the request (none
	// yet, an unknown request, or events past the store's retention).
	StatusNotAvailable = "NOTAVAILABLE"
)

// Report is the audit log report of one access request.
type Report struct {
	ReqAuthID string `json:"req_auth_id"`
	// Status is StatusAvailable or StatusNotAvailable.
	Status string `json:"audit_report_status"`
	// GeneratedAt is when the report was built (RFC 3339, ms, UTC).
	GeneratedAt string `json:"time_of_report_generation"`
	// Hosts are the hosts of the sessions, sorted.
	Hosts []string `json:"hosts"`
	// Commands and Keystrokes count the request's command and keystroke
	// events over every session.
	Commands   int `json:"commands"`
	Keystrokes int `json:"keystroke_events"`
	// Conflicts counts the differing copies of the request's events that
	// the indexer kept apart (event_conflicts): the first copy is the one
	// reported; `auditpipe verify --request ID` says more.
	Conflicts int `json:"conflicts"`
	// Truncated is set when the request has more rows than the report
	// reads (Options.MaxEvents): the report then ends early.
	Truncated bool       `json:"truncated,omitempty"`
	Sessions  []*Session `json:"sessions"`
	// Text is the report as WriteText prints it; only the HTTP handler
	// fills it in (OCI's AuditLogReport.report).
	Text string `json:"report,omitempty"`
}

// Session is one login session of the request on one host: the events of
// one audit session id (ses).
type Session struct {
	Host  string `json:"host"`
	Layer string `json:"layer"`
	// Ses is the audit session id the kernel gave the login.
	Ses string `json:"ses"`
	// LoginID is the login user (the grant's user).
	LoginID  string `json:"loginid"`
	SrcHost  string `json:"srchost,omitempty"`
	DestHost string `json:"desthost,omitempty"`
	TTY      string `json:"tty,omitempty"`
	// Login is the session's login event, nil when none is stored (a
	// session that began before the trail did, or whose login was lost).
	Login *Mark `json:"login"`
	// Logout is its last logout event, nil while the session is open
	// (or when its logout was lost).
	Logout     *Mark `json:"logout"`
	Open       bool  `json:"open"`
	Commands   int   `json:"commands"`
	Keystrokes int   `json:"keystroke_events"`
	// KeystrokeEvents lists the keystroke events when asked
	// (Options.Keystrokes).
	KeystrokeEvents []Keystroke `json:"keystrokes,omitempty"`
	// Processes are the session's process trees: each command whose
	// parent is not in the trail (the login shell, usually) is a root.
	Processes []*Process `json:"processes"`
}

// Mark is a login or a logout.
type Mark struct {
	TS      string `json:"ts"`
	PID     string `json:"pid"`
	Res     string `json:"res"`
	EventID string `json:"event_id"`
}

// Keystroke is one keystroke event: what the terminal's reader got.
type Keystroke struct {
	TS      string `json:"ts"`
	PID     string `json:"pid"`
	Keys    string `json:"keys"`
	EventID string `json:"event_id"`
}

// Process is one command: an execve by pid, with the commands its process
// started below it.
type Process struct {
	TS   string `json:"ts"`
	PID  string `json:"pid"`
	PPID string `json:"ppid"`
	// UID is the real user, from the SYSCALL record of raw_data ("" when
	// the record does not say); EUID is the effective user the command
	// ran as.
	UID  string   `json:"uid"`
	EUID string   `json:"euid"`
	Exe  string   `json:"exe"`
	Cwd  string   `json:"cwd"`
	Args []string `json:"args"`
	Res  string   `json:"res"`
	// RecID is the audit serial; EventID the event's id in the store.
	RecID   string `json:"rec_id"`
	EventID string `json:"event_id"`
	// ParentMissing is set on a session's root whose ppid names no
	// earlier command of the session.
	ParentMissing bool `json:"parent_missing,omitempty"`
	// UserChange is set on su and sudo.
	UserChange *UserChange `json:"user_change,omitempty"`
	Children   []*Process  `json:"children,omitempty"`
}

// UserChange is what su or sudo did: From ran it, and its children run as
// To.
type UserChange struct {
	Via  string `json:"via"` // "su" or "sudo"
	From string `json:"from"`
	To   string `json:"to"`
	// FromArgs is set when no child of the command is in the trail, so To
	// is what its arguments ask for rather than what a child ran as.
	FromArgs bool `json:"from_args,omitempty"`
}

// DefaultMaxEvents is the default of Options.MaxEvents.
const DefaultMaxEvents = 200_000

// Options tune Build.
type Options struct {
	// Keystrokes lists each session's keystroke events; they are always
	// counted.
	Keystrokes bool
	// MaxEvents bounds the rows read from the store; a request with more
	// gets a report of the first ones, marked Truncated. Default
	// DefaultMaxEvents.
	MaxEvents int
	// Now is the clock of GeneratedAt. Default time.Now.
	Now func() time.Time
}

// ErrNoRequest is returned for an empty request id: the events of users
// without a grant have req_auth_id "", and no report shows them.
var ErrNoRequest = errors.New("auditreport: no request id given")

// eventsSQL reads every stored copy (final = 0) of each event of the
// request, including copies stored under another req_auth_id: the first
// copy written decides which request an event belongs to. uid is the real
// uid of raw_data's last SYSCALL record (the contract has no field for
// it); an argument cannot fake it, as EXECVE and PROCTITLE come before
// SYSCALL.
const eventsSQL = `SELECT event, host, layer, loginid, req_auth_id, event_id, ses, pid, ppid, euid, exe, cwd, title, args, res,
       srchost, desthost, tty, keys, rec_id,
       arrayElement(extractAll(raw_data, '(?:^|\n)(?:node=[^ \n]* )?type=SYSCALL msg=[^\n]*? uid=([^ \n]*)'), -1) AS uid,
       toUnixTimestamp64Milli(ts) AS ms, toUnixTimestamp64Milli(inserted_at) AS written
FROM audit_events
WHERE event_id IN (SELECT event_id FROM audit_events WHERE req_auth_id = {req:String} AND event IN ('login', 'logout', 'command', 'keys'))
ORDER BY ts, host, toUInt64OrZero(rec_id), event_id, inserted_at, content_hash
LIMIT {limit:UInt64}
SETTINGS final = 0`

const eventsColumns = 23

// conflictsSQL counts the differing copies of each event that any copy
// of names the request; Build keeps those of the request's events.
const conflictsSQL = `SELECT event_id, uniqExact(conflict_hash) FROM event_conflicts
WHERE event_id IN (SELECT event_id FROM audit_events WHERE req_auth_id = {req:String})
GROUP BY event_id
SETTINGS final = 0`

// Build reads the events of access request id from q and builds its
// report.
func Build(ctx context.Context, q clickhouse.ParamQuerier, id string, opt Options) (*Report, error) {
	if id == "" {
		return nil, ErrNoRequest
	}
	if opt.MaxEvents <= 0 {
		opt.MaxEvents = DefaultMaxEvents
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	params := []clickhouse.Param{clickhouse.StringParam("req", id), {Name: "limit", Value: strconv.Itoa(opt.MaxEvents + 1)}}
	res, err := q.QueryParams(ctx, eventsSQL, params)
	if err != nil {
		return nil, fmt.Errorf("auditreport: read the events of request %q: %w", id, err)
	}
	truncated := len(res.Rows) > opt.MaxEvents
	if truncated {
		res.Rows = res.Rows[:opt.MaxEvents]
	}
	entries, err := firstCopies(res.Rows, id)
	if err != nil {
		return nil, fmt.Errorf("auditreport: request %q: %w", id, err)
	}
	cres, err := q.QueryParams(ctx, conflictsSQL, params[:1])
	if err != nil {
		return nil, fmt.Errorf("auditreport: read the conflicts of request %q: %w", id, err)
	}
	mine := make(map[string]bool, len(entries))
	for i := range entries {
		mine[entries[i].ev.EventID] = true
	}
	conflicts := 0
	for _, row := range cres.Rows {
		if len(row) == 2 && mine[clickhouse.ValueString(row[0])] {
			n, _ := strconv.Atoi(clickhouse.ValueString(row[1]))
			conflicts += n
		}
	}
	rep := buildReport(id, entries, opt.Keystrokes)
	rep.GeneratedAt = opt.Now().UTC().Format(schemas.TSLayout)
	rep.Conflicts = conflicts
	rep.Truncated = truncated
	return rep, nil
}

// entry is one event of the request with what the report needs beside
// the contract's fields.
type entry struct {
	ev     schemas.Event
	uid    string
	ms     int64  // ts, ms since the epoch
	serial uint64 // rec_id
}

// firstCopies decodes the rows of eventsSQL and keeps the first copy
// written of each event_id, then those that belong to request id.
func firstCopies(rows [][]any, id string) ([]entry, error) {
	type copyAt struct {
		i       int
		written int64
	}
	first := make(map[string]copyAt, len(rows))
	all := make([]entry, 0, len(rows))
	for i, row := range rows {
		if len(row) != eventsColumns {
			return nil, fmt.Errorf("row %d: %d columns, want %d", i, len(row), eventsColumns)
		}
		s := func(j int) string { return clickhouse.ValueString(row[j]) }
		var e entry
		e.ev = schemas.Event{
			Event: schemas.Kind(s(0)), Host: s(1), Layer: s(2), LoginID: s(3), ReqAuthID: s(4), EventID: s(5),
			Ses: s(6), PID: s(7), PPID: s(8), EUID: s(9), Exe: s(10), Cwd: s(11), Title: s(12), Res: s(14),
			SrcHost: s(15), DestHost: s(16), TTY: s(17), Keys: s(18), RecID: s(19),
		}
		args, err := clickhouse.ValueStrings(row[13])
		if err != nil {
			return nil, fmt.Errorf("row %d: args: %w", i, err)
		}
		e.ev.Args = args
		e.uid = s(20)
		if e.ms, err = strconv.ParseInt(s(21), 10, 64); err != nil {
			return nil, fmt.Errorf("row %d: ts: %w", i, err)
		}
		written, err := strconv.ParseInt(s(22), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("row %d: inserted_at: %w", i, err)
		}
		e.ev.TS = time.UnixMilli(e.ms).UTC().Format(schemas.TSLayout)
		e.serial, _ = strconv.ParseUint(e.ev.RecID, 10, 64)
		all = append(all, e)
		// Rows come in query order; a copy written earlier than the one
		// kept so far wins, a tie keeps the one first in that order.
		if c, ok := first[e.ev.EventID]; !ok || written < c.written {
			first[e.ev.EventID] = copyAt{i: i, written: written}
		}
	}
	out := make([]entry, 0, len(first))
	for i, e := range all {
		if first[e.ev.EventID].i == i && e.ev.ReqAuthID == id {
			out = append(out, e)
		}
	}
	return out, nil
}
