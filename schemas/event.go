package schemas

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Kind is the value of an event's "event" field.
type Kind string

// Event kinds.
const (
	KindLogin   Kind = "login"
	KindLogout  Kind = "logout"
	KindCommand Kind = "command"
	KindKeys    Kind = "keys"
	// KindChain is the collector's chain checkpoint: the head of a host's
	// hash chain after a flush, signed (see ChainSigningBytes).
	KindChain Kind = "chain"
)

// Kinds lists every event kind, in a stable order.
var Kinds = []Kind{KindLogin, KindLogout, KindCommand, KindKeys, KindChain}

// Valid reports whether k is one of the documented kinds.
func (k Kind) Valid() bool {
	switch k {
	case KindLogin, KindLogout, KindCommand, KindKeys, KindChain:
		return true
	}
	return false
}

// Event is one audit event on topic opctl.audit.v1, as the seed's examples
// 1-2 (login), 1-3 (logout) and 1-4 (command) show it, plus the keystroke
// event and the fields auditpipe adds. Field names are the contract: they
// are never renamed, only added to.
//
// All seed fields are strings, as in the seed; Args is an array.
type Event struct {
	// Seed fields.
	Layer     string   `json:"layer"`
	ReqAuthID string   `json:"req_auth_id"`
	Event     Kind     `json:"event"`
	SrcHost   string   `json:"srchost,omitempty"`  // login/logout: hostname= of the record
	Res       string   `json:"res,omitempty"`      // "success" or "failed"
	DestHost  string   `json:"desthost,omitempty"` // login/logout: addr= of the record
	PID       string   `json:"pid,omitempty"`
	Title     string   `json:"title,omitempty"` // command: proctitle, NUL between arguments
	Args      []string `json:"args,omitempty"`  // command: argv (always present for commands)
	RecID     string   `json:"rec_id"`          // audit serial
	TTY       string   `json:"tty"`
	Host      string   `json:"host"`
	Time      string   `json:"time"` // ctime form, UTC: "Thu Oct 29 03:20:22 2020"
	RawData   string   `json:"raw_data"`
	LoginID   string   `json:"loginid"`

	// Added by auditpipe.
	PPID string `json:"ppid,omitempty"` // command: parent pid
	Ses  string `json:"ses,omitempty"`  // audit session id
	EUID string `json:"euid,omitempty"` // command: effective user, resolved to a name
	Exe  string `json:"exe,omitempty"`  // command: executable path
	Cwd  string `json:"cwd,omitempty"`  // command: working directory
	Keys string `json:"keys,omitempty"` // keys: the keystrokes, decoded
	// Escaped lists the fields whose value held bytes that are not UTF-8:
	// in those values (and only those) a backslash is written \\ and each
	// invalid byte \xNN, so the original bytes can be restored exactly
	// (see UnescapeInvalidUTF8).
	Escaped []string `json:"escaped,omitempty"`
	EventID string   `json:"event_id"` // 32 hex digits, see NewEventID
	TS      string   `json:"ts"`       // RFC 3339, milliseconds, UTC
	Seq     uint64   `json:"seq"`      // per-host sequence number of the collector; 0 for chain checkpoints
	// PrevHash is the per-host hash chain: the hex SHA-256 of the
	// canonical bytes (see CanonicalJSON) of the previous event of the
	// same host, "" for the first event of a chain. On a chain checkpoint
	// it is the link into the range: the prev_hash of event ChainFirst.
	PrevHash string `json:"prev_hash"`

	// Chain checkpoint fields (event "chain" only): the host's events
	// ChainFirst..ChainLast (seq) were chained in one flush, ChainCount of
	// them, and ChainHead is the hash of event ChainLast. KeyID names the
	// Ed25519 key (ChainKeyID) and Sig is the signature, base64, over
	// ChainSigningBytes; both are empty when the collector has no key.
	ChainFirst uint64 `json:"chain_first,omitempty"`
	ChainLast  uint64 `json:"chain_last,omitempty"`
	ChainCount uint64 `json:"chain_count,omitempty"`
	ChainHead  string `json:"chain_head,omitempty"`
	KeyID      string `json:"key_id,omitempty"`
	Sig        string `json:"sig,omitempty"`
}

