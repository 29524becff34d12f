package grants

import (
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

// DispatchMessage is a verified message of the dispatch topic.
type DispatchMessage struct {
	Dispatch schemas.Dispatch
	KeyID    string // the key that signed it
	Payload  []byte // the signed payload, whose digest Seqs keeps
}

// DispatchRecord returns d as a signed record of the dispatch topic (key
// = instance id), signed like a grant: the scheduler writes it through
// the policy outbox. d.PublishSeq is required.
func DispatchRecord(s *sign.Signer, d schemas.Dispatch) (kafka.Record, error) {
	if err := d.Validate(); err != nil {
		return kafka.Record{}, err
	}
	return seal(s, "dispatch", d.InstanceID, d.PublishSeq, d)
}

// DecodeDispatch verifies a record of the dispatch topic against kr and
// returns its dispatch; a record keyed by another instance than its
// payload names is refused (ReasonKeyMismatch), as are unsigned ones.
// Every refusal is a *RefusedError naming its reason.
func DecodeDispatch(key, value []byte, kr *sign.Keyring) (DispatchMessage, error) {
	var d schemas.Dispatch
	payload, keyID, err := open(key, value, kr, &d, func() (string, error) {
		if err := d.Validate(); err != nil {
			return "", err
		}
		return d.InstanceID, nil
	})
	if err != nil {
		return DispatchMessage{}, err
	}
	return DispatchMessage{Dispatch: d, KeyID: keyID, Payload: payload}, nil
}
