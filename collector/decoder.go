package collector

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe/collector/assemble"
	"github.com/auditpipe/auditpipe/collector/auditlog"
	"github.com/auditpipe/auditpipe/collector/builder"
	"github.com/auditpipe/auditpipe/schemas"
)

// Reasons of the collector's own rejects, besides the parser's.
const (
	// ReasonLate labels records that arrived after their event was emitted.
	ReasonLate = "late_record"
	// ReasonEventTooLarge labels events over max_event_bytes.
	ReasonEventTooLarge = "event_too_large"
)

// Reject is an input line that could not be used, with the reason.
type Reject struct {
	Reason string // auditlog.Reason* or ReasonLate
	Err    error
	Line   []byte // valid only during the callback
	Tag    uint64
}

// DecoderStats counts what a Decoder saw.
type DecoderStats struct {
	Records  uint64
	Rejects  map[string]uint64
	Events   map[schemas.Kind]uint64
	Outcomes map[builder.Outcome]uint64
	// Unattributed counts the events held for a grant (SetGrantGrace) and
	// released without one, by reason (Unattributed*); each is counted in
	// Outcomes as no_grant too.
	Unattributed map[string]uint64
}

// Reasons a held event was released without a grant.
const (
	// UnattributedGraceOver: no grant came within the grace.
	UnattributedGraceOver = "grace_over"
	// UnattributedInputEnd: the input ended first (Flush).
	UnattributedInputEnd = "input_end"
	// UnattributedOutsideGrant: the event's uid did not resolve when it
	// was held, and the grant of the name it resolves to later does not
	// cover the event's own time (it starts after it, or expired before
	// it): most likely the grant of another user given the same uid.
	UnattributedOutsideGrant = "outside_grant"
	// UnattributedLoginCap: the login had maxHeldPerLogin events held.
	UnattributedLoginCap = "login_cap"
	// UnattributedTotalCap: maxHeld events were held.
	UnattributedTotalCap = "total_cap"
)

// unattributedReasons lists the Unattributed* reasons.
var unattributedReasons = []string{UnattributedGraceOver, UnattributedInputEnd, UnattributedOutsideGrant, UnattributedLoginCap, UnattributedTotalCap}

// Decoder chains parsing, assembly and building. It is not safe for
// concurrent use.
type Decoder struct {
	types    *auditlog.Types
	asm      *assemble.Assembler
	bld      *builder.Builder
	onEvent  func(*schemas.Event, *assemble.Event)
	onReject func(Reject)
	rec      auditlog.Record
	ev       schemas.Event
	stats    DecoderStats
	// heads is the hash chain: per host, the hash of the last event
	// emitted; canonical holds the emitted event's canonical bytes.
	heads     map[string]string
	canonical []byte
	// grace holds events of a user with no grant yet (see SetGrantGrace);
	// held are those events, oldest first, heldBy counts them per login,
	// now is the time of the last line or tick.
	grace  time.Duration
	held   []heldEvent
	heldBy map[string]int
	now    time.Time
	// maxHeld and maxHeldPerLogin bound the held events (fields, so that
	// tests can make them small).
	maxHeld, maxHeldPerLogin int
	// grants and names are the builder's, for the held events.
	grants builder.Grants
	names  *builder.Names
	// sessions remembers the login user of the last maxSessions audit
	// sessions whose login event resolved it by name, so that the events
	// of a session whose user is gone already (unknown(UID)) are still
	// its user's, and never those of a user given the same uid later.
	sessions     map[sessionKey]string
	sessionOrder []sessionKey
}

// heldEvent is an assembled event waiting for its user's grant until.
// It is built when held, with the names of that moment, and login is its
// login user as resolved then (from the session when its user is gone):
// a later change of the host's names (a uid freed and given to another
// user) does not make it another user's.
type heldEvent struct {
	ev    *assemble.Event
	out   schemas.Event
	raw   rawData // out's raw_data, when the builder left it out of out
	login string
	at    time.Time // the event's own time
	until time.Time
}