// Validate checks the invariants every event on the wire must hold.
func (e *Event) Validate() error {
	if !e.Event.Valid() {
		return fmt.Errorf("event: unknown kind %q", e.Event)
	}
	// Lower case only, as NewEventID makes them and the JSON schemas say:
	// an id in upper case is another string to ClickHouse and to first
	// write wins, so a second copy of an event would be stored beside it.
	if !isHex(e.EventID, 32) {
		return fmt.Errorf("event: event_id %q: want 32 lowercase hex digits", e.EventID)
	}
	if e.Host == "" {
		return fmt.Errorf("event: host is empty")
	}
	if e.TS == "" {
		return fmt.Errorf("event: ts is empty")
	}
	if e.PrevHash != "" && !isHex(e.PrevHash, 64) {
		return fmt.Errorf("event: prev_hash %q: want 64 hex digits or empty", e.PrevHash)
	}
	if e.Event == KindChain {
		if !isHex(e.ChainHead, 64) {
			return fmt.Errorf("event: chain_head %q: want 64 hex digits", e.ChainHead)
		}
		if e.ChainFirst == 0 || e.ChainLast < e.ChainFirst || e.ChainCount == 0 || e.ChainCount > e.ChainLast-e.ChainFirst+1 {
			return fmt.Errorf("event: chain range %d..%d with %d events is not a range", e.ChainFirst, e.ChainLast, e.ChainCount)
		}
		if (e.KeyID == "") != (e.Sig == "") {
			return fmt.Errorf("event: key_id and sig go together")
		}
	} else if e.ChainFirst != 0 || e.ChainLast != 0 || e.ChainCount != 0 || e.ChainHead != "" || e.KeyID != "" || e.Sig != "" {
		return fmt.Errorf("event: chain fields on a %s event", e.Event)
	}
	return nil
}

// isHex reports whether s is n lowercase hex digits.
func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// MarshalJSON encodes the event with AppendJSON.
func (e *Event) MarshalJSON() ([]byte, error) {
	return e.AppendJSON(make([]byte, 0, 256+len(e.RawData)+len(e.Title))), nil
}

// AppendJSON appends the event's JSON encoding to dst. It writes each kind's
// seed fields in the seed's order, then the added fields, and always writes
// "args" for commands (an empty array when there are none) and "prev_hash"
// (empty for the first event of a chain); the chain fields only for chain
// checkpoints. It is a function of the Event's value: this encoding is the
// event's canonical bytes (see CanonicalJSON). Strings that are
// not valid UTF-8 have each invalid byte replaced by U+FFFD; the collector
// never hands such strings over (see package collector/auditlog's escaping).
func (e *Event) AppendJSON(dst []byte) []byte {
	dst, _, _ = e.AppendJSONRawSpan(dst)
	return dst
}

// AppendJSONWithRawData is AppendJSON with raw as raw_data's value instead
// of e.RawData (which it ignores): the bytes are those AppendJSON writes for
// an event whose RawData is string(raw). It is for a producer that renders
// raw_data into a buffer of its own and encodes the event at once (the
// collector's decoder), so that no string of it is made per event.
func (e *Event) AppendJSONWithRawData(dst, raw []byte) []byte {
	dst, _, _ = e.appendJSON(dst, raw, true)
	return dst
}

// AppendJSONRawSpan is AppendJSON, also returning where in the returned
// slice raw_data's value is (from its opening quote to after its closing
// one): so that a consumer that needs both the event's canonical bytes and
// those bytes with raw_data left out (the forwarder's hash and json
// parameters) encodes the event once.
func (e *Event) AppendJSONRawSpan(dst []byte) (out []byte, rawStart, rawEnd int) {
	return e.appendJSON(dst, nil, false)
}

