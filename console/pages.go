package console

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/policy/api"
	"github.com/auditpipe/auditpipe/policy/auditreport"
	"github.com/auditpipe/auditpipe/schemas"
)

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// safeNext keeps a sign-in's return path inside the console.
func safeNext(next string) string {
	if strings.HasPrefix(next, Prefix+"/") && !strings.HasPrefix(next, "//") && !strings.Contains(next, "\\") {
		return next
	}
	return Prefix + "/"
}

func (c *Console) signinPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := c.current(w, r); ok {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	c.renderSignin(w, r, http.StatusOK, "")
}

func (c *Console) renderSignin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	pre := randomToken()
	http.SetCookie(w, c.cookie(preCookie, pre, 600))
	var ext []string
	for _, x := range c.opts.External {
		ext = append(ext, x.Name())
	}
	c.render(w, r, nil, status, "signin", map[string]any{"Pre": pre, "Next": safeNext(r.FormValue("next")), "Error": msg, "External": ext})
}

// signin checks the token of the sign-in form and starts a session. The
// form carries the pre-session token of its cookie (login CSRF).
func (c *Console) signin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	ck, err := r.Cookie(preCookie)
	if err != nil || !sameOrigin(r) || !tokenEqual(r.PostFormValue(csrfField), ck.Value) {
		c.refuse(w, r, nil, http.StatusForbidden, "the sign-in form was not sent from this console's page: open the sign-in page and try again")
		return
	}
	tok := r.PostFormValue("token")
	who, err := c.deps.Auth.AuthenticateToken(tok)
	if err != nil {
		c.log.Info("console sign-in refused", "remote", r.RemoteAddr)
		c.renderSignin(w, r, http.StatusUnauthorized, "That token is not known. Paste the whole token, as the tokens file's owner gave it to you.")
		return
	}
	c.startSession(w, r, who, func(*http.Request) (auth.Identity, error) { return c.deps.Auth.AuthenticateToken(tok) })
}

func (c *Console) startSession(w http.ResponseWriter, r *http.Request, who auth.Identity, recheck func(*http.Request) (auth.Identity, error)) {
	s := c.sessions.create(who, recheck)
	http.SetCookie(w, c.cookie(sessionCookie, s.id, 0))
	http.SetCookie(w, c.cookie(preCookie, "", -1))
	c.log.Info("console sign-in", "who", who.Name, "role", who.Role, "method", who.Method)
	http.Redirect(w, r, safeNext(r.FormValue("next")), http.StatusSeeOther)
}

func (c *Console) externalCallback(x ExternalSignIn) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		who, err := x.Callback(r)
		if err == nil && (who.Name == "" || !slices.Contains(auth.Roles(), who.Role)) {
			err = fmt.Errorf("it named no user or a role auditpipe does not have (%q)", who.Role)
		}
		if err != nil {
			c.log.Info("console external sign-in refused", "provider", x.Name(), "remote", r.RemoteAddr, "err", err)
			c.renderSignin(w, r, http.StatusUnauthorized, x.Name()+" did not sign you in: "+err.Error())
			return
		}
		c.startSession(w, r, who, nil)
	}
}

func (c *Console) signout(w http.ResponseWriter, r *http.Request, s *session) error {
	c.sessions.end(s.id)
	http.SetCookie(w, c.cookie(sessionCookie, "", -1))
	http.Redirect(w, r, Prefix+"/signin", http.StatusSeeOther)
	return nil
}

// row is one request as a list shows it.
type row struct {
	policy.AccessRequest
	Approvals int
	CanDecide bool
	Mine      bool
}

// decidable reports whether who may approve or reject r now: the API lets
// their role, the request waits for a decision, it is not their own and
// they have not approved it yet. The service checks it all again.
func (c *Console) decidable(who auth.Identity, r *policy.AccessRequest) bool {
	if !c.deps.API.Allowed("ApproveAccessRequest", who) || r.RequestorID == who.Name {
		return false
	}
	if r.LifecycleState != policy.StateApprovalWaiting && r.LifecycleState != policy.StateMoreInfo && r.LifecycleState != policy.StateExtending {
		return false
	}
	return !slices.ContainsFunc(r.Approvals(), func(d policy.ApproverDetail) bool { return d.ApproverID == who.Name })
}

func (c *Console) toRow(who auth.Identity, r policy.AccessRequest) row {
	return row{AccessRequest: r, Approvals: len(r.Approvals()), CanDecide: c.decidable(who, &r), Mine: r.RequestorID == who.Name}
}

const pageSize = 50

