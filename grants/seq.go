package grants

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditpipe/auditpipe/internal/privfile"
)

// MaxSeqAhead is how far above the clock, in microseconds, a publish_seq
// may be. Publishers number by a counter (the policy service: 1, 2, …) or
// by the clock (agents, auditpipe grant publish); a number beyond this
// would make every later record of its key look old (a signer's typo, a
// host clock far ahead, a compromised signer freezing a key), so it is
// refused instead of applied.
const MaxSeqAhead = 24 * time.Hour

// Replay protection. Every signed record carries, inside its signed
// payload, publish_seq: its publisher's number of the records of its key
// on its topic (the policy service's publish_seqs table; an agent's own
// counter for its host on opctl.agent.v1). A consumer keeps, per key, the
// number and the payload's digest of the last record it applied, and
// refuses with ReasonReplayed:
//
//   - a record without a number (0): older than replay protection, or a
//     replay of such a record;
//   - a number below the last applied: an old record written again;
//   - the last number with another payload: not what was applied under
//     that number (a publisher never signs two payloads with one number);
//   - a number above the clock in microseconds plus MaxSeqAhead.
//
// The last number with the same payload is the record applied already,
// read again (a follower reading the compacted topic from its start at a
// restart, a consumer group re-reading after a rebalance or a crash
// before its commit): accepted, and applying it again changes nothing.
// So after a restart each key's current record on the compacted topic is
// accepted, whatever was applied before.

// PayloadDigest is the digest a Seqs keeps of a record: the SHA-256 of
// its signed payload, hex.
func PayloadDigest(payload []byte) string {
	sum := sha256.Sum256(payload)
	return hex.EncodeToString(sum[:])
}

// CheckSeq is the rule above for one record of key: last and lastDigest
// are what was applied for the key (0 and "" when nothing), seq and
// digest the record's. It returns nil when the record may be applied,
// else a *RefusedError with ReasonReplayed. what names the key in the
// error ("login", "instance", "host").
func CheckSeq(what, key string, last int64, lastDigest string, seq int64, digest string) error {
	switch {
	case seq < 1:
		return &RefusedError{Reason: ReasonReplayed, Err: fmt.Errorf("%s %s: the record carries no publish_seq (older than replay protection, or a replay of such a record)", what, key)}
	case seq > time.Now().UnixMicro()+MaxSeqAhead.Microseconds():
		return &RefusedError{Reason: ReasonReplayed, Err: fmt.Errorf("%s %s: publish_seq %d is more than %s above the clock: applied, it would refuse every later record of the %s", what, key, seq, MaxSeqAhead, what)}
	case seq < last:
		return &RefusedError{Reason: ReasonReplayed, Err: fmt.Errorf("%s %s: publish_seq %d is below %d, the last applied: an old record written again", what, key, seq, last)}
	case seq == last && digest != lastDigest:
		return &RefusedError{Reason: ReasonReplayed, Err: fmt.Errorf("%s %s: publish_seq %d was applied already with another payload", what, key, seq)}
	}
	return nil
}

// Seqs is a consumer's memory of the last record it applied per key (see
// CheckSeq), for the consumers that rebuild their state from the topic at
// each start (the grants follower, the agent's dispatch follower, the
// forwarder's assignments, the indexer's inventories). Consumers whose
// state outlives them keep it in their store instead (policy's
// applied_seqs). It is safe for concurrent use.
//
// A Seqs opened on a file (OpenSeqs) keeps its memory there too, so that
// a restart compares the records it reads with what was applied before:
// without it, a replay written after a key's current record, left by
// compaction as the key's only record, is the first record of the key a
// restarted consumer sees, and is accepted. The file is rewritten
// (privfile.Write: 0600, atomic, synced with its directory) whenever an
// admitted record changes the memory, before Admit returns, so before the
// consumer applies the record (with Defer: at Flush, which the consumer
// calls before anything acts on the records): a crash between the two
// leaves a memory that names a record whose effect is missing, and the
// record, its key's latest, is read again at the restart (the same number
// and payload: accepted and applied). The other order would let a crash
// forget a record whose effect outlives the process (an agent's removed
// user).
type Seqs struct {
	what string
	path string // "" keeps the memory in memory only
	log  *slog.Logger

	mu   sync.Mutex
	last map[string]applied
	// dirty is set while the file does not hold the memory: changes held
	// by Defer, or a write that failed (the next record admitted writes
	// it again, changed or not).
	dirty bool
	// deferred holds the changes until Flush (Defer).
	deferred bool
}

