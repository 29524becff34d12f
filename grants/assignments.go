package grants

import (
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

// AssignmentRemoved is the lifecycle state of an assignment removal: the
// signed record that ends a resource's assignment (and its forwarding) on
// the compacted topic, where a bare tombstone would be unsigned.
const AssignmentRemoved = "DELETED"

// AssignmentMessage is a verified message of the assignments topic.
type AssignmentMessage struct {
	// Assignment.LifecycleState AssignmentRemoved: a removal.
	Assignment schemas.Assignment
	KeyID      string // the key that signed it
	Payload    []byte // the signed payload, whose digest Seqs keeps
}

// AssignmentRecord returns a as a signed record of the assignments topic
// (key = resource id), signed like a grant; a.PublishSeq is required.
func AssignmentRecord(s *sign.Signer, a schemas.Assignment) (kafka.Record, error) {
	if err := a.Validate(); err != nil {
		return kafka.Record{}, err
	}
	return seal(s, "assignment", a.ResourceID, a.PublishSeq, a)
}

// AssignmentRemoval returns the signed record that removes resource's
// assignment: no control, no forwarding; numbered seq.
func AssignmentRemoval(s *sign.Signer, resource string, seq int64) (kafka.Record, error) {
	return AssignmentRecord(s, schemas.Assignment{ResourceID: resource, LifecycleState: AssignmentRemoved, PublishSeq: seq})
}

// DecodeAssignment verifies a record of the assignments topic against kr
// and returns its assignment; a record keyed by another resource than
// its payload names is refused (ReasonKeyMismatch), as are unsigned ones.
// Every refusal is a *RefusedError naming its reason.
func DecodeAssignment(key, value []byte, kr *sign.Keyring) (AssignmentMessage, error) {
	var a schemas.Assignment
	payload, keyID, err := open(key, value, kr, &a, func() (string, error) {
		if err := a.Validate(); err != nil {
			return "", err
		}
		return a.ResourceID, nil
	})
	if err != nil {
		return AssignmentMessage{}, err
	}
	return AssignmentMessage{Assignment: a, KeyID: keyID, Payload: payload}, nil
}
