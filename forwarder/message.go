package forwarder

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/leodido/go-syslog/v4/rfc5424"

	"github.com/auditpipe/auditpipe/schemas"
)

// RFC 5424 header limits (section 6).
const (
	maxHostname = 255
	maxAppName  = 48
	maxProcID   = 128
	maxMsgID    = 32
	maxSDName   = 32
)

// MinMessageSize is the smallest maximum message size a destination may
// configure: RFC 5424 receivers must accept 480 octets.
const MinMessageSize = 480

// minChunk is the least payload a part must carry; below it the headers
// alone are too large for the limit and the event is dead-lettered.
const minChunk = 64

// ErrHeaderTooLarge means an event's header and structured data alone do
// not fit the maximum message size, so it cannot be split into parts.
var ErrHeaderTooLarge = errors.New("syslog header and structured data exceed the maximum message size")

// Format is how a destination renders events; every field has a default
// (see Destination).
type Format struct {
	AppName      string
	SDName       string
	EnterpriseID int
	Facility     int
	// Severities overrides the severity of event classes; a class not in
	// it has its DefaultSeverity.
	Severities map[Class]int
	MaxSize    int
}

// bom is the Unicode byte order mark that RFC 5424 section 6.4 wants at the
// start of a UTF-8 MSG. Every MSG sent starts with it: the MSG is raw_data,
// UTF-8 by the contract, and the BOM also keeps a receiver from touching
// what a part starts with.
const bom = "\uFEFF"

// maxEOL bounds how many line-end bytes at the end of raw_data are taken off
// the wire form and named in the eol parameter; a longer run is sent, base64
// encoded, in a part of its own.
const maxEOL = 32

// formatter renders events as RFC 5424 messages, each already framed for
// RFC 5425 ("LEN SP MSG"). The constant parts are checked once with
// go-syslog's builder; the per-event parts are made valid by construction
// (sanitised and truncated to the header limits, SD-PARAM values escaped),
// which the round-trip and fuzz tests check against go-syslog's parser.
type formatter struct {
	pri     [numClasses]string // "<PRI>1 " per event class
	appName string
	sdID    string
	maxSize int
}

func newFormatter(f Format) (*formatter, error) {
	if f.Facility < 0 || f.Facility > 23 {
		return nil, fmt.Errorf("facility %d: want 0..23", f.Facility)
	}
	sev := DefaultSeverities()
	for c, v := range f.Severities {
		i, ok := classIndex(c)
		if !ok {
			return nil, fmt.Errorf("severities: %q is not an event class (want one of %v)", c, Classes())
		}
		if v < 0 || v > 7 {
			return nil, fmt.Errorf("severities.%s %d: want 0..7", c, v)
		}
		sev[i] = v
	}
	if f.MaxSize < MinMessageSize {
		return nil, fmt.Errorf("max_message_size %d: want at least %d", f.MaxSize, MinMessageSize)
	}
	if f.EnterpriseID <= 0 {
		return nil, fmt.Errorf("enterprise_id %d: want a private enterprise number > 0", f.EnterpriseID)
	}
	if len(f.SDName) > maxSDName-1-len(strconv.Itoa(f.EnterpriseID)) {
		return nil, fmt.Errorf("sd_name %q: SD-ID %s@%d is longer than %d characters", f.SDName, f.SDName, f.EnterpriseID, maxSDName)
	}
	sdID := f.SDName + "@" + strconv.Itoa(f.EnterpriseID)
	// go-syslog's builder ignores values that its grammar rejects: a value
	// that does not stick is invalid.
	b := &rfc5424.SyslogMessage{}
	b.SetAppname(f.AppName)
	if b.Appname == nil || *b.Appname != f.AppName || len(f.AppName) > maxAppName {
		return nil, fmt.Errorf("app_name %q: want 1 to %d printable ASCII characters", f.AppName, maxAppName)
	}
	b.SetElementID(sdID)
	if b.StructuredData == nil || len(*b.StructuredData) != 1 || f.SDName == "" {
		return nil, fmt.Errorf("sd_name %q: not a valid SD-NAME (printable ASCII without '=', ' ', ']', '\"', '@')", f.SDName)
	}
	fm := &formatter{appName: f.AppName, sdID: sdID, maxSize: f.MaxSize}
	for i := range fm.pri {
		fm.pri[i] = "<" + strconv.Itoa(f.Facility*8+sev[i]) + ">1 "
	}
	return fm, nil
}

