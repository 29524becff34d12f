package verify

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/forwarder"
	"github.com/auditpipe/auditpipe/indexer"
	"github.com/auditpipe/auditpipe/schemas"
)

func load(t testing.TB, eng clickhouse.Engine, evs []schemas.Event) indexer.LoadStats {
	t.Helper()
	var in strings.Builder
	for i := range evs {
		in.Write(evs[i].AppendJSON(nil))
		in.WriteByte('\n')
	}
	st, err := indexer.Load(context.Background(), eng, strings.NewReader(in.String()), indexer.LoadOptions{BatchRows: 7})
	if err != nil {
		t.Fatal(err)
	}
	if st.Rejected > 0 {
		t.Fatalf("load: %+v", st)
	}
	return st
}

// loadAll reads every stored copy that f selects, whole, and the
// conflicts: what CheckStore checks host by host.
func loadAll(t testing.TB, q clickhouse.Querier, f Filter) ([]Record, []Conflict) {
	t.Helper()
	ctx := context.Background()
	s, err := openStore(ctx, q, f, StorePageSeqs)
	if err != nil {
		t.Fatal(err)
	}
	var recs []Record
	for _, hp := range s.hosts {
		if recs, err = s.host(ctx, hp, recs, nil); err != nil {
			t.Fatal(err)
		}
	}
	conflicts, err := s.conflicts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return recs, conflicts
}

