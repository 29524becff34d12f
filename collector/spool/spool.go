// Package spool is the collector's disk buffer for batches that could not be
// delivered to Kafka. Batches are appended in order and drained in the same
// order once Kafka is back: Oldest returns the first undelivered batch and
// Ack removes it after it was delivered.
//
// The spool is bounded. It never drops a batch to make room: Append returns
// ErrFull and the caller applies backpressure. Batches older than MaxAge are
// expired (dropped) and reported through Options.OnExpired, since the data
// they hold is then lost.
//
// On disk the spool is a directory of segment files holding length-prefixed,
// CRC-checked records, and a small head file naming the first undelivered
// record. Every Append is synced before it returns. After a crash, a torn
// or corrupt record is detected, the segment is truncated before it, and the
// loss is reported through Options.OnCorrupt; earlier records are intact.
// Delivery is at least once: a batch delivered but not yet acknowledged when
// the process stops is returned again by Oldest.
package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/auditpipe/auditpipe/collector/checkpoint"
	"github.com/auditpipe/auditpipe/internal/privfile"
)

// Defaults for Options.
const (
	DefaultMaxBytes     = 1 << 30
	DefaultMaxAge       = 7 * 24 * time.Hour
	DefaultSegmentBytes = 64 << 20
)

var (
	// ErrFull is returned by Append when the entry would take the spool
	// past Options.MaxBytes. Nothing was written; retry after Ack.
	ErrFull = errors.New("spool: full")
	// ErrTooLarge is returned by Append for an entry larger than
	// Options.MaxBytes, which can never be spooled.
	ErrTooLarge = errors.New("spool: entry larger than the spool")
	// ErrEmpty is returned by Ack when there is no entry to remove.
	ErrEmpty = errors.New("spool: empty")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("spool: closed")
)

// Message is one Kafka message of a batch.
type Message struct {
	Key, Value []byte
}

// Entry is one spooled batch.
type Entry struct {
	Messages []Message
	// Meta is opaque to the spool and returned with the entry; the
	// collector keeps its checkpoint state here.
	Meta []byte
}

// CorruptError describes data the spool found damaged on Open and cut off.
type CorruptError struct {
	// File is the segment file; Offset where the damage starts.
	File   string
	Offset int64
	// Dropped is the number of bytes removed from the segment at Offset.
	Dropped int64
	// Reason says what was found, e.g. "torn record" or "checksum mismatch".
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("spool: %s at offset %d: %s; %d bytes dropped", e.File, e.Offset, e.Reason, e.Dropped)
}

// Options tune a Spool. The zero value is usable.
type Options struct {
	// MaxBytes bounds the spooled records, in bytes. Default 1 GiB. The
	// files on disk may exceed it by the delivered part of the oldest
	// segment (at most SegmentBytes).
	MaxBytes int64
	// MaxAge is how long an entry may wait to be delivered before it is
	// expired. Default 7 days.
	MaxAge time.Duration
	// SegmentBytes is the size at which a new segment file is started.
	// Default 64 MiB. A larger entry gets a segment of its own.
	SegmentBytes int64
	// Logger receives errors about expiry and corruption. Default: none.
	Logger *slog.Logger
	// OnExpired, if set, is called with the number of entries and bytes
	// expired, each time some are. Expiry happens on Open, Append and
	// Oldest. Default: none (expiry is still logged).
	OnExpired func(entries int, bytes int64)
	// OnCorrupt, if set, is called for each damaged segment found on Open.
	// Default: none (the damage is still logged).
	OnCorrupt func(*CorruptError)
	// Now is the clock. Default time.Now; for tests.
	Now func() time.Time
}

type record struct {
	seg       uint64
	off, size int64
	at        time.Time
}

// head is the durable position of the first undelivered record.
type head struct {
	Segment uint64 `json:"segment"`
	Offset  int64  `json:"offset"`
}

// Spool is a bounded, ordered, durable queue of entries on disk. It is safe
// for concurrent use.
type Spool struct {
	dir  string
	opts Options
	log  *slog.Logger
	head *checkpoint.File

	mu       sync.Mutex
	recs     []record // undelivered, oldest first
	bytes    int64
	nextSeg  uint64
	tail     *os.File // segment being appended to, or nil
	tailSeg  uint64
	tailSize int64
	reader   *os.File // open segment for Oldest, or nil
	readSeg  uint64
	buf      []byte
	closed   bool
	// headStale is set while the head file on disk is behind (its last
	// save failed).
	headStale bool
}

// Open opens the spool in dir, creating the directory if needed, checks
// every segment, and expires entries older than MaxAge.
func Open(dir string, opts Options) (*Spool, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{
		dir:     dir,
		opts:    opts,
		log:     log.With("spool", dir),
		head:    checkpoint.New(filepath.Join(dir, "head.json")),
		nextSeg: 1,
	}
	if err := s.load(); err != nil {
		s.closeFiles()
		return nil, err
	}
	s.expire()
	return s, nil
}

func segName(seq uint64) string { return fmt.Sprintf("%020d.seg", seq) }

func (s *Spool) segPath(seq uint64) string { return filepath.Join(s.dir, segName(seq)) }

