package grants

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

// ReasonUnknownHost: a message of opctl.agent.v1 naming a host whose key
// is not enrolled (or a name no host can have).
const ReasonUnknownHost = "unknown_host"

// AgentReasons lists every reason DecodeAgent refuses a message for.
// ReasonUnknownKey there is a message signed by another key than the one
// enrolled for the host it names: another host's, or a stranger's.
func AgentReasons() []string {
	return []string{ReasonUnsigned, ReasonMalformed, ReasonUnknownHost, ReasonUnknownKey, ReasonBadSignature, ReasonInvalidPayload, ReasonKeyMismatch, ReasonReplayed}
}

// AgentMessage is a verified message of opctl.agent.v1.
type AgentMessage struct {
	// Kind is schemas.AgentMessageKind of the payload.
	Kind string
	// Payload is the signed JSON (a schemas.AgentReport, WorkProgress or
	// Inventory), for the kind's strict decoder.
	Payload []byte
	// Host is the host the payload names, whose enrolled key signed it.
	Host  string
	KeyID string
	// Seq is the payload's publish_seq (0 when it has none), for the
	// consumer's replay check (Seqs, CheckSeq).
	Seq int64
}

// AgentRecord returns v (a schemas.AgentReport, WorkProgress or
// Inventory naming host) as a record of opctl.agent.v1 signed by the
// host's own key s: key = host, value = a sign.Envelope over v's JSON.
// v's publish_seq (the agent's number of its host's messages) is
// required.
func AgentRecord(s *sign.Signer, host string, v any) (kafka.Record, error) {
	if host == "" {
		return kafka.Record{}, errors.New("agent message: no host")
	}
	payload, err := json.Marshal(v)
	if err != nil {
		return kafka.Record{}, fmt.Errorf("agent message %s: encode: %w", host, err)
	}
	var numbered struct {
		PublishSeq int64 `json:"publish_seq"`
	}
	if err := json.Unmarshal(payload, &numbered); err != nil || numbered.PublishSeq < 1 {
		return kafka.Record{}, fmt.Errorf("agent message %s: publish_seq %d: a signed message needs its number (from 1)", host, numbered.PublishSeq)
	}
	return sealPayload(s, "agent message", host, payload)
}

// AgentKind returns the kind (schemas.AgentMessageKind) of a message of
// opctl.agent.v1 without verifying it: of the envelope's payload, or of
// the value itself when it is no envelope (an unsigned message, which
// the kind's consumer then refuses). Each consumer takes its own kind and
// passes over the others, so every message has one consumer that may
// refuse it.
func AgentKind(value []byte) string {
	if e, err := sign.Decode(value); err == nil {
		return schemas.AgentMessageKind(e.Payload)
	}
	return schemas.AgentMessageKind(value)
}

// DecodeAgent verifies a message of opctl.agent.v1 against the key
// enrolled in hosts for the host its payload names (the "host" member
// all three kinds carry): an unsigned message, a host with no enrolled
// key, a signature by any other key (another host's: the forgery of one
// agent's credential for every host) or a bad one, and a record keyed by
// another host than its payload's are refused, each a *RefusedError
// naming its reason (AgentReasons). The payload is not decoded further:
// the kind's consumer decodes it strictly.
func DecodeAgent(key, value []byte, hosts *sign.KeyDir) (AgentMessage, error) {
	e, err := sign.Decode(value)
	if err != nil {
		return AgentMessage{}, refusal(err)
	}
	var named struct {
		Host       string `json:"host"`
		PublishSeq int64  `json:"publish_seq"`
	}
	if err := json.Unmarshal(e.Payload, &named); err != nil || named.Host == "" {
		return AgentMessage{}, &RefusedError{Reason: ReasonInvalidPayload, Err: errors.New("agent message: the payload names no host")}
	}
	pub, err := hosts.Key(named.Host)
	if err != nil {
		reason := ReasonMalformed
		if errors.Is(err, sign.ErrNotEnrolled) {
			reason = ReasonUnknownHost
		}
		return AgentMessage{}, &RefusedError{Reason: reason, Err: err}
	}
	payload, keyID, err := sign.Verify(e, sign.NewKeyring(pub))
	if err != nil {
		return AgentMessage{}, refusal(fmt.Errorf("host %s (enrolled key %s): %w", named.Host, sign.KeyID(pub), err))
	}
	if string(key) != named.Host {
		return AgentMessage{}, &RefusedError{Reason: ReasonKeyMismatch, Err: fmt.Errorf("signed by %s: record key %q, payload's host %q", keyID, key, named.Host)}
	}
	return AgentMessage{Kind: schemas.AgentMessageKind(payload), Payload: payload, Host: named.Host, KeyID: keyID, Seq: named.PublishSeq}, nil
}

// refusal is the *RefusedError of an envelope error of package sign.
func refusal(err error) *RefusedError {
	reason := ReasonMalformed
	switch {
	case errors.Is(err, sign.ErrUnsigned):
		reason = ReasonUnsigned
	case errors.Is(err, sign.ErrUnknownKey):
		reason = ReasonUnknownKey
	case errors.Is(err, sign.ErrBadSignature):
		reason = ReasonBadSignature
	}
	return &RefusedError{Reason: reason, Err: err}
}
