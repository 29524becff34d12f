package schemas

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sync"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// This file is the hand-written strict decoder of Event. It accepts exactly
// what the former decoder (encoding/json's Decoder with
// DisallowUnknownFields, then a check for trailing data) accepted and
// decodes to the same value, with one documented exception (see
// DecodeJSON), at a fraction of the cost: no reflection, and one allocation
// for all string fields together (plus one per non-empty array).

// ErrSyntax is wrapped by the errors of DecodeJSON (and UnmarshalJSON) for
// input that is not JSON, as opposed to JSON that does not fit the contract
// (unknown field, wrong type). Check with errors.Is.
var ErrSyntax = errors.New("invalid JSON")

// DecodeJSON decodes b, one JSON object, into e, strictly:
//
//   - the keys are the json tags of Event's fields; an unknown key is an
//     error. As in encoding/json, a key that matches no tag exactly is
//     matched case-insensitively (Unicode simple folding), and when a key
//     repeats the last value wins;
//   - "args" and "escaped" are arrays of strings, "seq", "chain_first",
//     "chain_last" and "chain_count" unsigned integers (no sign, fraction,
//     exponent or overflow), every other field a string; null leaves a
//     string or an integer as it is and sets an array to nil, all as
//     encoding/json does (including its reuse of an array decoded before
//     under a repeated key);
//   - strings are unescaped as encoding/json does: invalid UTF-8 and lone
//     surrogates become U+FFFD;
//   - only whitespace may follow the object. The former decoder (via
//     json.Decoder.More) also accepted a ']' or '}', and anything after
//     it, as the first byte after the object; DecodeJSON rejects that.
//
// The literal null decodes to the zero Event, as before. On error e is left
// unchanged; every error's message starts with "event: ". On success every
// field of e is overwritten, and all its strings are substrings of one
// string, so keeping any of them keeps the whole event's text alive.
//
// UnmarshalJSON is DecodeJSON. json.Unmarshal scans the whole input once
// more before calling UnmarshalJSON, so hot paths call DecodeJSON directly.
func (e *Event) DecodeJSON(b []byte) error {
	d := decoder{data: b}
	bp := bufPool.Get().(*[]byte)
	d.buf = (*bp)[:0]
	err := d.decode(e)
	if cap(d.buf) <= maxPooledBuf {
		*bp = d.buf[:0]
		bufPool.Put(bp)
	}
	return err
}

// maxPooledBuf bounds the scratch buffers kept for reuse.
const maxPooledBuf = 64 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// Field numbers: the string fields first, in Event's order, then the rest.
const (
	fLayer = iota
	fReqAuthID
	fEvent
	fSrcHost
	fRes
	fDestHost
	fPID
	fTitle
	fRecID
	fTTY
	fHost
	fTime
	fRawData
	fLoginID
	fPPID
	fSes
	fEUID
	fExe
	fCwd
	fKeys
	fEventID
	fTS
	fPrevHash
	fChainHead
	fKeyID
	fSig
	nStringFields
)

const (
	fArgs = nStringFields + iota
	fEscaped
	fSeq
	fChainFirst
	fChainLast
	fChainCount
	nFields
)

// nUintFields is the number of unsigned integer fields, fSeq on.
const nUintFields = nFields - fSeq

// fieldNames are the json tags, by field number.
var fieldNames = [nFields]string{
	fLayer:      "layer",
	fReqAuthID:  "req_auth_id",
	fEvent:      "event",
	fSrcHost:    "srchost",
	fRes:        "res",
	fDestHost:   "desthost",
	fPID:        "pid",
	fTitle:      "title",
	fRecID:      "rec_id",
	fTTY:        "tty",
	fHost:       "host",
	fTime:       "time",
	fRawData:    "raw_data",
	fLoginID:    "loginid",
	fPPID:       "ppid",
	fSes:        "ses",
	fEUID:       "euid",
	fExe:        "exe",
	fCwd:        "cwd",
	fKeys:       "keys",
	fEventID:    "event_id",
	fTS:         "ts",
	fPrevHash:   "prev_hash",
	fChainHead:  "chain_head",
	fKeyID:      "key_id",
	fSig:        "sig",
	fArgs:       "args",
	fEscaped:    "escaped",
	fSeq:        "seq",
	fChainFirst: "chain_first",
	fChainLast:  "chain_last",
	fChainCount: "chain_count",
}

// foldedFieldNames are fieldNames folded as encoding/json folds keys.
var foldedFieldNames = func() (f [nFields]string) {
	for i, name := range fieldNames {
		f[i] = string(appendFoldedName(nil, []byte(name)))
	}
	return f
}()

