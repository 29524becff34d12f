// Package grants is the signed form of what the policy service publishes
// for hosts and forwarders to act on: the grants on opctl.grants.v1 (what
// a publisher writes: Record, Revocation, Publish; what a consumer
// accepts: Decode), the assignments on opctl.assignments.v1
// (AssignmentRecord, AssignmentRemoval, DecodeAssignment) and the
// scheduler's work for agents on opctl.dispatch.v1 (DispatchRecord,
// DecodeDispatch), all through the same envelope code (seal, open). The policy service, `auditpipe
// grant publish` and the all-in-one publish with it; collectors (and,
// later, agents and forwarders) decode with it.
//
// A record's value is a sign.Envelope whose payload is a schemas.Grant's
// JSON; its key is the grant's login. A revocation is the same envelope
// over a grant with revoked=true and the login (nothing else is needed):
// a signed tombstone. A bare Kafka tombstone (nil value) is unsigned and
// refused like any unsigned message. Decode refuses a record whose key is
// not the login its payload names, so a signed message cannot be replayed
// under another login's key (nor hide from that key's compaction).
package grants

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

// Why a record is refused: the label of
// auditpipe_collector_grants_refused_total and the dead letter's reason.
const (
	ReasonUnsigned       = "unsigned"        // no signature: a plain grant, a bare tombstone
	ReasonMalformed      = "malformed"       // not an envelope
	ReasonUnknownKey     = "unknown_key"     // signed by a key not configured
	ReasonBadSignature   = "bad_signature"   // does not verify (tampered, or another key than it names)
	ReasonInvalidPayload = "invalid_payload" // signed, but not a valid grant
	ReasonKeyMismatch    = "key_mismatch"    // signed, but the record's key is not its login
	// ReasonReplayed: a validly signed record written again later: its
	// publish_seq is missing, below the last applied for its key, or the
	// last with another payload (CheckSeq); or a grant for a login whose
	// revocation was already followed (logins are never reused).
	ReasonReplayed = "replayed"
	// ReasonNotRemembered: a record that is not final (it would grant,
	// assign or run something) whose admission could not be written to
	// the replay memory's file (a full or read-only disk): applied, a
	// restart could not tell it from a replay, so it is not applied.
	ReasonNotRemembered = "not_remembered"
)

// Reasons lists every refusal reason.
func Reasons() []string {
	return []string{ReasonUnsigned, ReasonMalformed, ReasonUnknownKey, ReasonBadSignature, ReasonInvalidPayload, ReasonKeyMismatch, ReasonReplayed, ReasonNotRemembered}
}

// RefusedError is why Decode refused a record.
type RefusedError struct {
	Reason string // one of Reasons
	Err    error
}

func (e *RefusedError) Error() string { return "grant refused: " + e.Reason + ": " + e.Err.Error() }

func (e *RefusedError) Unwrap() error { return e.Err }

// Message is a verified message of the grants topic.
type Message struct {
	Grant schemas.Grant // Grant.Revoked: a revocation
	KeyID string        // the key that signed it
	// Payload is the signed payload, whose digest Seqs keeps.
	Payload []byte
}

// Record returns g as a signed record of the grants topic; g.PublishSeq
// (the number of the login's records, from 1) is required.
func Record(s *sign.Signer, g schemas.Grant) (kafka.Record, error) {
	if err := g.Validate(); err != nil {
		return kafka.Record{}, err
	}
	return seal(s, "grant", g.LoginID, g.PublishSeq, g)
}

// Revocation returns the signed tombstone of login's grant, numbered seq
// (above the grant's).
func Revocation(s *sign.Signer, login string, seq int64) (kafka.Record, error) {
	return Record(s, schemas.Grant{LoginID: login, Revoked: true, PublishSeq: seq})
}

// Decode verifies a record of the grants topic against kr and returns its
// grant. Every refusal is a *RefusedError naming its reason.
func Decode(key, value []byte, kr *sign.Keyring) (Message, error) {
	var g schemas.Grant
	payload, keyID, err := open(key, value, kr, &g, func() (string, error) {
		if err := g.Validate(); err != nil {
			return "", err
		}
		return g.LoginID, nil
	})
	if err != nil {
		return Message{}, err
	}
	return Message{Grant: g, KeyID: keyID, Payload: payload}, nil
}

// seal signs v's JSON and returns it as a record keyed by key; what names
// the message in errors. seq is v's publish_seq: a record without one
// would be refused by every consumer as a replay, so it is not made.
func seal(s *sign.Signer, what, key string, seq int64, v any) (kafka.Record, error) {
	if seq < 1 {
		return kafka.Record{}, fmt.Errorf("%s %s: publish_seq %d: a signed record needs its number (from 1)", what, key, seq)
	}
	payload, err := json.Marshal(v)
	if err != nil {
		return kafka.Record{}, fmt.Errorf("%s %s: encode: %w", what, key, err)
	}
	return sealPayload(s, what, key, payload)
}

// sealPayload signs payload and returns it as a record keyed by key.
func sealPayload(s *sign.Signer, what, key string, payload []byte) (kafka.Record, error) {
	b, err := s.Sign(payload).Marshal()
	if err != nil {
		return kafka.Record{}, fmt.Errorf("%s %s: %w", what, key, err)
	}
	return kafka.Record{Key: []byte(key), Value: b}, nil
}

// open verifies value against kr, decodes its payload strictly into v
// (unknown fields and trailing data refused), then calls check, which
// validates v and returns the key it must be published under. It returns
// the signed payload and the signing key's id; every refusal is a
// *RefusedError.
func open(key, value []byte, kr *sign.Keyring, v any, check func() (string, error)) ([]byte, string, error) {
	payload, keyID, err := sign.Open(value, kr)
	if err != nil {
		return nil, "", refusal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return nil, "", &RefusedError{Reason: ReasonInvalidPayload, Err: fmt.Errorf("signed by %s: payload: %w", keyID, err)}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, "", &RefusedError{Reason: ReasonInvalidPayload, Err: fmt.Errorf("signed by %s: payload: data after the message", keyID)}
	}
	want, err := check()
	if err != nil {
		return nil, "", &RefusedError{Reason: ReasonInvalidPayload, Err: fmt.Errorf("signed by %s: %w", keyID, err)}
	}
	if string(key) != want {
		return nil, "", &RefusedError{Reason: ReasonKeyMismatch, Err: fmt.Errorf("signed by %s: record key %q, payload's %q", keyID, key, want)}
	}
	return payload, keyID, nil
}

// Publish writes recs to the grants topic of kc, retrying a broker that
// is away until ctx ends.
func Publish(ctx context.Context, kc kafka.Config, recs ...kafka.Record) error {
	w, err := kc.NewWriter(schemas.TopicGrants)
	if err != nil {
		return fmt.Errorf("grants: %w", err)
	}
	err = w.Write(ctx, recs...)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("grants: publish: %w", err)
	}
	return nil
}
