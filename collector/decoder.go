package collector

import (
	"errors"
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
}

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

// Line feeds one line; tag labels its position (the collector passes a
// line counter, for its checkpoint).
func (d *Decoder) Line(line []byte, tag uint64, now time.Time) {
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

// Tick flushes events that waited longer than the assembly timeout.
func (d *Decoder) Tick(now time.Time) { d.asm.Maintain(now) }

// Flush emits every open event (end of input).
func (d *Decoder) Flush() { d.asm.Flush() }

// OldestOpenTag is the tag of the first record of the oldest event still
// being assembled.
func (d *Decoder) OldestOpenTag() (uint64, bool) { return d.asm.OldestOpenTag() }

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
	defer d.asm.Release(ev)
	o := d.bld.Build(ev, &d.ev)
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