// lookupField returns the number of the field named key, or -1.
func lookupField(key []byte) int {
	switch string(key) {
	case "layer":
		return fLayer
	case "req_auth_id":
		return fReqAuthID
	case "event":
		return fEvent
	case "srchost":
		return fSrcHost
	case "res":
		return fRes
	case "desthost":
		return fDestHost
	case "pid":
		return fPID
	case "title":
		return fTitle
	case "args":
		return fArgs
	case "rec_id":
		return fRecID
	case "tty":
		return fTTY
	case "host":
		return fHost
	case "time":
		return fTime
	case "raw_data":
		return fRawData
	case "loginid":
		return fLoginID
	case "ppid":
		return fPPID
	case "ses":
		return fSes
	case "euid":
		return fEUID
	case "exe":
		return fExe
	case "cwd":
		return fCwd
	case "keys":
		return fKeys
	case "escaped":
		return fEscaped
	case "event_id":
		return fEventID
	case "ts":
		return fTS
	case "seq":
		return fSeq
	case "prev_hash":
		return fPrevHash
	case "chain_first":
		return fChainFirst
	case "chain_last":
		return fChainLast
	case "chain_count":
		return fChainCount
	case "chain_head":
		return fChainHead
	case "key_id":
		return fKeyID
	case "sig":
		return fSig
	}
	// encoding/json's fallback: a case-insensitive match.
	var arr [32]byte
	folded := appendFoldedName(arr[:0], key)
	for i := range foldedFieldNames {
		if string(folded) == foldedFieldNames[i] {
			return i
		}
	}
	return -1
}

// appendFoldedName is encoding/json's key folding (encoding/json/fold.go):
// ASCII letters to upper case, other runes to the smallest rune of their
// simple fold orbit.
func appendFoldedName(out, in []byte) []byte {
	for i := 0; i < len(in); {
		if c := in[i]; c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			out = append(out, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(in[i:])
		out = utf8.AppendRune(out, foldRune(r))
		i += n
	}
	return out
}

func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}

// span is a decoded string: buf[off:end] of the decoder.
type span struct{ off, end int }

// strList is a decoded array of strings. It keeps encoding/json's
// semantics for a key that repeats: the new array is decoded into the old
// slice, so a null element keeps the string an earlier array had at that
// index (up to the longest array since the last reset), and null or an
// empty array resets it.
type strList struct {
	set   bool // false: nil
	n     int  // length
	hi    int  // valid entries of the backing store
	fixed [16]span
	more  []span // the entries from len(fixed) on
}

func (l *strList) reset(set bool) {
	l.set, l.n, l.hi = set, 0, 0
	l.more = l.more[:0]
}

func (l *strList) at(i int) *span {
	if i < len(l.fixed) {
		return &l.fixed[i]
	}
	return &l.more[i-len(l.fixed)]
}

// grow makes entry i (== l.hi) valid and empty.
func (l *strList) grow() {
	if l.hi >= len(l.fixed) {
		l.more = append(l.more, span{})
	} else {
		l.fixed[l.hi] = span{}
	}
	l.hi++
}

func (l *strList) strings(s string) []string {
	if !l.set {
		return nil
	}
	if l.n == 0 {
		return []string{}
	}
	out := make([]string, l.n)
	for i := range out {
		out[i] = sub(s, *l.at(i))
	}
	return out
}

func sub(s string, sp span) string {
	if sp.off == sp.end {
		return ""
	}
	return s[sp.off:sp.end]
}

type decoder struct {
	data []byte
	off  int
	// buf holds the unescaped bytes of every string value; the event's
	// strings are substrings of string(buf).
	buf     []byte
	strs    [nStringFields]span
	args    strList
	escaped strList
	uints   [nUintFields]uint64 // seq and the chain range, by field number - fSeq
}