// appendJSON is AppendJSONRawSpan, with raw as raw_data's value when
// useRaw.
func (e *Event) appendJSON(dst, raw []byte, useRaw bool) (out []byte, rawStart, rawEnd int) {
	dst = append(dst, '{')
	dst = appendField(dst, "layer", e.Layer, true)
	dst = appendField(dst, "req_auth_id", e.ReqAuthID, false)
	dst = appendField(dst, "event", string(e.Event), false)
	switch e.Event {
	case KindLogin, KindLogout:
		dst = appendField(dst, "srchost", e.SrcHost, false)
		dst = appendField(dst, "res", e.Res, false)
		dst = appendField(dst, "desthost", e.DestHost, false)
		dst = appendField(dst, "pid", e.PID, false)
	case KindCommand:
		dst = appendField(dst, "title", e.Title, false)
		dst = append(dst, `,"args":[`...)
		for i, a := range e.Args {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, a)
		}
		dst = append(dst, ']')
		dst = appendField(dst, "pid", e.PID, false)
		dst = appendField(dst, "ppid", e.PPID, false)
		dst = appendField(dst, "euid", e.EUID, false)
		dst = appendField(dst, "exe", e.Exe, false)
		dst = appendField(dst, "cwd", e.Cwd, false)
		dst = appendField(dst, "res", e.Res, false)
	case KindKeys:
		dst = appendField(dst, "pid", e.PID, false)
		dst = appendField(dst, "keys", e.Keys, false)
	}
	dst = appendField(dst, "rec_id", e.RecID, false)
	dst = appendField(dst, "tty", e.TTY, false)
	dst = appendField(dst, "host", e.Host, false)
	dst = appendField(dst, "time", e.Time, false)
	dst = append(dst, `,"raw_data":`...)
	rawStart = len(dst)
	if useRaw {
		dst = appendString(dst, raw)
	} else {
		dst = appendString(dst, e.RawData)
	}
	rawEnd = len(dst)
	dst = appendField(dst, "loginid", e.LoginID, false)
	if e.Ses != "" {
		dst = appendField(dst, "ses", e.Ses, false)
	}
	if len(e.Escaped) > 0 {
		dst = append(dst, `,"escaped":[`...)
		for i, name := range e.Escaped {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, name)
		}
		dst = append(dst, ']')
	}
	dst = appendField(dst, "event_id", e.EventID, false)
	dst = appendField(dst, "ts", e.TS, false)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, e.Seq, 10)
	dst = appendField(dst, "prev_hash", e.PrevHash, false)
	if e.Event == KindChain {
		dst = append(dst, `,"chain_first":`...)
		dst = strconv.AppendUint(dst, e.ChainFirst, 10)
		dst = append(dst, `,"chain_last":`...)
		dst = strconv.AppendUint(dst, e.ChainLast, 10)
		dst = append(dst, `,"chain_count":`...)
		dst = strconv.AppendUint(dst, e.ChainCount, 10)
		dst = appendField(dst, "chain_head", e.ChainHead, false)
		if e.KeyID != "" || e.Sig != "" {
			dst = appendField(dst, "key_id", e.KeyID, false)
			dst = appendField(dst, "sig", e.Sig, false)
		}
	}
	return append(dst, '}'), rawStart, rawEnd
}

// UnmarshalJSON decodes an event strictly: unknown fields are an error, so a
// producer that drifts from the contract is caught at the first consumer.
// It is DecodeJSON, which see.
func (e *Event) UnmarshalJSON(b []byte) error {
	return e.DecodeJSON(b)
}

func appendField(dst []byte, name, value string, first bool) []byte {
	if !first {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return appendString(dst, value)
}

const hexDigits = "0123456789abcdef"

// load64 reads 8 bytes little-endian; the compiler makes it one load.
func load64[S string | []byte](b S) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// plain8 reports whether the 8 bytes in x are all ASCII, at least 0x20,
// and neither '"' nor '\\': bytes a JSON string holds as they are.
func plain8(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	// (v - ones) & ^v & highs is non-zero iff some byte of v is zero (the
	// classic test); bytes ≥ 0x80 are ruled out first by x & highs.
	lt20 := (x - ones*0x20) & ^x & highs
	q := x ^ (ones * '"')
	bs := x ^ (ones * '\\')
	return (x&highs)|lt20|((q-ones)&^q&highs)|((bs-ones)&^bs&highs) == 0
}

// appendString appends s as a JSON string, escaping as encoding/json does
// except that HTML characters are left alone.
func appendString[S string | []byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		// Skip 8 plain ASCII bytes at a time: most of raw_data needs no escaping.
		for i+8 <= len(s) && plain8(load64(s[i:i+8])) {
			i += 8
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		// At most 4 bytes: the conversion of a []byte s is on the stack.
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// Time layouts of the contract.
const (
	// CtimeLayout is the seed's "time" field: "Thu Oct 29 03:20:22 2020", UTC.
	CtimeLayout = "Mon Jan _2 15:04:05 2006"
	// TSLayout is the "ts" field: RFC 3339 with milliseconds, UTC.
	TSLayout = "2006-01-02T15:04:05.000Z07:00"
)
