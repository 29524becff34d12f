package policy

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestTransitionTable: every (state, action) pair either moves as the
// table says or is refused with a *TransitionError naming both.
func TestTransitionTable(t *testing.T) {
	n := 0
	for _, s := range RequestStates() {
		for _, a := range RequestActions() {
			to, err := Next("req1", s, a)
			want, ok := transitions[stateAction{s, a}]
			if ok {
				n++
				if err != nil || to != want {
					t.Errorf("%s x %s = %s, %v; want %s", s, a, to, err, want)
				}
				if !slices.Contains(RequestStates(), to) {
					t.Errorf("%s x %s leads to %s, not in RequestStates", s, a, to)
				}
				continue
			}
			var te *TransitionError
			if !errors.As(err, &te) || !errors.Is(err, ErrInvalidTransition) || te.State != s || te.Action != a {
				t.Errorf("%s x %s: %v, want a TransitionError", s, a, err)
				continue
			}
			if msg := err.Error(); !strings.Contains(msg, string(s)) || !strings.Contains(msg, string(a)) || !strings.Contains(msg, "req1") {
				t.Errorf("%s x %s: message %q does not name the state, action and request", s, a, msg)
			}
		}
	}
	if n != len(transitions) || n != len(Transitions()) {
		t.Errorf("walked %d transitions, the table has %d (%d listed)", n, len(transitions), len(Transitions()))
	}
	for _, a := range RequestActions() {
		if a.Past() == "" {
			t.Errorf("action %s has no event name", a)
		}
	}
	// Every state but CREATED (left in the transaction that made it) is
	// reached, and only terminal states have nothing but late reports.
	reached := map[RequestState]bool{}
	for _, tr := range Transitions() {
		reached[tr.To] = true
	}
	for _, s := range RequestStates() {
		if s != StateCreated && !reached[s] {
			t.Errorf("state %s is never reached", s)
		}
	}
}

// TestREADMETransitionTable keeps policy/README.md's table the code's.
func TestREADMETransitionTable(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), TransitionTableMarkdown()) {
		t.Errorf("README.md's transition table is not the code's; paste this:\n%s", TransitionTableMarkdown())
	}
}

// walkState drives a fresh request into state through the service.
func walkState(t *testing.T, f *fixture, state RequestState) AccessRequest {
	t.Helper()
	ok := must[AccessRequest](t)
	approved := func() AccessRequest {
		r := f.request(operator, "exa-main", 8, "INFRA_UPDATE_RESTART")
		return ok(f.svc.Approve(f.ctx, explicit, r.ID, ApproveInput{}))
	}
	report := func(r AccessRequest, st RequestState, hosts ...string) AccessRequest {
		g := must[Grant](t)(f.svc.GetGrant(f.ctx, r.UserID))
		if len(hosts) == 0 {
			hosts = g.Hosts
		}
		for _, h := range hosts {
			r = ok(f.svc.ReportDeployment(f.ctx, agentID, DeploymentReport{LoginID: r.UserID, Host: h, State: st}))
		}
		return r
	}
	extending := func() AccessRequest {
		return ok(f.svc.Extend(f.ctx, operator, approved().ID, 2, "more time", 0))
	}
	var r AccessRequest
	switch state {
	case StateApprovalWaiting:
		r = f.request(operator, "exa-main", 8, "INFRA_UPDATE_RESTART")
	case StateMoreInfo:
		r = ok(f.svc.Ask(f.ctx, explicit, f.request(operator, "exa-main", 8, "INFRA_UPDATE_RESTART").ID, "which cell?"))
	case StatePreApproved:
		r = f.request(operator, "exa-diag", 8, "INFRA_DIAG")
	case StateApproved:
		r = approved()
	case StateApprovedForFuture:
		q := ok(f.svc.CreateRequest(f.ctx, operator, RequestInput{ResourceID: "exa-main", ActionRequests: []string{"INFRA_UPDATE_RESTART"}, Reason: "later", Severity: SeverityS4, DurationHours: 2, TimeRequestedForFutureAccess: f.clock.Now().Add(48 * time.Hour)}))
		r = ok(f.svc.Approve(f.ctx, explicit, q.ID, ApproveInput{}))
	case StateDeployed:
		r = report(approved(), StateDeployed)
	case StateDeployFailed:
		a := approved()
		r = report(a, StateDeployFailed, must[Grant](t)(f.svc.GetGrant(f.ctx, a.UserID)).Hosts[0])
	case StateUndeployed:
		a := approved()
		r = report(a, StateUndeployed, must[Grant](t)(f.svc.GetGrant(f.ctx, a.UserID)).Hosts[0])
	case StateExtending:
		r = extending()
	case StateExtended:
		r = ok(f.svc.Approve(f.ctx, explicit, extending().ID, ApproveInput{}))
	case StateExtensionRejected:
		r = ok(f.svc.Reject(f.ctx, explicit, extending().ID, "no", 0))
	case StateRejected:
		r = ok(f.svc.Reject(f.ctx, explicit, f.request(operator, "exa-main", 8, "INFRA_UPDATE_RESTART").ID, "not now", 0))
	case StateRevoked:
		r = ok(f.svc.Revoke(f.ctx, explicit, approved().ID, "stop", 0))
	case StateCompleted:
		r = ok(f.svc.Complete(f.ctx, operator, approved().ID, "done", 0))
	case StateExpired:
		// A resource of its own, so that the tick expires this one only.
		a := approved()
		if _, err := f.svc.Tick(f.ctx, a.TimeOfExpiry); err != nil {
			t.Fatal(err)
		}
		r = ok(f.svc.GetRequest(f.ctx, a.ID))
	default:
		t.Fatalf("no walk to %s", state)
	}
	if r.LifecycleState != state {
		t.Fatalf("walked to %s, want %s", r.LifecycleState, state)
	}
	return r
}