func (d *decoder) decode(e *Event) error {
	c := d.next()
	switch c {
	case '{':
	case 'n':
		if err := d.literal("null"); err != nil {
			return err
		}
		if err := d.end(); err != nil {
			return err
		}
		*e = Event{}
		return nil
	default:
		if k := d.kind(c); k != "" {
			return fmt.Errorf("event: want a JSON object, got %s", k)
		}
		return d.syntax(d.off, "looking for beginning of value")
	}
	d.off++
	c = d.next()
	if c == '}' {
		d.off++
	} else {
		for {
			if c != '"' {
				return d.syntax(d.off, "looking for beginning of object key string")
			}
			f, err := d.key()
			if err != nil {
				return err
			}
			c = d.next()
			if c != ':' {
				return d.syntax(d.off, "after object key")
			}
			d.off++
			c = d.next()
			switch {
			case f < nStringFields:
				err = d.stringField(f, c)
			case f >= fSeq:
				err = d.uintField(f, c)
			case f == fArgs:
				err = d.listField(&d.args, f, c)
			default:
				err = d.listField(&d.escaped, f, c)
			}
			if err != nil {
				return err
			}
			c = d.next()
			if c == '}' {
				d.off++
				break
			}
			if c != ',' {
				return d.syntax(d.off, "after object key:value pair")
			}
			d.off++
			c = d.next()
		}
	}
	if err := d.end(); err != nil {
		return err
	}

	*e = d.event()
	return nil
}

// event returns the decoded event: its strings are substrings of one
// string, a copy of d.buf.
func (d *decoder) event() Event {
	s := string(d.buf)
	return Event{
		Layer:     sub(s, d.strs[fLayer]),
		ReqAuthID: sub(s, d.strs[fReqAuthID]),
		Event:     Kind(sub(s, d.strs[fEvent])),
		SrcHost:   sub(s, d.strs[fSrcHost]),
		Res:       sub(s, d.strs[fRes]),
		DestHost:  sub(s, d.strs[fDestHost]),
		PID:       sub(s, d.strs[fPID]),
		Title:     sub(s, d.strs[fTitle]),
		Args:      d.args.strings(s),
		RecID:     sub(s, d.strs[fRecID]),
		TTY:       sub(s, d.strs[fTTY]),
		Host:      sub(s, d.strs[fHost]),
		Time:      sub(s, d.strs[fTime]),
		RawData:   sub(s, d.strs[fRawData]),
		LoginID:   sub(s, d.strs[fLoginID]),
		PPID:      sub(s, d.strs[fPPID]),
		Ses:       sub(s, d.strs[fSes]),
		EUID:      sub(s, d.strs[fEUID]),
		Exe:       sub(s, d.strs[fExe]),
		Cwd:       sub(s, d.strs[fCwd]),
		Keys:      sub(s, d.strs[fKeys]),
		Escaped:   d.escaped.strings(s),
		EventID:   sub(s, d.strs[fEventID]),
		TS:        sub(s, d.strs[fTS]),
		Seq:       d.uints[fSeq-fSeq],
		PrevHash:  sub(s, d.strs[fPrevHash]),

		ChainFirst: d.uints[fChainFirst-fSeq],
		ChainLast:  d.uints[fChainLast-fSeq],
		ChainCount: d.uints[fChainCount-fSeq],
		ChainHead:  sub(s, d.strs[fChainHead]),
		KeyID:      sub(s, d.strs[fKeyID]),
		Sig:        sub(s, d.strs[fSig]),
	}
}

// next skips whitespace and returns the byte at d.off, or 0 at the end of
// the input (d.syntax then reports the end).
func (d *decoder) next() byte {
	if d.off < len(d.data) && d.data[d.off] > ' ' {
		return d.data[d.off]
	}
	return d.skipSpace()
}

func (d *decoder) skipSpace() byte {
	for ; d.off < len(d.data); d.off++ {
		switch c := d.data[d.off]; c {
		case ' ', '\t', '\n', '\r':
		default:
			return c
		}
	}
	return 0
}

// end checks that only whitespace follows.
func (d *decoder) end() error {
	for ; d.off < len(d.data); d.off++ {
		switch d.data[d.off] {
		case ' ', '\t', '\n', '\r':
		default:
			return fmt.Errorf("event: %w: trailing data after JSON value at offset %d", ErrSyntax, d.off)
		}
	}
	return nil
}

// key decodes the object key at d.off (an opening quote) and returns its
// field number.
func (d *decoder) key() (int, error) {
	data := d.data
	start := d.off + 1
	i := start
	if i+8 <= len(data) {
		// Keys are short: the first word usually holds the closing quote.
		if m := special8(binary.LittleEndian.Uint64(data[i:])); m != 0 {
			i += bits.TrailingZeros64(m) >> 3
		} else {
			i += 8
		}
	}
	for i < len(data) && plain[data[i]] {
		i++
	}
	if i < len(data) && data[i] == '"' {
		f := lookupField(data[start:i])
		if f < 0 {
			return 0, fmt.Errorf("event: unknown field %q", data[start:i])
		}
		d.off = i + 1
		return f, nil
	}
	// Escapes or non-ASCII: unescape into the tail of buf and drop it.
	mark := len(d.buf)
	if err := d.str(); err != nil {
		return 0, err
	}
	key := d.buf[mark:]
	f := lookupField(key)
	if f < 0 {
		return 0, fmt.Errorf("event: unknown field %q", key)
	}
	d.buf = d.buf[:mark]
	return f, nil
}

