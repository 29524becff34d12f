package schemas

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"time"
	"unicode/utf8"
)

// MaxDeadLetterRaw bounds the input a dead letter carries, so that a dead
// letter always fits in one Kafka message (1 MB by default): a longer input
// is cut, and its full length and SHA-256 are kept.
const MaxDeadLetterRaw = 256 << 10

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
	// Truncated is set when the input was longer than MaxDeadLetterRaw:
	// Raw or RawB64 then hold its first MaxDeadLetterRaw bytes, RawBytes
	// its length and RawSHA256 the SHA-256 of all of it.
	Truncated bool   `json:"truncated,omitempty"`
	RawBytes  int    `json:"raw_bytes,omitempty"`
	RawSHA256 string `json:"raw_sha256,omitempty"`
}

// NewDeadLetter builds a dead letter for raw, choosing Raw or RawB64 so the
// input survives byte for byte (up to MaxDeadLetterRaw, see Truncated).
func NewDeadLetter(component, reason string, err error, raw []byte, now time.Time) DeadLetter {
	d := DeadLetter{Component: component, Reason: reason, TS: now.UTC().Format(TSLayout)}
	if err != nil {
		d.Error = err.Error()
	}
	if len(raw) > MaxDeadLetterRaw {
		sum := sha256.Sum256(raw)
		d.Truncated, d.RawBytes, d.RawSHA256 = true, len(raw), hex.EncodeToString(sum[:])
		raw = raw[:MaxDeadLetterRaw]
	}
	if utf8.Valid(raw) {
		d.Raw = string(raw)
	} else {
		d.RawB64 = base64.StdEncoding.EncodeToString(raw)
	}
	return d
}