// frames renders ev as one framed message, or as numbered parts when the
// message would exceed the maximum size. Each frame is "LEN SP MSG".
func (f *formatter) frames(ev *schemas.Event) ([][]byte, error) {
	return f.appendFrames(nil, nil, ev, canonJSON{})
}

// canonJSON is an event's canonical JSON as it came (a Kafka value, an
// input line), when schemas.Event.DecodeJSONCanonical found it canonical:
// b[rawStart:rawEnd] is raw_data's value in it. The zero value: not known.
type canonJSON struct {
	b                []byte
	rawStart, rawEnd int
}

// canonOf returns b as the canonical JSON of the event it decoded to, when
// c says it is.
func canonOf(b []byte, c schemas.Canonical) canonJSON {
	if !c.OK {
		return canonJSON{}
	}
	return canonJSON{b: b, rawStart: c.RawStart, rawEnd: c.RawEnd}
}

// appendFrames is frames appending to dst, with the bytes of an unsplit
// message taken from a (nil: allocated on their own). The header is built
// on the stack, so an event costs one exact-size copy and no allocation of
// its own when a is set.
//
// The wire form of raw_data (see the README's "Wire form"): MSG is the BOM
// and raw_data without the line-end bytes (LF, CR, NUL) it ends with, which
// receivers strip; the eol parameter names them when they are not the
// usual single LF. Every message carries the json parameter: a message
// that would exceed the maximum size with it is split, and its parts carry
// the json in pieces (split).
//
// cj, when set, is ev's canonical JSON as it came: it is hashed and quoted
// as it is instead of encoding ev again (the same bytes, see
// DecodeJSONCanonical).
func (f *formatter) appendFrames(dst [][]byte, a *arena, ev *schemas.Event, cj canonJSON) ([][]byte, error) {
	msg := ev.RawData
	if !utf8.ValidString(msg) {
		msg = toValidUTF8(msg)
	}
	body, eol := cutEOL(msg)
	if !isHexOrEmpty(ev.PrevHash) {
		c := *ev
		c.PrevHash = "invalid" // Validate refuses it; never sent unescaped
		ev = &c
		cj = canonJSON{} // not the bytes of this event any more
	}
	// The event's canonical bytes, as they came or encoded once: their
	// hash is the hash parameter, and without raw_data's value they are
	// the json one.
	canon, rawStart, rawEnd := cj.b, cj.rawStart, cj.rawEnd
	if canon == nil {
		var jbuf [2048]byte
		canon, rawStart, rawEnd = ev.AppendJSONRawSpan(jbuf[:0])
	}
	var hbuf [2 * sha256.Size]byte
	sum := sha256.Sum256(canon)
	hex.Encode(hbuf[:], sum[:])
	x := sdExtra{eol: eol, hash: hbuf[:], canon: canon, rawStart: rawStart, rawEnd: rawEnd}
	var scratch [2048]byte
	base := f.header(scratch[:0], ev)
	// With the json parameter, which every message carries: whole when
	// the message fits, else in pieces across the parts of a split event
	// (see the README's "Wire form").
	x.json = true
	head := f.appendSD(base, ev, x)
	size := len(head)
	if body != "" {
		size += 1 + len(bom) + len(body)
	}
	// rsyslog, at its defaults, escapes each control character as #ooo
	// and then cuts the message at its maxMessageSize: the limit is kept
	// with each control character counted four times.
	// A message of a quarter of the limit fits however many control
	// characters it has: they need not be counted.
	fits := 4*size <= f.maxSize || size+3*(controls(head)+controls(body)) <= f.maxSize
	if fits && (body == "" || !isEOL(body[len(body)-1])) {
		return append(dst, appendFrame(a.alloc(size+frameDigits(size)+1), head, body)), nil
	}
	// New variables for the closure, so that scratch stays on the stack.
	e, partBase := ev, f.header(make([]byte, 0, 256), ev)
	js := string(canon[:rawStart]) + `""` + string(canon[rawEnd:]) // the json parameter's value
	parts, err := f.split(ev.EventID, msg, body, js, sdExtra{hash: bytes.Clone(x.hash), eol: eol}, func(x sdExtra) []byte { return f.appendSD(partBase, e, x) })
	if err != nil {
		return dst, err
	}
	return append(dst, parts...), nil
}

