package api

import (
	"slices"
	"sync"
	"testing"

	"github.com/auditpipe/auditpipe/policy"
)

// race runs the calls at once (released together) and returns their
// statuses in order.
func (s *server) race(calls ...call) []int {
	out := make([]int, len(calls))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, c := range calls {
		wg.Go(func() {
			<-start
			out[i] = s.do(c).status
		})
	}
	close(start)
	wg.Wait()
	return out
}

const raceRounds = 6

// TestConcurrentApproversOverHTTP: two approvers approving one request at
// once (one approval required) give one decision: one 200, the other 409
// IncorrectState (no if-match: the request was APPROVED by then) or 412
// PreconditionFailed (both sent the etag they read), and one grant.
func TestConcurrentApproversOverHTTP(t *testing.T) {
	f := newFixture(t, serverOptions{})
	for _, withETag := range []bool{false, true} {
		for range raceRounds {
			r := f.request(idOperator, "INFRA_UPDATE_RESTART")
			path := "/v1/accessRequests/" + r.ID + "/action/approve"
			hdr := map[string]string{}
			if withETag {
				hdr[HeaderIfMatch] = etag(r.Version)
			}
			got := f.race(call{who: idApprover, method: "POST", path: path, header: hdr}, call{who: idApprover2, method: "POST", path: path, header: hdr})
			slices.Sort(got)
			loser := 409
			if withETag {
				loser = 412
			}
			if !slices.Equal(got, []int{200, loser}) {
				t.Fatalf("if-match %v: statuses %v, want 200 and %d", withETag, got, loser)
			}
			after := f.get(r.ID)
			if after.LifecycleState != policy.StateApproved || len(after.ApproverDetails) != 1 || after.UserID == "" {
				t.Fatalf("after: %s, %d approvals", after.LifecycleState, len(after.ApproverDetails))
			}
		}
	}
}

// TestRevokeRacingApprovalOverHTTP: a revoke racing an approval ends
// REVOKED whichever lands first, and a grant issued by the approval is
// revoked with it.
func TestRevokeRacingApprovalOverHTTP(t *testing.T) {
	f := newFixture(t, serverOptions{})
	for range raceRounds {
		r := f.request(idOperator, "INFRA_DIAG")
		base := "/v1/accessRequests/" + r.ID
		got := f.race(call{who: idApprover, method: "POST", path: base + "/action/approve"},
			call{who: idApprover2, method: "POST", path: base + "/action/revoke", body: RevokeDetails{ApproverComment: "stop"}})
		if got[1] != 200 || (got[0] != 200 && got[0] != 409) {
			t.Fatalf("approve %d, revoke %d: want the revoke 200 and the approval 200 or 409", got[0], got[1])
		}
		after := f.get(r.ID)
		if after.LifecycleState != policy.StateRevoked {
			t.Fatalf("after the race: %s", after.LifecycleState)
		}
		if after.UserID != "" {
			var g policy.Grant
			f.must(200, call{who: idAuditor, method: "GET", path: "/v1/grants/" + after.UserID}).decode(t, &g)
			if g.Revoked.IsZero() {
				t.Fatalf("the approval's grant %s outlived the revocation", g.LoginID)
			}
		}
	}
}
