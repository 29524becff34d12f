package policy

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// race runs fns at once (released together) and returns their errors.
func race(fns ...func() error) []error {
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn()
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// grantsOf counts the grants and revocations the outbox holds for the
// request's login user.
func grantsOf(f *fixture, p *published, login string) (granted, revoked int) {
	for _, g := range p.grants {
		if g.Grant.LoginID != login {
			continue
		}
		if g.Grant.Revoked {
			revoked++
		} else {
			granted++
		}
	}
	return granted, revoked
}

const raceRounds = 8

// TestConcurrentApprovers: two approvers at once give one decision. With
// one approval required, one wins and the other is refused (the request
// is APPROVED by then); with two required, both count and exactly one
// grant is issued.
func TestConcurrentApprovers(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b)
			exampleControls(f)
			f.resource("exa-two")
			f.control("exa-two", ControlInput{OperatorControlName: "two_man", ApproverGroupsList: []string{"EXPLICIT_APPROVED_POLICY_USERS"}, ApprovalRequiredOpActions: []string{"INFRA_UPDATE_RESTART"}, NumberOfApprovers: 2})
			for i := 0; i < raceRounds; i++ {
				for _, res := range []string{"exa-main", "exa-two"} {
					r := f.request(operator, res, 2, "INFRA_UPDATE_RESTART")
					errs := race(
						func() error { _, err := f.svc.Approve(f.ctx, explicit, r.ID, ApproveInput{}); return err },
						func() error { _, err := f.svc.Approve(f.ctx, explicit2, r.ID, ApproveInput{}); return err },
					)
					got := must[AccessRequest](t)(f.svc.GetRequest(f.ctx, r.ID))
					if got.LifecycleState != StateApproved || got.UserID == "" {
						t.Fatalf("%s: %s after two approvals (%v)", res, got.LifecycleState, errs)
					}
					ok := 0
					for _, err := range errs {
						switch {
						case err == nil:
							ok++
						case !errors.Is(err, ErrInvalidTransition):
							t.Fatalf("%s: %v", res, err)
						}
					}
					if want := map[string]int{"exa-main": 1, "exa-two": 2}[res]; ok != want || len(got.ApproverDetails) != want {
						t.Fatalf("%s: %d approvals succeeded, %d recorded, want %d (%v)", res, ok, len(got.ApproverDetails), want, errs)
					}
					if g, _ := grantsOf(f, f.outbox(nil), got.UserID); g != 1 {
						t.Fatalf("%s: %d grants published, want 1", res, g)
					}
				}
			}
		})
	}
}

// TestRevokeRacingApprove: whichever commits first, the request ends
// REVOKED, and a grant published is always followed by its revocation.
func TestRevokeRacingApprove(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b)
			exampleControls(f)
			for i := 0; i < raceRounds; i++ {
				r := f.request(operator, "exa-main", 2, "INFRA_UPDATE_RESTART")
				errs := race(
					func() error { _, err := f.svc.Approve(f.ctx, explicit, r.ID, ApproveInput{}); return err },
					func() error { _, err := f.svc.Revoke(f.ctx, explicit2, r.ID, "no", 0); return err },
				)
				if errs[1] != nil {
					t.Fatalf("revoke: %v", errs[1])
				}
				if errs[0] != nil && !errors.Is(errs[0], ErrInvalidTransition) {
					t.Fatalf("approve: %v", errs[0])
				}
				got := must[AccessRequest](t)(f.svc.GetRequest(f.ctx, r.ID))
				if got.LifecycleState != StateRevoked {
					t.Fatalf("ended %s (%v)", got.LifecycleState, errs)
				}
				g, rv := grantsOf(f, f.outbox(nil), got.UserID)
				if errs[0] == nil && (got.UserID == "" || g != 1 || rv != 1) {
					t.Fatalf("approved then revoked: login %q, %d grants, %d revocations", got.UserID, g, rv)
				}
				if errs[0] != nil && got.UserID != "" {
					t.Fatalf("revoked first, yet a login %s", got.UserID)
				}
			}
		})
	}
}

// TestConcurrentTick: two processes' ticks at once expire each request
// once: one expiry event, one revocation.
func TestConcurrentTick(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b)
			exampleControls(f)
			// A second service on the same store, as a second process.
			other, err := NewService(f.store, f.svc.catalog, f.signer, Options{Now: f.clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			if b.name == DriverPostgres {
				st, err := OpenStore(f.ctx, StoreConfig{Driver: DriverPostgres, DSN: storeDSN(t, f), BusyTimeout: time.Second, MaxOpenConns: 4}, nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { st.Close() })
				other.store = st
			}
			var ids []string
			for i := 0; i < 6; i++ {
				ids = append(ids, f.request(operator, "exa-diag", 1, "INFRA_DIAG").ID)
			}
			before := f.outbox(nil)
			due := f.clock.Add(time.Hour)
			var res [2]TickResult
			errs := race(
				func() error { var err error; res[0], err = f.svc.Tick(f.ctx, due); return err },
				func() error { var err error; res[1], err = other.Tick(f.ctx, due); return err },
			)
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if n := res[0].Expired + res[1].Expired; n != len(ids) {
				t.Fatalf("expired %d + %d, want %d in all", res[0].Expired, res[1].Expired, len(ids))
			}
			p := f.outbox(before)
			for _, id := range ids {
				if got := p.kinds(id); len(got) != 1 || got[0] != "access_request.expired" {
					t.Errorf("%s: events %v, want one expiry", id, got)
				}
			}
			if len(p.grants) != len(ids) {
				t.Errorf("%d revocations, want %d", len(p.grants), len(ids))
			}
			// Ticking again changes nothing.
			if again, err := f.svc.Tick(f.ctx, due); err != nil || again != (TickResult{}) {
				t.Errorf("second tick %+v %v", again, err)
			}
		})
	}
}