// controls returns the number of control characters (below 0x20) in b,
// each of which rsyslog's default escaping makes four bytes (#ooo).
func controls[T string | []byte](b T) int {
	n := 0
	for i := 0; i < len(b); i++ {
		if b[i] < 0x20 {
			n++
		}
	}
	return n
}

// isEOL reports whether c is a byte that receivers strip from the end of a
// message (syslog-ng LF and NUL, rsyslog one LF; CR to be safe).
func isEOL(c byte) bool { return c == '\n' || c == '\r' || c == 0 }

// cutEOL splits s into its body and the line-end bytes it ends with (at
// most maxEOL), the latter spelled as the eol parameter does: one letter a
// byte, n for LF, r for CR, 0 for NUL.
func cutEOL(s string) (body, eol string) {
	i := len(s)
	for i > 0 && len(s)-i < maxEOL && isEOL(s[i-1]) {
		i--
	}
	if i == len(s)-1 && s[i] == '\n' {
		return s[:i], "n" // the usual end, " \n": spelled here, not on the wire
	}
	var b strings.Builder
	for _, c := range []byte(s[i:]) {
		switch c {
		case '\n':
			b.WriteByte('n')
		case '\r':
			b.WriteByte('r')
		default:
			b.WriteByte('0')
		}
	}
	return s[:i], b.String()
}

// sdExtra is what a message's structured data carries beyond the event's
// fields: the eol parameter, and for a part of a split event its place.
type sdExtra struct {
	hash []byte // the hash parameter: the event's hash (schemas.Event.Hash), hex
	json bool   // write the json parameter
	// canon is the event's canonical JSON and canon[rawStart:rawEnd]
	// raw_data's value in it: the json parameter is canon with that value
	// empty (set when json is).
	canon            []byte
	rawStart, rawEnd int
	eol              string // the eol parameter; "n", the default, is not written
	part             int    // 1-based; 0: not split
	parts            int
	offset           int    // byte offset of the part's MSG (decoded) in raw_data
	length           int    // bytes of raw_data
	sha256           string // hex SHA-256 of raw_data
	base64           bool   // the part's MSG is base64
	// For a part that carries a piece of the json parameter (split): the
	// piece and its byte offset in the json.
	jsonPart   bool
	jsonPiece  string
	jsonOffset int
}

// base64Param marks a part whose MSG is base64.
const base64Param = ` encoding="base64"`

// piece is a part's share of the body: up to end, base64 encoded or not.
type piece struct {
	end    int
	base64 bool
}

