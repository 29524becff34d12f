package verify

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/auditpipe/auditpipe/schemas"
)

// uncovered reports, for a host checked with keys, the events that no
// signed checkpoint covers, and returns how many they are. An event is
// covered when its seq is in the range of a checkpoint with a valid
// signature whose head is the hash of the event at the range's end, and
// the chain links from there back to it (each event's prev_hash the hash
// of the one before, no seq missing). The chain's links and the events'
// hashes prove nothing by themselves: anyone who can write to the store
// or send to the SIEM can append an event at a host's head (its prev_hash
// is the stored head's hash, which every reader can compute) or start the
// chain of a host that never had a collector; only a signature covers.
//
// seqs are the host's seqs present, ascending; anchors its checkpoints
// with a valid signature; noKey, when not nil, why the host has no key
// (Options.HostKeys).
func uncovered(h *HostReport, seqs []uint64, bySeq map[uint64]*Record, anchors []*schemas.Event, noKey error, add func(seq uint64, kind, format string, args ...any)) int {
	n := len(seqs)
	switch {
	case noKey != nil:
		add(seqs[0], FindNoHostKey, "host %s has no key to check its checkpoints against (%v): none of its %d events (seq %d..%d) is covered by a signed checkpoint",
			h.Host, noKey, n, seqs[0], seqs[n-1])
		return n
	case len(anchors) == 0:
		add(seqs[0], FindNoSignedCheckpoint, "host %s has no signed checkpoint: none of its %d events (seq %d..%d) is covered", h.Host, n, seqs[0], seqs[n-1])
		return n
	}
	// Walked from the checkpoints of the lowest first seq up, a walk that
	// reaches an event an earlier one covered can stop: the earlier walk
	// went on from there at least as far down. So each event is walked
	// once whatever the checkpoints claim.
	sort.Slice(anchors, func(i, j int) bool { return anchors[i].ChainFirst < anchors[j].ChainFirst })
	covered := make([]bool, n)
	for _, cp := range anchors {
		i := sort.Search(n, func(i int) bool { return seqs[i] >= cp.ChainLast })
		if i == n || seqs[i] != cp.ChainLast || bySeq[cp.ChainLast].Hash != cp.ChainHead {
			continue // its head is not present as it was signed (a checkpoint_head finding)
		}
		for j := i; j >= 0 && seqs[j] >= cp.ChainFirst && !covered[j]; j-- {
			if j < i && (seqs[j]+1 != seqs[j+1] || bySeq[seqs[j+1]].Event.PrevHash != bySeq[seqs[j]].Hash) {
				break
			}
			covered[j] = true
		}
	}
	total := 0
	for i := 0; i < n; {
		if covered[i] {
			i++
			continue
		}
		j := i
		for j+1 < n && !covered[j+1] {
			j++
		}
		total += j - i + 1
		if j == n-1 {
			add(seqs[i], FindUncovered, "unsigned tail: seq %d..%d (%d events) not covered by a signed checkpoint (after the last signed checkpoint's head, or past a broken link before it)",
				seqs[i], seqs[j], j-i+1)
		} else {
			add(seqs[i], FindUncovered, "seq %d..%d (%d events) not covered by a signed checkpoint: the chain from no signed checkpoint's head links back to them (a checkpoint missing, or a link broken after them)",
				seqs[i], seqs[j], j-i+1)
		}
		i = j + 1
	}
	return total
}

func minUnchecked(seqs []uint64) uint64 {
	if len(seqs) == 0 {
		return 0
	}
	return sortedSeqs(seqs)[0]
}

func sortedSeqs(seqs []uint64) []uint64 {
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs
}

// listRanges is how many seq ranges seqList names; more are counted.
const listRanges = 8

// seqList describes seqs (events) and chain (checkpoints) as "seq 1..5, 9
// and 3 checkpoints".
func seqList(seqs []uint64, chain int) string {
	var parts []string
	if len(seqs) > 0 {
		seqs = sortedSeqs(seqs)
		var rs []string
		ranges := 0
		for i := 0; i < len(seqs); {
			j := i
			for j+1 < len(seqs) && seqs[j+1] <= seqs[j]+1 {
				j++
			}
			ranges++
			if len(rs) < listRanges {
				if seqs[i] == seqs[j] {
					rs = append(rs, strconv.FormatUint(seqs[i], 10))
				} else {
					rs = append(rs, fmt.Sprintf("%d..%d", seqs[i], seqs[j]))
				}
			}
			i = j + 1
		}
		s := "seq " + strings.Join(rs, ", ")
		if ranges > len(rs) {
			s += fmt.Sprintf(" and %d more ranges", ranges-len(rs))
		}
		parts = append(parts, s)
	}
	if chain > 0 {
		parts = append(parts, fmt.Sprintf("%d checkpoints", chain))
	}
	return strings.Join(parts, " and ")
}

// signatures says what Check checks the checkpoints' signatures against.
func signatures(opt Options) string {
	switch {
	case opt.HostKeys != nil:
		return fmt.Sprintf("signatures: each host's key enrolled in %s (DIR/<host>.pub): a host's checkpoints verify only against its own key", opt.HostKeys.Dir())
	case len(opt.Keys) > 0:
		return fmt.Sprintf("signatures: one keyring of %d key(s) for every host: a checkpoint of any host signed by any of them is accepted, "+
			"so the holder of one collector's key can sign another host's checkpoints (--pubkey-dir binds each host to its key)", len(opt.Keys))
	}
	return "signatures: not checked (no key given): unsigned and forged checkpoints are no findings, " +
		"and events that no checkpoint covers (a forged event at a host's head, a host that never had a collector) are only counted"
}
