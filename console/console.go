package console

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/policy/api"
	"github.com/auditpipe/auditpipe/policy/scheduler"
)

// Prefix is the path the console is served under.
const Prefix = "/console"

// ContentSecurityPolicy is sent with every page: scripts, styles and
// connections from the console's own origin only (no inline script, no
// eval), no framing, forms posted to the console only.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Authenticator turns what a visitor presents into an identity:
// *auth.Authenticator, the process's, is one.
type Authenticator interface {
	// Authenticate reads the request's verified TLS client certificate
	// (or bearer token).
	Authenticate(r *http.Request) (auth.Identity, error)
	// AuthenticateToken checks a token typed into the sign-in form.
	AuthenticateToken(token string) (auth.Identity, error)
}

// ExternalSignIn is the seam for an identity provider the console sends
// visitors to: what an OIDC authenticator (the authorization code flow)
// implements. The sign-in page links to /console/signin/NAME, served by
// Start, which redirects to the provider; the provider sends the browser
// back to /console/signin/NAME/callback, where Callback returns the
// identity it vouched for, and the console starts a session of it as it
// does for a token (the same cookie, CSRF token and lifetimes). None is
// built in yet; Options.External offers them.
type ExternalSignIn interface {
	// Name is the path segment and the link's label: lower-case letters,
	// digits and '-', at most 32 (New refuses others).
	Name() string
	// Start sends the visitor to the provider. It binds what it sends
	// (OIDC's state and nonce, a PKCE verifier) to this browser, for
	// example in a cookie of its own, for Callback to check.
	Start(w http.ResponseWriter, r *http.Request)
	// Callback checks the provider's answer (the state Start bound to
	// this browser, against login CSRF; the code exchanged and the ID
	// token verified) and returns who signed in, with a role of
	// auth.Roles() mapped from the provider's claims; an error is shown
	// on the sign-in page and starts no session. The console does not
	// ask the provider again during the session, which lasts
	// Options.SessionTTL at most (a token's session is checked against
	// the tokens file at every request).
	Callback(r *http.Request) (auth.Identity, error)
}

// externalNameRe is what an ExternalSignIn's Name may be.
var externalNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// Deps are what the console reads and acts through.
type Deps struct {
	// Service is the policy service; API is the policy API over it,
	// whose authorization the console applies.
	Service *policy.Service
	API     *api.API
	// Auth authenticates sign-ins.
	Auth Authenticator
	// Store is where the audit events are (ClickHouse, either engine);
	// nil leaves out the live trail, the process tree and the search.
	Store clickhouse.ParamQuerier
	// Scheduler is the job scheduler (targets scheduler and all); nil
	// leaves out the Jobs pages.
	Scheduler *scheduler.Service
	// Log defaults to discard.
	Log *slog.Logger
}

