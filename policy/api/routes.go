package api

import (
	"net/http"

	"github.com/auditpipe/auditpipe/internal/auth"
)

// Who may call what, before the per-object checks (see the README's
// matrix). Every other role gets 403 NotAuthorized.
var (
	// The catalog and the inventory: everyone who takes part in access
	// requests reads them (an operator needs the resource and the
	// actions to ask for).
	rolesReadInventory = []string{auth.RoleAdmin, auth.RoleAuditor, auth.RoleApprover, auth.RoleOperator}
	// Controls and assignments: who configures, audits and approves.
	rolesReadControls = []string{auth.RoleAdmin, auth.RoleAuditor, auth.RoleApprover}
	// Every change to the catalog's users: compartments, resources,
	// controls, assignments.
	rolesManage = []string{auth.RoleAdmin}
	// Access requests are read by their requester, the approvers of
	// their control, auditors and admins (filtered per object).
	rolesReadRequests = []string{auth.RoleAdmin, auth.RoleAuditor, auth.RoleApprover, auth.RoleOperator}
	// Requests are made, extended and completed by operators (an admin
	// too, as the requester of their own).
	rolesRequester = []string{auth.RoleAdmin, auth.RoleOperator}
	// Approve, reject, revoke: approvers of the request's control (and,
	// where the domain allows it, admins).
	rolesDecide = []string{auth.RoleAdmin, auth.RoleApprover}
	// The MOREINFO thread: an approver asks, the requester answers.
	rolesInteract = []string{auth.RoleAdmin, auth.RoleApprover, auth.RoleOperator}
	// Grants: the host agent reads its host's; auditors and admins all.
	rolesReadGrants = []string{auth.RoleAdmin, auth.RoleAuditor, auth.RoleAgent}
	// Deployment reports: the host agent, for its own host.
	rolesReport = []string{auth.RoleAdmin, auth.RoleAgent}
)

// Path parameters.
const (
	pCompartment = "compartmentId"
	pResource    = "resourceId"
	pControl     = "operatorControlId"
	pAssignment  = "operatorControlAssignmentId"
	pRequest     = "accessRequestId"
	pAction      = "actionName"
	pLogin       = "loginId"
)

// table is every route of the API, in the document's order.
func (a *API) table() []Route {
	get, post, put, del := http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete
	r := func(method, pattern, op string, roles []string, h func(http.ResponseWriter, *http.Request, auth.Identity) error) Route {
		return Route{Method: method, Pattern: pattern, OperationID: op, Roles: roles, handler: h, mutates: method != get}
	}
	const (
		compartments = "/v1/compartments"
		compartment  = compartments + "/{" + pCompartment + "}"
		resources    = "/v1/resources"
		resource     = resources + "/{" + pResource + "}"
		controls     = "/v1/operatorControls"
		control      = controls + "/{" + pControl + "}"
		assignments  = "/v1/operatorControlAssignments"
		assignment   = assignments + "/{" + pAssignment + "}"
		requests     = "/v1/accessRequests"
		request      = requests + "/{" + pRequest + "}"
		actions      = "/v1/actions"
		grant        = "/v1/grants/{" + pLogin + "}"
	)
	return append([]Route{
		r(get, actions, "ListOperatorActions", rolesReadInventory, a.listActions),
		r(get, actions+"/{"+pAction+"}", "GetOperatorAction", rolesReadInventory, a.getAction),

		r(post, compartments, "CreateCompartment", rolesManage, a.createCompartment),
		r(get, compartments, "ListCompartments", rolesReadInventory, a.listCompartments),
		r(get, compartment, "GetCompartment", rolesReadInventory, a.getCompartment),
		r(put, compartment, "UpdateCompartment", rolesManage, a.updateCompartment),
		r(del, compartment, "DeleteCompartment", rolesManage, a.deleteCompartment),

		r(post, resources, "CreateResource", rolesManage, a.createResource),
		r(get, resources, "ListResources", rolesReadInventory, a.listResources),
		r(get, resource, "GetResource", rolesReadInventory, a.getResource),
		r(put, resource, "UpdateResource", rolesManage, a.updateResource),
		r(del, resource, "DeleteResource", rolesManage, a.deleteResource),

		r(post, controls, "CreateOperatorControl", rolesManage, a.createControl),
		r(get, controls, "ListOperatorControls", rolesReadControls, a.listControls),
		r(get, control, "GetOperatorControl", rolesReadControls, a.getControl),
		r(put, control, "UpdateOperatorControl", rolesManage, a.updateControl),
		r(del, control, "DeleteOperatorControl", rolesManage, a.deleteControl),

		r(post, assignments, "CreateOperatorControlAssignment", rolesManage, a.createAssignment),
		r(get, assignments, "ListOperatorControlAssignments", rolesReadControls, a.listAssignments),
		r(get, assignment, "GetOperatorControlAssignment", rolesReadControls, a.getAssignment),
		r(put, assignment, "UpdateOperatorControlAssignment", rolesManage, a.updateAssignment),
		r(del, assignment, "DeleteOperatorControlAssignment", rolesManage, a.deleteAssignment),

		r(post, requests, "CreateAccessRequest", rolesRequester, a.createRequest),
		r(get, requests, "ListAccessRequests", rolesReadRequests, a.listRequests),
		r(get, request, "GetAccessRequest", rolesReadRequests, a.getRequest),
		r(post, request+"/action/approve", "ApproveAccessRequest", rolesDecide, a.approveRequest),
		r(post, request+"/action/reject", "RejectAccessRequest", rolesDecide, a.rejectRequest),
		r(post, request+"/action/revoke", "RevokeAccessRequest", rolesDecide, a.revokeRequest),
		r(post, request+"/action/extend", "ExtendAccessRequest", rolesRequester, a.extendRequest),
		r(post, request+"/action/complete", "CompleteAccessRequest", rolesRequester, a.completeRequest),
		r(post, request+"/action/interactionRequest", "InteractionRequest", rolesInteract, a.interactionRequest),
		r(get, request+"/interactions", "ListInteractions", rolesReadRequests, a.listInteractions),
		r(get, request+"/history", "ListAccessRequestHistories", rolesReadRequests, a.requestHistory),
		r(get, request+"/auditLogReport", "GetAuditLogReport", rolesReadRequests, a.auditLogReport),

		r(get, grant, "GetGrant", rolesReadGrants, a.getGrant),
		r(post, grant+"/action/report", "ReportDeployment", rolesReport, a.reportDeployment),
	}, a.schedulerTable(r)...)
}
