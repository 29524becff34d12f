package indexer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/schemas"
)

// Dead-letter reasons of the indexer.
const (
	ReasonOversize       = "oversize"        // larger than max_row_bytes
	ReasonInvalidJSON    = "invalid_json"    // not a JSON object
	ReasonSchemaMismatch = "schema_mismatch" // unknown field or wrong type
	ReasonInvalidEvent   = "invalid_event"   // fails schemas.Event.Validate or has a bad ts
	ReasonInvalidUTF8    = "invalid_utf8"    // a non-audit message that is not UTF-8
	ReasonInsertRejected = "insert_rejected" // ClickHouse refused the row alone
	// ReasonInvalidLifecycle: a lifecycle event that fails
	// schemas.Lifecycle's validation.
	ReasonInvalidLifecycle = "invalid_lifecycle"
	// ReasonLifecycleConflict: a lifecycle event whose event_id is stored
	// with other content; the stored one stays (first write wins).
	ReasonLifecycleConflict = "lifecycle_conflict"
	// ReasonInvalidInventory: a message of opctl.agent.v1 that has an
	// "inventory" field but is not a valid schemas.Inventory.
	ReasonInvalidInventory = "invalid_inventory"
)

// ReasonInventoryRefused prefixes the reason of an inventory whose
// signature is refused (grants.AgentReasons: inventory_unsigned,
// inventory_unknown_host, inventory_unknown_key, …): not signed by the
// key enrolled for the host it names.
const ReasonInventoryRefused = "inventory_"

// Reasons lists the dead-letter reasons, for metrics.
var Reasons = append([]string{ReasonOversize, ReasonInvalidJSON, ReasonSchemaMismatch, ReasonInvalidEvent, ReasonInvalidUTF8, ReasonInsertRejected,
	ReasonInvalidLifecycle, ReasonLifecycleConflict, ReasonInvalidInventory}, inventoryRefusals()...)

func inventoryRefusals() []string {
	var out []string
	for _, r := range append(grants.AgentReasons(), ReasonInstanceMismatch, ReasonUnknownInstance) {
		out = append(out, ReasonInventoryRefused+r)
	}
	return out
}

// rejectError is why a message cannot be indexed.
type rejectError struct {
	reason string
	err    error
}

func (e *rejectError) Error() string { return e.reason + ": " + e.err.Error() }
func (e *rejectError) Unwrap() error { return e.err }

// DecodeEvent decodes and checks one audit event (one JSON object) as the
// indexer would index it, with its content hash (the SHA-256 of its
// canonical bytes, schemas.Event.Hash). Partition and Offset of the row are -1. The error,
// when not nil, carries the dead-letter reason (see RejectReason).
func DecodeEvent(value []byte, maxRowBytes int) (clickhouse.EventRow, error) {
	r := clickhouse.EventRow{Partition: -1, Offset: -1}
	if maxRowBytes > 0 && len(value) > maxRowBytes {
		return r, &rejectError{ReasonOversize, fmt.Errorf("%d bytes, limit %d", len(value), maxRowBytes)}
	}
	v := bytes.TrimSpace(value)
	if len(v) < 2 || v[0] != '{' || v[len(v)-1] != '}' {
		return r, &rejectError{ReasonInvalidJSON, errors.New("not a JSON object")}
	}
	canon, err := r.Event.DecodeJSONCanonical(v)
	if err != nil {
		if errors.Is(err, schemas.ErrSyntax) || !json.Valid(v) {
			return r, &rejectError{ReasonInvalidJSON, err}
		}
		return r, &rejectError{ReasonSchemaMismatch, err}
	}
	if err := r.Event.Validate(); err != nil {
		return r, &rejectError{ReasonInvalidEvent, err}
	}
	ts, err := time.Parse(time.RFC3339Nano, r.Event.TS)
	if err != nil {
		return r, &rejectError{ReasonInvalidEvent, fmt.Errorf("ts: %w", err)}
	}
	r.TS = ts.UTC()
	// Validate took only 32 lowercase hex digits as the event_id.
	if bytes.IndexByte(v, '\n') >= 0 || bytes.IndexByte(v, '\r') >= 0 { // not ContainsAny: a byte at a time
		// JSONEachRow wants one row per line.
		var c bytes.Buffer
		if err := json.Compact(&c, v); err != nil {
			return r, &rejectError{ReasonInvalidJSON, err}
		}
		v = c.Bytes()
	}
	r.JSON = v
	if canon.OK {
		// v is the event's canonical bytes, as the collector wrote them:
		// hashed as they are, not encoded again.
		r.ContentHash = schemas.HashBytes(v)
	} else {
		r.ContentHash = r.Event.Hash()
	}
	return r, nil
}

func isHex32(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// decodeMessage checks a message of a non-audit topic.
func decodeMessage(topic string, value []byte, maxRowBytes int) error {
	if maxRowBytes > 0 && len(value) > maxRowBytes {
		return &rejectError{ReasonOversize, fmt.Errorf("%d bytes, limit %d", len(value), maxRowBytes)}
	}
	if !utf8.Valid(value) {
		return &rejectError{ReasonInvalidUTF8, fmt.Errorf("%s: payload is not UTF-8", topic)}
	}
	return nil
}

// RejectReason returns the dead-letter reason of an error from DecodeEvent,
// or "" when err is not a rejection.
func RejectReason(err error) string {
	var re *rejectError
	if errors.As(err, &re) {
		return re.reason
	}
	return ""
}
