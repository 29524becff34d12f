package schemas

import (
	"fmt"
	"regexp"
	"slices"
	"time"
)

// Object types of lifecycle events: the policy service's objects, named
// as OCI's Operator Access Control names them, and the scheduler's, as
// OCI's OS Management names them.
const (
	ObjectOperatorControl = "operator_control"
	ObjectAssignment      = "operator_control_assignment"
	ObjectAccessRequest   = "access_request"
	ObjectScheduledJob    = "scheduled_job"
	ObjectWorkRequest     = "work_request"
)

// LifecycleObjectTypes lists the object types a lifecycle event may be
// about.
func LifecycleObjectTypes() []string {
	return []string{ObjectOperatorControl, ObjectAssignment, ObjectAccessRequest, ObjectScheduledJob, ObjectWorkRequest}
}

// Lifecycle is a message on topic opctl.lifecycle.v1 (key = ResourceID,
// or the object's id when it has no resource, as an operator control):
// one state change of an operator control, an assignment or an access
// request, or of a scheduled job or a work request (the scheduler's),
// written through the policy store's outbox in the same transaction as
// the change. The indexer stores it, the forwarder sends it
// to the resource's SIEM (MSGID = Kind). Its JSON Schema is
// jsonschema/lifecycle.schema.json.
type Lifecycle struct {
	// EventID is 128 random bits in hex: the dedup key downstream.
	EventID string `json:"event_id"`
	// Kind is "<object_type>.<what happened>", e.g.
	// access_request.approved, operator_control_assignment.applied,
	// work_request.succeeded.
	Kind       string `json:"kind"`
	ObjectType string `json:"object_type"`
	ObjectID   string `json:"object_id"`
	// ResourceID and CompartmentID place the object (empty for a
	// control's resource).
	ResourceID    string `json:"resource_id,omitempty"`
	CompartmentID string `json:"compartment_id,omitempty"`
	// StateFrom is empty when the object was created; StateTo equals
	// StateFrom for a change that keeps the state (an approval that is
	// not yet enough, a question answered, an update).
	StateFrom string `json:"state_from,omitempty"`
	StateTo   string `json:"state_to"`
	// Actor is the identity that made the change, or "policy" for
	// time-driven work (expiry, a window's start or end).
	Actor string `json:"actor"`
	// Time is when the change was committed, UTC, milliseconds.
	Time time.Time `json:"time"`
	// Details are what the change is about: the comment, the login user,
	// the actions, the approver count (strings, to keep typed columns
	// downstream simple).
	Details map[string]string `json:"details,omitempty"`
}

var (
	eventIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)
	kindRe    = regexp.MustCompile(`^[a-z_]+\.[a-z_]+$`)
)

// Validate checks what consumers rely on.
func (l *Lifecycle) Validate() error {
	switch {
	case !eventIDRe.MatchString(l.EventID):
		return fmt.Errorf("lifecycle: event_id %q is not 32 hex digits", l.EventID)
	case !kindRe.MatchString(l.Kind):
		return fmt.Errorf("lifecycle %s: kind %q is not object_type.what", l.EventID, l.Kind)
	case !slices.Contains(LifecycleObjectTypes(), l.ObjectType):
		return fmt.Errorf("lifecycle %s: unknown object_type %q", l.EventID, l.ObjectType)
	case l.ObjectID == "":
		return fmt.Errorf("lifecycle %s: object_id is empty", l.EventID)
	case l.StateTo == "":
		return fmt.Errorf("lifecycle %s: state_to is empty", l.EventID)
	case l.Actor == "":
		return fmt.Errorf("lifecycle %s: actor is empty", l.EventID)
	case l.Time.IsZero():
		return fmt.Errorf("lifecycle %s: time is zero", l.EventID)
	}
	return nil
}

// Key is the event's record key: the resource, else the object.
func (l *Lifecycle) Key() string {
	if l.ResourceID != "" {
		return l.ResourceID
	}
	return l.ObjectID
}

// DecodeLifecycle decodes one event strictly (unknown fields and trailing
// data refused) and validates it.
func DecodeLifecycle(b []byte) (Lifecycle, error) {
	var l Lifecycle
	if err := decodeStrict(b, &l); err != nil {
		return Lifecycle{}, fmt.Errorf("lifecycle: %w", err)
	}
	if err := l.Validate(); err != nil {
		return Lifecycle{}, err
	}
	return l, nil
}
