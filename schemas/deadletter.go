package schemas

import (
	"encoding/base64"
	"time"
	"unicode/utf8"
)

// DeadLetter is a message on topic opctl.deadletter.v1: input that a
// component could not process, kept whole with the reason, so nothing is
// lost silently. The input is in Raw when it is valid UTF-8, else in RawB64.
type DeadLetter struct {
	Component string `json:"component"`         // collector, indexer, forwarder
	Reason    string `json:"reason"`            // short machine-readable reason, e.g. "bad_header"
	Error     string `json:"error"`             // the full error text
	Host      string `json:"host,omitempty"`    // host the input came from, when known
	Source    string `json:"source,omitempty"`  // file and offset, or topic/partition/offset
	Raw       string `json:"raw,omitempty"`     // the input, when it is valid UTF-8
	RawB64    string `json:"raw_b64,omitempty"` // the input, base64, when it is not
	TS        string `json:"ts"`                // RFC 3339, when it was rejected
}

// NewDeadLetter builds a dead letter for raw, choosing Raw or RawB64 so the
// input survives byte for byte.
func NewDeadLetter(component, reason string, err error, raw []byte, now time.Time) DeadLetter {
	d := DeadLetter{Component: component, Reason: reason, TS: now.UTC().Format(TSLayout)}
	if err != nil {
		d.Error = err.Error()
	}
	if utf8.Valid(raw) {
		d.Raw = string(raw)
	} else {
		d.RawB64 = base64.StdEncoding.EncodeToString(raw)
	}
	return d
}
