package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/leader"
	"github.com/auditpipe/auditpipe/schemas"
)

// grantSeqs returns the publish_seqs of login's records in p, in outbox
// order.
func grantSeqs(p *published, login string) []int64 {
	var out []int64
	for _, m := range p.grants {
		if m.Grant.LoginID == login {
			out = append(out, m.Grant.PublishSeq)
		}
	}
	return out
}

// TestPublishSeqSurvivesRestart: issue 9 (replay protection). The number
// of a login's records lives in the store, not in the process: a policy
// service restarted between a grant and its revocation numbers the
// revocation above the grant, so that consumers refuse the grant written
// again after it.
func TestPublishSeqSurvivesRestart(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b)
			exampleControls(f)
			r := f.request(operator, "exa-diag", 1, "INFRA_DIAG")
			if err := f.store.Close(); err != nil {
				t.Fatal(err)
			}
			st := f.openStore()
			svc, err := NewService(st, f.svc.catalog, f.signer, Options{Now: f.clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			f.store, f.svc = st, svc
			must[AccessRequest](t)(svc.Revoke(f.ctx, admin, r.ID, "done", 0))
			if got := grantSeqs(f.outbox(nil), r.UserID); !slices.Equal(got, []int64{1, 2}) {
				t.Errorf("publish_seqs of %s's grant and revocation across a restart: %v, want [1 2]", r.UserID, got)
			}
			if n, err := st.PublishSeq(f.ctx, schemas.TopicGrants, r.UserID); err != nil || n != 2 {
				t.Errorf("publish_seqs row: %d %v, want 2", n, err)
			}
		})
	}
}

// TestPublishSeqConcurrentProcesses: two processes on one store taking
// numbers of one key at once never take one twice (nor skip one: each
// committed transaction takes the next).
func TestPublishSeqConcurrentProcesses(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b)
			other := f.openStore()
			const perProcess = 20
			var (
				mu   sync.Mutex
				got  []int64
				wg   sync.WaitGroup
				errs = make(chan error, 2*perProcess)
			)
			for _, st := range []*Store{f.store, other} {
				for range perProcess {
					wg.Go(func() {
						err := st.tx(f.ctx, func(tx *txn) error {
							n, err := tx.nextSeq(schemas.TopicGrants, "op")
							if err != nil {
								return err
							}
							mu.Lock()
							got = append(got, n)
							mu.Unlock()
							return nil
						})
						if err != nil {
							errs <- err
						}
					})
				}
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			// A retried transaction took a number and gave it back: only
			// the committed ones count, which are the last taken.
			n, err := f.store.PublishSeq(f.ctx, schemas.TopicGrants, "op")
			if err != nil || n != 2*perProcess {
				t.Fatalf("last publish_seq %d %v, want %d", n, err, 2*perProcess)
			}
			slices.Sort(got)
			got = slices.Compact(got)
			if len(got) != 2*perProcess || got[0] != 1 || got[len(got)-1] != 2*perProcess {
				t.Errorf("numbers taken: %v, want 1 to %d once each", got, 2*perProcess)
			}
		})
	}
}