// split cuts body (msg without its line end, eol) and js (the json
// parameter's value, "" for none) into the fewest parts whose messages fit
// maxSize, each with part, parts, offset, length and sha256 in its
// structured data; sd returns the header and structured data of a message
// with x (the message's own parameters, as x carries them, plus the
// part's), valid until its next call.
//
// The json goes first: parts 1, 2, … carry it in pieces (json, with
// json_offset), each as long as a part's room allows, and
// the MSG starts beside the last piece when at least minChunk bytes of room
// are left there, else in the next part. No part's MSG ends with a line-end
// byte or inside a UTF-8 sequence: the cut moves back until it does not.
// Where no such cut exists within a part (a run of line-end bytes longer
// than a part), that part's MSG is its bytes in base64, with
// encoding="base64". A json piece ends on a UTF-8 boundary. id names the
// event in errors.
func (f *formatter) split(id, msg, body, js string, x sdExtra, sd func(x sdExtra) []byte) ([][]byte, error) {
	sum := sha256.Sum256([]byte(msg))
	x.json = false
	x.length, x.sha256 = len(msg), hex.EncodeToString(sum[:])
	// cost is a message's size once rsyslog has escaped it (see appendFrames).
	cost := func(b []byte) int { return len(b) + 3*controls(b) }
	for digits := 1; digits <= 9; digits++ {
		// The widest part header for n parts of this many digits, and the
		// widest with a json piece (those parts come before the MSG, at
		// offset 0, and the last of them leaves room for encoding="base64"
		// if the MSG starts beside it).
		x.part, x.parts, x.offset, x.base64 = pow10(digits)-1, pow10(digits)-1, len(msg), true
		x.jsonPart, x.jsonPiece, x.jsonOffset = false, "", 0
		chunk := f.maxSize - (cost(sd(x)) + 1 + len(bom))
		x.offset, x.base64 = 0, false
		x.jsonPart, x.jsonOffset = js != "", len(js)
		chunkJ := f.maxSize - (cost(sd(x)) + 1 + len(bom))
		if widest := f.maxSize - min(chunk, chunkJ); chunk < minChunk || chunkJ < minChunk {
			return nil, fmt.Errorf("event %s: %w (%d bytes of %d)", id, ErrHeaderTooLarge, widest, f.maxSize)
		}
		jsonEnds, left := cutJSON(js, chunkJ)
		first := 0 // the MSG starts in a part of its own
		if left -= len(base64Param); len(jsonEnds) > 0 && left >= minChunk {
			first = left // the MSG starts beside the last json piece
		}
		pieces := cutPieces(body, first, chunk)
		msgStart := len(jsonEnds) // the part (0-based) of the first MSG piece
		if first > 0 {
			msgStart--
		}
		n := max(len(jsonEnds), msgStart+len(pieces))
		if n == 0 {
			return nil, fmt.Errorf("event %s: nothing to send in parts", id)
		}
		if len(strconv.Itoa(n)) > digits {
			continue
		}
		out := make([][]byte, 0, n)
		jstart, start, next := 0, 0, 0
		for i := range n {
			x.part, x.parts, x.offset, x.base64 = i+1, n, start, false
			x.jsonPart = i < len(jsonEnds)
			x.jsonPiece, x.jsonOffset = "", 0
			if x.jsonPart {
				x.jsonPiece, x.jsonOffset = js[jstart:jsonEnds[i]], jstart
				jstart = jsonEnds[i]
			}
			text := ""
			if i >= msgStart && next < len(pieces) {
				p := pieces[next]
				next++
				text = body[start:p.end]
				if p.base64 {
					text = base64.StdEncoding.EncodeToString([]byte(text))
				}
				x.base64 = p.base64
				start = p.end
			}
			out = append(out, frame(sd(x), text))
		}
		return out, nil
	}
	return nil, fmt.Errorf("event %s: MSG of %d bytes needs too many parts", id, len(msg))
}

// cutJSON returns the ends of consecutive pieces of js, each at most room
// bytes as an SD-PARAM value on the wire (escaped, and with rsyslog's
// escaping of control characters) and ending on a UTF-8 boundary, and the
// room left beside the last piece. room must exceed the widest byte (4).
func cutJSON(js string, room int) (ends []int, left int) {
	for start := 0; start < len(js); {
		end, used := start, 0
		for end < len(js) {
			c := js[end]
			w := 1 + int(paramEscape[c])
			if c < 0x20 {
				w += 3
			}
			if used+w > room {
				break
			}
			used += w
			end++
		}
		for end < len(js) && end > start && !utf8.RuneStart(js[end]) {
			used-- // a byte of a multi-byte rune: 1 on the wire
			end--
		}
		ends, left = append(ends, end), room-used
		start = end
	}
	return ends, left
}

// cutPieces returns consecutive pieces of s, each at most max bytes on the
// wire after rsyslog's escaping (a control character counts 4), the first
// at most first bytes when first > 0, ending on a UTF-8 boundary and not
// with a line-end byte; a piece for which no such end exists is base64
// (max/4*3 bytes or fewer).
func cutPieces(s string, first, max int) []piece {
	var out []piece
	okEnd := func(end int) bool {
		return !isEOL(s[end-1]) && (end == len(s) || utf8.RuneStart(s[end]))
	}
	for start := 0; start < len(s); {
		lim := max
		if len(out) == 0 && first > 0 {
			lim = first
		}
		end, cost := start, 0
		for end < len(s) {
			w := 1
			if s[end] < 0x20 {
				w = 4
			}
			if cost+w > lim {
				break
			}
			cost += w
			end++
		}
		for end > start && !okEnd(end) {
			end--
		}
		if end > start {
			out = append(out, piece{end: end})
			start = end
			continue
		}
		end = min(start+lim/4*3, len(s))
		for end > start+1 && end < len(s) && !utf8.RuneStart(s[end]) {
			end--
		}
		out = append(out, piece{end: end, base64: true})
		start = end
	}
	return out
}

