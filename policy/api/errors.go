package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/auditpipe/auditpipe/policy"
)

// Error codes of the API's error body (OCI's where it has one).
const (
	CodeInvalidParameter        = "InvalidParameter"        // 400: a field, parameter or header is wrong
	CodeCannotParseRequest      = "CannotParseRequest"      // 400: the body is not the JSON the operation takes
	CodeNotAuthenticated        = "NotAuthenticated"        // 401
	CodeNotAuthorized           = "NotAuthorized"           // 403: the caller's role, or the domain's rule, refuses it
	CodeNotAuthorizedOrNotFound = "NotAuthorizedOrNotFound" // 404: no such object, or one the caller may not see
	CodeNotFound                = "NotFound"                // 404: no such path
	CodeNotAllowed              = "NotAllowed"              // 405: no such method on the path
	CodeConflict                = "Conflict"                // 409: contradicts other objects
	CodeIncorrectState          = "IncorrectState"          // 409: the request's state has no such action
	CodePreconditionFailed      = "PreconditionFailed"      // 412: if-match is not the current etag
	CodeRequestTooLarge         = "RequestEntityTooLarge"   // 413
	CodeInternalServerError     = "InternalServerError"     // 500
	CodeNotImplemented          = "NotImplemented"          // 501
)

// Error is the API's error body: {"code": "...", "message": "..."}, and
// for an invalid input every field's problem.
type Error struct {
	Status   int                   `json:"-"`
	Code     string                `json:"code"`
	Message  string                `json:"message"`
	Problems []policy.FieldProblem `json:"problems,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// notFound is the answer for an object the caller may not see: the same
// as for one that does not exist.
func notFound(object, id string) *Error {
	return &Error{Status: http.StatusNotFound, Code: CodeNotAuthorizedOrNotFound,
		Message: object + " " + id + " does not exist or you are not authorized to see it"}
}

func invalidParam(name, msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeInvalidParameter, Message: name + ": " + msg,
		Problems: []policy.FieldProblem{{Field: name, Message: msg}}}
}

// toError maps the domain's errors to statuses and codes; anything else
// is a 500 whose cause is logged, not shown.
func (a *API) toError(err error, r *http.Request) *Error {
	var (
		e   *Error
		ve  *policy.ValidationError
		nf  *policy.NotFoundError
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &mbe):
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeRequestTooLarge, Message: err.Error()}
	case errors.As(err, &ve):
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalidParameter, Message: ve.Error(), Problems: ve.Problems}
	case errors.As(err, &nf):
		return notFound(nf.Object, nf.ID)
	case errors.Is(err, policy.ErrForbidden):
		return &Error{Status: http.StatusForbidden, Code: CodeNotAuthorized, Message: err.Error()}
	case errors.Is(err, policy.ErrVersion):
		return &Error{Status: http.StatusPreconditionFailed, Code: CodePreconditionFailed, Message: err.Error()}
	case errors.Is(err, policy.ErrInvalidTransition):
		return &Error{Status: http.StatusConflict, Code: CodeIncorrectState, Message: err.Error()}
	case errors.Is(err, policy.ErrConflict):
		return &Error{Status: http.StatusConflict, Code: CodeConflict, Message: err.Error()}
	case errors.Is(err, policy.ErrInvalid):
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalidParameter, Message: err.Error()}
	}
	a.log.Error("policy api: internal error", "method", r.Method, "path", r.URL.Path, "err", err, "opc_request_id", r.Header.Get(HeaderRequestID))
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternalServerError, Message: "internal error; the server's log has it under this opc-request-id"}
}

// writeJSON writes v as the response, with status.
func writeJSON(w http.ResponseWriter, _ *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"code":"InternalServerError","message":"encoding the response failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
