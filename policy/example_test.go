package policy

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/schemas"
)

// exampleControls sets up the seed's example 1-1: three resources, each
// under its control. system_diag pre-approves INFRA_DIAG for the group
// PRE_APPROVED_POLICY_USERS; system_main requires an explicit approval of
// INFRA_UPDATE_RESTART by EXPLICIT_APPROVED_POLICY_USERS; system_all
// lists INFRA_FULL as approval-required and names no group.
func exampleControls(f *fixture) (diag, main, all Control) {
	f.resource("exa-diag")
	f.resource("exa-main")
	f.resource("exa-all")
	diag = f.control("exa-diag", ControlInput{OperatorControlName: "system_diag", ApproverGroupsList: []string{"PRE_APPROVED_POLICY_USERS"}, PreApprovedOpActions: []string{"INFRA_DIAG"}})
	main = f.control("exa-main", ControlInput{OperatorControlName: "system_main", ApproverGroupsList: []string{"EXPLICIT_APPROVED_POLICY_USERS"}, ApprovalRequiredOpActions: []string{"INFRA_UPDATE_RESTART"}})
	all = f.control("exa-all", ControlInput{OperatorControlName: "system_all", ApprovalRequiredOpActions: []string{"INFRA_FULL"}})
	return diag, main, all
}