// inbox lists the requests the visitor may see: for an approver those
// waiting on them (all with ?all=1), for others every visible one.
func (c *Console) inbox(w http.ResponseWriter, r *http.Request, s *session) error {
	q := r.URL.Query()
	waiting := s.who.Role == auth.RoleApprover && q.Get("all") == ""
	f := policy.RequestFilter{Page: policy.Page{Limit: pageSize, After: q.Get("after")}}
	var rows []row
	next := ""
	for {
		items, nx, err := c.deps.API.VisibleRequests(r.Context(), s.who, f)
		if err != nil {
			return err
		}
		for _, it := range items {
			x := c.toRow(s.who, it)
			if waiting && !x.CanDecide {
				continue
			}
			rows = append(rows, x)
		}
		next = nx
		if !waiting || next == "" || len(rows) >= pageSize {
			break
		}
		f.Page.After = next
	}
	c.render(w, r, s, http.StatusOK, "inbox", map[string]any{"Rows": rows, "Waiting": waiting, "Next": next,
		"Approver": c.deps.API.Allowed("ApproveAccessRequest", s.who), "AuditTypes": auditTypes()})
	return nil
}

func auditTypes() []string { return []string{schemas.AuditCommand, schemas.AuditCommandKeystroke} }

// requestPage is one request: its state, history, thread, grant, the
// actions the visitor may take, the live trail and the process tree.
func (c *Console) requestPage(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	req, err := c.deps.API.VisibleRequest(ctx, s.who, r.PathValue("id"))
	if err != nil {
		return err
	}
	hist, err := c.deps.Service.History(ctx, policy.ObjectAccessRequest, req.ID)
	if err != nil {
		return err
	}
	thread, err := c.deps.Service.Interactions(ctx, req.ID)
	if err != nil {
		return err
	}
	d := map[string]any{"R": c.toRow(s.who, req), "History": hist, "Thread": thread, "AuditTypes": auditTypes()}
	mine := req.RequestorID == s.who.Name
	st := req.LifecycleState
	d["CanAsk"] = c.decidable(s.who, &req) && st.Pending()
	d["CanRevoke"] = c.deps.API.Allowed("RevokeAccessRequest", s.who) && !st.Terminal()
	d["CanExtend"] = mine && c.deps.API.Allowed("ExtendAccessRequest", s.who) && st.Granted() && st != policy.StateExtending
	d["CanAnswer"] = mine && c.deps.API.Allowed("InteractionRequest", s.who) && st == policy.StateMoreInfo
	d["CanComplete"] = mine && c.deps.API.Allowed("CompleteAccessRequest", s.who) && !st.Terminal()
	if req.UserID != "" {
		var hosts []string
		if c.deps.API.Allowed("GetGrant", s.who) {
			if g, err := c.deps.Service.GetGrant(ctx, req.UserID); err == nil {
				hosts = g.Hosts
			}
		}
		if hosts == nil {
			hosts = req.SubResourceList
		}
		if hosts == nil && c.deps.API.Allowed("GetResource", s.who) {
			if res, err := c.deps.Service.GetResource(ctx, req.ResourceID); err == nil {
				for _, h := range res.Hosts {
					hosts = append(hosts, h.Name)
				}
			}
		}
		d["GrantHosts"] = hosts
	}
	if c.deps.Store != nil {
		d["Live"] = true
		evs, err := c.trailEvents(ctx, req.ID, time.Time{})
		if err != nil {
			c.log.Warn("console: reading the trail", "request", req.ID, "err", err)
			d["TrailError"] = "the audit store did not answer: " + err.Error()
		}
		d["Trail"] = evs
		rep, err := auditreport.Build(ctx, c.deps.Store, req.ID, auditreport.Options{})
		if err != nil {
			d["TreeError"] = err.Error()
		} else if len(rep.Sessions) > 0 {
			var b bytes.Buffer
			if err := auditreport.WriteText(&b, rep); err == nil {
				d["Tree"] = b.String()
			}
		}
	}
	c.render(w, r, s, http.StatusOK, "request", d)
	return nil
}

// formInt reads an optional whole number field.
func formInt(r *http.Request, name string) (int, error) {
	v := strings.TrimSpace(r.PostFormValue(name))
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidParameter, Message: name + ": not a whole number: " + v}
	}
	return n, nil
}

// operations are the request actions of the console's forms and the API
// operation each one is.
var operations = map[string]string{
	"approve": "ApproveAccessRequest", "reject": "RejectAccessRequest", "revoke": "RevokeAccessRequest",
	"extend": "ExtendAccessRequest", "complete": "CompleteAccessRequest", "moreinfo": "InteractionRequest", "answer": "InteractionRequest",
}

