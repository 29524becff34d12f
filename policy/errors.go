package policy

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinels to branch on with errors.Is; each typed error below matches
// one. The API maps them to statuses: ErrNotFound 404, ErrInvalid 400,
// ErrForbidden 403, ErrVersion 412 (If-Match), ErrConflict and
// ErrInvalidTransition 409.
var (
	ErrNotFound          = errors.New("not found")
	ErrInvalid           = errors.New("invalid")
	ErrForbidden         = errors.New("forbidden")
	ErrVersion           = errors.New("version mismatch")
	ErrConflict          = errors.New("conflict")
	ErrInvalidTransition = errors.New("invalid transition")
)

// NotFoundError: no object of that type and id.
type NotFoundError struct {
	Object string // an Object* constant
	ID     string
}

func (e *NotFoundError) Error() string { return fmt.Sprintf("%s %q not found", e.Object, e.ID) }

// Is matches ErrNotFound.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// FieldProblem is one invalid field of an input.
type FieldProblem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every invalid field of an input at once.
type ValidationError struct {
	Object   string
	Problems []FieldProblem
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Field + ": " + p.Message
	}
	return "invalid " + e.Object + ": " + strings.Join(parts, "; ")
}

// Is matches ErrInvalid.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// problems collects field problems; err returns nil when there are none.
type problems struct {
	object string
	list   []FieldProblem
}

func (p *problems) add(field, format string, args ...any) {
	p.list = append(p.list, FieldProblem{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	return &ValidationError{Object: p.object, Problems: p.list}
}

// ForbiddenError: the identity may not do this to this object, for a
// reason that depends on the data (not an approver of the request's
// control, not the requester, the requester approving their own
// request).
type ForbiddenError struct {
	Who    string
	Action string
	Object string
	ID     string
	Reason string
}

func (e *ForbiddenError) Error() string {
	return fmt.Sprintf("%s may not %s %s %s: %s", e.Who, e.Action, e.Object, e.ID, e.Reason)
}

// Is matches ErrForbidden.
func (e *ForbiddenError) Is(target error) bool { return target == ErrForbidden }

// VersionError: an update named a version (If-Match) that is not the
// object's current one.
type VersionError struct {
	Object   string
	ID       string
	Expected int64
	Actual   int64
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("%s %s is at version %d, not %d: read it again", e.Object, e.ID, e.Actual, e.Expected)
}

// Is matches ErrVersion.
func (e *VersionError) Is(target error) bool { return target == ErrVersion }

// ConflictError: the change contradicts the state of other objects (a
// second assignment for a resource, deleting a control still assigned,
// an approver approving twice).
type ConflictError struct {
	Object string
	ID     string
	Reason string
}

func (e *ConflictError) Error() string { return fmt.Sprintf("%s %s: %s", e.Object, e.ID, e.Reason) }

// Is matches ErrConflict.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// TransitionError: the request's state has no such action in the
// transition table.
type TransitionError struct {
	RequestID string
	State     RequestState
	Action    RequestAction
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("access request %s is %s: action %s is not allowed in state %s", e.RequestID, e.State, e.Action, e.State)
}

// Is matches ErrInvalidTransition.
func (e *TransitionError) Is(target error) bool { return target == ErrInvalidTransition }
