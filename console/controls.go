package console

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/policy/api"
)

// The controls and assignments pages: every reader of controls (the
// API's ListOperatorControls roles) sees them; the forms that create and
// change them are offered to, and accepted from, the roles of the API's
// CreateOperatorControl, UpdateOperatorControl,
// CreateOperatorControlAssignment, UpdateOperatorControlAssignment and
// DeleteOperatorControlAssignment only (policy admins), and each calls the
// policy.Service method of that route. Every change carries the version
// the page showed, the API's If-Match: a stale one is a 412 and changes
// nothing.

// Action modes of a control's form, per catalog action.
const (
	modeNone     = ""
	modePre      = "pre"
	modeApproval = "approval"
)

// actionChoice is one catalog action in the control's form, and whether
// the control pre-approves it, needs approval for it, or leaves it out.
type actionChoice struct {
	policy.Action
	Mode string
}

// controlForm is what the control editor shows: the control being edited
// (ID empty for a new one), the fields as they stand, and the message of
// a refused save.
type controlForm struct {
	ID      string
	Version int64
	State   policy.ControlState
	In      policy.ControlInput
	Actions []actionChoice
	Types   []string
	Error   string
	// Edit is whether the visitor may save it; readers see the same page
	// without the form.
	Edit bool
}

// newControlForm is the form of in. A saved control's resource type does
// not change: its form offers only the actions of that type (fixed), a
// new control's every action, each marked with its types.
func (c *Console) newControlForm(in policy.ControlInput, fixed bool) controlForm {
	f := controlForm{In: in, Types: policy.ResourceTypes()}
	for _, a := range c.deps.Service.Catalog().Actions() {
		if fixed && !slices.Contains(a.ResourceTypes, in.ResourceType) {
			continue
		}
		mode := modeNone
		switch {
		case slices.Contains(in.PreApprovedOpActions, a.Name):
			mode = modePre
		case slices.Contains(in.ApprovalRequiredOpActions, a.Name):
			mode = modeApproval
		}
		f.Actions = append(f.Actions, actionChoice{Action: a, Mode: mode})
	}
	return f
}

// controlInput reads the control form.
func (c *Console) controlInput(r *http.Request) (policy.ControlInput, error) {
	in := policy.ControlInput{
		OperatorControlName:      strings.TrimSpace(r.PostFormValue("name")),
		Description:              strings.TrimSpace(r.PostFormValue("description")),
		CompartmentID:            strings.TrimSpace(r.PostFormValue("compartment")),
		ResourceType:             r.PostFormValue("resource_type"),
		ApproverGroupsList:       splitList(r.PostFormValue("approver_groups")),
		ApproversList:            splitList(r.PostFormValue("approvers")),
		EmailIDList:              splitList(r.PostFormValue("emails")),
		SystemMessage:            strings.TrimSpace(r.PostFormValue("system_message")),
		IsFullyPreApproved:       r.PostFormValue("fully_pre_approved") == "yes",
		IsDefaultOperatorControl: r.PostFormValue("default") == "yes",
	}
	for _, a := range c.deps.Service.Catalog().Actions() {
		switch r.PostFormValue("action_" + a.Name) {
		case modePre:
			in.PreApprovedOpActions = append(in.PreApprovedOpActions, a.Name)
		case modeApproval:
			in.ApprovalRequiredOpActions = append(in.ApprovalRequiredOpActions, a.Name)
		}
	}
	var err error
	for name, dst := range map[string]*int{"number_of_approvers": &in.NumberOfApprovers, "max_duration_hours": &in.MaxDurationHours, "max_extension_hours": &in.MaxExtensionHours} {
		if *dst, err = formInt(r, name); err != nil {
			return in, err
		}
	}
	return in, nil
}

// splitList reads a list typed one per line or separated by commas.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// controlsPage lists the controls and assignments, with the links to
// create and change them for who may.
func (c *Console) controlsPage(w http.ResponseWriter, r *http.Request, s *session) error {
	if !c.deps.API.Allowed("ListOperatorControls", s.who) {
		return notAuthorized("your role may not read controls")
	}
	ctx := r.Context()
	ctls, _, err := c.deps.Service.ListControls(ctx, policy.ControlFilter{Page: policy.Page{Limit: 1000}})
	if err != nil {
		return err
	}
	asg, _, err := c.deps.Service.ListAssignments(ctx, policy.AssignmentFilter{Page: policy.Page{Limit: 1000}})
	if err != nil {
		return err
	}
	c.render(w, r, s, http.StatusOK, "controls", map[string]any{"Controls": ctls, "Assignments": asg,
		"CanCreate": c.deps.API.Allowed("CreateOperatorControl", s.who), "CanAssign": c.deps.API.Allowed("CreateOperatorControlAssignment", s.who)})
	return nil
}

