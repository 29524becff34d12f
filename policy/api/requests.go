package api

import (
	"context"
	"net/http"
	"slices"

	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/policy"
)

// Bodies of the request actions that take more than the domain's inputs
// (OCI's *AccessRequestDetails).
type (
	// RejectDetails rejects a request, or its pending extension.
	RejectDetails struct {
		ApproverComment string `json:"approver_comment"`
	}
	// RevokeDetails revokes a request.
	RevokeDetails struct {
		ApproverComment string `json:"approver_comment,omitempty"`
	}
	// ExtendDetails asks for more hours.
	ExtendDetails struct {
		ExtendDuration int    `json:"extend_duration"`
		Reason         string `json:"reason,omitempty"`
	}
	// CompleteDetails ends the requester's access early.
	CompleteDetails struct {
		ClosureComment string `json:"closure_comment,omitempty"`
	}
	// InteractionDetails is one message of the MOREINFO thread: an
	// approver's question, or the requester's answer.
	InteractionDetails struct {
		MoreInfoDetails string `json:"more_info_details"`
	}
	// ReportDetails is a host agent's report on a grant's login user.
	ReportDetails struct {
		Host    string              `json:"host"`
		State   policy.RequestState `json:"state"`
		Message string              `json:"message,omitempty"`
	}
)

// mayRead reports whether who may see request r (and so act on it as its
// role allows): admins and auditors every request, an operator their own,
// an approver those decided by a control naming them.
func (a *API) mayRead(ctx context.Context, who auth.Identity, r *policy.AccessRequest) (bool, error) {
	switch who.Role {
	case auth.RoleAdmin, auth.RoleAuditor:
		return true, nil
	case auth.RoleOperator:
		return r.RequestorID == who.Name, nil
	case auth.RoleApprover:
		c, err := a.svc.GetControl(ctx, r.OpctlID)
		if err != nil {
			return false, err
		}
		return c.NamesApprover(who), nil
	}
	return false, nil
}

// visibleRequest reads the request of the path, or 404 when who may not
// see it.
func (a *API) visibleRequest(r *http.Request, who auth.Identity) (policy.AccessRequest, error) {
	return a.VisibleRequest(r.Context(), who, r.PathValue(pRequest))
}

func (a *API) createRequest(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	var in policy.RequestInput
	if err := a.decode(w, r, &in, false); err != nil {
		return err
	}
	req, err := a.svc.CreateRequest(r.Context(), who, in)
	if err != nil {
		return err
	}
	return writeObject(w, r, req.Version, req)
}

// approverControls returns the ids of every control naming who as an
// approver (deleted ones too: they still decide their old requests).
func (a *API) approverControls(ctx context.Context, who auth.Identity) ([]string, error) {
	ids := []string{}
	p := policy.Page{Limit: MaxLimit}
	for {
		cs, next, err := a.svc.ListControls(ctx, policy.ControlFilter{Page: p})
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			if c.NamesApprover(who) {
				ids = append(ids, c.ID)
			}
		}
		if next == "" {
			return ids, nil
		}
		p.After = next
	}
}

func (a *API) listRequests(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	q := newListQuery(r, "compartmentId", "compartmentIdInSubtree", "resourceId", "lifecycleState", "operatorId")
	f := policy.RequestFilter{Page: q.page(), CompartmentID: q.str("compartmentId"), Recursive: q.boolean("compartmentIdInSubtree"),
		ResourceID: q.str("resourceId"), RequestorID: q.str("operatorId"),
		State: policy.RequestState(q.oneOf("lifecycleState", stateNames(policy.RequestStates())))}
	if err := q.err(); err != nil {
		return err
	}
	items, next, err := a.VisibleRequests(r.Context(), who, f)
	if err != nil {
		return err
	}
	return writeList(w, r, items, next)
}

func (a *API) getRequest(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	req, err := a.visibleRequest(r, who)
	if err != nil {
		return err
	}
	return writeObject(w, r, req.Version, req)
}

// action runs one request action for who: 404 when who may not see the
// request, the if-match version passed on, the result with its etag.
func (a *API) action(w http.ResponseWriter, r *http.Request, who auth.Identity, body any, optional bool,
	do func(ctx context.Context, id string, ifMatch int64) (policy.AccessRequest, error)) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	if err := a.decode(w, r, body, optional); err != nil {
		return err
	}
	if _, err := a.visibleRequest(r, who); err != nil {
		return err
	}
	req, err := do(r.Context(), r.PathValue(pRequest), v)
	if err != nil {
		return err
	}
	return writeObject(w, r, req.Version, req)
}

func (a *API) approveRequest(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	var in policy.ApproveInput
	return a.action(w, r, who, &in, true, func(ctx context.Context, id string, v int64) (policy.AccessRequest, error) {
		in.IfMatch = v
		req, err := a.svc.Approve(ctx, who, id, in)
		if err == nil {
			a.metrics.approved(&req)
		}
		return req, err
	})
}

