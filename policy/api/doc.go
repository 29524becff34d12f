// Package api is the policy service's HTTP API: JSON over the process's
// one authenticated mux, with resource names, paths and list conventions
// after OCI's Operator Access Control API (/v1/operatorControls,
// /v1/operatorControlAssignments, /v1/accessRequests/{id}/action/approve
// …), described by policy/openapi.yaml.
//
// The handler authenticates nothing itself: it expects the caller's
// auth.Identity in the request's context (auth.FromContext), as
// auth.Authenticator.Require puts it there, and answers 401 without one.
// Mount it for every role and let it authorize per route and per object:
//
//	h, err := api.New(svc, api.Options{Log: log, Registry: reg})
//	mux.Handle("/v1/", authn.Require(h, auth.Roles()...))
//
// Who may do what is the table in policy/README.md ("HTTP API"), kept by
// TestAuthorizationMatrix. The rules that depend on the data (is this
// approver named by the request's control, is this the requester) are the
// domain's (policy.Service); the API adds who may see what: an approver
// sees the requests of the controls that name them, an operator their own,
// an agent the grants of its host, and anything else is 404
// NotAuthorizedOrNotFound, as if it did not exist.
package api