// newControlPage is the empty control form.
func (c *Console) newControlPage(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := c.allowedTo(s, "CreateOperatorControl", "create controls"); err != nil {
		return err
	}
	f := c.newControlForm(policy.ControlInput{NumberOfApprovers: 1, MaxDurationHours: policy.DefaultMaxDurationHours}, false)
	f.Edit = true
	c.render(w, r, s, http.StatusOK, "control", f)
	return nil
}

// controlPage is one control: its form for who may change it, else its
// fields read only.
func (c *Console) controlPage(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := c.allowedTo(s, "GetOperatorControl", "read controls"); err != nil {
		return err
	}
	ctl, err := c.deps.Service.GetControl(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	c.render(w, r, s, http.StatusOK, "control", c.formOf(s, ctl))
	return nil
}

func (c *Console) formOf(s *session, ctl policy.Control) controlForm {
	in := policy.ControlInput{OperatorControlName: ctl.OperatorControlName, Description: ctl.Description, CompartmentID: ctl.CompartmentID,
		ResourceType: ctl.ResourceType, ApproversList: ctl.ApproversList, ApproverGroupsList: ctl.ApproverGroupsList,
		PreApprovedOpActions: ctl.PreApprovedOpActions, ApprovalRequiredOpActions: ctl.ApprovalRequiredOpActions,
		IsFullyPreApproved: ctl.IsFullyPreApproved, NumberOfApprovers: ctl.NumberOfApprovers, EmailIDList: ctl.EmailIDList,
		SystemMessage: ctl.SystemMessage, IsDefaultOperatorControl: ctl.IsDefaultOperatorControl,
		MaxDurationHours: ctl.MaxDurationHours, MaxExtensionHours: ctl.MaxExtensionHours}
	f := c.newControlForm(in, true)
	f.ID, f.Version, f.State = ctl.ID, ctl.Version, ctl.LifecycleState
	f.Edit = ctl.LifecycleState != policy.ControlDeleted && c.deps.API.Allowed("UpdateOperatorControl", s.who)
	return f
}

// createControl saves the new control's form (CreateOperatorControl).
func (c *Console) createControl(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := c.allowedTo(s, "CreateOperatorControl", "create controls"); err != nil {
		return err
	}
	in, err := c.controlInput(r)
	if err != nil {
		return err
	}
	ctl, err := c.deps.Service.CreateControl(r.Context(), s.who, in)
	if err != nil {
		return c.refusedControl(w, r, s, controlForm{}, in, err)
	}
	http.Redirect(w, r, Prefix+"/controls/"+url.PathEscape(ctl.ID), http.StatusSeeOther)
	return nil
}

// updateControl saves an edited control (UpdateOperatorControl) on the
// version its page showed.
func (c *Console) updateControl(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := c.allowedTo(s, "UpdateOperatorControl", "change controls"); err != nil {
		return err
	}
	id := r.PathValue("id")
	v, err := formVersion(r)
	if err != nil {
		return err
	}
	in, err := c.controlInput(r)
	if err != nil {
		return err
	}
	ctl, err := c.deps.Service.UpdateControl(r.Context(), s.who, id, v, in)
	if err != nil {
		return c.refusedControl(w, r, s, controlForm{ID: id, Version: v}, in, err)
	}
	http.Redirect(w, r, Prefix+"/controls/"+url.PathEscape(ctl.ID), http.StatusSeeOther)
	return nil
}

// refusedControl shows the form again, as it was sent, with the service's
// refusal (a field's problem, a stale version); an error of another kind
// is the error page.
func (c *Console) refusedControl(w http.ResponseWriter, r *http.Request, s *session, at controlForm, in policy.ControlInput, err error) error {
	e := c.deps.API.ErrorOf(stale(err, "control"), r)
	if e.Status != http.StatusBadRequest && e.Status != http.StatusConflict && e.Status != http.StatusPreconditionFailed {
		return err
	}
	f := c.newControlForm(in, at.ID != "")
	f.ID, f.Version, f.Edit, f.Error = at.ID, at.Version, true, e.Message
	if at.ID != "" {
		if cur, gerr := c.deps.Service.GetControl(r.Context(), at.ID); gerr == nil {
			f.State = cur.LifecycleState
		}
	}
	c.render(w, r, s, e.Status, "control", f)
	return nil
}

// formVersion reads the version the page showed (the If-Match); a form
// without one is refused, where the API lets the header be absent.
func formVersion(r *http.Request) (int64, error) {
	v, err := formInt(r, "version")
	if err != nil {
		return 0, err
	}
	if v <= 0 {
		return 0, &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidParameter, Message: "version: the form carries no version of what it changes: reload the page"}
	}
	return int64(v), nil
}

