package grants

import (
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/testlog"
	"github.com/auditpipe/auditpipe/schemas"
)

// TestSeqs: issue 9 replay protection. A validly signed record written
// again later (an old grant after its revocation, an old assignment or
// dispatch, an old agent report) was accepted again; Seqs refuses a
// number below the last applied for the key, the last with another
// payload, and none, and accepts the record applied last read again (a
// restart re-reading the compacted topic).
func TestSeqs(t *testing.T) {
	type step struct {
		key     string
		seq     int64
		payload string
		refused bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"increasing", []step{{"a", 1, "g1", false}, {"a", 2, "g2", false}, {"a", 5, "g5", false}}},
		{"old record written again", []step{{"a", 1, "grant", false}, {"a", 2, "revocation", false}, {"a", 1, "grant", true}}},
		{"the last record read again", []step{{"a", 3, "g3", false}, {"a", 3, "g3", false}}},
		{"the last number, another payload", []step{{"a", 3, "g3", false}, {"a", 3, "forged", true}}},
		{"no number", []step{{"a", 0, "old", true}}},
		{"negative number", []step{{"a", -1, "old", true}}},
		{"keys apart", []step{{"a", 5, "a5", false}, {"b", 1, "b1", false}, {"a", 1, "a1", true}}},
		{"a refusal changes nothing", []step{{"a", 2, "g2", false}, {"a", 1, "g1", true}, {"a", 2, "g2", false}}},
		{"first seen after a restart: the current record", []step{{"a", 9, "current", false}, {"a", 8, "older", true}}},
		// Review finding: any number was applied, so one far above the
		// clock (a typo, a host clock far ahead, a compromised signer)
		// froze its key: every later record was refused as older.
		{"far above the clock", []step{{"a", math.MaxInt64, "frozen", true}, {"a", 2, "g2", false}}},
		{"just within the clock's margin", []step{{"a", time.Now().Add(MaxSeqAhead - time.Hour).UnixMicro(), "ahead", false}}},
		{"beyond the clock's margin", []step{{"a", time.Now().Add(MaxSeqAhead + time.Hour).UnixMicro(), "ahead", true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSeqs("login")
			for i, st := range tt.steps {
				err := s.Admit(st.key, st.seq, []byte(st.payload))
				if st.refused {
					if Reason(err) != ReasonReplayed {
						t.Fatalf("step %d (%s seq %d %q): %v, want %s", i, st.key, st.seq, st.payload, err, ReasonReplayed)
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d (%s seq %d %q): %v", i, st.key, st.seq, st.payload, err)
				}
				if got := s.Last(st.key); got != st.seq {
					t.Fatalf("step %d: last %d, want %d", i, got, st.seq)
				}
			}
		})
	}
}

// TestRecordsNeedTheirNumber: a publisher cannot sign a record every
// consumer would refuse as a replay (no publish_seq).
func TestRecordsNeedTheirNumber(t *testing.T) {
	s := signer(t, 1)
	at := time.Date(2026, 3, 8, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		make func() error
	}{
		{"grant", func() error {
			_, err := Record(s, schemas.Grant{LoginID: "op", ReqAuthID: "r"})
			return err
		}},
		{"revocation", func() error { _, err := Revocation(s, "op", 0); return err }},
		{"assignment", func() error {
			_, err := AssignmentRecord(s, schemas.Assignment{ResourceID: "r"})
			return err
		}},
		{"dispatch", func() error {
			_, err := DispatchRecord(s, schemas.Dispatch{WorkRequestID: "w", Action: schemas.DispatchCancel, JobID: "j", ExecutionID: "e", InstanceID: "i", Host: "h", Time: at})
			return err
		}},
		{"agent report", func() error {
			_, err := AgentRecord(s, "h", schemas.AgentReport{Host: "h", LoginID: "op", State: schemas.AgentDeployed, Time: at})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.make(); err == nil {
				t.Error("signed a record without its publish_seq")
			}
		})
	}
}

// ClockSeq: strictly increasing, from the clock, under concurrent use.
func TestClockSeq(t *testing.T) {
	var c ClockSeq
	before := time.Now().UnixMicro()
	const workers, each = 4, 1000
	got := make(chan int64, workers*each)
	for range workers {
		go func() {
			for range each {
				got <- c.Next()
			}
		}()
	}
	seen := map[int64]bool{}
	for range workers * each {
		n := <-got
		if n < before || seen[n] {
			t.Fatalf("number %d: below the clock (%d) or given twice", n, before)
		}
		seen[n] = true
	}
	if n := c.Next(); !(n > before && n <= time.Now().UnixMicro()+workers*each) {
		t.Errorf("next %d, want about the clock", n)
	}
}

// TestSeqsSurviveRestart: issue 9, replay protection that survives
// compaction. A Seqs lived in memory only, so a consumer restarted on a
// compacted topic whose only record of a key was a replay (written after
// the key's current record) had nothing to compare it with and accepted
// it. A Seqs opened on a file keeps what was applied: the "restart" below
// is a second OpenSeqs of the same file, and each step after it is
// compared with the memory of the first.
func TestSeqsSurviveRestart(t *testing.T) {
	type step struct {
		n    Numbered
		want string // "": admitted; "superseded"; else the refusal's reason
	}
	rec := func(key string, seq int64, payload string, final bool, offset int64) Numbered {
		return Numbered{Key: key, Seq: seq, Payload: []byte(payload), Final: final, Offset: offset}
	}
	tests := []struct {
		name          string
		before, after []step
	}{
		{"a replay left alone by compaction",
			[]step{{rec("a", 1, "g1", false, 0), ""}, {rec("a", 2, "g2", false, 1), ""}},
			[]step{{rec("a", 1, "g1", false, 2), ReasonReplayed}}},
		{"a grant replayed after its revocation",
			[]step{{rec("a", 1, "grant", false, 0), ""}, {rec("a", 2, "revocation", true, 1), ""}},
			[]step{{rec("a", 3, "grant again", false, 5), ReasonReplayed}, {rec("a", 2, "revocation", true, 1), ""}}},
		{"the current record read again",
			[]step{{rec("a", 3, "g3", false, 4), ""}},
			[]step{{rec("a", 3, "g3", false, 4), ""}, {rec("a", 4, "g4", false, 9), ""}}},
		{"the last number with another payload",
			[]step{{rec("a", 3, "g3", false, 4), ""}},
			[]step{{rec("a", 3, "forged", false, 7), ReasonReplayed}}},
		{"history not compacted yet is skipped, not refused",
			[]step{{rec("a", 1, "g1", false, 0), ""}, {rec("b", 1, "b1", false, 1), ""}, {rec("a", 2, "g2", false, 2), ""}},
			[]step{{rec("a", 1, "g1", false, 0), "superseded"}, {rec("b", 1, "b1", false, 1), ""}, {rec("a", 2, "g2", false, 2), ""}}},
		{"a key first seen after the restart",
			[]step{{rec("a", 5, "a5", false, 0), ""}},
			[]step{{rec("b", 1, "b1", false, 1), ""}, {rec("a", 4, "a4", false, 2), ReasonReplayed}}},
		{"a record whose place is not known",
			[]step{{rec("a", 5, "a5", false, -1), ""}},
			[]step{{rec("a", 4, "a4", false, -1), ReasonReplayed}, {rec("a", 6, "a6", false, -1), ""}}},
	}
	admit := func(t *testing.T, s *Seqs, steps []step) {
		t.Helper()
		for i, st := range steps {
			err := s.AdmitRecord(st.n)
			got := ""
			switch {
			case errors.Is(err, ErrSuperseded):
				got = "superseded"
			case err != nil:
				got = Reason(err)
			}
			if got != st.want {
				t.Fatalf("step %d (%s seq %d %q at %d): %v, want %q", i, st.n.Key, st.n.Seq, st.n.Payload, st.n.Offset, err, st.want)
			}
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state", "grants-seqs.json")
			s, err := OpenSeqs("login", path, nil)
			if err != nil {
				t.Fatal(err)
			}
			admit(t, s, tt.before)
			restarted, err := OpenSeqs("login", path, nil)
			if err != nil {
				t.Fatal(err)
			}
			admit(t, restarted, tt.after)
		})
	}
}

