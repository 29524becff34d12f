package auditreport

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/auditpipe/auditpipe/clickhouse"
)

// Pattern is the route NewHandler serves, in net/http's ServeMux syntax.
const Pattern = "GET /v1/accessRequests/{id}/auditLogReport"

// Errors an Authorize callback returns to refuse a caller. Any other
// non-nil error refuses too, with 403.
var (
	// ErrUnauthenticated answers 401: the caller is not known.
	ErrUnauthenticated = errors.New("auditreport: not authenticated")
	// ErrForbidden answers 403: the caller may not read this report.
	ErrForbidden = errors.New("auditreport: forbidden")
	// ErrNotFound answers 404: there is no such access request (or the
	// caller may not know that there is one).
	ErrNotFound = errors.New("auditreport: no such access request")
)

// Authorize decides whether the caller of r may read the audit log report
// of access request id: nil allows it; ErrUnauthenticated, ErrNotFound or
// ErrForbidden (or any other error: 403) refuses it. It runs before the
// store is read.
//
// The policy API's rule is: the request's requester (the operator who
// raised it), its approvers (named in the approvers_list of the control it
// was raised under, or members of one of its approver_groups_list),
// auditors and policy admins. With the identity internal/auth puts in the
// context and the policy service:
//
//	func(r *http.Request, id string) error {
//		who, ok := auth.FromContext(r.Context())
//		if !ok {
//			return auditreport.ErrUnauthenticated
//		}
//		if who.Role == auth.RoleAdmin || who.Role == auth.RoleAuditor {
//			return nil
//		}
//		req, err := svc.GetRequest(r.Context(), id)
//		if err != nil {
//			return auditreport.ErrNotFound
//		}
//		if who.Name == req.RequestorID || mayApprove(who, req) {
//			return nil
//		}
//		return auditreport.ErrForbidden
//	}
type Authorize func(r *http.Request, id string) error

// maxIDBytes bounds the request id a caller may send.
const maxIDBytes = 512

// NewHandler serves the audit log report of an access request as JSON:
//
//	GET /v1/accessRequests/{id}/auditLogReport[?keystrokes=true]
//
// answers 200 with a Report (its report field holds the text rendering,
// as OCI's AuditLogReport does), whose audit_report_status is
// NOTAVAILABLE when the store holds no event of the request. keystrokes=true
// lists the keystroke events (they are always counted). Errors: 400 for a
// bad id or parameter, 401/403/404 from authorize, 405 for another method,
// 503 when the store cannot be read (the cause is logged, not sent).
//
// Mount it at Pattern (the id is the {id} path value), or anywhere whose
// path ends in /accessRequests/{id}/auditLogReport. authorize is asked
// first for every request; a nil authorize refuses every request.
func NewHandler(q clickhouse.ParamQuerier, authorize Authorize, log *slog.Logger, opt Options) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &handler{q: q, authorize: authorize, log: log, opt: opt}
}

type handler struct {
	q         clickhouse.ParamQuerier
	authorize Authorize
	log       *slog.Logger
	opt       Options
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		jsonError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	id, ok := requestID(r)
	if !ok || id == "" || len(id) > maxIDBytes || !utf8.ValidString(id) {
		jsonError(w, http.StatusBadRequest, "bad access request id")
		return
	}
	opt := h.opt
	if v := r.URL.Query().Get("keystrokes"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			jsonError(w, http.StatusBadRequest, "keystrokes: want true or false")
			return
		}
		opt.Keystrokes = b
	}
	if h.authorize == nil {
		jsonError(w, http.StatusForbidden, "forbidden")
		return
	}
	if err := h.authorize(r, id); err != nil {
		switch {
		case errors.Is(err, ErrUnauthenticated):
			jsonError(w, http.StatusUnauthorized, "not authenticated")
		case errors.Is(err, ErrNotFound):
			jsonError(w, http.StatusNotFound, "no such access request")
		default:
			jsonError(w, http.StatusForbidden, "forbidden")
		}
		return
	}
	rep, err := Build(r.Context(), h.q, id, opt)
	if err != nil {
		h.log.Error("audit log report", "req_auth_id", id, "err", err)
		jsonError(w, http.StatusServiceUnavailable, "the audit store cannot be read")
		return
	}
	var text bytes.Buffer
	if err := WriteText(&text, rep); err != nil {
		h.log.Error("audit log report: text", "req_auth_id", id, "err", err)
		jsonError(w, http.StatusInternalServerError, "cannot render the report")
		return
	}
	rep.Text = text.String()
	body, err := json.Marshal(rep)
	if err != nil {
		jsonError(w, http.StatusInternalServerError, "cannot render the report")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(append(body, '\n'))
}

// requestID returns the {id} of the route: the path value when the mux
// has one, else the path segment before /auditLogReport after
// /accessRequests/.
func requestID(r *http.Request) (string, bool) {
	if id := r.PathValue("id"); id != "" {
		return id, true
	}
	p := r.URL.Path
	rest, ok := strings.CutSuffix(p, "/auditLogReport")
	if !ok {
		return "", false
	}
	i := strings.LastIndex(rest, "/accessRequests/")
	if i < 0 {
		return "", false
	}
	id := rest[i+len("/accessRequests/"):]
	if strings.Contains(id, "/") {
		return "", false
	}
	return id, true
}

func jsonError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}{http.StatusText(status), msg})
	w.Write(append(b, '\n'))
}