// assignmentForm is what the assignment editor shows.
type assignmentForm struct {
	A         policy.Assignment // ID empty for a new one
	Controls  []policy.Control
	Resources []policy.Resource
	Error     string
	Edit      bool
}

// newAssignmentPage is the form that assigns a control to a resource.
func (c *Console) newAssignmentPage(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := c.allowedTo(s, "CreateOperatorControlAssignment", "assign controls"); err != nil {
		return err
	}
	q := r.URL.Query()
	return c.renderAssignment(w, r, s, http.StatusOK, assignmentForm{A: policy.Assignment{ResourceID: q.Get("resource"), OperatorControlID: q.Get("control"), IsEnforcedAlways: true}, Edit: true})
}

func (c *Console) renderAssignment(w http.ResponseWriter, r *http.Request, s *session, status int, f assignmentForm) error {
	if f.A.ID == "" && f.Edit {
		ctx := r.Context()
		ctls, _, err := c.deps.Service.ListControls(ctx, policy.ControlFilter{Page: policy.Page{Limit: 1000}})
		if err != nil {
			return err
		}
		for _, ctl := range ctls {
			if ctl.LifecycleState != policy.ControlDeleted {
				f.Controls = append(f.Controls, ctl)
			}
		}
		if f.Resources, _, err = c.deps.Service.ListResources(ctx, policy.ResourceFilter{Page: policy.Page{Limit: 1000}}); err != nil {
			return err
		}
	}
	c.render(w, r, s, status, "assignment", f)
	return nil
}

// assignmentPage is one assignment: its form for who may change or end
// it, else its fields.
func (c *Console) assignmentPage(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := c.allowedTo(s, "GetOperatorControlAssignment", "read assignments"); err != nil {
		return err
	}
	a, err := c.deps.Service.GetAssignment(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return c.renderAssignment(w, r, s, http.StatusOK, assignmentForm{A: a,
		Edit: a.LifecycleState != policy.AssignmentDeleted && c.deps.API.Allowed("UpdateOperatorControlAssignment", s.who)})
}

// assignmentWindow reads the window and SIEM destination of the form:
// the times are UTC, as the form says.
func assignmentWindow(r *http.Request) (policy.AssignmentWindow, error) {
	w := policy.AssignmentWindow{IsEnforcedAlways: r.PostFormValue("enforced") != "window", IsLogForwarded: r.PostFormValue("forwarded") == "yes"}
	if !w.IsEnforcedAlways {
		for name, dst := range map[string]*time.Time{"from": &w.TimeAssignmentFrom, "to": &w.TimeAssignmentTo} {
			v := strings.TrimSpace(r.PostFormValue(name))
			if v == "" {
				continue
			}
			t, err := time.Parse(formTimeLayout, v)
			if err != nil {
				return w, &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidParameter, Message: name + ": not a date and time (UTC): " + v}
			}
			*dst = t.UTC()
		}
	}
	if w.IsLogForwarded {
		w.RemoteSyslogServerAddress = strings.TrimSpace(r.PostFormValue("address"))
		// A browser sends a textarea's lines ending in CRLF: the PEM is
		// stored as the CLI's file would be, LF only.
		w.RemoteSyslogServerCACert = strings.TrimSpace(strings.ReplaceAll(r.PostFormValue("ca_cert"), "\r\n", "\n"))
		if w.RemoteSyslogServerCACert != "" {
			w.RemoteSyslogServerCACert += "\n"
		}
		port, err := formInt(r, "port")
		if err != nil {
			return w, err
		}
		w.RemoteSyslogServerPort = port
	}
	return w, nil
}