// segments lists the segment numbers in the directory, ascending.
func (s *Spool) segments() ([]uint64, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var segs []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".seg")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue
		}
		segs = append(segs, n)
	}
	slices.Sort(segs)
	return segs, nil
}

func (s *Spool) load() error {
	var h head
	if _, err := s.head.Load(&h); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	segs, err := s.segments()
	if err != nil {
		return err
	}
	s.nextSeg = max(h.Segment, 1)
	for _, seq := range segs {
		s.nextSeg = max(s.nextSeg, seq+1)
		if seq < h.Segment {
			// Fully delivered; its removal was interrupted.
			if err := os.Remove(s.segPath(seq)); err != nil {
				return fmt.Errorf("spool: %w", err)
			}
			continue
		}
		if err := s.loadSegment(seq, h); err != nil {
			return err
		}
	}
	if len(segs) > 0 {
		last := segs[len(segs)-1]
		if last >= h.Segment {
			if err := s.openTail(last); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Spool) loadSegment(seq uint64, h head) error {
	path := s.segPath(seq)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	end, bad, err := scanSegment(f, fi.Size(), func(r scanned) {
		if seq == h.Segment && r.off < h.Offset {
			return // delivered
		}
		s.recs = append(s.recs, record{seg: seq, off: r.off, size: r.size, at: r.at})
		s.bytes += r.size
	})
	if err != nil {
		return fmt.Errorf("spool: reading %s: %w", path, err)
	}
	if bad == "" {
		return nil
	}
	cerr := &CorruptError{File: path, Offset: end, Dropped: fi.Size() - end, Reason: bad}
	s.log.Error("damaged spool segment cut off", "file", path, "offset", end, "dropped_bytes", cerr.Dropped, "reason", bad)
	if s.opts.OnCorrupt != nil {
		s.opts.OnCorrupt(cerr)
	}
	if bad == tornSegmentHeader {
		// A crash while the segment was being created: nothing in it.
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("spool: removing %s: %w", path, err)
		}
		return nil
	}
	if end == 0 {
		// Not a segment header: keep the file aside for inspection rather
		// than destroy what may not be ours.
		if err := os.Rename(path, path+".corrupt"); err != nil {
			return fmt.Errorf("spool: setting aside %s: %w", path, err)
		}
		return nil
	}
	if err := f.Truncate(end); err != nil {
		return fmt.Errorf("spool: truncating %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("spool: syncing %s: %w", path, err)
	}
	return nil
}

func (s *Spool) openTail(seq uint64) error {
	path := s.segPath(seq)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // set aside as corrupt
	}
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("spool: %w", err)
	}
	s.tail, s.tailSeg, s.tailSize = f, seq, fi.Size()
	return nil
}

// newSegment starts a new tail segment.
func (s *Spool) newSegment() error {
	if s.tail != nil {
		if err := s.tail.Close(); err != nil {
			s.tail = nil
			return fmt.Errorf("spool: closing segment: %w", err)
		}
		s.tail = nil
	}
	seq := s.nextSeg
	path := s.segPath(seq)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if _, err = f.WriteString(magic); err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = privfile.SyncDir(s.dir)
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("spool: creating %s: %w", path, err)
	}
	s.nextSeg++
	s.tail, s.tailSeg, s.tailSize = f, seq, int64(len(magic))
	return nil
}

// Append adds e at the end of the spool and syncs it to disk. It returns
// ErrFull when e does not fit under MaxBytes (nothing is dropped to make
// room) and ErrTooLarge when it never could. Entries older than MaxAge are
// expired first.
func (s *Spool) Append(e Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.expire()
	size := recordSize(e)
	if size > s.opts.MaxBytes || size-recordHeader > 1<<32-1 {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, size, s.opts.MaxBytes)
	}
	if s.headStale {
		s.saveHead(s.currentHead())
	}
	if s.bytes+size > s.opts.MaxBytes {
		return fmt.Errorf("%w: %d bytes spooled, %d more would exceed %d", ErrFull, s.bytes, size, s.opts.MaxBytes)
	}
	if s.tail == nil || (s.tailSize+size > s.opts.SegmentBytes && s.tailSize > int64(len(magic))) {
		if err := s.newSegment(); err != nil {
			return err
		}
	}
	now := s.opts.Now()
	s.buf = encodeRecord(s.buf[:0], e, now)
	name := s.tail.Name()
	if _, err := s.tail.Write(s.buf); err != nil {
		// Cut a partial write off, so that later appends stay readable.
		if terr := s.tail.Truncate(s.tailSize); terr != nil {
			s.tail.Close()
			s.tail = nil // start a new segment next time
		}
		return fmt.Errorf("spool: writing %s: %w", name, err)
	}
	if err := s.tail.Sync(); err != nil {
		// The record may or may not be durable: do not append after it.
		s.tail.Close()
		s.tail = nil
		return fmt.Errorf("spool: syncing %s: %w", name, err)
	}
	s.recs = append(s.recs, record{seg: s.tailSeg, off: s.tailSize, size: size, at: now})
	s.tailSize += size
	s.bytes += size
	return nil
}

