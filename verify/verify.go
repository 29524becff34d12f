// Package verify checks auditpipe's tamper-evident trail: each host's hash
// chain (prev_hash), its seq gaps, the rows that differ from what was
// chained, the conflicting copies the indexer kept apart, and the signed
// chain checkpoints, which, with keys given, must cover every event (a
// host's checkpoints bound to its own key with Options.HostKeys). It reads
// the events from ClickHouse (CheckStore, host by host) or from a SIEM's file
// (LoadSyslog) and checks them the same way (Check).
package verify

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

// Record is one stored copy of an event.
type Record struct {
	Event schemas.Event
	// Hash is the hash of the copy's canonical bytes, computed from its
	// fields; for a SIEM message without the json parameter, the hash the
	// message claims (ContentChecked is then false).
	Hash string
	// Claimed is the hash the store claims for the copy (ClickHouse's
	// content_hash, the SIEM message's hash parameter); "" when unknown.
	Claimed        string
	ContentChecked bool
	// Where locates the copy (partition/offset, file line).
	Where string
}

// Conflict is a differing copy of a stored event, kept apart by the indexer.
type Conflict struct {
	EventID, Host           string
	Seq                     uint64
	FirstHash, ConflictHash string
	Where                   string
}

// Finding kinds.
const (
	FindGap             = "gap"              // seq numbers missing
	FindBrokenLink      = "broken_link"      // prev_hash is not the hash of the event before
	FindAltered         = "altered"          // the copy's content is not what was hashed
	FindDuplicate       = "duplicate"        // two different copies of one seq or event_id
	FindConflict        = "conflict"         // a differing copy kept in event_conflicts
	FindOutOfOrder      = "out_of_order"     // a SIEM file holds the host's events out of seq order
	FindBadSignature    = "bad_signature"    // a chain checkpoint's signature does not verify
	FindUnsigned        = "unsigned"         // a chain checkpoint without signature, keys given
	FindCheckpointHead  = "checkpoint_head"  // a checkpoint's head, link or count does not match the events
	FindCheckpointEvent = "checkpoint_event" // events a checkpoint covers are missing
	FindWrongHostKey    = "wrong_host_key"   // a checkpoint signed by a key not enrolled for its host (Options.HostKeys)

	// Findings of what could not be proven rather than of a change
	// (Finding.Unproven): a forged event looks exactly like one of these.
	FindUncovered          = "uncovered"            // events no signed checkpoint covers, keys given
	FindNoSignedCheckpoint = "no_signed_checkpoint" // a host with events and no signed checkpoint, keys given
	FindNoHostKey          = "no_host_key"          // a host with no key enrolled in Options.HostKeys
	FindContentUnverified  = "content_not_verified" // copies whose content could not be recomputed (no json parameter)
)

// Unproven reports whether f says that something could not be proven (no
// signed checkpoint covers an event, its content could not be recomputed)
// rather than that something was changed. A forged event at a host's head
// or of a host that never had a collector is reported this way: it is not
// intact either.
func (f Finding) Unproven() bool {
	switch f.Kind {
	case FindUncovered, FindNoSignedCheckpoint, FindNoHostKey, FindContentUnverified:
		return true
	}
	return false
}

// Finding is one thing wrong, at a host and seq.
type Finding struct {
	Host   string
	Seq    uint64
	Kind   string
	Detail string
}

func (f Finding) String() string {
	return fmt.Sprintf("%s seq %d: %s: %s", f.Host, f.Seq, f.Kind, f.Detail)
}

// HostReport is what Check found for one host.
type HostReport struct {
	Host        string
	Events      int    // distinct events (seq numbers) present
	First, Last uint64 // seq range present
	// Checkpoints by signature state; Unverified: signed, no keys given.
	Valid, Invalid, Unsigned, Unverified int
	// HeadsMatching counts checkpoints whose head, link and count match.
	HeadsMatching, Checkpoints int
	// Unanchored counts events after the last checkpoint's range.
	Unanchored int
	// Uncovered counts, when keys are given, the events that no signed
	// checkpoint covers (see Check).
	Uncovered int
	// Unchecked counts copies whose content could not be recomputed
	// (a SIEM message without the json parameter).
	Unchecked int
	Findings  []Finding
	signed    bool // checked with keys: Uncovered is counted
}

