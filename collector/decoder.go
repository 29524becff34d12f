package collector

import (
	"errors"
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
}

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
	// held are those events, oldest first, now the time of the last line
	// or tick.
	grace time.Duration
	held  []heldEvent
	now   time.Time
}

// heldEvent is an assembled event waiting for its user's grant until.
type heldEvent struct {
	ev    *assemble.Event
	until time.Time
}

// maxHeld bounds the events held for a grant: beyond it, an event of a
// user without a grant is skipped at once (no_grant).
const maxHeld = 4096

// NewDecoder returns a Decoder. onEvent receives every emitted event: the
// contract event and the assembled records it came from, both valid only
// during the call (they are reused); onReject every rejected line.
func NewDecoder(cfg builder.Config, opts assemble.Options, onEvent func(*schemas.Event, *assemble.Event), onReject func(Reject)) *Decoder {
	return newDecoder(auditlog.NewTypes(), cfg, opts, onEvent, onReject)
}

// newDecoder is NewDecoder with a type table built before (it is
// read-only, so decoders may share it): building one takes milliseconds,
// which a fuzz target that makes a decoder per input cannot spend.
func newDecoder(types *auditlog.Types, cfg builder.Config, opts assemble.Options, onEvent func(*schemas.Event, *assemble.Event), onReject func(Reject)) *Decoder {
	d := &Decoder{
		types:    types,
		bld:      builder.New(cfg),
		onEvent:  onEvent,
		onReject: onReject,
		heads:    map[string]string{},
		stats: DecoderStats{
			Rejects:  map[string]uint64{},
			Events:   map[schemas.Kind]uint64{},
			Outcomes: map[builder.Outcome]uint64{},
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

// Tick flushes events that waited longer than the assembly timeout, and
// builds the held events again.
func (d *Decoder) Tick(now time.Time) {
	d.now = now
	d.asm.Maintain(now)
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
// the event being handed to onEvent; valid only during the call.
func (d *Decoder) Canonical() []byte { return d.canonical }

// Seq and SetSeq save and restore the per-host sequence numbers.
func (d *Decoder) Seq() map[string]uint64     { return d.bld.Seq() }
func (d *Decoder) SetSeq(m map[string]uint64) { d.bld.SetSeq(m) }

func (d *Decoder) assembled(ev *assemble.Event) {
	o := d.bld.Build(ev, &d.ev)
	if o == builder.NoGrant && d.grace > 0 && len(d.held) < maxHeld && mayGetGrant(d.ev.LoginID) {
		// Kept, not released: its records stay valid while held.
		d.held = append(d.held, heldEvent{ev: ev, until: d.now.Add(d.grace)})
		return
	}
	d.finish(ev, o)
}

// retryHeld builds the held events again: those whose grant came are
// emitted, those past their grace (all of them when final) skipped.
func (d *Decoder) retryHeld(final bool) {
	if len(d.held) == 0 {
		return
	}
	keep := d.held[:0]
	for _, h := range d.held {
		o := d.bld.Build(h.ev, &d.ev)
		if o == builder.NoGrant && !final && d.now.Before(h.until) {
			keep = append(keep, h)
			continue
		}
		d.finish(h.ev, o)
	}
	clear(d.held[len(keep):])
	d.held = keep
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
// is Emitted; then ev is released.
func (d *Decoder) finish(ev *assemble.Event, o builder.Outcome) {
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
	d.canonical = d.ev.CanonicalJSON(d.canonical[:0])
	d.heads[d.ev.Host] = schemas.HashBytes(d.canonical)
	if d.onEvent != nil {
		d.onEvent(&d.ev, ev)
	}
}