func (d *decoder) stringField(f int, c byte) error {
	switch c {
	case '"':
		start := len(d.buf)
		if err := d.str(); err != nil {
			return err
		}
		d.strs[f] = span{start, len(d.buf)}
		return nil
	case 'n':
		return d.literal("null") // null leaves the field as it is
	}
	return d.typeError(f, c, "a string")
}

// uintField decodes the unsigned integer field f (seq or a chain range
// field).
func (d *decoder) uintField(f int, c byte) error {
	switch {
	case c == 'n':
		return d.literal("null")
	case c == '-':
		return fmt.Errorf("event: field %q: want an unsigned integer, got %s", fieldNames[f], d.number(d.off))
	case c < '0' || c > '9':
		return d.typeError(f, c, "an unsigned integer")
	}
	data := d.data
	i := d.off
	var v uint64
	if c == '0' {
		i++
	} else {
		for ; i < len(data) && '0' <= data[i] && data[i] <= '9'; i++ {
			dig := uint64(data[i] - '0')
			if v > (math.MaxUint64-dig)/10 {
				return fmt.Errorf("event: field %q: want an unsigned integer, got %s (overflow)", fieldNames[f], d.number(d.off))
			}
			v = v*10 + dig
		}
	}
	if i < len(data) {
		switch data[i] {
		case '.', 'e', 'E':
			return fmt.Errorf("event: field %q: want an unsigned integer, got %s", fieldNames[f], d.number(d.off))
		}
	}
	d.uints[f-fSeq] = v
	d.off = i
	return nil
}

// number returns the number text at off, for messages, at most 40 bytes.
func (d *decoder) number(off int) string {
	i := off
	for i < len(d.data) && i-off < 40 {
		switch c := d.data[i]; {
		case '0' <= c && c <= '9', c == '-', c == '+', c == '.', c == 'e', c == 'E':
			i++
			continue
		}
		break
	}
	return string(d.data[off:i])
}

func (d *decoder) listField(l *strList, f int, c byte) error {
	switch c {
	case 'n':
		if err := d.literal("null"); err != nil {
			return err
		}
		l.reset(false)
		return nil
	case '[':
	default:
		return d.typeError(f, c, "an array of strings")
	}
	d.off++
	c = d.next()
	if c == ']' {
		d.off++
		l.reset(true)
		return nil
	}
	l.set = true
	for i := 0; ; i++ {
		if i == l.hi {
			l.grow()
		}
		switch c {
		case '"':
			start := len(d.buf)
			if err := d.str(); err != nil {
				return err
			}
			*l.at(i) = span{start, len(d.buf)}
		case 'n':
			// null keeps the element (see strList).
			if err := d.literal("null"); err != nil {
				return err
			}
		default:
			if k := d.kind(c); k != "" {
				return fmt.Errorf("event: field %q: element %d: want a string, got %s", fieldNames[f], i, k)
			}
			return d.syntax(d.off, "looking for beginning of value")
		}
		c = d.next()
		switch c {
		case ']':
			d.off++
			l.n = i + 1
			return nil
		case ',':
			d.off++
			c = d.next()
		default:
			return d.syntax(d.off, "after array element")
		}
	}
}

// literal consumes lit, which starts at d.off.
func (d *decoder) literal(lit string) error {
	for i := 0; i < len(lit); i++ {
		j := d.off + i
		if j >= len(d.data) {
			return d.eof()
		}
		if d.data[j] != lit[i] {
			return d.syntax(j, "in literal "+lit)
		}
	}
	d.off += len(lit)
	return nil
}

// kind names the JSON type of the value starting with c at d.off, or
// returns "" when it is not the start of a value.
func (d *decoder) kind(c byte) string {
	switch c {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't':
		if d.hasPrefix("true") {
			return "boolean"
		}
	case 'f':
		if d.hasPrefix("false") {
			return "boolean"
		}
	case 'n':
		if d.hasPrefix("null") {
			return "null"
		}
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return "number"
	}
	return ""
}

func (d *decoder) hasPrefix(lit string) bool {
	return len(d.data)-d.off >= len(lit) && string(d.data[d.off:d.off+len(lit)]) == lit
}