// applied is what a Seqs keeps of a key's last applied record; its JSON
// is the file's.
type applied struct {
	Seq    int64  `json:"seq"`
	Digest string `json:"sha256"`
	// Final: the key took a final record (a revocation).
	Final bool `json:"final,omitempty"`
	// Partition and Offset are where the record was read; Offset -1
	// when not known.
	Partition int   `json:"partition"`
	Offset    int64 `json:"offset"`
}

// seqsFile is the content of a Seqs' file.
type seqsFile struct {
	Version int                `json:"version"`
	What    string             `json:"what"`
	Keys    map[string]applied `json:"keys"`
}

// seqsFileVersion is the version of the file's format.
const seqsFileVersion = 1

// ErrSuperseded is AdmitRecord's answer for a record read before its
// key's applied record, at a lower offset of the same partition, and not
// that record: history that compaction has not removed yet, read again at
// a restart (it was applied, or refused, when first read). It is not a
// refusal: the consumer skips it, counting and dead-lettering nothing.
var ErrSuperseded = errors.New("read before its key's applied record: superseded")

// NewSeqs returns an empty memory, kept in memory only; what names the
// keys in errors ("login", "resource", "instance", "host").
func NewSeqs(what string) *Seqs {
	return &Seqs{what: what, log: slog.New(slog.DiscardHandler), last: map[string]applied{}}
}

// OpenSeqs returns the memory kept in the file path: what it holds, or
// empty when it does not exist (a first start; the empty memory is then
// written, and a file that cannot be written is an error). A file that cannot be read
// or is not such a memory (another what, damaged) is an error: a consumer
// refuses to start rather than forget what it applied. path "" is
// NewSeqs (memory only). log receives the failures to write the file
// (nil: discard).
func OpenSeqs(what, path string, log *slog.Logger) (*Seqs, error) {
	s := NewSeqs(what)
	if log != nil {
		s.log = log
	}
	if path == "" {
		return s, nil
	}
	s.path = path
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		// Written now, empty: a file that cannot be written (a state
		// directory a non-root process may not create, a read-only
		// disk) stops the start with the reason, rather than refusing
		// every grant later (see AdmitRecord).
		if err := s.save(); err != nil {
			return nil, fmt.Errorf("%w (set the consumer's state directory to one it may write)", err)
		}
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("replay memory: %w", err)
	}
	var f seqsFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("replay memory %s: damaged (%v): refusing to start without what was applied before (remove the file to start afresh: every key's record on the topic is then taken as its current one)", path, err)
	}
	if err := f.check(what); err != nil {
		return nil, fmt.Errorf("replay memory %s: %w (remove the file to start afresh: every key's record on the topic is then taken as its current one)", path, err)
	}
	for k, a := range f.Keys {
		s.last[k] = a
	}
	return s, nil
}

// check validates a file read for a memory of what.
func (f seqsFile) check(what string) error {
	if f.Version != seqsFileVersion {
		return fmt.Errorf("version %d, want %d", f.Version, seqsFileVersion)
	}
	if f.What != what {
		return fmt.Errorf("a memory of %q, not of %q", f.What, what)
	}
	for k, a := range f.Keys {
		d, err := hex.DecodeString(a.Digest)
		if k == "" || a.Seq < 1 || err != nil || len(d) != sha256.Size || a.Partition < 0 || a.Offset < -1 {
			return fmt.Errorf("%s %q: invalid entry %+v", what, k, a)
		}
	}
	return nil
}

// Numbered is one record as a Seqs sees it.
type Numbered struct {
	// Key is the record's key (a login, a resource, an instance, a host).
	Key string
	// Seq is its publish_seq.
	Seq int64
	// Payload is its signed payload, whose SHA-256 is kept.
	Payload []byte
	// Final marks the key's last record (a revocation: logins are never
	// reused): once one is applied, a record of the key that is not final
	// is refused whatever its number.
	Final bool
	// Partition and Offset are where the record was read. Offset -1: not
	// known (no record is then taken as superseded).
	Partition int
	Offset    int64
}

// Admit checks a record of key numbered seq whose signed payload is
// payload, and remembers it when it may be applied: nil, or a
// *RefusedError with ReasonReplayed (the memory unchanged). It is
// AdmitRecord of a record whose place is not known.
func (s *Seqs) Admit(key string, seq int64, payload []byte) error {
	return s.AdmitRecord(Numbered{Key: key, Seq: seq, Payload: payload, Offset: -1})
}