// TestServiceWalksTable: from every state a request reaches, every call
// an operator, approver or agent can make either moves as the table says
// or is refused with the *TransitionError naming state and action.
func TestServiceWalksTable(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b)
			exampleControls(f)
			calls := []struct {
				act  RequestAction
				call func(r AccessRequest) (AccessRequest, error)
				// granted: needs a login user (agents report on grants)
				granted bool
			}{
				{ActApprove, func(r AccessRequest) (AccessRequest, error) {
					if r.ResourceID == "exa-diag" {
						return f.svc.Approve(f.ctx, preAppr, r.ID, ApproveInput{})
					}
					return f.svc.Approve(f.ctx, explicit, r.ID, ApproveInput{})
				}, false},
				{ActReject, func(r AccessRequest) (AccessRequest, error) { return f.svc.Reject(f.ctx, explicit2, r.ID, "no", 0) }, false},
				{ActAsk, func(r AccessRequest) (AccessRequest, error) { return f.svc.Ask(f.ctx, explicit2, r.ID, "why?") }, false},
				{ActAnswer, func(r AccessRequest) (AccessRequest, error) { return f.svc.Answer(f.ctx, operator, r.ID, "because") }, false},
				{ActRevoke, func(r AccessRequest) (AccessRequest, error) { return f.svc.Revoke(f.ctx, admin, r.ID, "stop", 0) }, false},
				{ActComplete, func(r AccessRequest) (AccessRequest, error) { return f.svc.Complete(f.ctx, operator, r.ID, "done", 0) }, false},
				{ActExtend, func(r AccessRequest) (AccessRequest, error) { return f.svc.Extend(f.ctx, operator, r.ID, 1, "more", 0) }, false},
				{ActReportDeployed, reportAll(f, StateDeployed), true},
				{ActReportDeployFailed, reportAll(f, StateDeployFailed), true},
				{ActReportUndeployed, reportAll(f, StateUndeployed), true},
			}
			for _, state := range RequestStates() {
				if state == StateCreated {
					continue
				}
				for _, c := range calls {
					// Agents report on grants: a request that never had one
					// has no login to report on (TestTransitionTable covers
					// those pairs).
					if c.granted && slices.Contains(grantless, state) {
						continue
					}
					t.Run(string(state)+"/"+string(c.act), func(t *testing.T) {
						r := walkState(t, f, state)
						if c.granted && r.UserID == "" {
							t.Fatalf("%s walked without a grant", state)
						}
						want, ok := transitions[stateAction{state, c.act}]
						got, err := c.call(r)
						if !ok {
							var te *TransitionError
							if !errors.As(err, &te) || te.State != state || te.Action != c.act || !strings.Contains(err.Error(), string(state)) {
								t.Fatalf("%v, want the TransitionError of %s x %s", err, state, c.act)
							}
							after := must[AccessRequest](t)(f.svc.GetRequest(f.ctx, r.ID))
							if after.Version != r.Version || after.LifecycleState != state {
								t.Fatalf("a refused call changed the request: %+v", after)
							}
							return
						}
						if err != nil {
							t.Fatalf("%s x %s: %v, want %s", state, c.act, err, want)
						}
						if c.act == ActExtend && r.ResourceID == "exa-diag" {
							want = StateExtended // pre-approved: the extension is decided at once
						}
						if got.LifecycleState != want {
							t.Fatalf("%s x %s = %s, want %s", state, c.act, got.LifecycleState, want)
						}
					})
				}
			}
		})
	}
}

// grantless are the states walkState reaches before any grant.
var grantless = []RequestState{StateApprovalWaiting, StateMoreInfo, StateApprovedForFuture, StateRejected}

func reportAll(f *fixture, st RequestState) func(r AccessRequest) (AccessRequest, error) {
	return func(r AccessRequest) (AccessRequest, error) {
		g, err := f.svc.GetGrant(f.ctx, r.UserID)
		if err != nil {
			return r, err
		}
		for _, h := range g.Hosts {
			if r, err = f.svc.ReportDeployment(f.ctx, agentID, DeploymentReport{LoginID: r.UserID, Host: h, State: st}); err != nil {
				return r, err
			}
		}
		return r, nil
	}
}