// Bounds of the held events: beyond maxHeldPerLogin for one login, or
// maxHeld in all, an event of a user without a grant is skipped at once
// (no_grant, counted in Unattributed), so that one busy login cannot fill
// the hold for the others.
const (
	maxHeld         = 4096
	maxHeldPerLogin = 1024
)

// rawData is an event's raw_data that the builder rendered into its buffer
// (builder.Config.RawDataInBuffer) instead of the event: ok says whether
// there is one.
type rawData struct {
	b  []byte
	ok bool
}

// maxSessions bounds the sessions remembered (the oldest is forgotten).
const maxSessions = 4096

type sessionKey struct{ host, ses string }

// NewDecoder returns a Decoder. onEvent receives every emitted event: the
// contract event and the assembled records it came from, both valid only
// during the call (they are reused); onReject every rejected line. With
// cfg.RawDataInBuffer the event's RawData is empty: raw_data is in
// Canonical's bytes only.
func NewDecoder(cfg builder.Config, opts assemble.Options, onEvent func(*schemas.Event, *assemble.Event), onReject func(Reject)) *Decoder {
	return newDecoder(auditlog.NewTypes(), cfg, opts, onEvent, onReject)
}

// newDecoder is NewDecoder with a type table built before (it is
// read-only, so decoders may share it): building one takes milliseconds,
// which a fuzz target that makes a decoder per input cannot spend.
func newDecoder(types *auditlog.Types, cfg builder.Config, opts assemble.Options, onEvent func(*schemas.Event, *assemble.Event), onReject func(Reject)) *Decoder {
	d := &Decoder{
		types:           types,
		bld:             builder.New(cfg),
		onEvent:         onEvent,
		onReject:        onReject,
		heads:           map[string]string{},
		heldBy:          map[string]int{},
		maxHeld:         maxHeld,
		maxHeldPerLogin: maxHeldPerLogin,
		grants:          cfg.Grants,
		names:           cfg.Names,
		sessions:        map[sessionKey]string{},
		stats: DecoderStats{
			Rejects:      map[string]uint64{},
			Events:       map[schemas.Kind]uint64{},
			Outcomes:     map[builder.Outcome]uint64{},
			Unattributed: map[string]uint64{},
		},
	}
	d.asm = assemble.New(opts, d.assembled)
	return d
}

// SetGrantGrace makes the decoder hold, for d, the events of a user who
// looks like a grant's login user (32 hex digits, or a uid not resolved
// yet) but has no grant: the grant may reach the collector a moment after
// its user's first records (the user logs in as soon as the agent made
// it). Each Tick builds them again; an event whose grant arrived is
// emitted then (later than the events around it: its seq is the next
// one), one whose grace ran out is skipped as no_grant. Held events keep
// the checkpoint before their first line. 0 (the default) holds nothing.
//
// A held event's login user is resolved once, when it is held; a uid not
// resolved then is looked up again at each tick, and a grant found for it
// must cover the event's own time (Start, Expires). At most 1024 events
// are held per login and 4096 in all; what is released without a grant is
// counted by reason in DecoderStats.Unattributed.
func (d *Decoder) SetGrantGrace(grace time.Duration) { d.grace = grace }

// Held returns the number of events held for a grant.
func (d *Decoder) Held() int { return len(d.held) }

// Line feeds one line; tag labels its position (the collector passes a
// line counter, for its checkpoint).
func (d *Decoder) Line(line []byte, tag uint64, now time.Time) {
	d.now = now
	d.stats.Records++
	if err := d.types.Parse(line, &d.rec); err != nil {
		var pe *auditlog.ParseError
		reason := "parse"
		if errors.As(err, &pe) {
			reason = pe.Reason
		}
		d.reject(Reject{Reason: reason, Err: err, Line: line, Tag: tag})
		return
	}
	if err := d.asm.Push(&d.rec, tag, now); err != nil {
		d.reject(Reject{Reason: ReasonLate, Err: err, Line: line, Tag: tag})
	}
}