// TestExample1_1 is the seed's example 1-1 at service level, with what
// the outbox holds after each step: lifecycle events, the signed grants
// (verified with the keyring) and the signed revocation.
func TestExample1_1(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b)
			_, mainCtl, _ := exampleControls(f)
			setup := f.outbox(nil)
			if got := len(setup.assignments); got != 3 {
				t.Fatalf("%d assignments published, want 3", got)
			}
			for _, a := range setup.assignments {
				if a.Assignment.LifecycleState != string(AssignmentApplied) || !a.Assignment.IsEnforcedAlways || len(a.Assignment.Hosts) != 3 {
					t.Errorf("assignment %+v", a.Assignment)
				}
			}

			// system_diag: INFRA_DIAG is pre-approved: auto-approved, granted at once.
			diagReq := f.request(operator, "exa-diag", 4, "INFRA_DIAG")
			if diagReq.LifecycleState != StatePreApproved || !diagReq.IsAutoApproved || len(diagReq.UserID) != 32 {
				t.Fatalf("diag request %+v", diagReq)
			}
			p := f.outbox(setup)
			if got, want := p.kinds(diagReq.ID), []string{"access_request.created", "access_request.auto_approved"}; !slices.Equal(got, want) {
				t.Errorf("diag events %v, want %v", got, want)
			}
			if len(p.grants) != 1 {
				t.Fatalf("%d grants, want 1", len(p.grants))
			}
			g := p.grants[0].Grant
			if g.LoginID != diagReq.UserID || g.ReqAuthID != diagReq.ID || g.Resource != "exa-diag" || g.AuditType != schemas.AuditCommand ||
				!slices.Equal(g.Actions, []string{"INFRA_DIAG"}) || !g.Start.Equal(t0) || !g.Expires.Equal(t0.Add(4*time.Hour)) ||
				!slices.Equal(g.Hosts, []string{"exa-diag-cps01", "exa-diag-db01", "exa-diag-cel01"}) || g.Privileges == nil || !g.Privileges.Chroot {
				t.Errorf("diag grant %s", jsonOf(g))
			}
			for _, c := range g.LoginID {
				if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
					t.Fatalf("login %q is not lowercase hex", g.LoginID)
				}
			}

			// INFRA_UPDATE_RESTART is not pre-approved under system_diag:
			// neither listed, so refused.
			_, err := f.svc.CreateRequest(f.ctx, operator, RequestInput{ResourceID: "exa-diag", ActionRequests: []string{"INFRA_UPDATE_RESTART"}, Reason: "reboot", Severity: SeverityS2, DurationHours: 2})
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("UPDATE_RESTART under system_diag: %v, want refused", err)
			}

			// system_main: waits for an explicit approval.
			mainReq := f.request(operator, "exa-main", 8, "INFRA_UPDATE_RESTART")
			if mainReq.LifecycleState != StateApprovalWaiting || mainReq.UserID != "" || mainReq.OpctlID != mainCtl.ID {
				t.Fatalf("main request %+v", mainReq)
			}
			p = f.outbox(p)
			if len(p.grants) != 0 {
				t.Fatalf("a grant before approval: %+v", p.grants)
			}
			// A member of PRE_APPROVED_POLICY_USERS is no approver of system_main.
			if _, err := f.svc.Approve(f.ctx, preAppr, mainReq.ID, ApproveInput{}); !errors.Is(err, ErrForbidden) {
				t.Errorf("approval by PRE_APPROVED_POLICY_USERS: %v, want forbidden", err)
			}
			// The requester never approves their own request, even in the group.
			self := operator
			self.Groups = []string{"EXPLICIT_APPROVED_POLICY_USERS"}
			if _, err := f.svc.Approve(f.ctx, self, mainReq.ID, ApproveInput{}); !errors.Is(err, ErrForbidden) {
				t.Errorf("self-approval: %v, want forbidden", err)
			}
			f.clock.Add(10 * time.Minute)
			approved, err := f.svc.Approve(f.ctx, explicit, mainReq.ID, ApproveInput{Comment: "patch window agreed", AuditType: schemas.AuditCommandKeystroke, DurationHours: 4})
			if err != nil {
				t.Fatal(err)
			}
			if approved.LifecycleState != StateApproved || approved.DurationHours != 4 || approved.AuditType != schemas.AuditCommandKeystroke || len(approved.UserID) != 32 {
				t.Fatalf("approved %+v", approved)
			}
			p = f.outbox(p)
			if got, want := p.kinds(mainReq.ID), []string{"access_request.approved"}; !slices.Equal(got, want) {
				t.Errorf("main events %v, want %v", got, want)
			}
			if len(p.grants) != 1 {
				t.Fatalf("%d grants, want 1", len(p.grants))
			}
			mg := p.grants[0].Grant
			if mg.LoginID == g.LoginID || mg.AuditType != schemas.AuditCommandKeystroke || !mg.Expires.Equal(t0.Add(10*time.Minute+4*time.Hour)) ||
				!slices.Contains(mg.Privileges.SudoCommands, "/usr/sbin/reboot") || !slices.Contains(mg.Privileges.SuUsers, "cellmonitor") {
				t.Errorf("main grant %s", jsonOf(mg))
			}
			ev := p.lifecycle[len(p.lifecycle)-1]
			if ev.StateFrom != "APPROVALWAITING" || ev.StateTo != "APPROVED" || ev.Actor != "bob" || ev.ResourceID != "exa-main" ||
				ev.CompartmentID != "tenancy" || ev.Details["loginid"] != mg.LoginID || ev.Details["approvals"] != "1/1" || ev.Details["comment"] != "patch window agreed" {
				t.Errorf("approved event %s", jsonOf(ev))
			}

			// system_all: INFRA_FULL needs an approval nobody can give.
			allReq := f.request(operator, "exa-all", 1, "INFRA_FULL")
			if allReq.LifecycleState != StateApprovalWaiting {
				t.Fatalf("all request %+v", allReq)
			}
			for _, id := range []auth.Identity{preAppr, explicit, admin} {
				if _, err := f.svc.Approve(f.ctx, id, allReq.ID, ApproveInput{}); !errors.Is(err, ErrForbidden) {
					t.Errorf("%s approving system_all: %v, want forbidden", id.Name, err)
				}
			}

			// Then revoke: the approver revokes the deployed grant; its
			// signed revocation is published.
			before := f.outbox(p)
			revoked, err := f.svc.Revoke(f.ctx, explicit, mainReq.ID, "done early", 0)
			if err != nil {
				t.Fatal(err)
			}
			if revoked.LifecycleState != StateRevoked || revoked.ClosureComment != "done early" {
				t.Fatalf("revoked %+v", revoked)
			}
			p = f.outbox(before)
			if len(p.grants) != 1 || !p.grants[0].Grant.Revoked || p.grants[0].Grant.LoginID != mg.LoginID || p.grants[0].KeyID != f.signer.KeyID() {
				t.Fatalf("revocation %+v", p.grants)
			}
			if got := p.kinds(mainReq.ID); !slices.Equal(got, []string{"access_request.revoked"}) {
				t.Errorf("revoke events %v", got)
			}
			// The admin revokes the auto-approved one too, whatever the groups.
			if _, err := f.svc.Revoke(f.ctx, admin, diagReq.ID, "policy change", 0); err != nil {
				t.Fatal(err)
			}
			// History of every transition, who and when.
			h, err := f.svc.History(f.ctx, ObjectAccessRequest, mainReq.ID)
			if err != nil {
				t.Fatal(err)
			}
			var steps []string
			for _, e := range h {
				steps = append(steps, e.From+">"+e.To+":"+e.Action+":"+e.Actor)
			}
			want := []string{">CREATED:create:oracle-op-1", "CREATED>APPROVALWAITING:submit:oracle-op-1", "APPROVALWAITING>APPROVED:approve:bob", "APPROVED>REVOKED:revoke:bob"}
			if !slices.Equal(steps, want) {
				t.Errorf("history %v, want %v", steps, want)
			}
			if !h[2].Time.Equal(t0.Add(10 * time.Minute)) {
				t.Errorf("approval at %s", h[2].Time)
			}
			grant, err := f.svc.GetGrant(f.ctx, mg.LoginID)
			if err != nil || grant.Revoked.IsZero() {
				t.Errorf("stored grant %+v %v", grant, err)
			}
			if n, _ := f.store.ActiveGrants(f.ctx); n != 0 {
				t.Errorf("%d active grants", n)
			}
		})
	}
}
