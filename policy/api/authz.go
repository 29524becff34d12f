package api

import (
	"context"
	"net/http"
	"slices"

	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/policy"
)

// The authorization of the API, for in-process callers that present the
// same operations another way (the web console, package console): they
// decide what to show and allow with these, so that a page never shows
// or does what the API would refuse.

// Allowed reports whether who's role may call operation op (an
// OperationID of Routes, e.g. "ApproveAccessRequest"), before the
// per-object checks. An unknown operation is never allowed.
func (a *API) Allowed(op string, who auth.Identity) bool {
	for _, rt := range a.routes {
		if rt.OperationID == op {
			return slices.Contains(rt.Roles, who.Role)
		}
	}
	return false
}

// VisibleRequest returns access request id when who may see it (the
// requester, an approver of its control, an auditor, an admin), and the
// API's NotFound error otherwise, as GetAccessRequest does.
func (a *API) VisibleRequest(ctx context.Context, who auth.Identity, id string) (policy.AccessRequest, error) {
	req, err := a.svc.GetRequest(ctx, id)
	if err != nil {
		return req, err
	}
	ok, err := a.mayRead(ctx, who, &req)
	if err != nil {
		return req, err
	}
	if !ok {
		return policy.AccessRequest{}, notFound(policy.ObjectAccessRequest, id)
	}
	return req, nil
}

// VisibleRequests lists the access requests of f that who may see, as
// ListAccessRequests does: an operator's own, an approver's those of the
// controls naming them, every request for auditors and admins.
func (a *API) VisibleRequests(ctx context.Context, who auth.Identity, f policy.RequestFilter) ([]policy.AccessRequest, string, error) {
	switch who.Role {
	case auth.RoleOperator:
		// An operator's list is their own requests, whatever they ask.
		if f.RequestorID != "" && f.RequestorID != who.Name {
			return nil, "", nil
		}
		f.RequestorID = who.Name
	case auth.RoleApprover:
		ids, err := a.approverControls(ctx, who)
		if err != nil {
			return nil, "", err
		}
		f.OperatorControlIDs = ids
	case auth.RoleAdmin, auth.RoleAuditor:
	default:
		return nil, "", nil
	}
	return a.svc.ListRequests(ctx, f)
}

// ErrorOf maps an error of the policy service (or of VisibleRequest) to
// the API's Error: the status and the message the API would answer with.
// A cause the API does not show (an internal error) is logged, with r's
// method and path, and answered with a generic message.
func (a *API) ErrorOf(err error, r *http.Request) *Error {
	return a.toError(err, r)
}