// RejectLine reports a line the reader could not deliver whole (for
// instance one over the length limit), so it is counted like the others.
func (d *Decoder) RejectLine(reason string, err error, line []byte, tag uint64) {
	d.stats.Records++
	d.reject(Reject{Reason: reason, Err: err, Line: line, Tag: tag})
}

func (d *Decoder) reject(r Reject) {
	d.stats.Rejects[r.Reason]++
	if d.onReject != nil {
		d.onReject(r)
	}
}

// Idle tells the decoder that its input had nothing more to read at now:
// from then until the next line, wall-clock time counts for the assembly
// timeout (see assemble.Assembler.Maintain). Without it, an event missing
// its EOE times out only when the input moved on by the timeout, in the
// records' own time: a slow reader never splits an event.
func (d *Decoder) Idle(now time.Time) { d.asm.Idle(now) }

// Tick flushes events that timed out (see Idle), reads
// the host's names again if they changed, and looks up the grants of the
// held events again.
func (d *Decoder) Tick(now time.Time) {
	d.now = now
	d.asm.Maintain(now)
	d.bld.RefreshNames()
	d.retryHeld(false)
}

// Flush emits every open event (end of input); a held event whose grant
// has not come is skipped.
func (d *Decoder) Flush() {
	d.asm.Flush()
	d.retryHeld(true)
}

// OldestOpenTag is the tag of the first record of the oldest event still
// being assembled or held for a grant.
func (d *Decoder) OldestOpenTag() (uint64, bool) {
	oldest, ok := d.asm.OldestOpenTag()
	for _, h := range d.held {
		if !ok || h.ev.FirstTag < oldest {
			oldest, ok = h.ev.FirstTag, true
		}
	}
	return oldest, ok
}

// Stats returns the counters so far.
func (d *Decoder) Stats() DecoderStats { return d.stats }

// AssemblyStats returns the assembler's counters.
func (d *Decoder) AssemblyStats() assemble.Stats { return d.asm.Stats() }

// MissingArgs counts command arguments announced by argc but absent.
func (d *Decoder) MissingArgs() uint64 { return d.bld.MissingArgs }

// SetSkip names events delivered before a restart (see builder.SetSkip).
func (d *Decoder) SetSkip(eventIDs []string) { d.bld.SetSkip(eventIDs) }

// Heads returns the hash chain's head per host: the hash of the last event
// emitted (for checkpoints).
func (d *Decoder) Heads() map[string]string {
	m := make(map[string]string, len(d.heads))
	for k, v := range d.heads {
		m[k] = v
	}
	return m
}

// SetHeads restores the chain's heads from a checkpoint, so the first event
// after a restart links to the last one before it.
func (d *Decoder) SetHeads(m map[string]string) {
	for k, v := range m {
		d.heads[k] = v
	}
}

// Head returns the hash of the last event emitted for host.
func (d *Decoder) Head(host string) string { return d.heads[host] }

// Canonical returns the canonical bytes (schemas.Event.CanonicalJSON) of
// the event being handed to onEvent; valid only during the call. With
// builder.Config.RawDataInBuffer, the event's RawData is empty and its
// raw_data is only in these bytes (they are CanonicalJSON of the event
// with RawData set).
func (d *Decoder) Canonical() []byte { return d.canonical }

// Seq and SetSeq save and restore the per-host sequence numbers.
func (d *Decoder) Seq() map[string]uint64     { return d.bld.Seq() }
func (d *Decoder) SetSeq(m map[string]uint64) { d.bld.SetSeq(m) }