// TestSeqsFile: the memory's file is written 0600 with nothing left
// beside it; a missing file is a first start; a file that is not such a
// memory refuses the start with an error naming the file, rather than
// forgetting what was applied; no file is written without a path; when
// the file cannot be written (logged) a final record is admitted and any
// other refused (ReasonNotRemembered), the memory unchanged.
func TestSeqsFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "seqs.json")
	s, err := OpenSeqs("login", path, nil)
	if err != nil {
		t.Fatalf("missing file: %v", err)
	}
	if err := s.AdmitRecord(Numbered{Key: "op", Seq: 2, Payload: []byte("revocation"), Final: true, Offset: 3}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file: %v %v, want 0600", fi, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d files in the directory, want the memory alone", len(ents))
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := OpenSeqs("login", path, nil)
	if err != nil || r.Last("op") != 2 || !r.Final("op") {
		t.Fatalf("reopened: last %d final %v, %v; want 2, true", r.Last("op"), r.Final("op"), err)
	}

	bad := []struct {
		name    string
		content string
		what    string
	}{
		{"empty", "", "login"},
		{"truncated", string(good[:len(good)/2]), "login"},
		{"not JSON", "garbage", "login"},
		{"another kind of memory", string(good), "resource"},
		{"another version", strings.Replace(string(good), `"version":1`, `"version":2`, 1), "login"},
		{"an unknown field", strings.Replace(string(good), `"version":1`, `"version":1,"extra":true`, 1), "login"},
		{"a number below 1", strings.Replace(string(good), `"seq":2`, `"seq":0`, 1), "login"},
		{"a digest that is not one", strings.Replace(string(good), `"sha256":"`, `"sha256":"zz`, 1), "login"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "seqs.json")
			if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := OpenSeqs(tt.what, p, nil); err == nil || !strings.Contains(err.Error(), p) {
				t.Fatalf("OpenSeqs: %v, want an error naming %s", err, p)
			}
		})
	}
	t.Run("unwritable at a first start", func(t *testing.T) {
		// A non-root process with the default /var/lib/auditpipe, say: a
		// clear error at the start, not every grant refused later.
		// procfs: not there, and nobody, root included, may make it.
		p := "/proc/self/auditpipe-state/seqs.json"
		if _, err := OpenSeqs("login", p, nil); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "state directory") {
			t.Fatalf("OpenSeqs of a memory it cannot write: %v, want an error naming %s", err, p)
		}
	})
	t.Run("unreadable", func(t *testing.T) {
		if _, err := OpenSeqs("login", t.TempDir(), nil); err == nil { // a directory
			t.Fatal("a directory opened as the memory's file")
		}
	})

	t.Run("memory only", func(t *testing.T) {
		wd := t.TempDir()
		t.Chdir(wd)
		m, err := OpenSeqs("login", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Admit("op", 1, []byte("g")); err != nil {
			t.Fatal(err)
		}
		if ents, _ := os.ReadDir(wd); len(ents) != 0 {
			t.Errorf("memory only wrote %d files", len(ents))
		}
	})

	t.Run("a failed write", func(t *testing.T) {
		// The state directory goes after the start (its disk replaced
		// by a read-only one, say), and a file stands where it was.
		state := filepath.Join(t.TempDir(), "state")
		var logged testlog.Buffer
		m, err := OpenSeqs("login", filepath.Join(state, "seqs.json"), slog.New(slog.NewTextHandler(&logged, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(state); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(state, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		// A final record (a revocation) is admitted all the same.
		if err := m.AdmitRecord(Numbered{Key: "op", Seq: 2, Payload: []byte("revocation"), Final: true, Offset: -1}); err != nil {
			t.Fatalf("a revocation refused for a failed write: %v", err)
		}
		if m.Last("op") != 2 || !m.Final("op") || logged.Count("replay memory not written") != 1 {
			t.Errorf("last %d final %v, the failure logged %d times, want 2, true, once", m.Last("op"), m.Final("op"), logged.Count("replay memory not written"))
		}
		// Any other is refused, the memory as it was: a new key, and a
		// known key's next record.
		refused := func(key string, seq int64, payload string, wantLast int64) {
			t.Helper()
			err := m.Admit(key, seq, []byte(payload))
			var re *RefusedError
			if !errors.As(err, &re) || re.Reason != ReasonNotRemembered || Reason(err) != ReasonNotRemembered {
				t.Fatalf("%s %d admitted with its memory unwritten: %v", key, seq, err)
			}
			if m.Last(key) != wantLast {
				t.Errorf("%s: last %d after the refusal, want %d", key, m.Last(key), wantLast)
			}
		}
		refused("new", 1, "grant", 0)
		if err := os.Remove(state); err != nil { // room again
			t.Fatal(err)
		}
		if err := m.Admit("known", 1, []byte("grant 1")); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(state); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(state, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		refused("known", 2, "grant 2", 1)
		// The disk has room again: the refused record is taken when
		// it comes again, and the file holds it.
		if err := os.Remove(state); err != nil {
			t.Fatal(err)
		}
		if err := m.Admit("known", 2, []byte("grant 2")); err != nil {
			t.Fatal(err)
		}
		r, err := OpenSeqs("login", filepath.Join(state, "seqs.json"), nil)
		if err != nil || r.Last("known") != 2 || r.Last("new") != 0 || !r.Final("op") {
			t.Fatalf("reopened: known %d new %d op final %v, %v; want 2, 0, true", r.Last("known"), r.Last("new"), r.Final("op"), err)
		}
	})
}

// TestSeqsDefer: with Defer the changes wait for Flush (a first start
// reading 10 000 logins rewrote the file 10 000 times, 87 s here);
// Undefer writes them and the later ones at once again.
func TestSeqsDefer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seqs.json")
	s, err := OpenSeqs("login", path, nil)
	if err != nil {
		t.Fatal(err)
	}
	reopened := func() *Seqs {
		t.Helper()
		r, err := OpenSeqs("login", path, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	s.Defer()
	for i, key := range []string{"a", "b"} {
		if err := s.AdmitRecord(Numbered{Key: key, Seq: 1, Payload: []byte(key), Offset: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if r := reopened(); r.Last("a") != 0 || r.Last("b") != 0 {
		t.Fatalf("written before Flush: a %d b %d", r.Last("a"), r.Last("b"))
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if r := reopened(); r.Last("a") != 1 || r.Last("b") != 1 {
		t.Fatalf("after Flush: a %d b %d, want 1 1", r.Last("a"), r.Last("b"))
	}
	if err := s.Admit("a", 2, []byte("a2")); err != nil {
		t.Fatal(err)
	}
	if r := reopened(); r.Last("a") != 1 {
		t.Fatalf("still deferred, yet written: a %d", r.Last("a"))
	}
	if err := s.Undefer(); err != nil {
		t.Fatal(err)
	}
	if err := s.Admit("b", 2, []byte("b2")); err != nil {
		t.Fatal(err)
	}
	if r := reopened(); r.Last("a") != 2 || r.Last("b") != 2 {
		t.Fatalf("after Undefer: a %d b %d, want 2 2", r.Last("a"), r.Last("b"))
	}
}
