package api

import (
	"net/http"

	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/policy"
)

func (a *API) createControl(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	var in policy.ControlInput
	if err := a.decode(w, r, &in, false); err != nil {
		return err
	}
	c, err := a.svc.CreateControl(r.Context(), who, in)
	if err != nil {
		return err
	}
	return writeObject(w, r, c.Version, c)
}

func (a *API) listControls(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	q := newListQuery(r, "compartmentId", "compartmentIdInSubtree", "resourceType", "lifecycleState")
	f := policy.ControlFilter{Page: q.page(), CompartmentID: q.str("compartmentId"), Recursive: q.boolean("compartmentIdInSubtree"),
		ResourceType: q.oneOf("resourceType", policy.ResourceTypes()),
		State:        policy.ControlState(q.oneOf("lifecycleState", stateNames([]policy.ControlState{policy.ControlCreated, policy.ControlAssigned, policy.ControlUnassigned, policy.ControlDeleted})))}
	if err := q.err(); err != nil {
		return err
	}
	items, next, err := a.svc.ListControls(r.Context(), f)
	if err != nil {
		return err
	}
	return writeList(w, r, items, next)
}

func (a *API) getControl(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	c, err := a.svc.GetControl(r.Context(), r.PathValue(pControl))
	if err != nil {
		return err
	}
	return writeObject(w, r, c.Version, c)
}

// UpdateControlDetails replaces an operator control's fields (OCI's
// UpdateOperatorControlDetails): every field of policy.ControlInput but
// the compartment; ResourceType, when set, must be the control's.
type UpdateControlDetails struct {
	OperatorControlName       string   `json:"operator_control_name"`
	Description               string   `json:"description,omitempty"`
	ResourceType              string   `json:"resource_type,omitempty"`
	ApproversList             []string `json:"approvers_list,omitempty"`
	ApproverGroupsList        []string `json:"approver_groups_list,omitempty"`
	PreApprovedOpActions      []string `json:"pre_approved_op_action_list,omitempty"`
	ApprovalRequiredOpActions []string `json:"approval_required_op_action_list,omitempty"`
	IsFullyPreApproved        bool     `json:"is_fully_pre_approved"`
	NumberOfApprovers         int      `json:"number_of_approvers,omitempty"`
	EmailIDList               []string `json:"email_id_list,omitempty"`
	SystemMessage             string   `json:"system_message,omitempty"`
	IsDefaultOperatorControl  bool     `json:"is_default_operator_control"`
	MaxDurationHours          int      `json:"max_duration_hours,omitempty"`
	MaxExtensionHours         int      `json:"max_extension_hours,omitempty"`
}

// ControlUpdate returns the update that makes c's fields what they are:
// read, change, send (the CLI's read-then-act).
func ControlUpdate(c policy.Control) UpdateControlDetails {
	return UpdateControlDetails{OperatorControlName: c.OperatorControlName, Description: c.Description, ResourceType: c.ResourceType,
		ApproversList: c.ApproversList, ApproverGroupsList: c.ApproverGroupsList, PreApprovedOpActions: c.PreApprovedOpActions,
		ApprovalRequiredOpActions: c.ApprovalRequiredOpActions, IsFullyPreApproved: c.IsFullyPreApproved, NumberOfApprovers: c.NumberOfApprovers,
		EmailIDList: c.EmailIDList, SystemMessage: c.SystemMessage, IsDefaultOperatorControl: c.IsDefaultOperatorControl,
		MaxDurationHours: c.MaxDurationHours, MaxExtensionHours: c.MaxExtensionHours}
}

func (u UpdateControlDetails) input() policy.ControlInput {
	return policy.ControlInput{OperatorControlName: u.OperatorControlName, Description: u.Description, ResourceType: u.ResourceType,
		ApproversList: u.ApproversList, ApproverGroupsList: u.ApproverGroupsList, PreApprovedOpActions: u.PreApprovedOpActions,
		ApprovalRequiredOpActions: u.ApprovalRequiredOpActions, IsFullyPreApproved: u.IsFullyPreApproved, NumberOfApprovers: u.NumberOfApprovers,
		EmailIDList: u.EmailIDList, SystemMessage: u.SystemMessage, IsDefaultOperatorControl: u.IsDefaultOperatorControl,
		MaxDurationHours: u.MaxDurationHours, MaxExtensionHours: u.MaxExtensionHours}
}

// updateControl replaces the control's fields (OCI's
// UpdateOperatorControl): the body is the whole control but its
// compartment, and its resource type, which cannot change.
func (a *API) updateControl(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	var in UpdateControlDetails
	if err := a.decode(w, r, &in, false); err != nil {
		return err
	}
	c, err := a.svc.UpdateControl(r.Context(), who, r.PathValue(pControl), v, in.input())
	if err != nil {
		return err
	}
	return writeObject(w, r, c.Version, c)
}

func (a *API) deleteControl(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	if _, err := a.svc.DeleteControl(r.Context(), who, r.PathValue(pControl), v); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) createAssignment(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	var in policy.AssignmentInput
	if err := a.decode(w, r, &in, false); err != nil {
		return err
	}
	as, err := a.svc.CreateAssignment(r.Context(), who, in)
	if err != nil {
		return err
	}
	return writeObject(w, r, as.Version, as)
}

func (a *API) listAssignments(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	q := newListQuery(r, "compartmentId", "compartmentIdInSubtree", "resourceId", "operatorControlId", "lifecycleState")
	f := policy.AssignmentFilter{Page: q.page(), CompartmentID: q.str("compartmentId"), Recursive: q.boolean("compartmentIdInSubtree"),
		ResourceID: q.str("resourceId"), OperatorControlID: q.str("operatorControlId"),
		State: policy.AssignmentState(q.oneOf("lifecycleState", stateNames([]policy.AssignmentState{policy.AssignmentCreated, policy.AssignmentApplied, policy.AssignmentDeleted})))}
	if err := q.err(); err != nil {
		return err
	}
	items, next, err := a.svc.ListAssignments(r.Context(), f)
	if err != nil {
		return err
	}
	return writeList(w, r, items, next)
}

func (a *API) getAssignment(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	as, err := a.svc.GetAssignment(r.Context(), r.PathValue(pAssignment))
	if err != nil {
		return err
	}
	return writeObject(w, r, as.Version, as)
}

func (a *API) updateAssignment(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	var in policy.AssignmentUpdate
	if err := a.decode(w, r, &in, false); err != nil {
		return err
	}
	as, err := a.svc.UpdateAssignment(r.Context(), who, r.PathValue(pAssignment), v, in)
	if err != nil {
		return err
	}
	return writeObject(w, r, as.Version, as)
}

// deleteAssignment unassigns; detachmentDescription says why.
func (a *API) deleteAssignment(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	q := newQuery(r, "detachmentDescription")
	desc := q.str("detachmentDescription")
	if err := q.err(); err != nil {
		return err
	}
	if _, err := a.svc.DeleteAssignment(r.Context(), who, r.PathValue(pAssignment), v, desc); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
