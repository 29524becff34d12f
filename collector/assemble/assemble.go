// Package assemble groups parsed audit records into events. Records of one
// event share node, timestamp and serial; multi-record kernel events end
// with an EOE record; user-space and standalone records are events on
// their own. An event that never sees its EOE is flushed, marked
// incomplete, when it timed out (see Maintain) or when more than
// MaxInFlight events are open. Gaps in the serial numbers are counted as
// lost events.
//
// The timeout is measured by the input's progress, not by the reader's
// speed: an open event times out once records at least Timeout newer (in
// the records' own time) than the input had reached when it opened have
// been read, or once the input has been idle (Idle: nothing left to read)
// for Timeout; and in either case only Timeout of wall-clock time after it
// opened. A reader starved of CPU, reading a backlog, or waiting at a
// rotation therefore does not split an event whose records are all in its
// input.
package assemble

import (
	"bytes"
	"time"

	"github.com/auditpipe/auditpipe/collector/auditlog"
)

// Record types that steer assembly.
const (
	typeEOE             = 1320
	typeTTY             = 1319
	typeFirstKernel     = 1300
	typeFirstStandalone = 2100 // AUDIT_ANOM_LOGIN_FAILURES and above
)

// Event is an assembled event. Records own their Line bytes.
type Event struct {
	Node     string
	Sec      int64
	Msec     int
	Serial   uint64
	Records  []auditlog.Record
	Complete bool // false when flushed by timeout, window or Flush
	// FirstTag and LastTag are the caller's tags of the first and last
	// record (the collector uses line numbers, for its checkpoint).
	FirstTag, LastTag uint64

	opened time.Time // wall-clock time of the first record
	// openedAt is the input's progress (Assembler.progress) when the
	// event's first record was pushed.
	openedAt int64
	done     bool
	id       uint64 // distinguishes reuses of this Event in the order queue
	nodeID   uint32 // Node's number (Assembler.nodeOf)
	buf      []byte // the records' lines, back to back
}

func (e *Event) key() key { return key{e.nodeID, int32(e.Msec), e.Serial, e.Sec} }

// addRecord appends a copy of rec whose Line lives in the event's buffer.
// When the buffer grows, earlier records keep pointing into the old array,
// which stays valid: lines are never written after they are copied.
func (e *Event) addRecord(rec *auditlog.Record) {
	start := len(e.buf)
	e.buf = append(e.buf, rec.Line...)
	c := *rec
	c.Line = e.buf[start:len(e.buf):len(e.buf)]
	e.Records = append(e.Records, c)
}

// Options tune the assembler. Zero values take the defaults.
type Options struct {
	// MaxInFlight bounds the open events; the oldest is flushed beyond it. Default 512.
	MaxInFlight int
	// Timeout flushes an event without its EOE this long after its first
	// record, measured by the input's progress (see Maintain). Default 3s.
	Timeout time.Duration
	// RecentKeys is how many emitted (node, serial) keys are remembered to
	// recognise records that arrive after their event was flushed. Default 4096.
	RecentKeys int
}

// Stats counts what the assembler saw; the collector exports them as metrics.
type Stats struct {
	Events     uint64 // events emitted
	Incomplete uint64 // events emitted without their EOE
	Gaps       uint64 // serial numbers skipped (lost events)
	Late       uint64 // records whose event had already been emitted
	OrphanEOE  uint64 // EOE records with no open event
}

type orderEntry struct {
	ev *Event
	id uint64
}

func (o orderEntry) stale() bool { return o.ev.done || o.ev.id != o.id }

// key identifies an event: the kernel gives all records of one event the
// same timestamp and serial. The timestamp is part of the key because the
// serial starts again at each boot. The node is its number (nodeOf): a key
// without a string hashes and compares as plain memory, and the maps and
// the ring of keys hold no pointers for the garbage collector to scan.
type key struct {
	node   uint32
	msec   int32
	serial uint64
	sec    int64
}

// serialMark is the highest serial seen of a node, for countGap.
type serialMark struct {
	last uint64
	seen bool
}