// Intact reports whether nothing was found wrong and nothing was left
// unproven.
func (h *HostReport) Intact() bool { return len(h.Findings) == 0 }

// Changed reports whether a finding says that something was changed (any
// finding but the Unproven ones).
func (h *HostReport) Changed() bool {
	for _, f := range h.Findings {
		if !f.Unproven() {
			return true
		}
	}
	return false
}

// Report is the result of Check, hosts sorted by name.
type Report struct {
	Hosts []*HostReport
	// Request is set when Options.Request is.
	Request *RequestReport
	// Signatures says which keys the checkpoints were checked against
	// (and so what a valid signature proves); Write prints it first.
	Signatures string
}

// Changed reports whether a host's findings say that something was changed
// (Finding.Unproven ones aside).
func (r *Report) Changed() bool {
	for _, h := range r.Hosts {
		if h.Changed() {
			return true
		}
	}
	return false
}

// Intact reports whether every host is intact.
func (r *Report) Intact() bool {
	for _, h := range r.Hosts {
		if !h.Intact() {
			return false
		}
	}
	return true
}

// Options tune Check.
type Options struct {
	// Keys verify the checkpoints' signatures, every host's with any of
	// them; none (and no HostKeys): signatures are not checked (reported
	// unverified), unsigned checkpoints are no finding, and events no
	// checkpoint covers are only counted (HostReport.Unanchored).
	Keys map[string]ed25519.PublicKey
	// HostKeys, when set, binds each host's checkpoints to that host's key
	// enrolled there (DIR/<host>.pub, sign.KeyDir): a checkpoint of host H
	// verifies only against H's key (FindWrongHostKey otherwise), and a
	// host with no key enrolled is a finding (FindNoHostKey). Keys is then
	// not used.
	HostKeys *sign.KeyDir
	// Request, when set, also reports the commands of that access request
	// between its login and logout (RequestReport).
	Request string
	// FileOrder: records are in the order a SIEM received them, so a host's
	// events out of seq order are a finding.
	FileOrder bool
}

// Check checks records (copies of events, chain checkpoints among them)
// and conflicts.
func Check(records []Record, conflicts []Conflict, opt Options) *Report {
	byHost := map[string][]*Record{}
	for i := range records {
		r := &records[i]
		byHost[r.Event.Host] = append(byHost[r.Event.Host], r)
	}
	for _, c := range conflicts {
		if _, ok := byHost[c.Host]; !ok {
			byHost[c.Host] = nil
		}
	}
	rep := newReport(opt)
	for host, recs := range byHost {
		rep.addHost(host, recs, conflicts, opt)
	}
	rep.sort()
	return rep
}

// newReport is the report of a check with opt, no host in it yet.
func newReport(opt Options) *Report {
	rep := &Report{Signatures: signatures(opt)}
	if opt.Request != "" {
		rep.Request = &RequestReport{Request: opt.Request}
	}
	return rep
}

// addHost checks the records of one host (conflicts: those of every host)
// and adds what it found, and for a request the host's commands.
func (r *Report) addHost(host string, recs []*Record, conflicts []Conflict, opt Options) {
	h := checkHost(host, recs, conflicts, opt)
	r.Hosts = append(r.Hosts, h)
	if r.Request != nil {
		if rh := requestHost(recs, h, r.Request.Request); rh != nil {
			r.Request.Hosts = append(r.Request.Hosts, *rh)
		}
	}
}

// sort orders the hosts, and the request's, by name.
func (r *Report) sort() {
	sort.Slice(r.Hosts, func(i, j int) bool { return r.Hosts[i].Host < r.Hosts[j].Host })
	if r.Request != nil {
		sort.Slice(r.Request.Hosts, func(i, j int) bool { return r.Request.Hosts[i].Host < r.Request.Hosts[j].Host })
	}
}