// AdmitRecord checks a record and remembers it when it may be applied:
// nil, or ErrSuperseded (a record read before the key's applied one: skip
// it), or a *RefusedError with ReasonReplayed (CheckSeq, or a record that
// is not final after a final one), the memory unchanged. A record that
// changes the memory is written to the file before AdmitRecord returns
// (unless Defer holds the changes). When that fails (logged), a final
// record is admitted all the same (a revocation only takes access away:
// its effect matters more than the memory of a restart) and any other is
// refused with ReasonNotRemembered, the memory as it was: what a restart
// could not tell from a replay is not applied. The next change writes
// the file again.
func (s *Seqs) AdmitRecord(n Numbered) error {
	d := PayloadDigest(n.Payload)
	s.mu.Lock()
	defer s.mu.Unlock()
	a, known := s.last[n.Key]
	same := known && n.Seq == a.Seq && d == a.Digest
	if known && !same && n.Offset >= 0 && a.Offset >= 0 && n.Partition == a.Partition && n.Offset < a.Offset {
		return fmt.Errorf("%s %s: publish_seq %d at offset %d, before the applied %d at offset %d: %w", s.what, n.Key, n.Seq, n.Offset, a.Seq, a.Offset, ErrSuperseded)
	}
	if known && a.Final && !n.Final {
		return &RefusedError{Reason: ReasonReplayed, Err: fmt.Errorf("%s %s: its final record (publish_seq %d) was applied: no other record of it is taken", s.what, n.Key, a.Seq)}
	}
	if err := CheckSeq(s.what, n.Key, a.Seq, a.Digest, n.Seq, d); err != nil {
		return err
	}
	if !same {
		s.last[n.Key] = applied{Seq: n.Seq, Digest: d, Final: a.Final || n.Final, Partition: n.Partition, Offset: n.Offset}
		s.dirty = true
	}
	if s.dirty && !s.deferred {
		if err := s.save(); err != nil && !same && !n.Final {
			if known {
				s.last[n.Key] = a
			} else {
				delete(s.last, n.Key)
			}
			return &RefusedError{Reason: ReasonNotRemembered, Err: fmt.Errorf("%s %s: publish_seq %d not applied: %w", s.what, n.Key, n.Seq, err)}
		}
	}
	return nil
}

// Defer holds the memory's changes until Flush instead of writing the
// file at each: for a consumer whose records have no effect outside the
// process until it says so (a follower catching up with the topic at
// start, which acts once caught up; the indexer, whose rows count once
// their offsets are committed), so that it writes the file once per
// batch rather than once per record (a first start reading 10 000
// logins rewrote a 1.5 MB file 10 000 times: 87 s). The consumer must
// Flush before the effect: then a crash before the Flush leaves a memory
// older than what was read, and nothing that outlives the process done
// with what was read.
func (s *Seqs) Defer() {
	s.mu.Lock()
	s.deferred = true
	s.mu.Unlock()
}

// Flush writes the changes held since the last write, if any (nil at
// once without a file or a change); Defer still holds the later ones.
// A failure is logged too.
func (s *Seqs) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.dirty {
		return nil
	}
	return s.save()
}

// Undefer flushes, and from then on writes each change at once again.
func (s *Seqs) Undefer() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deferred = false
	if !s.dirty {
		return nil
	}
	return s.save()
}

// save writes the memory to its file, if it has one. Called with s.mu
// held, so that files are written in the order of the changes.
func (s *Seqs) save() error {
	if s.path == "" {
		s.dirty = false
		return nil
	}
	b, err := json.Marshal(seqsFile{Version: seqsFileVersion, What: s.what, Keys: s.last})
	if err == nil {
		if err = os.MkdirAll(filepath.Dir(s.path), 0o700); err == nil {
			err = privfile.Write(s.path, b)
		}
	}
	if err != nil {
		s.log.Error("replay memory not written: a final record is applied all the same, any other refused; a restart before the next write compares what it reads with an older memory", "file", s.path, "err", err)
		return fmt.Errorf("replay memory %s: %w", s.path, err)
	}
	s.dirty = false
	return nil
}

// Last returns the last number applied for key (0: none).
func (s *Seqs) Last(key string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[key].Seq
}

// Final reports whether a final record of key was applied.
func (s *Seqs) Final(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[key].Final
}

// ClockSeq numbers records by the clock, as a host agent numbers its
// host's messages: each Next is the time in microseconds since 1970, or
// one above the last number when the clock has not moved on (or stepped
// back), so numbers strictly increase and keep growing across a restart
// as long as the clock does. The zero value is ready to use; it is safe
// for concurrent use.
type ClockSeq struct{ last atomic.Int64 }

// Next returns the next number.
func (c *ClockSeq) Next() int64 {
	for {
		last := c.last.Load()
		n := max(last+1, time.Now().UnixMicro())
		if c.last.CompareAndSwap(last, n) {
			return n
		}
	}
}