// Options are the console's settings.
type Options struct {
	// Secure marks the cookies Secure: set it when the listener has TLS.
	Secure bool
	// SessionTTL bounds a session (default 8h); SessionIdle ends one
	// unused for that long (default 30m).
	SessionTTL  time.Duration
	SessionIdle time.Duration
	// TrailPoll is how often the live trail reads new events (default
	// 1s).
	TrailPoll time.Duration
	// External are the identity providers offered on the sign-in page.
	External []ExternalSignIn
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Console is the web console's handler, to be mounted at Prefix + "/".
type Console struct {
	deps     Deps
	opts     Options
	log      *slog.Logger
	tmpl     map[string]*template.Template
	sessions *sessions
	mux      *http.ServeMux
	// streams ends the live trails' streams when Run's context ends.
	streams    context.Context
	endStreams context.CancelFunc
}

// New returns the console.
func New(d Deps, o Options) (*Console, error) {
	if d.Service == nil || d.API == nil || d.Auth == nil {
		return nil, errors.New("console: New needs the policy service, its API and an authenticator")
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	seen := map[string]bool{}
	for _, x := range o.External {
		if n := x.Name(); !externalNameRe.MatchString(n) || seen[n] {
			return nil, fmt.Errorf("console: external sign-in %q: a name of lower-case letters, digits and '-', at most 32, and one per provider", n)
		}
		seen[x.Name()] = true
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = 8 * time.Hour
	}
	if o.SessionIdle <= 0 {
		o.SessionIdle = 30 * time.Minute
	}
	if o.TrailPoll <= 0 {
		o.TrailPoll = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Console{deps: d, opts: o, log: d.Log, sessions: newSessions(o.SessionTTL, o.SessionIdle, o.Now), mux: http.NewServeMux()}
	c.streams, c.endStreams = context.WithCancel(context.Background())
	if err := c.parseTemplates(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("console: static assets: %w", err)
	}
	c.mux.Handle("GET "+Prefix+"/static/", http.StripPrefix(Prefix+"/static/", http.FileServerFS(static)))
	c.mux.HandleFunc("GET "+Prefix+"/signin", c.signinPage)
	c.mux.HandleFunc("POST "+Prefix+"/signin", c.signin)
	for _, x := range o.External {
		c.mux.HandleFunc("GET "+Prefix+"/signin/"+x.Name(), x.Start)
		c.mux.HandleFunc("GET "+Prefix+"/signin/"+x.Name()+"/callback", c.externalCallback(x))
	}
	c.mux.Handle("POST "+Prefix+"/signout", c.form(c.signout))
	c.mux.Handle("GET "+Prefix+"/{$}", c.page(c.inbox))
	c.mux.Handle("GET "+Prefix+"/requests/new", c.page(c.newRequestPage))
	c.mux.Handle("POST "+Prefix+"/requests", c.form(c.createRequest))
	c.mux.Handle("GET "+Prefix+"/requests/{id}", c.page(c.requestPage))
	c.mux.Handle("GET "+Prefix+"/requests/{id}/trail", c.page(c.trail))
	c.mux.Handle("POST "+Prefix+"/requests/{id}/{action}", c.form(c.requestAction))
	c.mux.Handle("GET "+Prefix+"/controls", c.page(c.controlsPage))
	c.mux.Handle("GET "+Prefix+"/controls/new", c.page(c.newControlPage))
	c.mux.Handle("POST "+Prefix+"/controls", c.form(c.createControl))
	c.mux.Handle("GET "+Prefix+"/controls/{id}", c.page(c.controlPage))
	c.mux.Handle("POST "+Prefix+"/controls/{id}", c.form(c.updateControl))
	c.mux.Handle("GET "+Prefix+"/assignments/new", c.page(c.newAssignmentPage))
	c.mux.Handle("POST "+Prefix+"/assignments", c.form(c.createAssignment))
	c.mux.Handle("GET "+Prefix+"/assignments/{id}", c.page(c.assignmentPage))
	c.mux.Handle("POST "+Prefix+"/assignments/{id}", c.form(c.updateAssignment))
	c.mux.Handle("POST "+Prefix+"/assignments/{id}/unassign", c.form(c.unassign))
	c.mux.Handle("GET "+Prefix+"/search", c.page(c.searchPage))
	c.mux.Handle("GET "+Prefix+"/jobs", c.page(c.jobsPage))
	c.mux.Handle("GET "+Prefix+"/jobs/new", c.page(c.newJobPage))
	c.mux.Handle("POST "+Prefix+"/jobs", c.form(c.createJob))
	c.mux.Handle("GET "+Prefix+"/compliance", c.page(c.compliancePage))
	c.mux.Handle("GET "+Prefix+"/jobs/{id}", c.page(c.jobPage))
	c.mux.Handle("POST "+Prefix+"/jobs/{id}/{action}", c.form(c.jobAction))
	c.mux.Handle("GET "+Prefix+"/workrequests/{id}", c.page(c.workRequestPage))
	c.mux.Handle("POST "+Prefix+"/workrequests/{id}/cancel", c.form(c.cancelWorkRequest))
	c.mux.Handle(Prefix+"/", c.page(func(w http.ResponseWriter, r *http.Request, s *session) error {
		return &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: "no such page: " + r.URL.Path}
	}))
	return c, nil
}

// Run returns when ctx ends, after ending every live trail stream: the
// process's HTTP server can then shut down without waiting on them (a
// browser's EventSource reconnects to the next process). Without Run the
// streams last as long as their visitors.
func (c *Console) Run(ctx context.Context) error {
	<-ctx.Done()
	c.endStreams()
	return nil
}

// ServeHTTP implements http.Handler: every answer carries the security
// headers.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	if c.opts.Secure {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	c.mux.ServeHTTP(w, r)
}

// handlerFunc is a page or form handler of a signed-in visitor.
type handlerFunc func(w http.ResponseWriter, r *http.Request, s *session) error

// current returns the visitor's session: the cookie's, or a new one for
// a verified client certificate the authenticator knows.
func (c *Console) current(w http.ResponseWriter, r *http.Request) (*session, bool) {
	if ck, err := r.Cookie(sessionCookie); err == nil {
		if s, ok := c.sessions.get(ck.Value); ok {
			if s.recheck == nil {
				return s, true
			}
			if who, err := s.recheck(r); err == nil && sameIdentity(who, s.who) {
				return s, true
			}
			c.sessions.end(s.id)
			c.log.Info("console session ended: its credential no longer signs in as it did", "who", s.who.Name, "role", s.who.Role)
		}
	}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		if who, err := c.deps.Auth.Authenticate(r); err == nil && who.Method == "certificate" {
			s := c.sessions.create(who, c.deps.Auth.Authenticate)
			http.SetCookie(w, c.cookie(sessionCookie, s.id, 0))
			c.log.Info("console sign-in", "who", who.Name, "role", who.Role, "method", who.Method)
			return s, true
		}
	}
	return nil, false
}

