package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/policy/scheduler"
)

// Options are the API's optional parts.
type Options struct {
	// Log receives one line per request (mutations at info, reads at
	// debug) and the internal errors. Default: discard.
	Log *slog.Logger
	// Registry, when set, receives the API's metrics (requests by route
	// and status, latency) and the policy domain's (requests by state,
	// active grants, expiries, revocations, approval latency).
	Registry prometheus.Registerer
	// Report serves GET /v1/accessRequests/{accessRequestId}/auditLogReport
	// (the request's audit log report from ClickHouse:
	// policy/auditreport.NewHandler). The API checks first that the
	// caller may see the request (the requester, an approver of its
	// control, an auditor, an admin: 404 otherwise) and passes the request
	// on unchanged (path value accessRequestId; auditreport reads the id
	// from the path), so the report's own Authorize may allow every
	// caller that reaches it. Nil answers 501 NotImplemented.
	Report http.Handler
	// Scheduler serves the scheduler's routes (scheduled jobs, executions,
	// work requests, managed instances and groups). Nil answers them 501
	// NotImplemented (a policy process without the scheduler module).
	Scheduler *scheduler.Service
	// MaxBodyBytes bounds a request body. Default 1 MiB.
	MaxBodyBytes int64
}

// DefaultMaxBodyBytes is Options.MaxBodyBytes's default.
const DefaultMaxBodyBytes = 1 << 20

// Route is one operation of the API: what the OpenAPI document calls an
// operation, the roles that may call it (before the per-object checks).
type Route struct {
	Method      string
	Pattern     string // a ServeMux pattern without the method, e.g. /v1/accessRequests/{accessRequestId}
	OperationID string
	Roles       []string
	handler     func(w http.ResponseWriter, r *http.Request, who auth.Identity) error
	mutates     bool
}

// API is the policy service's HTTP handler.
type API struct {
	svc     *policy.Service
	opts    Options
	log     *slog.Logger
	mux     *http.ServeMux
	routes  []Route
	metrics *metrics
}

// New returns the API over svc.
func New(svc *policy.Service, opts Options) (*API, error) {
	if svc == nil {
		return nil, errors.New("policy api: New needs a service")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	a := &API{svc: svc, opts: opts, log: opts.Log, mux: http.NewServeMux()}
	a.routes = a.table()
	m, err := newMetrics(opts.Registry, svc.Store(), a.routes)
	if err != nil {
		return nil, err
	}
	a.metrics = m
	byPattern := map[string][]*Route{}
	var order []string
	for i := range a.routes {
		rt := &a.routes[i]
		if _, ok := byPattern[rt.Pattern]; !ok {
			order = append(order, rt.Pattern)
		}
		byPattern[rt.Pattern] = append(byPattern[rt.Pattern], rt)
	}
	for _, p := range order {
		a.mux.Handle(p, a.dispatch(byPattern[p]))
	}
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		a.finish(w, r, nil, auth.Identity{}, time.Now(), &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "no such API path: " + r.URL.Path})
	})
	return a, nil
}

// Routes returns every operation the API serves.
func (a *API) Routes() []Route { return slices.Clone(a.routes) }

// dispatch serves one path: the route of the request's method, or 405.
func (a *API) dispatch(routes []*Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var rt *Route
		for _, x := range routes {
			if x.Method == r.Method {
				rt = x
			}
		}
		if rt == nil {
			var allow []string
			for _, x := range routes {
				allow = append(allow, x.Method)
			}
			w.Header().Set("Allow", strings.Join(allow, ", "))
			a.finish(w, r, nil, auth.Identity{}, start, &Error{Status: http.StatusMethodNotAllowed, Code: CodeNotAllowed,
				Message: fmt.Sprintf("%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", "))})
			return
		}
		who, ok := auth.FromContext(r.Context())
		if !ok {
			a.finish(w, r, rt, who, start, &Error{Status: http.StatusUnauthorized, Code: CodeNotAuthenticated,
				Message: "no identity: the API is mounted behind the process's authentication; send Authorization: Bearer TOKEN"})
			return
		}
		if !slices.Contains(rt.Roles, who.Role) {
			a.finish(w, r, rt, who, start, &Error{Status: http.StatusForbidden, Code: CodeNotAuthorized,
				Message: fmt.Sprintf("%s (role %s) may not call %s", who.Name, who.Role, rt.OperationID)})
			return
		}
		a.finish(w, r, rt, who, start, rt.handler(w, r, who))
	})
}

// finish writes err (when the handler did not answer), counts and logs
// the request.
func (a *API) finish(w http.ResponseWriter, r *http.Request, rt *Route, who auth.Identity, start time.Time, err error) {
	sw, _ := w.(*statusWriter)
	if err != nil {
		e := a.toError(err, r)
		writeJSON(w, r, e.Status, e)
	}
	status := http.StatusOK
	if sw != nil && sw.status != 0 {
		status = sw.status
	}
	op := "unknown"
	if rt != nil {
		op = rt.OperationID
	}
	a.metrics.observe(op, status, time.Since(start))
	level := slog.LevelDebug
	if rt != nil && rt.mutates || status >= 500 {
		level = slog.LevelInfo
	}
	a.log.Log(r.Context(), level, "policy api", "op", op, "method", r.Method, "path", r.URL.Path, "who", who.Name, "role", who.Role,
		"status", status, "duration", time.Since(start), "opc_request_id", w.Header().Get(HeaderRequestID))
}

// Headers of the API (OCI's names).
const (
	HeaderRequestID = "opc-request-id"
	HeaderNextPage  = "opc-next-page"
	HeaderETag      = "etag"
	HeaderIfMatch   = "if-match"
)

// statusWriter remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the writer beneath.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// ServeHTTP implements http.Handler: every response carries
// opc-request-id (the client's, or a new one).
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get(HeaderRequestID)
	if id == "" || len(id) > 128 {
		id = newRequestID()
	}
	w.Header().Set(HeaderRequestID, id)
	a.mux.ServeHTTP(&statusWriter{ResponseWriter: w}, r)
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return strings.ToUpper(hex.EncodeToString(b[:]))
}