// TestPublishSeqLeaderChange: issue 9. On PostgreSQL two policy
// processes share the store and one leader (internal/leader) runs the
// ticks. A leader applies an assignment window, then loses leadership;
// the next leader ends the window and expires the request: the records of
// one resource (and of one login) that the two leaders (and the first
// process's API) wrote are numbered on from one another, never reused.
func TestPublishSeqLeaderChange(t *testing.T) {
	b := backends(t)[1]
	f := newFixture(t, b)
	exampleControls(f)
	r := f.request(operator, "exa-diag", 4, "INFRA_DIAG") // its grant: login's record 1
	f.resource("exa-w")
	c := f.control("", ControlInput{OperatorControlName: "windowed", PreApprovedOpActions: []string{"INFRA_DIAG"}, ApproverGroupsList: []string{"EXPLICIT_APPROVED_POLICY_USERS"}})
	must[Assignment](t)(f.svc.CreateAssignment(f.ctx, admin, AssignmentInput{OperatorControlID: c.ID, ResourceID: "exa-w",
		AssignmentWindow: AssignmentWindow{TimeAssignmentFrom: t0.Add(time.Hour), TimeAssignmentTo: t0.Add(2 * time.Hour)}}))

	bStore := f.openStore()
	bSvc, err := NewService(bStore, f.svc.catalog, f.signer, Options{Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ecfg := leader.Config{PollInterval: 100 * time.Millisecond, PingTimeout: time.Second, SessionTimeout: 3 * time.Second}
	key := leader.KeyFor("auditpipe test publish seqs")
	elect := func() *leader.Postgres {
		e, err := leader.NewPostgres(f.cfg.DSN.Reveal(), key, ecfg, leader.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	// lead runs svc's tick at due as the leader, and returns once it ran
	// and the elector stopped (leadership given up).
	lead := func(name string, svc *Service, due time.Time) TickResult {
		t.Helper()
		ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
		defer cancel()
		var res TickResult
		errWork := errors.New("ticked")
		err := elect().Run(ctx, func(ctx context.Context) error {
			var err error
			if res, err = svc.Tick(ctx, due); err != nil {
				return fmt.Errorf("%s's tick: %w", name, err)
			}
			return errWork // returns from Run, giving up leadership
		})
		if !errors.Is(err, errWork) {
			t.Fatalf("%s as the leader: %v", name, err)
		}
		return res
	}
	if res := lead("process A", f.svc, t0.Add(time.Hour)); res.AssignmentsApplied != 1 {
		t.Fatalf("process A's tick: %+v, want the window applied", res)
	}
	if res := lead("process B", bSvc, t0.Add(5*time.Hour)); res.AssignmentsEnded != 1 || res.Expired != 1 {
		t.Fatalf("process B's tick: %+v, want the window ended and the request expired", res)
	}
	p := f.outbox(nil)
	var seqs []int64
	for _, m := range p.assignments {
		if m.Assignment.ResourceID == "exa-w" {
			seqs = append(seqs, m.Assignment.PublishSeq)
		}
	}
	if len(seqs) < 2 || seqs[0] != 1 {
		t.Errorf("exa-w's assignment records across the leader change: publish_seqs %v, want 1, 2, … each once", seqs)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Errorf("exa-w's publish_seqs %v are not consecutive", seqs)
		}
	}
	if got := grantSeqs(p, r.UserID); !slices.Equal(got, []int64{1, 2}) {
		t.Errorf("%s's grant (process A) and revocation (process B): publish_seqs %v, want [1 2]", r.UserID, got)
	}
	// What a consumer makes of them: the old grant after the revocation
	// is a replay.
	seen := grants.NewSeqs("login")
	for _, m := range p.grants {
		if m.Grant.LoginID == r.UserID {
			if err := seen.Admit(r.UserID, m.Grant.PublishSeq, m.Payload); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, m := range p.grants {
		if m.Grant.LoginID == r.UserID && !m.Grant.Revoked {
			if err := seen.Admit(r.UserID, m.Grant.PublishSeq, m.Payload); grants.Reason(err) != grants.ReasonReplayed {
				t.Errorf("the grant after its revocation: %v, want %s", err, grants.ReasonReplayed)
			}
		}
	}
}

// TestAdmitSeq: the replay check of the store's consumers (agent reports,
// work progress) keeps its memory in the store: a second process (or the
// same after a restart) refuses what the first applied before.
func TestAdmitSeq(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b)
			other := f.openStore()
			steps := []struct {
				st      *Store
				seq     int64
				payload string
				reason  string // "" admitted
			}{
				{f.store, 5, "r5", ""},
				{other, 5, "r5", ""}, // read again after a rebalance
				{other, 4, "r4", grants.ReasonReplayed},
				{f.store, 5, "forged", grants.ReasonReplayed},
				{other, 6, "r6", ""},
				{f.store, 5, "r5", grants.ReasonReplayed},
				{f.store, 0, "unnumbered", grants.ReasonReplayed},
			}
			for i, s := range steps {
				err := s.st.AdmitSeq(f.ctx, SeqConsumerAgentReports, "db01", s.seq, grants.PayloadDigest([]byte(s.payload)), t0.UnixMilli())
				if s.reason == "" && err != nil || s.reason != "" && grants.Reason(err) != s.reason {
					t.Fatalf("step %d (seq %d %q): %v, want %q", i, s.seq, s.payload, err, s.reason)
				}
			}
			// Another consumer, another host: apart.
			if err := f.store.AdmitSeq(f.ctx, SeqConsumerWorkProgress, "db01", 1, "x", t0.UnixMilli()); err != nil {
				t.Error(err)
			}
			if err := f.store.AdmitSeq(f.ctx, SeqConsumerAgentReports, "db02", 1, "x", t0.UnixMilli()); err != nil {
				t.Error(err)
			}
		})
	}
}

// openStore opens another Store on f's database (a second process, or
// the same one after a restart), closed at the test's end.
func (f *fixture) openStore() *Store {
	f.t.Helper()
	st, err := OpenStore(f.ctx, f.cfg, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { st.Close() })
	return st
}