func (d *Decoder) assembled(ev *assemble.Event) {
	o := d.bld.Build(ev, &d.ev)
	if o == builder.NotAudited || o == builder.Emitted || o == builder.KeysNotAsked {
		d.learnSession()
		d.finish(ev, o, d.builtRaw())
		return
	}
	// NoGrant or Replayed: Build stopped before it set the event's
	// strings (ses among them). Logins (whose session is learnt) and
	// events of an unresolved uid (whose session may name the user) are
	// built again in full; they are few.
	_, unknown := unknownUID(d.ev.LoginID)
	if d.ev.Event == schemas.KindLogin || unknown {
		d.buildUngranted(ev, &d.ev)
		d.learnSession()
	}
	if o == builder.Replayed {
		d.finish(ev, o, rawData{})
		return
	}
	login := d.ev.LoginID
	if name, ok := d.sessionLogin(); ok {
		// The session's user is gone from the host's names: the event is
		// still that user's, attributed to its grant if it has one.
		login = name
		if g, ok := d.lookup(login); ok {
			d.ev.LoginID = login
			// d.ev is buildUngranted's (its uid is unknown).
			d.finish(ev, d.bld.Grant(&d.ev, g), d.builtRaw())
			return
		}
	}
	if d.grace > 0 && mayGetGrant(login) {
		d.hold(ev, login)
		return
	}
	d.finish(ev, o, rawData{})
}

// builtRaw is the raw_data the builder left out of the event it built
// last, valid until its next build.
func (d *Decoder) builtRaw() rawData {
	b, ok := d.bld.RawData()
	return rawData{b, ok}
}

// hold keeps ev, of login, for its grant, within the bounds.
func (d *Decoder) hold(ev *assemble.Event, login string) {
	switch {
	case len(d.held) >= d.maxHeld:
		d.release(ev, UnattributedTotalCap)
		return
	case d.heldBy[login] >= d.maxHeldPerLogin:
		d.release(ev, UnattributedLoginCap)
		return
	}
	// Kept, not released: its records stay valid while held.
	d.held = append(d.held, heldEvent{ev: ev, login: login, at: time.Unix(ev.Sec, int64(ev.Msec)*int64(time.Millisecond)), until: d.now.Add(d.grace)})
	h := &d.held[len(d.held)-1]
	d.buildUngranted(ev, &h.out)
	if raw := d.builtRaw(); raw.ok {
		h.raw = rawData{append([]byte(nil), raw.b...), true}
	}
	h.out.LoginID = login
	d.heldBy[login]++
}

// buildUngranted builds ev, which Build already saw (NoGrant), again in
// full without a grant; its missing arguments were counted then.
func (d *Decoder) buildUngranted(ev *assemble.Event, out *schemas.Event) {
	missing := d.bld.MissingArgs
	d.bld.BuildUngranted(ev, out)
	d.bld.MissingArgs = missing
}

// release skips ev, held or about to be, as no_grant for reason.
func (d *Decoder) release(ev *assemble.Event, reason string) {
	d.stats.Unattributed[reason]++
	d.finish(ev, builder.NoGrant, rawData{})
}

// retryHeld looks up the grants of the held events again: those whose
// grant came are emitted, those past their grace (all of them when final)
// skipped.
func (d *Decoder) retryHeld(final bool) {
	if len(d.held) == 0 {
		return
	}
	keep := d.held[:0]
	for _, h := range d.held {
		// A uid that did not resolve when held is resolved now; the
		// name it has by then may be another user's, given the uid
		// since: its grant must cover the event's time. (A login
		// resolved when held is the event's own: a grant's login user
		// is new for each grant.)
		login, late := h.login, false
		if uid, ok := unknownUID(login); ok {
			if name, ok := d.names.User(uid); ok {
				login, late = name, true
			}
		}
		g, granted := d.lookup(login)
		reason := ""
		switch {
		case granted && late && !covers(g, h.at):
			reason = UnattributedOutsideGrant
		case granted:
		case final:
			reason = UnattributedInputEnd
		case !d.now.Before(h.until):
			reason = UnattributedGraceOver
		default:
			keep = append(keep, h)
			continue
		}
		if d.heldBy[h.login]--; d.heldBy[h.login] <= 0 {
			delete(d.heldBy, h.login)
		}
		if reason != "" {
			d.release(h.ev, reason)
			continue
		}
		d.ev = h.out
		d.ev.LoginID = login
		d.finish(h.ev, d.bld.Grant(&d.ev, g), h.raw)
	}
	clear(d.held[len(keep):])
	d.held = keep
}