func pow10(d int) int {
	n := 1
	for range d {
		n *= 10
	}
	return n
}

// header appends "<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID ".
func (f *formatter) header(b []byte, ev *schemas.Event) []byte {
	b = append(b, f.pri[classify(ev)]...)
	b = appendTimestamp(b, ev.TS)
	b = append(b, ' ')
	b = appendHeaderField(b, ev.Host, maxHostname)
	b = append(b, ' ')
	b = append(b, f.appName...)
	b = append(b, " - "...) // PROCID: the sender's process is of no interest to the SIEM
	b = appendHeaderField(b, string(ev.Event), maxMsgID)
	return append(b, ' ')
}

func isHexOrEmpty(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// appendJSONParamValue is appendParamValue for JSON that AppendJSON wrote
// (valid UTF-8, so only the escapes are needed). Canonical JSON has an
// escape every few bytes (each key's quotes), so when b has room for the
// worst case every byte is copied without a branch, a backslash written
// before it and kept only when paramEscape says so; otherwise the next
// byte to escape is found 8 bytes at a time.
func appendJSONParamValue(b, j []byte) []byte {
	n := len(b)
	if cap(b)-n >= 2*len(j) {
		out := b[:n+2*len(j)]
		for _, c := range j {
			out[n] = '\\'
			n += int(paramEscape[c])
			out[n] = c
			n++
		}
		return out[:n]
	}
	start, i := 0, 0
	for {
		for i+8 <= len(j) {
			if m := jsonSpecial8(binary.LittleEndian.Uint64(j[i:])); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		for i < len(j) && paramEscape[j[i]] == 0 {
			i++
		}
		if i >= len(j) {
			return append(b, j[start:]...)
		}
		b = append(b, j[start:i]...)
		b = append(b, '\\', j[i])
		i++
		start = i
	}
}

// paramEscape is 1 for the bytes an SD-PARAM value escapes with a
// backslash: '"', '\\' and ']'.
var paramEscape = [256]uint8{'"': 1, '\\': 1, ']': 1}

// jsonSpecial8 is not zero when one of the 8 bytes of x is '"', '\\' or
// ']': the high bit of each such byte (and possibly of bytes above the
// first such one, after a borrow) is set.
func jsonSpecial8(x uint64) uint64 {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	q, bs, br := x^(lo*'"'), x^(lo*'\\'), x^(lo*']')
	return ((q-lo)&^q | (bs-lo)&^bs | (br-lo)&^br) & hi
}

// appendSD appends the structured-data element: SD-ID, then req_auth_id,
// layer, event, loginid, host, event_id, seq, prev_hash, hash and, when
// x.json, json (the event's canonical JSON without raw_data), then what x
// adds: eol when it
// is not "n"; part, parts, offset, length and sha256 for a part of a split
// event, and encoding="base64" for a part so encoded.
func (f *formatter) appendSD(b []byte, ev *schemas.Event, x sdExtra) []byte {
	b = append(b, '[')
	b = append(b, f.sdID...)
	b = append(b, ` req_auth_id="`...)
	b = appendParamValue(b, ev.ReqAuthID)
	b = append(b, `" layer="`...)
	b = appendParamValue(b, ev.Layer)
	b = append(b, `" event="`...)
	b = appendParamValue(b, string(ev.Event))
	b = append(b, `" loginid="`...)
	b = appendParamValue(b, ev.LoginID)
	b = append(b, `" host="`...)
	b = appendParamValue(b, ev.Host)
	b = append(b, `" event_id="`...)
	b = appendParamValue(b, ev.EventID)
	b = append(b, `" seq="`...)
	b = strconv.AppendUint(b, ev.Seq, 10)
	b = append(b, `" prev_hash="`...)
	b = append(b, ev.PrevHash...) // hex, or a sanitised value (see appendFrames)
	b = append(b, `" hash="`...)
	b = append(b, x.hash...)
	b = append(b, '"')
	if x.json {
		b = append(b, ` json="`...)
		b = appendJSONParamValue(b, x.canon[:x.rawStart])
		b = append(b, `\"\"`...) // raw_data's value, empty
		b = appendJSONParamValue(b, x.canon[x.rawEnd:])
		b = append(b, '"')
	}
	return appendSDTail(b, x)
}

// appendSDTail appends what x adds to a message's structured data, then
// the element's closing bracket: eol when it is not "n"; part, parts,
// offset, length and sha256 for a part of a split event, and
// encoding="base64" for a part so encoded.
func appendSDTail(b []byte, x sdExtra) []byte {
	if x.eol != "n" {
		b = append(b, ` eol="`...)
		b = append(b, x.eol...)
		b = append(b, '"')
	}
	if x.parts > 0 {
		b = append(b, ` part="`...)
		b = strconv.AppendInt(b, int64(x.part), 10)
		b = append(b, `" parts="`...)
		b = strconv.AppendInt(b, int64(x.parts), 10)
		b = append(b, `" offset="`...)
		b = strconv.AppendInt(b, int64(x.offset), 10)
		b = append(b, `" length="`...)
		b = strconv.AppendInt(b, int64(x.length), 10)
		b = append(b, `" sha256="`...)
		b = append(b, x.sha256...)
		b = append(b, '"')
		if x.base64 {
			b = append(b, base64Param...)
		}
		if x.jsonPart {
			b = append(b, ` json="`...)
			b = appendParamValue(b, x.jsonPiece)
			b = append(b, `" json_offset="`...)
			b = strconv.AppendInt(b, int64(x.jsonOffset), 10)
			b = append(b, '"')
		}
	}
	return append(b, ']')
}

// appendParamValue appends an SD-PARAM value escaped as RFC 5424 section
// 6.3.3 requires: '"', '\' and ']' get a backslash. Invalid UTF-8 becomes
// U+FFFD.
func appendParamValue(b []byte, value string) []byte {
	// Fast path: plain ASCII with nothing to escape, the usual value,
	// checked 8 bytes at a time.
	i := 0
	for ; i+8 <= len(value); i += 8 {
		if sdSpecial8(value[i : i+8]) {
			break
		}
	}
	for i < len(value) && !sdSpecial[value[i]] {
		i++
	}
	if i == len(value) {
		return append(b, value...)
	}
	if !utf8.ValidString(value[i:]) {
		value = value[:i] + toValidUTF8(value[i:])
	}
	start := 0
	for ; i < len(value); i++ {
		switch value[i] {
		case '"', '\\', ']':
			b = append(b, value[start:i]...)
			b = append(b, '\\', value[i])
			start = i + 1
		}
	}
	return append(b, value[start:]...)
}

// sdSpecial marks the bytes that end appendParamValue's fast path: those
// to escape, and every non-ASCII byte (UTF-8 is checked on the slow path).
var sdSpecial = func() (t [256]bool) {
	t['"'], t['\\'], t[']'] = true, true, true
	for c := 0x80; c < 0x100; c++ {
		t[c] = true
	}
	return t
}()

// sdSpecial8 reports whether any of the 8 bytes of s is one sdSpecial
// marks: a zero byte after XOR with '"', '\\' or ']', or a high bit set.
func sdSpecial8(s string) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	_ = s[7]
	x := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
	q, bs, br := x^(lo*'"'), x^(lo*'\\'), x^(lo*']')
	return ((q-lo)&^q|(bs-lo)&^bs|(br-lo)&^br|x)&hi != 0
}

// appendHeaderField appends s as a header field of at most max printable
// US-ASCII characters (33..126): other bytes become '_', an empty value is
// the NILVALUE "-", and a longer value is cut at max.
func appendHeaderField(b []byte, s string, max int) []byte {
	if s == "" {
		return append(b, '-')
	}
	if len(s) > max {
		s = s[:max]
	}
	i := 0
	for i < len(s) && s[i] >= 33 && s[i] <= 126 {
		i++
	}
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		c := s[i]
		if c < 33 || c > 126 {
			c = '_'
		}
		b = append(b, c)
	}
	return b
}

