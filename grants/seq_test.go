package grants

import (
	"math"
	"testing"
	"time"

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