// written is rep as Write prints it.
func written(t testing.TB, rep *Report) string {
	t.Helper()
	if rep == nil {
		return "<nil>"
	}
	var b strings.Builder
	if err := rep.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func exec(t testing.TB, eng clickhouse.Engine, sql string) {
	t.Helper()
	if err := eng.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func kinds(h *HostReport) string {
	var s []string
	for _, f := range h.Findings {
		s = append(s, fmt.Sprintf("%d:%s", f.Seq, f.Kind))
	}
	return strings.Join(s, " ")
}

// Issue 9, "Done when": verify reports a clean chain as intact, and each
// tampering of ClickHouse (a row deleted, a field changed with ALTER
// UPDATE, a conflicting copy inserted, a batch dropped, two events
// reordered, a checkpoint forged) with the host and seq. Each case is a
// host of its own in one store.
func TestVerifyStore(t *testing.T) {
	eng := clickhousetest.OpenMigrated(t)
	ctx := context.Background()
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	keys := map[string]ed25519.PublicKey{schemas.ChainKeyID(pub): pub}
	const n, batch = 30, 10
	mut := "SETTINGS mutations_sync = 2"
	var conflictRow schemas.Event
	tests := []struct {
		host   string
		load   func(evs []schemas.Event) []schemas.Event // what reaches the store
		tamper func(host string)
		want   string // findings, "seq:kind" in order
	}{
		{host: "clean", want: ""},
		{host: "deleted", tamper: func(h string) {
			exec(t, eng, "ALTER TABLE audit_events DELETE WHERE host = '"+h+"' AND seq = 5 AND event != 'chain' "+mut)
		}, want: "1:uncovered 5:gap 5:checkpoint_event"},
		{host: "changed", tamper: func(h string) {
			exec(t, eng, "ALTER TABLE audit_events UPDATE title = 'ls', res = 'success' WHERE host = '"+h+"' AND seq = 7 "+mut)
		}, want: "1:uncovered 7:altered 8:broken_link"},
		{host: "changed-and-rehashed", tamper: func(h string) {
			// The attacker fixes content_hash too: the link still breaks,
			// and the checkpoint's head no longer matches at the end.
			exec(t, eng, "ALTER TABLE audit_events UPDATE title = 'ls', content_hash = '' WHERE host = '"+h+"' AND seq = 10 "+mut)
		}, want: "1:uncovered 10:checkpoint_head 11:broken_link"},
		{host: "conflict", load: func(evs []schemas.Event) []schemas.Event {
			conflictRow = evs[3] // seq 4
			forged := conflictRow
			forged.Title, forged.Args, forged.Res = "true", []string{"true"}, "success"
			return append(evs, forged)
		}, want: "4:conflict"},
		{host: "dropped-batch", load: func(evs []schemas.Event) []schemas.Event {
			var out []schemas.Event
			for _, e := range evs {
				if e.Seq >= 11 && e.Seq <= 20 || e.Event == schemas.KindChain && e.ChainFirst == 11 {
					continue
				}
				out = append(out, e)
			}
			return out
		}, want: "11:gap"},
		{host: "reordered", tamper: func(h string) {
			exec(t, eng, "ALTER TABLE audit_events UPDATE seq = if(seq = 14, 15, 14) WHERE host = '"+h+"' AND seq IN (14, 15) AND event != 'chain' "+mut)
		}, want: "11:uncovered 14:altered 14:broken_link 15:altered 15:broken_link 16:broken_link"},
		{host: "forged-checkpoint", load: func(evs []schemas.Event) []schemas.Event {
			for i := range evs {
				if evs[i].Event == schemas.KindChain && evs[i].ChainFirst == 21 {
					evs[i].SignChain(otherKey)
				}
			}
			return evs
		}, want: "21:uncovered 30:bad_signature"},
		// Issue 9 review, F1: what the collector credential (or anyone who
		// can write the store) adds without the chain key. The forged
		// events link (an auditor can compute the head's hash), so only
		// the signature tells them: none covers them.
		{host: "forged-head", load: func(evs []schemas.Event) []schemas.Event {
			return append(evs, forgedNext(evs, "rm -rf /var/log/secure"))
		}, want: "31:uncovered"},
		{host: "forged-host", load: func(evs []schemas.Event) []schemas.Event {
			return withoutCheckpoints(evs)
		}, want: "1:no_signed_checkpoint"},
		// A checkpoint removed from the middle leaves its batch uncovered.
		{host: "checkpoint-deleted", load: func(evs []schemas.Event) []schemas.Event {
			var out []schemas.Event
			for _, e := range evs {
				if e.Event != schemas.KindChain || e.ChainFirst != 11 {
					out = append(out, e)
				}
			}
			return out
		}, want: "11:uncovered"},
	}
	for _, tc := range tests {
		evs := clickhousetest.ChainedEvents(t, tc.host, n, batch, key)
		if tc.load != nil {
			evs = tc.load(evs)
		}
		load(t, eng, evs)
	}
	for _, tc := range tests {
		if tc.tamper != nil {
			tc.tamper(tc.host)
		}
	}
	rep, err := CheckStore(ctx, eng, Filter{}, Options{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	// Host by host, each event without what the checks never read: the
	// same report as every stored copy, whole, checked at once.
	recs, conflicts := loadAll(t, eng, Filter{})
	if whole := Check(recs, conflicts, Options{Keys: keys}); !reflect.DeepEqual(rep, whole) {
		t.Fatalf("checked host by host:\n%s\nall at once:\n%s", written(t, rep), written(t, whole))
	}
	// The same for a request, which every host's events are part of: its
	// commands are listed whole (the review of the host-by-host check
	// found their args dropped), the same on each host as checked at once.
	withReq := Options{Keys: keys, Request: "req-a"}
	reqRep, err := CheckStore(ctx, eng, Filter{}, withReq)
	if err != nil {
		t.Fatal(err)
	}
	if whole := Check(recs, conflicts, withReq); !reflect.DeepEqual(reqRep, whole) {
		t.Fatalf("request checked host by host:\n%s\nall at once:\n%s", written(t, reqRep), written(t, whole))
	}
	if len(reqRep.Request.Hosts) < 3 || len(reqRep.Request.Hosts[0].Commands) == 0 || len(reqRep.Request.Hosts[0].Commands[0].Args) == 0 {
		t.Fatalf("request report: %d hosts, want every host with its commands whole", len(reqRep.Request.Hosts))
	}
	// Read in pages of 7 seqs (CheckStore's are 5000: the fault suite's
	// 200 000 events in one query outgrew the query endpoint's memory
	// limit): the same report.
	if paged, err := checkStore(ctx, eng, Filter{}, Options{Keys: keys}, 7); err != nil || !reflect.DeepEqual(paged, rep) {
		t.Fatalf("read in pages of 7 seqs (%v):\n%s\nread at once:\n%s", err, written(t, paged), written(t, rep))
	}
	var out strings.Builder
	if err := rep.Write(&out); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", out.String())
	if rep.Intact() {
		t.Fatal("tampered store reported intact")
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			var h *HostReport
			for _, x := range rep.Hosts {
				if x.Host == tc.host {
					h = x
				}
			}
			if h == nil {
				t.Fatal("host not in the report")
			}
			if got := kinds(h); got != tc.want {
				t.Errorf("findings %q, want %q", got, tc.want)
			}
			if tc.want == "" && (h.Events != n || h.Valid != n/batch || h.HeadsMatching != n/batch || !h.Intact()) {
				t.Errorf("clean host: %+v", h)
			}
		})
	}
	// The conflicting copy left the stored row as it was: one row, the
	// first copy's content, without FINAL.
	r, err := eng.Query(ctx, "SELECT title, content_hash FROM audit_events WHERE event_id = '"+conflictRow.EventID+"' SETTINGS final = 0")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Rows) != 1 || r.Rows[0][0] != conflictRow.Title || r.Rows[0][1] != conflictRow.Hash() {
		t.Errorf("stored rows of the attacked event: %v, want one with title %q", r.Rows, conflictRow.Title)
	}
	if !strings.Contains(out.String(), "conflict seq 4: conflict") {
		t.Errorf("report lacks the conflict's host and seq:\n%s", out.String())
	}

	// A request: its commands between login and logout, with the
	// findings of that range (the gap, the checkpoint's missing event and
	// seq 1..4, which no signed checkpoint covers past the gap).
	rep, err = CheckStore(ctx, eng, Filter{Request: "req-a", Host: "deleted"}, Options{Keys: keys, Request: "req-a"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Request == nil || len(rep.Request.Hosts) != 1 || len(rep.Request.Hosts[0].Commands) != n-1 || len(rep.Request.Hosts[0].Findings) != 3 {
		t.Errorf("request report %+v", rep.Request)
	}
}

// The same checks from a SIEM's file: the forwarder's frames, written one
// message a line as rsyslog writes them at its defaults (control
// characters as #ooo).
func TestVerifySyslog(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	keys := map[string]ed25519.PublicKey{schemas.ChainKeyID(pub): pub}
	format := syslogFormat
	const n = 30
	tests := []struct {
		name      string
		maxSize   int
		lifecycle bool
		tamper    func(lines []string) []string
		want      string
	}{
		{name: "clean", want: ""},
		// At 600 bytes every message is split, checkpoints too, and its
		// json comes in pieces across the parts: contents, links and
		// signatures are all checked, as for unsplit messages. (They were
		// sent without json: every event was content_not_verified and
		// nothing was proven, issue 9 review, F2.)
		{name: "clean, split events", maxSize: 600, want: ""},
		// Lifecycle events forwarded beside the audit events (one of them
		// split at 600 bytes) are not part of the chain: skipped, counted.
		{name: "clean, with lifecycle events", lifecycle: true, want: ""},
		{name: "clean, split events, with lifecycle events", maxSize: 600, lifecycle: true, want: ""},
		{name: "MSG changed, split events", maxSize: 600, tamper: func(l []string) []string {
			i := linesOf(l, 7)[0]
			for _, j := range linesOf(l, 7) {
				if strings.Contains(l[j], "proctitle=") {
					i = j
				}
			}
			l[i] = strings.Replace(l[i], "proctitle=", "proctitle=X", 1)
			return l
		}, want: "1:uncovered 7:gap 7:checkpoint_event 7:altered"},
		{name: "line deleted", tamper: func(l []string) []string { return append(l[:4:4], l[5:]...) }, want: "1:uncovered 5:gap 5:checkpoint_event"},
		{name: "MSG changed", tamper: func(l []string) []string {
			l[6] = strings.Replace(l[6], "proctitle=ls", "proctitle=id", 1)
			return l
		}, want: "1:uncovered 7:altered 8:broken_link"},
		{name: "reordered", tamper: func(l []string) []string { l[2], l[3] = l[3], l[2]; return l }, want: "3:out_of_order"},
		// seq 11..20 and their checkpoint (lines 12..22); the newest batch
		// and its checkpoint came, so the gap shows.
		{name: "batch dropped", tamper: func(l []string) []string { return append(l[:11:11], l[22:]...) }, want: "11:gap"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			evs := clickhousetest.ChainedEvents(t, "web01", n, 10, key)
			size := tc.maxSize
			if size == 0 {
				size = 8192
			}
			f := format
			f.MaxSize = size
			l := syslogLines(t, f, evs)
			if tc.tamper != nil {
				l = tc.tamper(l)
			}
			lc := 0
			if tc.lifecycle {
				var mixed []string
				for i, line := range l {
					mixed = append(mixed, line)
					if i%7 == 3 {
						ls := lifecycleLines(t, format, size, i)
						lc += len(ls)
						mixed = append(mixed, ls...)
					}
				}
				l = mixed
			}
			recs, finds, st, err := LoadSyslog(strings.NewReader(strings.Join(l, "\n") + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			if st.Skipped != 0 || st.Lifecycle != lc || st.Messages != len(l)-lc {
				t.Fatalf("stats %+v, want %d lifecycle messages, %d others", st, lc, len(l)-lc)
			}
			rep := Check(recs, nil, Options{Keys: keys, FileOrder: true})
			rep.AddFindings(finds)
			h := rep.Hosts[0]
			var out strings.Builder
			_ = rep.Write(&out)
			if got := kinds(h); got != tc.want {
				t.Errorf("findings %q, want %q\n%s", got, tc.want, out.String())
			}
			if clean := strings.HasPrefix(tc.name, "clean"); clean && (h.Events != n || h.Valid != 3 || h.Unchecked != 0 || !rep.Intact()) {
				t.Errorf("clean: %+v", h)
			}
			if h.Changed() != (tc.want != "") {
				t.Errorf("Changed() %v for findings %q", h.Changed(), tc.want)
			}
		})
	}
}

// linesOf returns the indices of the lines of l that are messages of the
// event of seq (its parts, in order).
func linesOf(l []string, seq int) []int {
	var out []int
	for i, line := range l {
		if strings.Contains(line, ` seq="`+strconv.Itoa(seq)+`" prev_hash=`) {
			out = append(out, i)
		}
	}
	return out
}

// syslogFormat is the forwarder's format of the SIEM files of these tests.
var syslogFormat = forwarder.Format{AppName: "opctl", SDName: "opctl", EnterpriseID: 32473, Facility: 10, MaxSize: 8192}

// syslogLines are the lines of evs as rsyslog writes them at its defaults:
// the forwarder's frames, one message a line, control characters as #ooo.
func syslogLines(t *testing.T, f forwarder.Format, evs []schemas.Event) []string {
	t.Helper()
	var out []string
	for i := range evs {
		frames, err := forwarder.Frames(f, &evs[i])
		if err != nil {
			t.Fatal(err)
		}
		for _, fr := range frames {
			_, msg, _ := strings.Cut(string(fr), " ")
			out = append(out, escapeRsyslog(msg))
		}
	}
	return out
}

// TestSyslogLineOverLimit catches a finding of the issue 9 review: a line
// over 16 MiB in the SIEM's file (anyone who can send to the SIEM can
// write one) ended LoadSyslog with "token too long", so verify
// --from-syslog checked nothing at all. The line is skipped and its number
// reported; the events around it are checked, and one whose message the
// long line replaced shows as a gap.
func TestSyslogLineOverLimit(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	keys := map[string]ed25519.PublicKey{schemas.ChainKeyID(pub): pub}
	long := "<14>1 2026-03-02T09:00:00Z web01 other - - - " + strings.Repeat("x", MaxSyslogLine)
	const n = 30
	for _, tc := range []struct {
		name string
		at   int  // the line that the long one is put before
		over bool // it replaces that line
		want string
	}{
		{name: "between two events", at: 5, want: ""},
		{name: "instead of an event", at: 4, over: true, want: "1:uncovered 5:gap 5:checkpoint_event"},
		{name: "last, without a newline", at: -1, want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := syslogLines(t, syslogFormat, clickhousetest.ChainedEvents(t, "web01", n, 10, key))
			at := tc.at
			if at < 0 {
				at = len(l)
			}
			rest := l[at:]
			if tc.over {
				rest = rest[1:]
			}
			l = append(append(append([]string(nil), l[:at]...), long), rest...)
			file := strings.Join(l, "\n")
			if tc.at >= 0 {
				file += "\n"
			}
			recs, finds, st, err := LoadSyslog(strings.NewReader(file))
			if err != nil {
				t.Fatalf("LoadSyslog: %v", err)
			}
			if !reflect.DeepEqual(st.Overlong, []int{at + 1}) || st.Lines != len(l) {
				t.Errorf("stats %+v, want %d lines, line %d over the limit", st, len(l), at+1)
			}
			rep := Check(recs, nil, Options{Keys: keys, FileOrder: true})
			rep.AddFindings(finds)
			if got := kinds(rep.Hosts[0]); len(rep.Hosts) != 1 || got != tc.want {
				t.Errorf("findings %q, want %q", got, tc.want)
			}
		})
	}
}

// lifecycleLines are the lines of a lifecycle event i as rsyslog writes
// them at maxSize; every fourth one has a comment long enough to be split
// at 600 bytes.
func lifecycleLines(t *testing.T, f forwarder.Format, maxSize, i int) []string {
	t.Helper()
	f.MaxSize = maxSize
	l := clickhousetest.ManyLifecycle(i+1, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))[i]
	if i%4 == 3 {
		l.Details["comment"] = strings.Repeat("a long comment\n", 60)
	}
	frames, err := forwarder.LifecycleFrames(f, &l)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, fr := range frames {
		_, msg, _ := strings.Cut(string(fr), " ")
		out = append(out, escapeRsyslog(msg))
	}
	return out
}

// escapeRsyslog is rsyslog's default escaping of control characters.
func escapeRsyslog(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 {
			fmt.Fprintf(&b, "#%03o", c)
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// TestForgedCheckpointRange catches a finding of the issue 9 review: a
// forged chain checkpoint claiming seq 1..2^64-1 made Check hang, since it
// counted the checkpoint's coverage by walking every seq of the claimed
// range (and listed each missing one). Coverage is counted from the seqs
// present; the forged checkpoint is reported with how many it lacks. Check
// runs in a goroutine so that a hang fails the test instead of blocking it.
func TestForgedCheckpointRange(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	keys := map[string]ed25519.PublicKey{schemas.ChainKeyID(pub): pub}
	const n = 30
	tests := []struct {
		name                string
		first, last, count  uint64
		wantSeq             uint64
		wantDetail, wantNot string
	}{
		{name: "1..2^64-1", first: 1, last: math.MaxUint64, count: math.MaxUint64, wantSeq: n + 1,
			wantDetail: "checkpoint 1..18446744073709551615 covers 18446744073709551615 events, 30 present, missing seq 31..18446744073709551615 (18446744073709551585 of them)"},
		{name: "0..2^64-1", first: 0, last: math.MaxUint64, count: 7, wantSeq: 0,
			wantDetail: "missing seq 0..18446744073709551615 ("},
		{name: "a few missing", first: 29, last: 33, count: 5, wantSeq: n + 1,
			wantDetail: "covers 5 events, 2 present, missing seq [31 32 33]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var recs []Record
			for _, e := range clickhousetest.ChainedEvents(t, "web01", n, 10, key) {
				recs = append(recs, Record{Event: e, Hash: e.Hash(), ContentChecked: true})
			}
			cp := recs[len(recs)-1].Event // the checkpoint of seq 21..30
			cp.ChainFirst, cp.ChainLast, cp.ChainCount = tc.first, tc.last, tc.count
			cp.EventID = schemas.NewChainEventID(cp.Host, cp.ChainFirst, cp.ChainLast)
			cp.SignChain(key)
			recs = append(recs, Record{Event: cp, Hash: cp.Hash(), ContentChecked: true, Where: "forged"})
			done := make(chan *Report, 1)
			go func() { done <- Check(recs, nil, Options{Keys: keys}) }()
			var rep *Report
			select {
			case rep = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Check did not return in 5 s: it walks the forged checkpoint's range")
			}
			h := rep.Hosts[0]
			var found []Finding
			for _, f := range h.Findings {
				if f.Kind == FindCheckpointEvent {
					found = append(found, f)
				}
			}
			if len(found) != 1 || found[0].Seq != tc.wantSeq || !strings.Contains(found[0].Detail, tc.wantDetail) {
				t.Fatalf("checkpoint_event findings %v, want one at seq %d with %q", found, tc.wantSeq, tc.wantDetail)
			}
			if h.Events != n || h.Checkpoints != 4 || h.HeadsMatching != 3 {
				t.Errorf("report %+v, want %d events, 4 checkpoints, 3 matching", h, n)
			}
		})
	}
}

// TestForgedCheckpointDoesNotAnchor catches a finding of the issue 9 review
// (noticed after TestForgedCheckpointRange's fix): the count of events after
// the last checkpoint (Unanchored) took every checkpoint's end, even a
// forged one's, so a checkpoint of 21..2^64-1 signed by another key, whose
// count matched the events present, anchored events that no real checkpoint
// covers; and since its head is not present, nothing was compared and it
// counted as a matching head. Now only a checkpoint that may be the
// collector's anchors, and a checkpoint whose head is absent is reported.
func TestForgedCheckpointDoesNotAnchor(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	keys := map[string]ed25519.PublicKey{schemas.ChainKeyID(pub): pub}
	const n = 30
	for _, tc := range []struct {
		name                      string
		keys                      map[string]ed25519.PublicKey
		signer                    ed25519.PrivateKey
		wantUnanchored            int
		wantBadSig, wantUnsigned  int
		wantMatching, wantHeadNot int
	}{
		// The real checkpoint of 21..30 is gone; the forged one would
		// anchor seqs 21..30.
		{name: "signed by another key", keys: keys, signer: other, wantUnanchored: 10, wantBadSig: 1, wantMatching: 2, wantHeadNot: 1},
		{name: "unsigned, keys given", keys: keys, wantUnanchored: 10, wantUnsigned: 1, wantMatching: 2, wantHeadNot: 1},
		// Without keys nothing tells a forged checkpoint from the
		// collector's: it anchors, but its absent head is still reported.
		{name: "no keys", signer: other, wantUnanchored: 0, wantMatching: 2, wantHeadNot: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var recs []Record
			var real schemas.Event
			for _, e := range clickhousetest.ChainedEvents(t, "web01", n, 10, key) {
				if e.Event == schemas.KindChain && e.ChainLast == n {
					real = e // dropped: as if deleted with its batch's end
					continue
				}
				recs = append(recs, Record{Event: e, Hash: e.Hash(), ContentChecked: true})
			}
			cp := real
			cp.ChainLast = math.MaxUint64 // ChainFirst 21, ChainCount 10, PrevHash as the real one's
			cp.ChainHead = strings.Repeat("ab", 32)
			cp.EventID = schemas.NewChainEventID(cp.Host, cp.ChainFirst, cp.ChainLast)
			cp.Sig, cp.KeyID = "", ""
			if tc.signer != nil {
				cp.SignChain(tc.signer)
			}
			recs = append(recs, Record{Event: cp, Hash: cp.Hash(), ContentChecked: true, Where: "forged"})
			h := Check(recs, nil, Options{Keys: tc.keys}).Hosts[0]
			count := func(kind string) int {
				c := 0
				for _, f := range h.Findings {
					if f.Kind == kind {
						c++
					}
				}
				return c
			}
			if h.Unanchored != tc.wantUnanchored || h.HeadsMatching != tc.wantMatching {
				t.Errorf("unanchored %d, heads matching %d; want %d, %d", h.Unanchored, h.HeadsMatching, tc.wantUnanchored, tc.wantMatching)
			}
			if got := count(FindBadSignature); got != tc.wantBadSig {
				t.Errorf("%d bad_signature findings, want %d", got, tc.wantBadSig)
			}
			if got := count(FindUnsigned); got != tc.wantUnsigned {
				t.Errorf("%d unsigned findings, want %d", got, tc.wantUnsigned)
			}
			var absent int
			for _, f := range h.Findings {
				if f.Kind == FindCheckpointHead && strings.Contains(f.Detail, "is not present") && f.Seq == math.MaxUint64 {
					absent++
				}
			}
			if absent != tc.wantHeadNot {
				t.Errorf("findings %v: want %d checkpoint_head finding of the absent head", h.Findings, tc.wantHeadNot)
			}
			if count(FindCheckpointEvent) != 0 {
				t.Errorf("findings %v: the forged count matches the events present, want no checkpoint_event finding", h.Findings)
			}
		})
	}
}

// countingQuerier counts the queries it passes to q and refuses those past
// limit, so that a loop of queries fails a test instead of running for
// hours.
type countingQuerier struct {
	q     clickhouse.Querier
	n     int
	limit int
}

func (c *countingQuerier) Query(ctx context.Context, sql string) (*clickhouse.Result, error) {
	c.n++
	if c.n > c.limit {
		return nil, fmt.Errorf("query %d: more than %d queries", c.n, c.limit)
	}
	return c.q.Query(ctx, sql)
}

// TestForgedSeqFarAhead catches a finding of the issue 9 review: one event
// with seq 2^40 made verify's store reader hang, since its pages walked the host's seq
// range (2^40 / 20 000 = 55 million queries at the pages of then, nearly all empty). A page
// ends at the page-th seq present, so the queries are as many as the pages
// of seqs present, whatever their values.
func TestForgedSeqFarAhead(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := clickhouse.Migrate(ctx, eng, 0, nil); err != nil {
		t.Fatal(err)
	}
	const n = 30
	evs := clickhousetest.ChainedEvents(t, "web01", n, 10, nil)
	far := evs[0]
	far.Seq = 1 << 40
	far.EventID = schemas.NewEventID(far.Host, 99, 0, far.Seq)
	evs = append(evs, far)
	load(t, eng, evs)
	for _, tc := range []struct {
		page        uint64
		wantQueries int // the hosts, the pages, the conflicts
	}{
		{page: 7, wantQueries: 1 + 5 + 1}, // seq 0 (the checkpoints), 1..30 and 2^40: 32 seqs
		{page: StorePageSeqs, wantQueries: 1 + 1 + 1},
	} {
		t.Run(fmt.Sprint(tc.page), func(t *testing.T) {
			q := &countingQuerier{q: eng, limit: 100}
			rep, err := checkStore(ctx, q, Filter{}, Options{}, tc.page)
			if err != nil {
				t.Fatalf("checkStore: %v", err)
			}
			if len(rep.Hosts) != 1 || rep.Hosts[0].Events != n+1 || rep.Hosts[0].Last != far.Seq {
				t.Fatalf("report %+v, want one host of %d events, the last of seq %d", rep.Hosts, n+1, far.Seq)
			}
			if q.n != tc.wantQueries {
				t.Errorf("%d queries, want %d", q.n, tc.wantQueries)
			}
		})
	}
}

// TestVerifyHostNotUTF8 catches a finding of the review of the
// host-by-host check: a host name that is not valid UTF-8 came back from
// the page query (JSON) with U+FFFD in place of its bytes, so reading its
// rows by that name found none, and verify reported the host intact with
// 0 events (before, it left the host out): forged rows hidden from verify
// by their host name. The host is now read by its bytes: its rows are
// checked, and forged ones are found.
func TestVerifyHostNotUTF8(t *testing.T) {
	eng := clickhousetest.OpenMigrated(t)
	ctx := context.Background()
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	keys := map[string]ed25519.PublicKey{schemas.ChainKeyID(pub): pub}
	load(t, eng, clickhousetest.ChainedEvents(t, "web", 10, 10, key))
	// Copies of web's events under the host "web\xff", unsigned.
	exec(t, eng, "INSERT INTO audit_events SELECT * REPLACE (unhex('776562FF') AS host) FROM audit_events WHERE event != 'chain' SETTINGS final = 0") // web's only: no other host is stored
	rep, err := CheckStore(ctx, eng, Filter{}, Options{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	var bad *HostReport
	for _, h := range rep.Hosts {
		if h.Host == "web\xff" {
			bad = h
		}
	}
	if bad == nil || bad.Events != 10 || bad.Intact() {
		t.Fatalf("the host web\\xff: %+v, want its 10 events read and findings\n%s", bad, written(t, rep))
	}
	if rep.Intact() {
		t.Fatalf("a store with forged rows reported intact:\n%s", written(t, rep))
	}
}

// TestReadLine: readLine's lines at the limit and past it, across the
// reader's buffer (16 bytes), with and without a last newline.
func TestReadLine(t *testing.T) {
	const max = 20
	at := strings.Repeat("a", max)
	over := strings.Repeat("b", max+1)
	type line struct {
		text string
		long bool
	}
	for _, tc := range []struct {
		name, in string
		want     []line
	}{
		{"empty input", "", nil},
		{"short lines", "x\n\ny\n", []line{{"x", false}, {"", false}, {"y", false}}},
		{"at the limit", at + "\n" + at, []line{{at, false}, {at, false}}},
		{"over the limit", over + "\nz\n" + over, []line{{"", true}, {"z", false}, {"", true}}},
		{"much longer", strings.Repeat("c", 100) + "\nz", []line{{"", true}, {"z", false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tc.in), 16)
			var got []line
			var buf []byte
			for {
				l, long, err := readLine(br, buf[:0], max)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, line{string(l), long})
				buf = l
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("lines %+v, want %+v", got, tc.want)
			}
		})
	}
}

// forgedNext is an event appended at the head of the chain evs by someone
// without the chain key: seq head+1, linked to the head's hash (which
// anyone who reads the store can compute), no checkpoint.
func forgedNext(evs []schemas.Event, title string) schemas.Event {
	var head schemas.Event
	for _, e := range evs {
		if e.Event != schemas.KindChain && e.Seq > head.Seq {
			head = e
		}
	}
	f := head
	f.Seq, f.PrevHash, f.Title = head.Seq+1, head.Hash(), title
	f.EventID = schemas.NewEventID(f.Host, 9999, 0, f.Seq)
	return f
}

// withoutCheckpoints is evs without their chain checkpoints: the events of
// a host that never had a collector, chained by whoever forged them.
func withoutCheckpoints(evs []schemas.Event) []schemas.Event {
	var out []schemas.Event
	for _, e := range evs {
		if e.Event != schemas.KindChain {
			out = append(out, e)
		}
	}
	return out
}