// appendTimestamp appends the event's ts (RFC 3339) as an RFC 5424
// TIMESTAMP in UTC with milliseconds, or the NILVALUE when ts is not a time.
func appendTimestamp(b []byte, ts string) []byte {
	if canonicalTS(ts) {
		// Already what the slow path would print: the contract's form.
		return append(b, ts...)
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return append(b, '-')
	}
	return t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
}

// canonicalTS reports whether ts is a valid time in exactly the form
// appendTimestamp prints, "2006-01-02T15:04:05.000Z" (the contract's ts),
// so it can be copied as it is. Anything else takes time.Parse.
func canonicalTS(ts string) bool {
	const layout = "dddd-dd-ddTdd:dd:dd.dddZ" // d: a decimal digit
	if len(ts) != len(layout) {
		return false
	}
	for i := 0; i < len(layout); i++ {
		if layout[i] == 'd' {
			if ts[i]-'0' > 9 {
				return false
			}
		} else if ts[i] != layout[i] {
			return false
		}
	}
	num := func(i int) int { return int(ts[i]-'0')*10 + int(ts[i+1]-'0') }
	year := num(0)*100 + num(2)
	month, day := num(5), num(8)
	if month < 1 || month > 12 || day < 1 || num(11) > 23 || num(14) > 59 || num(17) > 59 {
		return false
	}
	days := [...]int{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[month-1]
	if month == 2 && year%4 == 0 && (year%100 != 0 || year%400 == 0) {
		days = 29
	}
	return day <= days
}

// frame returns "LEN SP head[ SP BOM msg]".
func frame(head []byte, msg string) []byte {
	n := len(head)
	if msg != "" {
		n += 1 + len(bom) + len(msg)
	}
	return appendFrame(make([]byte, 0, n+frameDigits(n)+1), head, msg)
}

// appendFrame appends "LEN SP head[ SP BOM msg]" to b: a MSG is UTF-8
// and starts with the BOM (RFC 5424 section 6.4); an empty one is left out.
func appendFrame(b, head []byte, msg string) []byte {
	n := len(head)
	if msg != "" {
		n += 1 + len(bom) + len(msg)
	}
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, ' ')
	b = append(b, head...)
	if msg != "" {
		b = append(b, ' ')
		b = append(b, bom...)
		b = append(b, msg...)
	}
	return b
}