// Assembler is not safe for concurrent use.
type Assembler struct {
	opts    Options
	emit    func(*Event)
	open    map[key]*Event
	order   []orderEntry // open events by arrival; stale entries are skipped
	nextID  uint64
	recent  map[key]struct{}
	ring    []key
	ringPos int
	// Nodes by number: nodeIDs maps a node name to its number, an index
	// of nodeNames and maxSer; node and nodeID are the last one looked up.
	nodeIDs   map[string]uint32
	nodeNames []string
	maxSer    []serialMark
	node      []byte
	nodeID    uint32
	stats     Stats
	free      []*Event
	last      *Event // the open event of the last record, see lookup
	lastKey   key
	// progress is the input's clock: the latest record time read so far,
	// in milliseconds since the epoch. idle is set by Idle (the input had
	// nothing more to read at idleSince) until the next Push.
	progress  int64
	idle      bool
	idleSince time.Time
}

// New returns an assembler that hands complete events to emit. emit owns
// the event; it must not keep it past the call if it calls Release.
func New(opts Options, emit func(*Event)) *Assembler {
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 512
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 3 * time.Second
	}
	if opts.RecentKeys <= 0 {
		opts.RecentKeys = 4096
	}
	return &Assembler{
		opts:   opts,
		emit:   emit,
		open:   make(map[key]*Event),
		recent: make(map[key]struct{}, opts.RecentKeys),
		ring:   make([]key, opts.RecentKeys),
		// Node 0 is the empty node (no node= prefix).
		nodeIDs:   map[string]uint32{"": 0},
		nodeNames: []string{""},
		maxSer:    make([]serialMark, 1),
	}
}

// Stats returns the counters so far.
func (a *Assembler) Stats() Stats { return a.stats }

// ErrLate is returned by Push for a record whose event was already emitted.
type lateError struct{}

func (lateError) Error() string { return "record arrived after its event was emitted" }

// ErrLate marks a late record; the caller dead-letters it, nothing is dropped silently.
var ErrLate error = lateError{}

// Push adds a parsed record; line is copied. tag is the caller's label of
// the record's position. now is the arrival time. It returns ErrLate when
// the record's event was already emitted.
func (a *Assembler) Push(rec *auditlog.Record, tag uint64, now time.Time) error {
	node, nodeID := a.nodeOf(rec.Node())
	k := key{nodeID, int32(rec.Msec), rec.Serial, rec.Sec}
	a.idle = false
	if ms := rec.Sec*1000 + int64(rec.Msec); ms > a.progress {
		a.progress = ms
	}
	a.countGap(nodeID, rec.Serial)
	if rec.TypeNum == typeEOE {
		if ev, ok := a.lookup(k); ok {
			ev.Complete = true
			ev.LastTag = tag
			a.finish(k, ev)
		} else {
			a.stats.OrphanEOE++
		}
		return nil
	}
	standalone := rec.TypeNum != 0 && (rec.TypeNum < typeFirstKernel || rec.TypeNum >= typeFirstStandalone || rec.TypeNum == typeTTY)
	ev, ok := a.lookup(k)
	if !ok {
		if _, seen := a.recent[k]; seen && !standalone {
			a.stats.Late++
			return ErrLate
		}
		ev = a.newEvent()
		ev.Node, ev.Sec, ev.Msec, ev.Serial, ev.FirstTag, ev.opened, ev.openedAt = node, rec.Sec, rec.Msec, rec.Serial, tag, now, a.progress
		ev.nodeID = nodeID
		if standalone {
			ev.addRecord(rec)
			ev.LastTag = tag
			ev.Complete = true
			a.stats.Events++
			a.emit(ev)
			return nil
		}
		a.open[k] = ev
		a.order = append(a.order, orderEntry{ev, ev.id})
		a.last, a.lastKey = ev, k
	}
	ev.addRecord(rec)
	ev.LastTag = tag
	if len(a.open) > a.opts.MaxInFlight {
		a.evictOldest()
	}
	return nil
}

// lookup finds an open event; the last one touched is checked first, since
// an event's records mostly come one after another.
func (a *Assembler) lookup(k key) (*Event, bool) {
	if a.last != nil && a.lastKey == k {
		return a.last, true
	}
	ev, ok := a.open[k]
	if ok {
		a.last, a.lastKey = ev, k
	}
	return ev, ok
}

// Idle tells the assembler that the input had nothing more to read at now
// (a follower at the end of its file, a quiet netlink socket): from then
// on, wall-clock time counts for the timeout, until the next Push. Calls
// while already idle keep the first time.
func (a *Assembler) Idle(now time.Time) {
	if !a.idle {
		a.idle, a.idleSince = true, now
	}
}

