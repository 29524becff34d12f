package console

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/siemtest"
	"github.com/auditpipe/auditpipe/policy"
)

// caPEM is a CA certificate (siemtest's), as a SIEM's CA file holds it.
func caPEM(t *testing.T) string {
	t.Helper()
	ca := siemtest.NewCA(t, t.TempDir(), "SIEM test CA")
	b, err := os.ReadFile(ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// controlNamed returns the control called name from the store.
func (h *harness) controlNamed(name string) (policy.Control, bool) {
	h.t.Helper()
	ctls, _, err := h.svc.ListControls(h.ctx, policy.ControlFilter{Page: policy.Page{Limit: 1000}})
	if err != nil {
		h.t.Fatal(err)
	}
	for _, c := range ctls {
		if c.OperatorControlName == name {
			return c, true
		}
	}
	return policy.Control{}, false
}

// seedAssignment is the seed's assignment of cell_maint to the cell.
func (h *harness) seedAssignment() policy.Assignment {
	h.t.Helper()
	as, _, err := h.svc.ListAssignments(h.ctx, policy.AssignmentFilter{ResourceID: cellID, State: policy.AssignmentApplied})
	if err != nil || len(as) != 1 {
		h.t.Fatalf("the cell's applied assignments: %v, %v; want the seed's one", as, err)
	}
	return as[0]
}

// TestAdminEditsControls: a policy admin creates a control in the
// console (approver groups, approvers, the catalog's actions pre-approved
// or needing approval, the number of approvers, the notification list),
// edits it, unassigns the cell's control, assigns the new one for a
// window, then makes it always enforced with the cell's SIEM destination;
// the store has what the pages said at every step.
func TestAdminEditsControls(t *testing.T) {
	h := newHarness(t)
	b := newBrowser(t)
	b.signIn(h, idAdmin)
	b.run(chromedp.Click(chromedp.Search(`//nav/a[normalize-space(.)="Controls"]`)), chromedp.WaitVisible(chromedp.CSS(`#new-control`)))
	b.check("controls, admin")
	b.run(chromedp.Click(chromedp.CSS(`#new-control`)), chromedp.WaitVisible(chromedp.CSS(`#c-name`)))
	b.check("new control")
	b.run(chromedp.EmulateViewport(390, 844))
	b.check("new control at phone width")
	b.run(chromedp.EmulateViewport(1200, 900))

	b.run(chromedp.SendKeys(chromedp.CSS(`#c-name`), "cell_patch"), chromedp.SendKeys(chromedp.CSS(`#c-description`), "Patching needs two approvers"),
		chromedp.SendKeys(chromedp.CSS(`#c-compartment`), jobsCompartment),
		chromedp.SetValue(chromedp.CSS(`#c-type`), policy.ResourceExadataInfra),
		chromedp.SetValue(chromedp.CSS(`#c-groups`), "PATCHERS\nEXPLICIT_APPROVED_POLICY_USERS"),
		chromedp.SendKeys(chromedp.CSS(`#c-approvers`), "bob"),
		chromedp.SetValue(chromedp.CSS(`#c-number`), "2"),
		chromedp.Click(chromedp.CSS(`#a-INFRA_DIAG-pre`)), chromedp.Click(chromedp.CSS(`#a-INFRA_UPDATE_RESTART-approval`)),
		chromedp.SendKeys(chromedp.CSS(`#c-emails`), "oncall@example.com, dba@example.com"))
	b.shot("control-new")
	b.run(chromedp.Click(chromedp.CSS(`#save-control`)), chromedp.WaitReady(chromedp.CSS(`#control-form input[name="version"]`)))
	ctl, ok := h.controlNamed("cell_patch")
	if !ok {
		t.Fatal("the control made in the console is not in the store")
	}
	want := policy.Control{OperatorControlName: "cell_patch", Description: "Patching needs two approvers", CompartmentID: jobsCompartment,
		ResourceType: policy.ResourceExadataInfra, ApproverGroupsList: []string{"EXPLICIT_APPROVED_POLICY_USERS", "PATCHERS"},
		ApproversList: []string{"bob"}, NumberOfApprovers: 2, PreApprovedOpActions: []string{"INFRA_DIAG"},
		ApprovalRequiredOpActions: []string{"INFRA_UPDATE_RESTART"}, EmailIDList: []string{"dba@example.com", "oncall@example.com"},
		MaxDurationHours: policy.DefaultMaxDurationHours, MaxExtensionHours: policy.DefaultMaxDurationHours, LifecycleState: policy.ControlCreated, Version: 1}
	if diff := controlDiff(ctl, want); diff != "" {
		t.Fatalf("the store's control differs from the form: %s", diff)
	}
	// The page is the control's form, filled from the store.
	for sel, v := range map[string]string{`#c-name`: "cell_patch", `#c-number`: "2"} {
		if got := value(b, chromedp.Value(chromedp.CSS(sel))); got != v {
			t.Errorf("%s shows %q, want %q", sel, got, v)
		}
	}
	if !value(b, chromedp.Evaluate[bool](`document.getElementById("a-INFRA_DIAG-pre").checked && document.getElementById("a-INFRA_UPDATE_RESTART-approval").checked && document.getElementById("a-INFRA_FULL-none").checked`)) {
		t.Error("the control's page does not show its actions as saved")
	}
	b.check("control")

	// Edit: one approver, and the hypervisor action needs approval too.
	b.run(chromedp.SetValue(chromedp.CSS(`#c-number`), "1"), chromedp.Click(chromedp.CSS(`#a-INFRA_HYPERVISOR-approval`)),
		chromedp.Click(chromedp.CSS(`#save-control`)), chromedp.WaitReady(chromedp.CSS(`#control-form input[name="version"][value="2"]`)))
	ctl, _ = h.controlNamed("cell_patch")
	want.NumberOfApprovers, want.ApprovalRequiredOpActions, want.Version = 1, []string{"INFRA_HYPERVISOR", "INFRA_UPDATE_RESTART"}, 2
	if diff := controlDiff(ctl, want); diff != "" {
		t.Fatalf("after the edit: %s", diff)
	}
	b.check("control, edited")
	b.shot("control")

	// Unassign the cell's control (the seed's), with the confirmation.
	seed := h.seedAssignment()
	b.run(chromedp.Navigate(h.srv.URL+Prefix+"/controls"), chromedp.WaitVisible(chromedp.CSS(`#assignments`)),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#assignments tr[data-id="%s"] a`, seed.ID))), chromedp.WaitVisible(chromedp.CSS(`#unassign`)))
	b.check("assignment, seed")
	b.run(chromedp.Click(chromedp.CSS(`#unassign-confirm`)), chromedp.Click(chromedp.CSS(`#unassign`)), chromedp.WaitVisible(chromedp.CSS(`#new-assignment`)))
	if got, err := h.svc.GetAssignment(h.ctx, seed.ID); err != nil || got.LifecycleState != policy.AssignmentDeleted || got.UnassignerID != idAdmin.Name {
		t.Fatalf("the unassigned assignment: %+v, %v; want DELETED by %s", got, err, idAdmin.Name)
	}

	// Assign the new control to the cell for a window that has begun.
	from := time.Now().UTC().Add(-time.Minute).Truncate(time.Minute)
	to := from.Add(3 * time.Hour)
	b.run(chromedp.Click(chromedp.CSS(`#new-assignment`)), chromedp.WaitVisible(chromedp.CSS(`#a-control`)))
	b.check("new assignment")
	b.run(chromedp.SetValue(chromedp.CSS(`#a-control`), ctl.ID), chromedp.SetValue(chromedp.CSS(`#a-resource`), cellID),
		chromedp.Click(chromedp.CSS(`#a-window`)), chromedp.SetValue(chromedp.CSS(`#a-from`), from.Format(formTimeLayout)),
		chromedp.SetValue(chromedp.CSS(`#a-to`), to.Format(formTimeLayout)), chromedp.SendKeys(chromedp.CSS(`#a-comment`), "patch window"),
		chromedp.Click(chromedp.CSS(`#save-assignment`)), chromedp.WaitVisible(chromedp.CSS(`#state`)))
	if s := b.text(`#state`); s != string(policy.AssignmentApplied) {
		t.Errorf("the new assignment's page says %q, want APPLIED", s)
	}
	inForce, a, err := h.svc.ControlInForce(h.ctx, cellID, time.Now())
	if err != nil || inForce.ID != ctl.ID || a == nil || a.IsEnforcedAlways || !a.TimeAssignmentFrom.Equal(from) || !a.TimeAssignmentTo.Equal(to) || a.Comment != "patch window" {
		t.Fatalf("the cell's control in force: %s, assignment %+v, %v; want %s from %s to %s", inForce.ID, a, err, ctl.ID, from, to)
	}
	b.check("assignment, window")

	// Always enforced, with the cell's SIEM destination.
	ca := caPEM(t)
	b.run(chromedp.Click(chromedp.CSS(`#a-always`)), chromedp.Click(chromedp.CSS(`#a-forwarded`)),
		chromedp.SendKeys(chromedp.CSS(`#a-address`), "siem.example.com"), chromedp.SetValue(chromedp.CSS(`#a-port`), "6514"),
		chromedp.SetValue(chromedp.CSS(`#a-ca`), ca), chromedp.Click(chromedp.CSS(`#save-assignment`)),
		chromedp.WaitVisible(chromedp.Search(`//dd[@id="siem"][normalize-space(.)="siem.example.com:6514"]`)))
	got, err := h.svc.GetAssignment(h.ctx, a.ID)
	if err != nil || !got.IsEnforcedAlways || !got.IsLogForwarded || got.RemoteSyslogServerAddress != "siem.example.com" || got.RemoteSyslogServerPort != 6514 ||
		strings.TrimSpace(got.RemoteSyslogServerCACert) != strings.TrimSpace(ca) || got.Version != a.Version+1 {
		t.Fatalf("after the SIEM edit the store has %+v (%v)", got, err)
	}
	b.check("assignment, forwarded")
	b.shot("assignment")
	b.run(chromedp.EmulateViewport(390, 844))
	b.check("assignment at phone width")
}

// controlDiff names the fields of got that differ from want (the form's
// fields, the state and the version).
func controlDiff(got, want policy.Control) string {
	var d []string
	cmp := func(name string, g, w any) {
		if fmt.Sprint(g) != fmt.Sprint(w) {
			d = append(d, fmt.Sprintf("%s %v, want %v", name, g, w))
		}
	}
	cmp("name", got.OperatorControlName, want.OperatorControlName)
	cmp("description", got.Description, want.Description)
	cmp("compartment", got.CompartmentID, want.CompartmentID)
	cmp("resource_type", got.ResourceType, want.ResourceType)
	cmp("approver_groups", got.ApproverGroupsList, want.ApproverGroupsList)
	cmp("approvers", got.ApproversList, want.ApproversList)
	cmp("number_of_approvers", got.NumberOfApprovers, want.NumberOfApprovers)
	cmp("pre_approved", got.PreApprovedOpActions, want.PreApprovedOpActions)
	cmp("approval_required", got.ApprovalRequiredOpActions, want.ApprovalRequiredOpActions)
	cmp("fully_pre_approved", got.IsFullyPreApproved, want.IsFullyPreApproved)
	cmp("emails", got.EmailIDList, want.EmailIDList)
	cmp("max_duration_hours", got.MaxDurationHours, want.MaxDurationHours)
	cmp("max_extension_hours", got.MaxExtensionHours, want.MaxExtensionHours)
	cmp("state", got.LifecycleState, want.LifecycleState)
	cmp("version", got.Version, want.Version)
	return strings.Join(d, "; ")
}

// controlForms are valid posts of every control and assignment form, by
// path, for the seed's control and assignment.
func controlForms(h *harness, ctl policy.Control, asg policy.Assignment) map[string]url.Values {
	return map[string]url.Values{
		Prefix + "/controls": {"name": {"forged"}, "compartment": {jobsCompartment}, "resource_type": {policy.ResourceExadataInfra},
			"approver_groups": {"EVIL"}, "action_INFRA_FULL": {"pre"}},
		Prefix + "/controls/" + ctl.ID: {"version": {fmt.Sprint(ctl.Version)}, "name": {ctl.OperatorControlName}, "fully_pre_approved": {"yes"},
			"approver_groups": {"EVIL"}, "resource_type": {ctl.ResourceType}},
		Prefix + "/assignments": {"control": {ctl.ID}, "resource": {cellID}, "enforced": {"always"}},
		Prefix + "/assignments/" + asg.ID: {"version": {fmt.Sprint(asg.Version)}, "enforced": {"always"}, "forwarded": {"yes"},
			"address": {"evil.example"}, "port": {"514"}, "ca_cert": {caPEM(h.t)}},
		Prefix + "/assignments/" + asg.ID + "/unassign": {"version": {fmt.Sprint(asg.Version)}, "confirm": {"yes"}},
	}
}

// TestControlsByRole: approvers and auditors read the controls and
// assignments with no link or form to change them, and the forms they
// post anyway are refused (403) by role; operators have no Controls page;
// an admin's own forms without the CSRF token, or sent from another site,
// are refused. Nothing changes.
func TestControlsByRole(t *testing.T) {
	h := newHarness(t)
	ctl, ok := h.controlNamed("cell_maint")
	if !ok {
		t.Fatal("no seed control")
	}
	asg := h.seedAssignment()
	before, _, err := h.svc.ListControls(h.ctx, policy.ControlFilter{})
	if err != nil {
		t.Fatal(err)
	}
	unchanged := func(t *testing.T) {
		t.Helper()
		now, _, err := h.svc.ListControls(h.ctx, policy.ControlFilter{})
		if err != nil || len(now) != len(before) {
			t.Fatalf("controls: %d now, %d before (%v)", len(now), len(before), err)
		}
		if c, err := h.svc.GetControl(h.ctx, ctl.ID); err != nil || c.Version != ctl.Version {
			t.Fatalf("the seed control is at version %d, was %d (%v)", c.Version, ctl.Version, err)
		}
		if a, err := h.svc.GetAssignment(h.ctx, asg.ID); err != nil || a.Version != asg.Version || a.LifecycleState != policy.AssignmentApplied {
			t.Fatalf("the seed assignment is %s at version %d, was APPLIED at %d (%v)", a.LifecycleState, a.Version, asg.Version, err)
		}
	}
	forms := controlForms(h, ctl, asg)
	for _, tt := range []struct {
		who        auth.Identity
		list, page int // the status of the list and of the control's and assignment's pages
	}{
		{idApprover, http.StatusOK, http.StatusOK},
		{idAuditor, http.StatusOK, http.StatusOK},
		{idOperator, http.StatusForbidden, http.StatusForbidden},
	} {
		t.Run(tt.who.Role, func(t *testing.T) {
			c, csrf := h.client(tt.who)
			body := h.get(c, Prefix+"/controls", tt.list)
			for _, p := range []string{Prefix + "/controls/" + ctl.ID, Prefix + "/assignments/" + asg.ID} {
				body += h.get(c, p, tt.page)
			}
			for _, bad := range []string{`id="new-control"`, `id="new-assignment"`, `id="control-form"`, `id="assignment-form"`, `id="unassign-form"`, `method="post" action="/console/controls`, `method="post" action="/console/assignments`} {
				if strings.Contains(body, bad) {
					t.Errorf("%s's pages have %s", tt.who.Role, bad)
				}
			}
			if tt.page == http.StatusOK && !strings.Contains(body, "cell_maint") {
				t.Errorf("%s's pages do not show the control", tt.who.Role)
			}
			h.get(c, Prefix+"/controls/new", http.StatusForbidden)
			h.get(c, Prefix+"/assignments/new", http.StatusForbidden)
			for path, form := range forms {
				form := cloneValues(form)
				form.Set("csrf", csrf)
				if status, _ := h.post(c, path, form); status != http.StatusForbidden {
					t.Errorf("%s posts %s: %d, want 403", tt.who.Role, path, status)
				}
			}
			unchanged(t)
		})
	}
	// In the browser, an approver's read-only pages pass the same checks
	// as every page.
	b := newBrowser(t)
	b.signIn(h, idApprover)
	for name, path := range map[string]string{"controls": "/controls", "control": "/controls/" + ctl.ID, "assignment": "/assignments/" + asg.ID} {
		b.run(chromedp.Navigate(h.srv.URL+Prefix+path), chromedp.WaitVisible(chromedp.CSS(`main h1`)))
		if n := b.count(`main form`); n != 0 {
			t.Errorf("the approver's %s page has %d forms", name, n)
		}
		b.check(name + ", approver")
		b.run(chromedp.EmulateViewport(390, 844))
		b.check(name + ", approver, at phone width")
		b.run(chromedp.EmulateViewport(1200, 900))
	}
	t.Run("admin, forged", func(t *testing.T) {
		c, csrf := h.client(idAdmin)
		body := h.get(c, Prefix+"/controls", http.StatusOK)
		if !strings.Contains(body, `id="new-control"`) || !strings.Contains(body, `id="new-assignment"`) {
			t.Fatalf("the admin's controls page has no links to create")
		}
		for path, form := range forms {
			for name, f := range map[string]func(url.Values){
				"no token":    func(url.Values) {},
				"wrong token": func(v url.Values) { v.Set("csrf", "AAAA"+csrf[4:]) },
			} {
				v := cloneValues(form)
				f(v)
				if status, _ := h.post(c, path, v); status != http.StatusForbidden {
					t.Errorf("%s, %s: %d, want 403", path, name, status)
				}
			}
			v := cloneValues(form)
			v.Set("csrf", csrf)
			req, err := http.NewRequest(http.MethodPost, h.srv.URL+path, strings.NewReader(v.Encode()))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Sec-Fetch-Site", "cross-site")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s from another site: %s, want 403", path, resp.Status)
			}
		}
		unchanged(t)
	})
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

// TestControlFormsChecked: what the service refuses comes back as the
// form, as it was sent, with the refusal (a stale version is a 412, as
// the API's If-Match; a problem of a field a 400; an overlapping
// assignment a 409), and nothing changes.
func TestControlFormsChecked(t *testing.T) {
	h := newHarness(t)
	ctl, _ := h.controlNamed("cell_maint")
	asg := h.seedAssignment()
	c, csrf := h.client(idAdmin)
	with := func(v url.Values) url.Values { v.Set("csrf", csrf); return v }
	tests := []struct {
		name   string
		path   string
		form   url.Values
		status int
		want   []string // in the answer
	}{
		{"stale control", Prefix + "/controls/" + ctl.ID, url.Values{"version": {fmt.Sprint(ctl.Version + 1)}, "name": {"renamed"}, "resource_type": {ctl.ResourceType}},
			http.StatusPreconditionFailed, []string{"the control changed since this page showed it", `value="renamed"`}},
		{"control without version", Prefix + "/controls/" + ctl.ID, url.Values{"name": {"renamed"}}, http.StatusBadRequest, []string{"carries no version"}},
		{"too many approvers", Prefix + "/controls/" + ctl.ID, url.Values{"version": {fmt.Sprint(ctl.Version)}, "name": {"renamed"}, "number_of_approvers": {"11"}, "resource_type": {ctl.ResourceType}},
			http.StatusBadRequest, []string{"number_of_approvers", `value="renamed"`, `id="control-form"`}},
		{"action of another type", Prefix + "/controls", url.Values{"name": {"avm"}, "compartment": {jobsCompartment}, "resource_type": {policy.ResourceExadataInfra}, "action_AVM_FULL": {"pre"}},
			http.StatusBadRequest, []string{"AVM_FULL does not apply to resource type", `value="avm"`}},
		{"second control on the cell", Prefix + "/assignments", url.Values{"control": {ctl.ID}, "resource": {cellID}, "enforced": {"always"}},
			http.StatusConflict, []string{"one control per resource at a time", `id="assignment-form"`}},
		{"forwarding in a window", Prefix + "/assignments/" + asg.ID, url.Values{"version": {fmt.Sprint(asg.Version)}, "enforced": {"window"},
			"from": {time.Now().UTC().Format(formTimeLayout)}, "to": {time.Now().UTC().Add(time.Hour).Format(formTimeLayout)},
			"forwarded": {"yes"}, "address": {"siem.example.com"}, "port": {"6514"}, "ca_cert": {caPEM(t)}},
			http.StatusBadRequest, []string{"needs an always-enforced assignment", `value="siem.example.com"`}},
		{"no CA", Prefix + "/assignments/" + asg.ID, url.Values{"version": {fmt.Sprint(asg.Version)}, "enforced": {"always"}, "forwarded": {"yes"}, "address": {"siem.example.com"}, "port": {"6514"}},
			http.StatusBadRequest, []string{"CA certificate (PEM) is required"}},
		{"stale assignment", Prefix + "/assignments/" + asg.ID, url.Values{"version": {fmt.Sprint(asg.Version - 1)}, "enforced": {"always"}},
			http.StatusPreconditionFailed, []string{"the assignment changed since this page showed it"}},
		{"unassign unconfirmed", Prefix + "/assignments/" + asg.ID + "/unassign", url.Values{"version": {fmt.Sprint(asg.Version)}}, http.StatusBadRequest, []string{"tick the box"}},
		{"unassign stale", Prefix + "/assignments/" + asg.ID + "/unassign", url.Values{"version": {fmt.Sprint(asg.Version + 1)}, "confirm": {"yes"}},
			http.StatusPreconditionFailed, []string{"the assignment changed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := h.post(c, tt.path, with(tt.form))
			if status != tt.status {
				t.Errorf("%d, want %d\n%s", status, tt.status, body)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("the answer lacks %q", w)
				}
			}
			if got, _ := h.svc.GetControl(h.ctx, ctl.ID); got.Version != ctl.Version || got.OperatorControlName != "cell_maint" {
				t.Errorf("the control changed: %+v", got)
			}
			if got, _ := h.svc.GetAssignment(h.ctx, asg.ID); got.Version != asg.Version || got.LifecycleState != policy.AssignmentApplied {
				t.Errorf("the assignment changed: %+v", got)
			}
			if _, ok := h.controlNamed("avm"); ok {
				t.Errorf("a refused control was created")
			}
		})
	}
}
