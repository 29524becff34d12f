package forwarder

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Received is one message of an event as a receiver stored it: the
// SD-PARAMs of the forwarder's SD-ELEMENT (opctl@PEN) and the MSG, after
// whatever the receiver took off its end. MSG is "" for a message without
// one, and otherwise starts with the BOM, as on the wire: a receiver that
// removes it (syslog-ng does) must have it put back, which is exact since
// the forwarder sends no MSG that is only the BOM.
type Received struct {
	Params map[string]string
	MSG    string
}

// ErrReassemble is wrapped by every error of Reassemble.
var ErrReassemble = errors.New("reassemble")

// Reassemble returns the raw_data of one event from its messages as
// received, in part order (one message for an event that was not split).
// It undoes the wire form exactly: it takes the BOM off each MSG, decodes
// base64 parts, and adds back the
// line-end bytes the eol parameter names (a single LF when it is absent).
// For a split event it checks that the parts are numbered 1..n, agree on
// every event parameter, follow each other without gap or overlap (offset),
// and that the result has the announced length and SHA-256: so a receiver
// that dropped, repeated, reordered or altered a part is detected, not
// silently joined.
func Reassemble(msgs []Received) (string, error) {
	if len(msgs) == 0 {
		return "", fmt.Errorf("%w: no message", ErrReassemble)
	}
	first := msgs[0].Params
	eol, err := decodeEOL(first)
	if err != nil {
		return "", err
	}
	if _, split := first["parts"]; !split {
		if len(msgs) != 1 {
			return "", fmt.Errorf("%w: %d messages without part numbers", ErrReassemble, len(msgs))
		}
		if _, ok := first["part"]; ok {
			return "", fmt.Errorf("%w: part without parts", ErrReassemble)
		}
		text, err := unBOM(msgs[0].MSG, 1)
		if err != nil {
			return "", err
		}
		return text + eol, nil
	}
	n, err := intParam(first, "parts")
	if err != nil {
		return "", err
	}
	if n != len(msgs) {
		return "", fmt.Errorf("%w: %d messages of an event in %d parts", ErrReassemble, len(msgs), n)
	}
	length, err := intParam(first, "length")
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.Grow(length)
	for i, m := range msgs {
		for _, k := range []string{"event_id", "parts", "length", "sha256", "eol"} {
			if m.Params[k] != first[k] {
				return "", fmt.Errorf("%w: part %d: %s %q, part 1 has %q", ErrReassemble, i+1, k, m.Params[k], first[k])
			}
		}
		part, err := intParam(m.Params, "part")
		if err != nil {
			return "", err
		}
		if part != i+1 {
			return "", fmt.Errorf("%w: message %d is part %d", ErrReassemble, i+1, part)
		}
		off, err := intParam(m.Params, "offset")
		if err != nil {
			return "", err
		}
		if off != b.Len() {
			return "", fmt.Errorf("%w: part %d at offset %d, want %d", ErrReassemble, part, off, b.Len())
		}
		text, err := unBOM(m.MSG, part)
		if err != nil {
			return "", err
		}
		switch enc := m.Params["encoding"]; enc {
		case "":
		case "base64":
			raw, err := base64.StdEncoding.DecodeString(text)
			if err != nil {
				return "", fmt.Errorf("%w: part %d: %v", ErrReassemble, part, err)
			}
			text = string(raw)
		default:
			return "", fmt.Errorf("%w: part %d: unknown encoding %q", ErrReassemble, part, enc)
		}
		if b.Len()+len(text) > length {
			return "", fmt.Errorf("%w: part %d ends after the event's length %d", ErrReassemble, part, length)
		}
		b.WriteString(text)
	}
	b.WriteString(eol)
	raw := b.String()
	if len(raw) != length {
		return "", fmt.Errorf("%w: %d bytes, want length %d", ErrReassemble, len(raw), length)
	}
	sum := sha256.Sum256([]byte(raw))
	if got := hex.EncodeToString(sum[:]); got != first["sha256"] {
		return "", fmt.Errorf("%w: SHA-256 %s, want %s", ErrReassemble, got, first["sha256"])
	}
	return raw, nil
}

// ReassembleJSON returns the json parameter of one event from its messages
// as received, in part order: the whole json of an unsplit message, or the
// pieces that the parts of a split event carry (json and json_offset)
// joined. ok is false when no message carries json (a forwarder before
// split events carried it, or the parameter was removed). For a split
// event it checks that the pieces follow each other from offset 0 without
// gap or overlap, so a piece lost or repeated in the middle is detected
// here; that the json is whole and the one the forwarder sent is what the
// event's hash, recomputed from it and the reassembled raw_data, proves
// (auditpipe verify --from-syslog).
func ReassembleJSON(msgs []Received) (js string, ok bool, err error) {
	if len(msgs) == 0 {
		return "", false, fmt.Errorf("%w: no message", ErrReassemble)
	}
	if _, split := msgs[0].Params["parts"]; !split {
		p := msgs[0].Params
		if _, has := p["json_offset"]; has {
			return "", false, fmt.Errorf("%w: json_offset without parts", ErrReassemble)
		}
		js, ok = p["json"]
		return js, ok, nil
	}
	var b strings.Builder
	for i, m := range msgs {
		piece, has := m.Params["json"]
		if !has {
			if _, ok := m.Params["json_offset"]; ok {
				return "", false, fmt.Errorf("%w: part %d: json_offset without json", ErrReassemble, i+1)
			}
			continue
		}
		off, err := intParam(m.Params, "json_offset")
		if err != nil {
			return "", false, fmt.Errorf("%w (part %d)", err, i+1)
		}
		if off != b.Len() {
			return "", false, fmt.Errorf("%w: part %d: json piece at offset %d, want %d", ErrReassemble, i+1, off, b.Len())
		}
		b.WriteString(piece)
		ok = true
	}
	return b.String(), ok, nil
}

// unBOM returns msg without the BOM it must start with, if not empty.
func unBOM(msg string, part int) (string, error) {
	if msg == "" {
		return "", nil
	}
	text, ok := strings.CutPrefix(msg, bom)
	if !ok {
		return "", fmt.Errorf("%w: part %d: MSG does not start with the BOM", ErrReassemble, part)
	}
	return text, nil
}

// decodeEOL returns the line-end bytes the eol parameter names: "n" (LF)
// when it is absent.
func decodeEOL(params map[string]string) (string, error) {
	v, ok := params["eol"]
	if !ok {
		return "\n", nil
	}
	b := make([]byte, len(v))
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case 'n':
			b[i] = '\n'
		case 'r':
			b[i] = '\r'
		case '0':
			b[i] = 0
		default:
			return "", fmt.Errorf("%w: eol %q: want letters n, r and 0", ErrReassemble, v)
		}
	}
	return string(b), nil
}

// intParam returns the non-negative decimal parameter k.
func intParam(params map[string]string, k string) (int, error) {
	v, ok := params[k]
	if !ok {
		return 0, fmt.Errorf("%w: no %s", ErrReassemble, k)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || strconv.Itoa(n) != v {
		return 0, fmt.Errorf("%w: %s %q: want a decimal number", ErrReassemble, k, v)
	}
	return n, nil
}