// frameDigits is the number of decimal digits of n > 0.
func frameDigits(n int) int {
	d := 1
	for ; n >= 10; n /= 10 {
		d++
	}
	return d
}

// arena hands out the bytes of frames from large chunks, so rendering a
// message does not allocate on its own and the garbage collector sees a
// few large objects instead of one per message. A chunk lives as long as
// any frame in it: with the in-flight window, about one chunk more than
// the window's bytes. Not safe for concurrent use; a nil arena allocates.
type arena struct{ buf []byte }

const (
	arenaChunk = 256 << 10
	arenaMax   = arenaChunk / 16 // larger frames get their own allocation
)

// alloc returns an empty slice with capacity n.
func (a *arena) alloc(n int) []byte {
	if a == nil || n > arenaMax {
		return make([]byte, 0, n)
	}
	if cap(a.buf)-len(a.buf) < n {
		a.buf = make([]byte, 0, arenaChunk)
	}
	l := len(a.buf)
	a.buf = a.buf[:l+n]
	return a.buf[l : l : l+n]
}

// toValidUTF8 replaces each run of invalid bytes with U+FFFD: RFC 5424
// wants UTF-8 in SD-PARAM values, and the contract's strings are UTF-8.
func toValidUTF8(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

// Frames renders ev as the forwarder sends it with format f: one RFC 5425
// frame ("LEN SP MSG") per message, several for a split event. It is for
// tools and tests that need the exact wire form (auditpipe verify's tests
// write a SIEM's file with it).
func Frames(f Format, ev *schemas.Event) ([][]byte, error) {
	fm, err := newFormatter(f)
	if err != nil {
		return nil, err
	}
	return fm.frames(ev)
}