// formTimeLayout is a datetime-local field's value.
const formTimeLayout = "2006-01-02T15:04"

// createAssignment assigns the form's control to its resource
// (CreateOperatorControlAssignment).
func (c *Console) createAssignment(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := c.allowedTo(s, "CreateOperatorControlAssignment", "assign controls"); err != nil {
		return err
	}
	win, err := assignmentWindow(r)
	if err != nil {
		return err
	}
	in := policy.AssignmentInput{OperatorControlID: r.PostFormValue("control"), ResourceID: r.PostFormValue("resource"),
		Comment: strings.TrimSpace(r.PostFormValue("comment")), AssignmentWindow: win}
	a, err := c.deps.Service.CreateAssignment(r.Context(), s.who, in)
	if err != nil {
		shown := policy.Assignment{OperatorControlID: in.OperatorControlID, ResourceID: in.ResourceID, Comment: in.Comment}
		return c.refusedAssignment(w, r, s, shown, win, err)
	}
	http.Redirect(w, r, Prefix+"/assignments/"+url.PathEscape(a.ID), http.StatusSeeOther)
	return nil
}

// updateAssignment changes an assignment's window, SIEM destination and
// comment (UpdateOperatorControlAssignment) on the version its page
// showed.
func (c *Console) updateAssignment(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := c.allowedTo(s, "UpdateOperatorControlAssignment", "change assignments"); err != nil {
		return err
	}
	id := r.PathValue("id")
	v, err := formVersion(r)
	if err != nil {
		return err
	}
	win, err := assignmentWindow(r)
	if err != nil {
		return err
	}
	comment := strings.TrimSpace(r.PostFormValue("comment"))
	a, err := c.deps.Service.UpdateAssignment(r.Context(), s.who, id, v, policy.AssignmentUpdate{AssignmentWindow: win, Comment: &comment})
	if err != nil {
		cur, gerr := c.deps.Service.GetAssignment(r.Context(), id)
		if gerr != nil {
			return err
		}
		cur.Version, cur.Comment = v, comment
		return c.refusedAssignment(w, r, s, cur, win, err)
	}
	http.Redirect(w, r, Prefix+"/assignments/"+url.PathEscape(a.ID), http.StatusSeeOther)
	return nil
}

// refusedAssignment shows the assignment's form again as it was sent,
// with the service's refusal.
func (c *Console) refusedAssignment(w http.ResponseWriter, r *http.Request, s *session, shown policy.Assignment, win policy.AssignmentWindow, err error) error {
	e := c.deps.API.ErrorOf(stale(err, "assignment"), r)
	if e.Status != http.StatusBadRequest && e.Status != http.StatusConflict && e.Status != http.StatusPreconditionFailed {
		return err
	}
	shown.IsEnforcedAlways, shown.TimeAssignmentFrom, shown.TimeAssignmentTo = win.IsEnforcedAlways, win.TimeAssignmentFrom, win.TimeAssignmentTo
	shown.IsLogForwarded, shown.RemoteSyslogServerAddress, shown.RemoteSyslogServerPort, shown.RemoteSyslogServerCACert =
		win.IsLogForwarded, win.RemoteSyslogServerAddress, win.RemoteSyslogServerPort, win.RemoteSyslogServerCACert
	return c.renderAssignment(w, r, s, e.Status, assignmentForm{A: shown, Edit: true, Error: e.Message})
}

// unassign ends an assignment (DeleteOperatorControlAssignment), after
// its confirmation box, on the version its page showed.
func (c *Console) unassign(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := c.allowedTo(s, "DeleteOperatorControlAssignment", "unassign controls"); err != nil {
		return err
	}
	v, err := formVersion(r)
	if err != nil {
		return err
	}
	if r.PostFormValue("confirm") != "yes" {
		return &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidParameter, Message: "confirm: tick the box to confirm the unassignment"}
	}
	id := r.PathValue("id")
	if _, err := c.deps.Service.DeleteAssignment(r.Context(), s.who, id, v, strings.TrimSpace(r.PostFormValue("comment"))); err != nil {
		return stale(err, "assignment")
	}
	http.Redirect(w, r, Prefix+"/controls", http.StatusSeeOther)
	return nil
}
