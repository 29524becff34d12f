// Package console is auditpipe's web console: the pages on which
// approvers answer access requests, operators make and follow their own,
// auditors search the trail and admins create and change the operator
// controls and their assignments, create and run the scheduled jobs and
// follow their work requests, and the patch compliance report is read; served by the policy module on the process's one mux
// under /console/.
//
// It is server-rendered HTML (html/template, assets embedded), with one
// small script of our own for the live trail (server-sent events); every
// page works without it. A visitor signs in once with a bearer token (or
// is signed in by the TLS client certificate the listener verified; an
// external identity provider such as OIDC plugs in as an
// ExternalSignIn) and then carries a server-side session in a cookie that
// is HttpOnly, SameSite=Strict, and Secure when the listener has TLS.
// Every form carries the session's CSRF token, checked on every POST
// beside the Origin and Sec-Fetch-Site headers; the Content-Security-Policy
// admits no inline script.
//
// The console decides nothing itself: what a page shows and which
// actions it offers come from the policy API's own authorization
// (api.API.Allowed, VisibleRequest, VisibleRequests), and every action is
// the policy.Service (or scheduler.Service) call the API makes, so the
// console and the API cannot disagree.
package console