func (d *decoder) typeError(f int, c byte, want string) error {
	if k := d.kind(c); k != "" {
		return fmt.Errorf("event: field %q: want %s, got %s", fieldNames[f], want, k)
	}
	return d.syntax(d.off, "looking for beginning of value")
}

func (d *decoder) eof() error {
	return fmt.Errorf("event: %w: unexpected end of input", ErrSyntax)
}

func (d *decoder) syntax(off int, context string) error {
	if off >= len(d.data) {
		return d.eof()
	}
	c := d.data[off]
	var q string
	switch {
	case c == '\'':
		q = `'\''`
	case c == '"':
		q = `'"'`
	case c >= 0x20 && c < 0x7f:
		q = "'" + string(rune(c)) + "'"
	default:
		q = fmt.Sprintf("byte 0x%02x", c)
	}
	return fmt.Errorf("event: %w: invalid character %s %s at offset %d", ErrSyntax, q, context, off)
}

// plain marks the bytes a string holds as they are: printable ASCII except
// '"' and '\\'.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// skipPlain returns the index of the first byte of data from i on that is
// not plain (len(data) when there is none), 8 bytes at a time: the lowest
// byte that special8 marks is exact.
func skipPlain(data []byte, i int) int {
	for ; i+8 <= len(data); i += 8 {
		if m := special8(binary.LittleEndian.Uint64(data[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for i < len(data) && plain[data[i]] {
		i++
	}
	return i
}

// special8 is not zero when one of the 8 bytes of x (at least) is not plain.
// It is exact when no byte has its high bit set: then neither subtraction
// borrows across bytes.
func special8(x uint64) uint64 {
	q := x ^ (lsb * '"')
	b := x ^ (lsb * '\\')
	return ((x - lsb*0x20) | (q - lsb) | (b - lsb) | x) & msb
}

// str decodes the JSON string at d.off (an opening quote), appending its
// unescaped bytes to d.buf, and moves d.off past the closing quote. It
// unescapes as encoding/json does: invalid UTF-8 bytes and lone surrogate
// escapes become U+FFFD.
func (d *decoder) str() error {
	data := d.data
	i := d.off + 1
	start := i // bytes since start are plain and not yet in buf
	for {
		i = skipPlain(data, i)
		if i >= len(data) {
			return d.eof()
		}
		c := data[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				d.buf = append(d.buf, data[start:i]...)
				d.buf = append(d.buf, "\uFFFD"...)
				i++
				start = i
				continue
			}
			i += size
			continue
		}
		d.buf = append(d.buf, data[start:i]...)
		switch {
		case c == '"':
			d.off = i + 1
			return nil
		case c == '\\':
			n, err := d.escape(i)
			if err != nil {
				return err
			}
			i = n
			start = i
		default:
			return d.syntax(i, "in string literal")
		}
	}
}

// escape decodes the escape sequence at data[i] (a backslash) into d.buf
// and returns the offset after it.
func (d *decoder) escape(i int) (int, error) {
	data := d.data
	if i+1 >= len(data) {
		return 0, d.eof()
	}
	var c byte
	switch data[i+1] {
	case '"', '\\', '/':
		c = data[i+1]
	case 'b':
		c = '\b'
	case 'f':
		c = '\f'
	case 'n':
		c = '\n'
	case 'r':
		c = '\r'
	case 't':
		c = '\t'
	case 'u':
		r, err := d.hex4(i + 2)
		if err != nil {
			return 0, err
		}
		i += 6
		if utf16.IsSurrogate(r) {
			// As encoding/json: a valid pair is one rune; otherwise the
			// first escape is U+FFFD and the next one is decoded on its own.
			r2 := rune(-1)
			if i+1 < len(data) && data[i] == '\\' && data[i+1] == 'u' {
				if v, err := d.hex4(i + 2); err == nil {
					r2 = v
				}
			}
			if dec := utf16.DecodeRune(r, r2); dec != unicode.ReplacementChar {
				r = dec
				i += 6
			} else {
				r = unicode.ReplacementChar
			}
		}
		d.buf = utf8.AppendRune(d.buf, r)
		return i, nil
	default:
		return 0, d.syntax(i+1, "in string escape code")
	}
	d.buf = append(d.buf, c)
	return i + 2, nil
}

// hex4 decodes the 4 hex digits at data[i:].
func (d *decoder) hex4(i int) (rune, error) {
	var r rune
	for j := i; j < i+4; j++ {
		if j >= len(d.data) {
			return 0, d.eof()
		}
		c := d.data[j]
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, d.syntax(j, "in \\u hexadecimal character escape")
		}
		r = r<<4 | rune(c)
	}
	return r, nil
}