// lookup finds the grant of login.
func (d *Decoder) lookup(login string) (schemas.Grant, bool) {
	if d.grants == nil || login == "" {
		return schemas.Grant{}, false
	}
	return d.grants.Lookup(login)
}

// covers reports whether g's validity window holds t: not before its
// Start (to the millisecond, the precision of audit times), not after its
// Expires; a zero bound is no bound.
func covers(g schemas.Grant, t time.Time) bool {
	return (g.Start.IsZero() || !t.Before(g.Start.Truncate(time.Millisecond))) &&
		(g.Expires.IsZero() || !t.After(g.Expires))
}

// learnSession remembers the login user of a login event (d.ev) that
// resolved it by name.
func (d *Decoder) learnSession() {
	e := &d.ev
	if e.Event != schemas.KindLogin || e.LoginID == "" || e.Ses == "" || e.Ses == "unset" || e.Ses == "4294967295" {
		return
	}
	if _, ok := unknownUID(e.LoginID); ok {
		return
	}
	k := sessionKey{e.Host, e.Ses}
	if _, ok := d.sessions[k]; !ok {
		if len(d.sessionOrder) >= maxSessions {
			delete(d.sessions, d.sessionOrder[0])
			d.sessionOrder = d.sessionOrder[1:]
		}
		d.sessionOrder = append(d.sessionOrder, k)
	}
	d.sessions[k] = e.LoginID
}

// sessionLogin returns the login user of d.ev's session when d.ev's own
// uid did not resolve (unknown(UID)) and the session's login event named
// the user.
func (d *Decoder) sessionLogin() (string, bool) {
	if _, ok := unknownUID(d.ev.LoginID); !ok || d.ev.Ses == "" {
		return "", false
	}
	name, ok := d.sessions[sessionKey{d.ev.Host, d.ev.Ses}]
	return name, ok
}

// unknownUID returns N of a login "unknown(N)" (an id the names did not
// resolve).
func unknownUID(login string) (uint64, bool) {
	rest, ok := strings.CutPrefix(login, "unknown(")
	if !ok {
		return 0, false
	}
	n, ok := strings.CutSuffix(rest, ")")
	if !ok {
		return 0, false
	}
	uid, err := strconv.ParseUint(n, 10, 32)
	return uid, err == nil
}

// mayGetGrant reports whether a login without a grant may be one whose
// grant is on its way: a grant's login user (32 lowercase hex digits) or
// a uid the host's names do not resolve yet.
func mayGetGrant(login string) bool {
	if strings.HasPrefix(login, "unknown(") {
		return true
	}
	if len(login) != 32 {
		return false
	}
	for i := 0; i < len(login); i++ {
		if c := login[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// finish counts the outcome o of ev, built into d.ev, and emits it when it
// is Emitted; then ev is released. raw is d.ev's raw_data when the builder
// left it out of d.ev.
func (d *Decoder) finish(ev *assemble.Event, o builder.Outcome, raw rawData) {
	defer d.asm.Release(ev)
	d.stats.Outcomes[o]++
	if o != builder.Emitted {
		return
	}
	d.stats.Events[d.ev.Event]++
	// Chain the event: it links to the previous event of its host, and
	// becomes the head. Every event given a seq is chained, also one that
	// the collector dead-letters afterwards (it shows as a gap).
	d.ev.PrevHash = d.heads[d.ev.Host]
	if raw.ok {
		d.canonical = d.ev.AppendJSONWithRawData(d.canonical[:0], raw.b)
	} else {
		d.canonical = d.ev.CanonicalJSON(d.canonical[:0])
	}
	d.heads[d.ev.Host] = schemas.HashBytes(d.canonical)
	if d.onEvent != nil {
		d.onEvent(&d.ev, ev)
	}
}