// Maintain flushes, incomplete, the open events that timed out at now: at
// least Timeout of wall-clock time since their first record, and either
// the input's progress (the latest record time read) at least Timeout past
// what it was when they opened, or the input idle (Idle) for at least
// Timeout. Records of one kernel event are written together, at the end
// of its syscall: when records Timeout newer than anything read before the
// event opened have been read, or the input has been idle that long, the
// missing records are not coming. The wall-clock condition keeps a forward
// step of the host's clock from cutting the events open at that moment.
func (a *Assembler) Maintain(now time.Time) {
	timeout := a.opts.Timeout
	idle := a.idle && now.Sub(a.idleSince) >= timeout
	for {
		ev := a.front()
		if ev == nil || now.Sub(ev.opened) < timeout || !idle && a.progress-ev.openedAt < timeout.Milliseconds() {
			return
		}
		a.finish(ev.key(), ev)
	}
}

// Flush emits every open event, oldest first, marked incomplete.
func (a *Assembler) Flush() {
	for ev := a.front(); ev != nil; ev = a.front() {
		a.finish(ev.key(), ev)
	}
}

// OldestOpenTag returns the first tag of the oldest open event.
func (a *Assembler) OldestOpenTag() (uint64, bool) {
	oldest, found := uint64(0), false
	for _, ev := range a.open {
		if !found || ev.FirstTag < oldest {
			oldest, found = ev.FirstTag, true
		}
	}
	return oldest, found
}

// Open returns the number of open events.
func (a *Assembler) Open() int { return len(a.open) }

func (a *Assembler) front() *Event {
	for len(a.order) > 0 && a.order[0].stale() {
		a.order[0] = orderEntry{}
		a.order = a.order[1:]
	}
	if len(a.order) == 0 {
		return nil
	}
	return a.order[0].ev
}

func (a *Assembler) evictOldest() {
	if ev := a.front(); ev != nil {
		a.finish(ev.key(), ev)
	}
}

func (a *Assembler) finish(k key, ev *Event) {
	delete(a.open, k)
	if a.last == ev {
		a.last = nil
	}
	ev.done = true
	if !ev.Complete {
		a.stats.Incomplete++
	}
	// Remember the key so that stragglers are recognised as late.
	old := a.ring[a.ringPos]
	if old != (key{}) {
		delete(a.recent, old)
	}
	a.ring[a.ringPos] = k
	a.recent[k] = struct{}{}
	a.ringPos = (a.ringPos + 1) % len(a.ring)
	a.stats.Events++
	a.emit(ev)
}

func (a *Assembler) countGap(node uint32, serial uint64) {
	m := &a.maxSer[node]
	switch {
	case !m.seen:
		m.last, m.seen = serial, true
	case serial > m.last:
		if serial-m.last > 1 && serial-m.last < 1<<20 {
			a.stats.Gaps += serial - m.last - 1
		}
		m.last = serial
	case m.last-serial > 1<<20:
		// The kernel's counter started again (reboot): follow it.
		m.last = serial
	}
}

// nodeOf returns the node name b as a string and its number, numbering
// a name seen for the first time.
func (a *Assembler) nodeOf(b []byte) (string, uint32) {
	if !bytes.Equal(b, a.node) {
		a.node = append(a.node[:0], b...)
		id, ok := a.nodeIDs[string(b)]
		if !ok {
			name := string(b)
			id = uint32(len(a.nodeNames))
			a.nodeIDs[name] = id
			a.nodeNames = append(a.nodeNames, name)
			a.maxSer = append(a.maxSer, serialMark{})
		}
		a.nodeID = id
	}
	return a.nodeNames[a.nodeID], a.nodeID
}

// Release hands an emitted event back for reuse; the caller must not use
// it afterwards. Callers that keep events simply do not call it.
func (a *Assembler) Release(ev *Event) {
	if len(a.free) < 64 && cap(ev.buf) <= 64<<10 {
		a.free = append(a.free, ev)
	}
}

func (a *Assembler) newEvent() *Event {
	a.nextID++
	n := len(a.free)
	if n == 0 {
		return &Event{Records: make([]auditlog.Record, 0, 8), buf: make([]byte, 0, 2048), id: a.nextID}
	}
	ev := a.free[n-1]
	a.free = a.free[:n-1]
	clear(ev.Records)
	*ev = Event{Records: ev.Records[:0], buf: ev.buf[:0], id: a.nextID}
	return ev
}