func checkHost(host string, recs []*Record, conflicts []Conflict, opt Options) *HostReport {
	h := &HostReport{Host: host}
	add := func(seq uint64, kind, format string, args ...any) {
		h.Findings = append(h.Findings, Finding{Host: host, Seq: seq, Kind: kind, Detail: fmt.Sprintf(format, args...)})
	}
	bySeq := map[uint64]*Record{}
	byID := map[string]*Record{}
	var chain []*Record
	var maxSeen uint64
	var uncheckedSeqs []uint64 // of the copies whose content was not recomputed
	var uncheckedChain int     // checkpoints among them
	for _, r := range recs {
		e := &r.Event
		if !r.ContentChecked {
			h.Unchecked++
			if e.Event == schemas.KindChain {
				uncheckedChain++
			} else {
				uncheckedSeqs = append(uncheckedSeqs, e.Seq)
			}
		} else if r.Claimed != "" && r.Claimed != r.Hash {
			add(e.Seq, FindAltered, "%s event %s (%s): its content hashes to %s, but %s was stored for it: the copy was changed after it was written",
				e.Event, e.EventID, r.Where, short(r.Hash), short(r.Claimed))
		}
		if prev, ok := byID[e.EventID]; ok {
			if prev.Hash != r.Hash {
				add(e.Seq, FindDuplicate, "event %s is stored twice with different content (%s at %s, %s at %s)",
					e.EventID, short(prev.Hash), prev.Where, short(r.Hash), r.Where)
			}
			continue // an identical copy (a resend) is harmless
		}
		byID[e.EventID] = r
		if e.Event == schemas.KindChain {
			if r.ContentChecked { // else only its id is known: Unchecked
				chain = append(chain, r)
			}
			continue
		}
		if opt.FileOrder {
			if e.Seq < maxSeen {
				add(e.Seq, FindOutOfOrder, "event %s (%s) comes after seq %d", e.EventID, r.Where, maxSeen)
			}
			maxSeen = max(maxSeen, e.Seq)
		}
		if prev, ok := bySeq[e.Seq]; ok {
			add(e.Seq, FindDuplicate, "two events claim seq %d: %s (%s) and %s (%s)", e.Seq, prev.Event.EventID, prev.Where, e.EventID, r.Where)
			continue
		}
		bySeq[e.Seq] = r
	}
	seqs := make([]uint64, 0, len(bySeq))
	for s := range bySeq {
		seqs = append(seqs, s)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	h.Events = len(seqs)
	if len(seqs) > 0 {
		h.First, h.Last = seqs[0], seqs[len(seqs)-1]
	}
	for i, s := range seqs {
		r := bySeq[s]
		switch {
		case i == 0 && s == 1 && r.Event.PrevHash != "":
			add(s, FindBrokenLink, "the first event links to %s, want an empty prev_hash", short(r.Event.PrevHash))
		case i == 0:
		case s != seqs[i-1]+1:
			if s == seqs[i-1]+2 {
				add(seqs[i-1]+1, FindGap, "seq %d missing", seqs[i-1]+1)
			} else {
				add(seqs[i-1]+1, FindGap, "seq %d..%d missing (%d events)", seqs[i-1]+1, s-1, s-1-seqs[i-1])
			}
		case r.Event.PrevHash != bySeq[seqs[i-1]].Hash:
			why := "the event before was changed, removed or replaced, or this one was moved"
			if r.Event.PrevHash == "" {
				why = "prev_hash is empty: the chain starts again here (collector state lost or reset)"
			}
			add(s, FindBrokenLink, "prev_hash %s is not the hash %s of seq %d: %s", short(r.Event.PrevHash), short(bySeq[seqs[i-1]].Hash), seqs[i-1], why)
		}
	}
	// With keys, a host's checkpoints verify against its own enrolled key
	// (HostKeys) or against every key given (Keys).
	keys, signed := opt.Keys, len(opt.Keys) > 0 || opt.HostKeys != nil
	var noKey error // HostKeys has no key for this host
	var hostKey string
	if opt.HostKeys != nil {
		keys = nil
		if pub, err := opt.HostKeys.Key(host); err != nil {
			noKey = err
		} else {
			hostKey = schemas.ChainKeyID(pub)
			keys = map[string]ed25519.PublicKey{hostKey: pub}
		}
	}
	var anchored uint64
	var anchors []*schemas.Event // checkpoints with a valid signature
	for _, r := range chain {
		e := &r.Event
		h.Checkpoints++
		// Only a checkpoint that may be the collector's anchors the events
		// before its end: not one whose signature is wrong, nor an
		// unsigned one when keys are given (a forged checkpoint of
		// 1..2^64-1 would otherwise anchor every event).
		trusted := true
		switch err := e.VerifyChainSig(keys); {
		case errors.Is(err, schemas.ErrUnsigned):
			h.Unsigned++
			if signed {
				trusted = false
				add(e.ChainLast, FindUnsigned, "checkpoint %d..%d is not signed", e.ChainFirst, e.ChainLast)
			}
		case !signed:
			h.Unverified++
		case noKey != nil:
			// Signed, but there is no key of this host to check it
			// against: FindNoHostKey below.
			h.Unverified++
			trusted = false
		case errors.Is(err, schemas.ErrUnknownKey) && opt.HostKeys != nil:
			h.Invalid++
			trusted = false
			add(e.ChainLast, FindWrongHostKey, "checkpoint %d..%d is signed by key %s, not by %s, the key enrolled for host %s in %s",
				e.ChainFirst, e.ChainLast, e.KeyID, hostKey, host, opt.HostKeys.Dir())
		case err != nil:
			h.Invalid++
			trusted = false
			add(e.ChainLast, FindBadSignature, "checkpoint %d..%d: %v", e.ChainFirst, e.ChainLast, err)
		default:
			h.Valid++
			anchors = append(anchors, e)
		}
		if trusted {
			anchored = max(anchored, e.ChainLast)
		}
		present, missing := coverage(seqs, e.ChainFirst, e.ChainLast)
		ok := true
		if missing.n > 0 && present != e.ChainCount {
			ok = false
			add(missing.first, FindCheckpointEvent, "checkpoint %d..%d covers %d events, %d present, missing seq %s", e.ChainFirst, e.ChainLast, e.ChainCount, present, missing)
		}
		switch last := bySeq[e.ChainLast]; {
		case last == nil && ok:
			// Its count matches the events present, but its head is not
			// one of them: nothing it claims can be compared.
			ok = false
			add(e.ChainLast, FindCheckpointHead, "checkpoint %d..%d: its head, seq %d, is not present", e.ChainFirst, e.ChainLast, e.ChainLast)
		case last != nil && last.Hash != e.ChainHead:
			ok = false
			add(e.ChainLast, FindCheckpointHead, "checkpoint %d..%d: head %s, but seq %d hashes to %s", e.ChainFirst, e.ChainLast, short(e.ChainHead), e.ChainLast, short(last.Hash))
		}
		if first := bySeq[e.ChainFirst]; first != nil && first.Event.PrevHash != e.PrevHash {
			ok = false
			add(e.ChainFirst, FindCheckpointHead, "checkpoint %d..%d: link %s, but seq %d links to %s", e.ChainFirst, e.ChainLast, short(e.PrevHash), e.ChainFirst, short(first.Event.PrevHash))
		}
		if missing.n == 0 && present != e.ChainCount {
			ok = false
			add(e.ChainFirst, FindCheckpointHead, "checkpoint %d..%d counts %d events, %d present", e.ChainFirst, e.ChainLast, e.ChainCount, present)
		}
		if ok {
			h.HeadsMatching++
		}
	}
	for _, s := range seqs {
		if s > anchored {
			h.Unanchored++
		}
	}
	h.signed = signed
	if signed && len(seqs) > 0 {
		h.Uncovered = uncovered(h, seqs, bySeq, anchors, noKey, add)
	}
	if h.Unchecked > 0 {
		add(minUnchecked(uncheckedSeqs), FindContentUnverified, "%d copies without the json parameter (%s): their content (MSG, plain parameters) was not recomputed, their hash parameter taken as is; "+
			"the forwarder leaves json out of a message that would not fit with it, and a copy whose json was removed looks the same",
			h.Unchecked, seqList(uncheckedSeqs, uncheckedChain))
	}
	for _, c := range conflicts {
		if c.Host == host {
			add(c.Seq, FindConflict, "a different copy of event %s arrived (%s, hash %s) after %s was stored; the stored one was kept",
				c.EventID, c.Where, short(c.ConflictHash), short(c.FirstHash))
		}
	}
	sort.SliceStable(h.Findings, func(i, j int) bool { return h.Findings[i].Seq < h.Findings[j].Seq })
	return h
}

func short(h string) string {
	if len(h) > 16 {
		return h[:16]
	}
	if h == "" {
		return `""`
	}
	return h
}

// missingSeqs describes the seqs missing from a checkpoint's range.
type missingSeqs struct {
	n           uint64   // how many (at most 2^64-1: a range 0..2^64-1 with none present says one fewer)
	first, last uint64   // the lowest and highest, when n > 0
	some        []uint64 // the lowest ones, at most listMissing+1
}

// listMissing is how many missing seqs a finding lists one by one; more
// are given as a range and a count.
const listMissing = 8

func (m missingSeqs) String() string {
	if m.n > listMissing {
		return fmt.Sprintf("%d..%d (%d of them)", m.first, m.last, m.n)
	}
	return fmt.Sprint(m.some)
}

// add records the missing seqs a..b (a <= b).
func (m *missingSeqs) add(a, b uint64) {
	if m.n == 0 {
		m.first = a
	}
	m.last = b
	if w := b - a; m.n+w < m.n || m.n+w == math.MaxUint64 {
		m.n = math.MaxUint64
	} else {
		m.n += w + 1
	}
	for k := uint64(0); k <= b-a && len(m.some) <= listMissing; k++ {
		m.some = append(m.some, a+k)
	}
}

// coverage counts the seqs of the sorted seqs present in first..last and
// the ones missing there. It walks the seqs present, never the range: a
// forged checkpoint may claim 1..2^64-1.
func coverage(seqs []uint64, first, last uint64) (present uint64, missing missingSeqs) {
	if first > last {
		return 0, missingSeqs{}
	}
	next := first // the lowest seq of the range not yet accounted for
	i := sort.Search(len(seqs), func(i int) bool { return seqs[i] >= first })
	for ; i < len(seqs) && seqs[i] <= last; i++ {
		s := seqs[i]
		if s > next {
			missing.add(next, s-1)
		}
		present++
		if s == last {
			return present, missing
		}
		next = s + 1
	}
	missing.add(next, last)
	return present, missing
}

// AddFindings adds findings made outside Check (LoadSyslog's) to their
// hosts' reports.
func (r *Report) AddFindings(fs []Finding) {
	for _, f := range fs {
		var h *HostReport
		for _, x := range r.Hosts {
			if x.Host == f.Host {
				h = x
			}
		}
		if h == nil {
			h = &HostReport{Host: f.Host}
			r.Hosts = append(r.Hosts, h)
		}
		h.Findings = append(h.Findings, f)
	}
}

// Write prints the report: what the signatures were checked against, a
// line per host, then each finding.
func (r *Report) Write(w io.Writer) error {
	if r.Signatures != "" {
		if _, err := fmt.Fprintln(w, r.Signatures); err != nil {
			return err
		}
	}
	intact, unproven := 0, 0
	for _, h := range r.Hosts {
		state := "intact"
		switch {
		case h.Intact():
			intact++
		case !h.Changed():
			unproven++
			state = fmt.Sprintf("%d findings (nothing found changed, but not everything is proven)", len(h.Findings))
		default:
			state = fmt.Sprintf("%d findings", len(h.Findings))
		}
		cover := ""
		if h.signed {
			cover = fmt.Sprintf("; %d not covered by a signed checkpoint", h.Uncovered)
		}
		if _, err := fmt.Fprintf(w, "host %s: %d events, seq %d..%d; checkpoints %d (signatures: %d valid, %d invalid, %d unsigned, %d unverified; %d heads match); %d events after the last checkpoint%s; %s\n",
			h.Host, h.Events, h.First, h.Last, h.Checkpoints, h.Valid, h.Invalid, h.Unsigned, h.Unverified, h.HeadsMatching, h.Unanchored, cover, state); err != nil {
			return err
		}
		for _, f := range h.Findings {
			fmt.Fprintf(w, "  %s\n", f)
		}
	}
	if r.Request != nil {
		r.Request.write(w)
	}
	only := ""
	if unproven > 0 {
		only = fmt.Sprintf(" (%d of them only unproven: nothing found changed)", unproven)
	}
	_, err := fmt.Fprintf(w, "verify: %d hosts, %d intact, %d with findings%s\n", len(r.Hosts), intact, len(r.Hosts)-intact, only)
	return err
}