// Oldest returns the first undelivered entry, and false when the spool is
// empty. The entry is the caller's. Entries older than MaxAge are expired
// first. Oldest returns the same entry until Ack.
func (s *Spool) Oldest() (Entry, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Entry{}, false, ErrClosed
	}
	s.expire()
	if len(s.recs) == 0 {
		return Entry{}, false, nil
	}
	r := s.recs[0]
	if s.reader == nil || s.readSeg != r.seg {
		if s.reader != nil {
			s.reader.Close()
			s.reader = nil
		}
		f, err := os.Open(s.segPath(r.seg))
		if err != nil {
			return Entry{}, false, fmt.Errorf("spool: %w", err)
		}
		s.reader, s.readSeg = f, r.seg
	}
	buf := make([]byte, r.size)
	if _, err := s.reader.ReadAt(buf, r.off); err != nil {
		return Entry{}, false, fmt.Errorf("spool: reading %s at %d: %w", s.reader.Name(), r.off, err)
	}
	e, _, err := checkRecord(buf)
	if err != nil {
		return Entry{}, false, fmt.Errorf("spool: %s at %d: %w", s.reader.Name(), r.off, err)
	}
	return e, true, nil
}

// Ack removes the entry that Oldest returns, once it was delivered. The
// removal is durable when Ack returns, unless the head file cannot be
// saved (a full disk, a read-only directory): then it is logged, the entry
// is removed all the same, and the head is saved at the next Ack or Append;
// a crash before that delivers the entry again.
func (s *Spool) Ack() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if len(s.recs) == 0 {
		return ErrEmpty
	}
	s.drop(1)
	return nil
}

// drop removes the first n records, which were delivered (or expired).
// The delivered segments go first, then the head file is saved: on a full
// disk, removing them is what makes room for the save. Removing them
// before the save is safe, since their records are delivered: after a
// crash, Open finds the head's segment gone and loads what follows.
//
// When the head cannot be saved (a full disk, a read-only directory) the
// records are removed all the same: they were delivered, and a caller
// that retried would remove others. The failure is logged once; the head
// is saved again at the next drop or Append. A crash before that delivers
// those records again (at least once, never lost).
func (s *Spool) drop(n int) {
	for _, r := range s.recs[:n] {
		s.bytes -= r.size
	}
	s.recs = s.recs[n:]
	h := s.currentHead()
	if len(s.recs) == 0 && s.tail != nil {
		// Empty: the next append starts a new segment.
		s.tail.Close()
		s.tail = nil
	}
	s.removeBefore(h.Segment)
	s.saveHead(h)
}

// currentHead is the position of the first undelivered record.
func (s *Spool) currentHead() head {
	if len(s.recs) > 0 {
		return head{Segment: s.recs[0].seg, Offset: s.recs[0].off}
	}
	return head{Segment: s.nextSeg}
}

// saveHead saves h, logging the first failure and the recovery.
func (s *Spool) saveHead(h head) {
	err := s.head.Save(h)
	switch {
	case err != nil && !s.headStale:
		s.headStale = true
		s.log.Warn("spool: cannot record delivered batches on disk; after a crash they would be sent again (duplicates, nothing lost)", "err", err)
	case err == nil && s.headStale:
		s.headStale = false
		s.log.Info("spool: delivered batches recorded on disk again")
	}
}

// removeBefore removes the segments wholly before segment seq (delivered).
// A segment that cannot be removed now is removed by a later call or at
// the next Open: a failure is only logged.
func (s *Spool) removeBefore(seq uint64) {
	segs, err := s.segments()
	if err != nil {
		s.log.Warn("spool: listing delivered segments to remove", "err", err)
		return
	}
	for _, n := range segs {
		if n >= seq {
			break
		}
		if s.reader != nil && s.readSeg == n {
			s.reader.Close()
			s.reader = nil
		}
		if err := os.Remove(s.segPath(n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("spool: removing a delivered segment", "err", err)
		}
	}
}

// expire drops the entries older than MaxAge from the front.
func (s *Spool) expire() {
	cutoff := s.opts.Now().Add(-s.opts.MaxAge)
	n := 0
	var bytes int64
	for _, r := range s.recs {
		if !r.at.Before(cutoff) {
			break
		}
		n++
		bytes += r.size
	}
	if n == 0 {
		return
	}
	s.drop(n)
	s.log.Error("spooled batches expired undelivered: data lost", "entries", n, "bytes", bytes, "max_age", s.opts.MaxAge)
	if s.opts.OnExpired != nil {
		s.opts.OnExpired(n, bytes)
	}
}

// Bytes returns the size of the undelivered entries' records.
func (s *Spool) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

// Entries returns the number of undelivered entries.
func (s *Spool) Entries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs)
}

// Close closes the spool's files. The spool's content stays on disk.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.closeFiles()
}

func (s *Spool) closeFiles() error {
	var errs []error
	if s.tail != nil {
		errs = append(errs, s.tail.Close())
		s.tail = nil
	}
	if s.reader != nil {
		errs = append(errs, s.reader.Close())
		s.reader = nil
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("spool: closing: %w", err)
	}
	return nil
}