// requestAction runs one action on a request, as the API's route does:
// the role's check, the visibility check, then the service's call.
func (c *Console) requestAction(w http.ResponseWriter, r *http.Request, s *session) error {
	action, id := r.PathValue("action"), r.PathValue("id")
	op, ok := operations[action]
	if !ok {
		return &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: "no such action: " + action}
	}
	if err := c.allowedTo(s, op, action); err != nil {
		return err
	}
	ctx := r.Context()
	if _, err := c.deps.API.VisibleRequest(ctx, s.who, id); err != nil {
		return err
	}
	version, err := formInt(r, "version")
	if err != nil {
		return err
	}
	v := int64(version)
	comment := strings.TrimSpace(r.PostFormValue("comment"))
	svc := c.deps.Service
	switch action {
	case "approve":
		hours, err := formInt(r, "duration")
		if err != nil {
			return err
		}
		_, err = svc.Approve(ctx, s.who, id, policy.ApproveInput{Comment: comment, AuditType: r.PostFormValue("audit_type"), DurationHours: hours, IfMatch: v})
		if err != nil {
			return err
		}
	case "reject":
		if _, err := svc.Reject(ctx, s.who, id, comment, v); err != nil {
			return err
		}
	case "revoke":
		if r.PostFormValue("confirm") != "yes" {
			return &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidParameter, Message: "confirm: tick the box to confirm the revocation"}
		}
		if _, err := svc.Revoke(ctx, s.who, id, comment, v); err != nil {
			return err
		}
	case "extend":
		hours, err := formInt(r, "hours")
		if err != nil {
			return err
		}
		if _, err := svc.Extend(ctx, s.who, id, hours, comment, v); err != nil {
			return err
		}
	case "complete":
		if _, err := svc.Complete(ctx, s.who, id, comment, v); err != nil {
			return err
		}
	case "moreinfo":
		if _, err := svc.Ask(ctx, s.who, id, comment); err != nil {
			return err
		}
	case "answer":
		if _, err := svc.Answer(ctx, s.who, id, comment); err != nil {
			return err
		}
	}
	back := Prefix + "/requests/" + url.PathEscape(id)
	if r.PostFormValue("back") == "inbox" {
		back = Prefix + "/"
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
	return nil
}

// catalogChoice is one action a new request may ask for.
type catalogChoice struct {
	policy.Action
	PreApproved bool
}

// newRequestPage is the operator's form: pick a resource, then the
// actions of its control in force, marked pre-approved or not.
func (c *Console) newRequestPage(w http.ResponseWriter, r *http.Request, s *session) error {
	if !c.deps.API.Allowed("CreateAccessRequest", s.who) {
		return notAuthorized("your role may not make access requests")
	}
	ctx := r.Context()
	resources, _, err := c.deps.Service.ListResources(ctx, policy.ResourceFilter{Page: policy.Page{Limit: 1000}})
	if err != nil {
		return err
	}
	d := map[string]any{"Resources": resources, "Severities": []string{policy.SeverityS1, policy.SeverityS2, policy.SeverityS3, policy.SeverityS4}}
	if id := r.URL.Query().Get("resource"); id != "" {
		res, err := c.deps.Service.GetResource(ctx, id)
		if err != nil {
			return err
		}
		d["Resource"] = res
		ctl, _, err := c.deps.Service.ControlInForce(ctx, id, c.opts.Now())
		if err != nil {
			d["NoControl"] = c.deps.API.ErrorOf(err, r).Message
		} else {
			d["Control"] = ctl
			var choices []catalogChoice
			for _, a := range c.deps.Service.Catalog().Actions() {
				pre := ctl.IsFullyPreApproved && slices.Contains(a.ResourceTypes, res.ResourceType) || slices.Contains(ctl.PreApprovedOpActions, a.Name)
				if pre || slices.Contains(ctl.ApprovalRequiredOpActions, a.Name) {
					choices = append(choices, catalogChoice{Action: a, PreApproved: pre})
				}
			}
			d["Choices"] = choices
		}
	}
	c.render(w, r, s, http.StatusOK, "new", d)
	return nil
}

// createRequest makes the request of the form, through the same service
// call as the API's CreateAccessRequest.
func (c *Console) createRequest(w http.ResponseWriter, r *http.Request, s *session) error {
	if !c.deps.API.Allowed("CreateAccessRequest", s.who) {
		return notAuthorized("your role may not make access requests")
	}
	hours, err := formInt(r, "duration")
	if err != nil {
		return err
	}
	in := policy.RequestInput{ResourceID: r.PostFormValue("resource"), ActionRequests: r.PostForm["actions"],
		Reason: strings.TrimSpace(r.PostFormValue("reason")), Severity: r.PostFormValue("severity"), DurationHours: hours}
	if v := strings.TrimSpace(r.PostFormValue("start")); v != "" {
		t, err := time.Parse("2006-01-02T15:04", v)
		if err != nil {
			return &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidParameter, Message: "start: not a date and time (UTC): " + v}
		}
		in.TimeRequestedForFutureAccess = t.UTC()
	}
	req, err := c.deps.Service.CreateRequest(r.Context(), s.who, in)
	if err != nil {
		return err
	}
	http.Redirect(w, r, Prefix+"/requests/"+url.PathEscape(req.ID), http.StatusSeeOther)
	return nil
}

// ctxDone reports whether ctx ended.
func ctxDone(ctx context.Context) bool { return ctx.Err() != nil }