func (a *API) rejectRequest(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	var in RejectDetails
	return a.action(w, r, who, &in, false, func(ctx context.Context, id string, v int64) (policy.AccessRequest, error) {
		return a.svc.Reject(ctx, who, id, in.ApproverComment, v)
	})
}

func (a *API) revokeRequest(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	var in RevokeDetails
	return a.action(w, r, who, &in, true, func(ctx context.Context, id string, v int64) (policy.AccessRequest, error) {
		return a.svc.Revoke(ctx, who, id, in.ApproverComment, v)
	})
}

func (a *API) extendRequest(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	var in ExtendDetails
	return a.action(w, r, who, &in, false, func(ctx context.Context, id string, v int64) (policy.AccessRequest, error) {
		return a.svc.Extend(ctx, who, id, in.ExtendDuration, in.Reason, v)
	})
}

func (a *API) completeRequest(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	var in CompleteDetails
	return a.action(w, r, who, &in, true, func(ctx context.Context, id string, v int64) (policy.AccessRequest, error) {
		return a.svc.Complete(ctx, who, id, in.ClosureComment, v)
	})
}

// interactionRequest is the MOREINFO thread: the requester's message is
// the answer (back to APPROVALWAITING), anyone else's a question
// (MOREINFO; the domain checks they are an approver of the control).
// The domain's Ask and Answer take no version: if-match is refused.
func (a *API) interactionRequest(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	if r.Header.Get(HeaderIfMatch) != "" {
		return invalidParam(HeaderIfMatch, "interactionRequest takes no if-match: questions and answers do not race with each other's decisions")
	}
	var in InteractionDetails
	if err := a.decode(w, r, &in, false); err != nil {
		return err
	}
	req, err := a.visibleRequest(r, who)
	if err != nil {
		return err
	}
	if req.RequestorID == who.Name {
		req, err = a.svc.Answer(r.Context(), who, req.ID, in.MoreInfoDetails)
	} else {
		req, err = a.svc.Ask(r.Context(), who, req.ID, in.MoreInfoDetails)
	}
	if err != nil {
		return err
	}
	return writeObject(w, r, req.Version, req)
}

func (a *API) listInteractions(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	req, err := a.visibleRequest(r, who)
	if err != nil {
		return err
	}
	items, err := a.svc.Interactions(r.Context(), req.ID)
	if err != nil {
		return err
	}
	return writeList(w, r, items, "")
}

func (a *API) requestHistory(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	req, err := a.visibleRequest(r, who)
	if err != nil {
		return err
	}
	items, err := a.svc.History(r.Context(), policy.ObjectAccessRequest, req.ID)
	if err != nil {
		return err
	}
	return writeList(w, r, items, "")
}

// auditLogReport checks that who may see the request, then hands over
// to Options.Report.
func (a *API) auditLogReport(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	if _, err := a.visibleRequest(r, who); err != nil {
		return err
	}
	if a.opts.Report == nil {
		return &Error{Status: http.StatusNotImplemented, Code: CodeNotImplemented, Message: "this process serves no audit log report (it has no ClickHouse store)"}
	}
	a.opts.Report.ServeHTTP(w, r)
	return nil
}

// mayReadGrant: admins and auditors every grant, an agent those naming
// its host (the agent's identity is its host's name).
func mayReadGrant(who auth.Identity, g *policy.Grant) bool {
	switch who.Role {
	case auth.RoleAdmin, auth.RoleAuditor:
		return true
	case auth.RoleAgent:
		return slices.Contains(g.Hosts, who.Name)
	}
	return false
}

// visibleGrant reads the grant of the path, or 404 when who may not see
// it.
func (a *API) visibleGrant(r *http.Request, who auth.Identity) (policy.Grant, error) {
	login := r.PathValue(pLogin)
	g, err := a.svc.GetGrant(r.Context(), login)
	if err != nil {
		return g, err
	}
	if !mayReadGrant(who, &g) {
		return g, notFound(policy.ObjectGrant, login)
	}
	return g, nil
}

func (a *API) getGrant(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	g, err := a.visibleGrant(r, who)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, g)
	return nil
}

// reportDeployment records a host agent's report: an agent reports for
// its own host only.
func (a *API) reportDeployment(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	var in ReportDetails
	if err := a.decode(w, r, &in, false); err != nil {
		return err
	}
	g, err := a.visibleGrant(r, who)
	if err != nil {
		return err
	}
	if who.Role == auth.RoleAgent && in.Host != who.Name {
		return &Error{Status: http.StatusForbidden, Code: CodeNotAuthorized, Message: "agent " + who.Name + " reports for its own host only, not " + in.Host}
	}
	req, err := a.svc.ReportDeployment(r.Context(), who, policy.DeploymentReport{LoginID: g.LoginID, Host: in.Host, State: in.State, Message: in.Message})
	if err != nil {
		return err
	}
	return writeObject(w, r, req.Version, req)
}
