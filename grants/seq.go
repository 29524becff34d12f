package grants

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
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
type Seqs struct {
	what string

	mu   sync.Mutex
	last map[string]applied
}

type applied struct {
	seq    int64
	digest string
}

// NewSeqs returns an empty memory; what names the keys in errors
// ("login", "resource", "instance", "host").
func NewSeqs(what string) *Seqs {
	return &Seqs{what: what, last: map[string]applied{}}
}

// Admit checks a record of key numbered seq whose signed payload is
// payload, and remembers it when it may be applied: nil, or a
// *RefusedError with ReasonReplayed (the memory unchanged).
func (s *Seqs) Admit(key string, seq int64, payload []byte) error {
	d := PayloadDigest(payload)
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.last[key]
	if err := CheckSeq(s.what, key, a.seq, a.digest, seq, d); err != nil {
		return err
	}
	s.last[key] = applied{seq: seq, digest: d}
	return nil
}

// Last returns the last number applied for key (0: none).
func (s *Seqs) Last(key string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[key].seq
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