// page serves GET h to a signed-in visitor; others go to the sign-in page.
func (c *Console) page(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ok := c.current(w, r)
		if !ok {
			if strings.HasSuffix(r.URL.Path, "/trail") {
				http.Error(w, "not signed in", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, Prefix+"/signin?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if err := h(w, r, s); err != nil {
			c.fail(w, r, s, err)
		}
	})
}

// form serves POST h: a signed-in visitor, from this origin, with the
// session's CSRF token. Anything else is refused with 403 and changes
// nothing.
func (c *Console) form(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		s, ok := c.current(w, r)
		if !ok {
			c.refuse(w, r, nil, http.StatusForbidden, "not signed in: sign in, then send the form again")
			return
		}
		if !sameOrigin(r) {
			c.log.Warn("console: cross-site form refused", "who", s.who.Name, "path", r.URL.Path, "origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
			c.refuse(w, r, s, http.StatusForbidden, "this form was sent from another site")
			return
		}
		if !tokenEqual(r.PostFormValue(csrfField), s.csrf) {
			c.log.Warn("console: form without a valid CSRF token refused", "who", s.who.Name, "path", r.URL.Path)
			c.refuse(w, r, s, http.StatusForbidden, "the form's CSRF token is missing or stale: reload the page and send it again")
			return
		}
		if err := h(w, r, s); err != nil {
			c.fail(w, r, s, err)
		}
	})
}

// fail renders err as an error page with the API's status and message.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	e := c.deps.API.ErrorOf(err, r)
	c.refuse(w, r, s, e.Status, e.Message)
}

func (c *Console) refuse(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) {
	c.render(w, r, s, status, "error", map[string]any{"Status": status, "StatusText": http.StatusText(status), "Message": msg})
}

// view is what every page's layout reads.
type view struct {
	Title   string
	Who     auth.Identity
	CSRF    string
	Nav     []navItem
	Current string
	Data    any
}

type navItem struct {
	Href, Label string
}

// nav is the menu of who's role: only the pages they may use.
func (c *Console) nav(who auth.Identity) []navItem {
	items := []navItem{{Prefix + "/", "Requests"}}
	if c.deps.API.Allowed("CreateAccessRequest", who) {
		items = append(items, navItem{Prefix + "/requests/new", "New request"})
	}
	if c.deps.API.Allowed("ListOperatorControls", who) {
		items = append(items, navItem{Prefix + "/controls", "Controls"})
	}
	if c.deps.Scheduler != nil && c.deps.API.Allowed("ListScheduledJobs", who) {
		items = append(items, navItem{Prefix + "/jobs", "Jobs"})
	}
	if c.deps.Store != nil && c.deps.API.Allowed("ListManagedInstances", who) {
		items = append(items, navItem{Prefix + "/compliance", "Compliance"})
	}
	if c.deps.Store != nil && (who.Role == auth.RoleAuditor || who.Role == auth.RoleAdmin) {
		items = append(items, navItem{Prefix + "/search", "Search"})
	}
	return items
}

var titles = map[string]string{
	"inbox": "Access requests", "request": "Access request", "new": "New access request", "controls": "Controls and assignments", "control": "Operator control", "assignment": "Assignment", "newjob": "New scheduled job",
	"search": "Audit search", "jobs": "Scheduled jobs", "job": "Scheduled job", "workrequest": "Work request", "compliance": "Patch compliance", "error": "Error", "signin": "Sign in",
}

// render writes template name in the layout.
func (c *Console) render(w http.ResponseWriter, r *http.Request, s *session, status int, name string, data any) {
	v := view{Title: titles[name], Current: r.URL.Path, Data: data}
	if s != nil {
		v.Who, v.CSRF, v.Nav = s.who, s.csrf, c.nav(s.who)
	}
	var buf bytes.Buffer
	if err := c.tmpl[name].ExecuteTemplate(&buf, "layout", v); err != nil {
		c.log.Error("console: rendering a page", "page", name, "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// sameIdentity reports whether a fresh authentication is still the
// session's identity: the same name, role, method and groups.
func sameIdentity(a, b auth.Identity) bool {
	return a.Name == b.Name && a.Role == b.Role && a.Method == b.Method && slices.Equal(a.Groups, b.Groups)
}
