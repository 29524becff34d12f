package schemas

import (
	"math"
	"unicode/utf8"
)

// Canonical is what DecodeJSONCanonical found out about its input besides
// the event.
type Canonical struct {
	// OK: the input is exactly the event's canonical bytes (AppendJSON of
	// the decoded event), so it can be hashed and quoted as it is.
	OK bool
	// RawStart and RawEnd are where raw_data's value is in the input, from
	// its opening quote to after its closing one, as AppendJSONRawSpan
	// returns them; set only when OK.
	RawStart, RawEnd int
}

// DecodeJSONCanonical is DecodeJSON (same event, same errors), and it
// reports whether b is the decoded event's canonical bytes: what the
// collector writes to Kafka. A consumer that needs those bytes (the
// forwarder's hash and json parameters) then takes b instead of encoding
// the event again.
//
// The check is exact and costs no second pass: b is read as AppendJSON
// writes, each key in its place, each string escaped as appendString
// escapes, no whitespace, nothing after the object. At the first byte that
// AppendJSON would not have written there, b is decoded again by
// DecodeJSON and OK is false.
func (e *Event) DecodeJSONCanonical(b []byte) (Canonical, error) {
	d := decoder{data: b}
	bp := bufPool.Get().(*[]byte)
	d.buf = (*bp)[:0]
	var c Canonical
	var err error
	if d.canonical(&c) {
		c.OK = true
		*e = d.event()
	} else {
		c = Canonical{}
		d = decoder{data: b, buf: d.buf[:0]}
		err = d.decode(e)
	}
	if cap(d.buf) <= maxPooledBuf {
		*bp = d.buf[:0]
		bufPool.Put(bp)
	}
	return c, err
}

// canonical decodes d.data when it is an event's canonical encoding, in
// AppendJSONRawSpan's order, setting c's span of raw_data; it returns false
// at the first byte where the encoding would differ.
func (d *decoder) canonical(c *Canonical) bool {
	if !d.lit(`{"layer":`) || !d.str1(fLayer) || !d.field(fReqAuthID) || !d.field(fEvent) {
		return false
	}
	ev := d.strs[fEvent]
	kind := Kind(d.buf[ev.off:ev.end])
	ok := true
	switch kind {
	case KindLogin, KindLogout:
		ok = d.field(fSrcHost) && d.field(fRes) && d.field(fDestHost) && d.field(fPID)
	case KindCommand:
		ok = d.field(fTitle) && d.ckey(fArgs) && d.list(&d.args, true) &&
			d.field(fPID) && d.field(fPPID) && d.field(fEUID) && d.field(fExe) && d.field(fCwd) && d.field(fRes)
	case KindKeys:
		ok = d.field(fPID) && d.field(fKeys)
	}
	if !ok || !d.field(fRecID) || !d.field(fTTY) || !d.field(fHost) || !d.field(fTime) || !d.ckey(fRawData) {
		return false
	}
	c.RawStart = d.off
	if !d.str1(fRawData) {
		return false
	}
	c.RawEnd = d.off
	if !d.field(fLoginID) {
		return false
	}
	// Written only when not empty.
	if d.ckey(fSes) && (!d.str1(fSes) || d.strs[fSes].off == d.strs[fSes].end) {
		return false
	}
	if d.ckey(fEscaped) && !d.list(&d.escaped, false) {
		return false
	}
	if !d.field(fEventID) || !d.field(fTS) || !d.ckey(fSeq) || !d.uint1(fSeq) || !d.field(fPrevHash) {
		return false
	}
	if kind == KindChain {
		if !d.ckey(fChainFirst) || !d.uint1(fChainFirst) || !d.ckey(fChainLast) || !d.uint1(fChainLast) ||
			!d.ckey(fChainCount) || !d.uint1(fChainCount) || !d.field(fChainHead) {
			return false
		}
		// key_id and sig are written together, when either is not empty.
		if d.ckey(fKeyID) {
			if !d.str1(fKeyID) || !d.field(fSig) {
				return false
			}
			if k, s := d.strs[fKeyID], d.strs[fSig]; k.off == k.end && s.off == s.end {
				return false
			}
		}
	}
	return d.lit("}") && d.off == len(d.data)
}

// lit consumes s when the input continues with it.
func (d *decoder) lit(s string) bool {
	if len(d.data)-d.off < len(s) || string(d.data[d.off:d.off+len(s)]) != s {
		return false
	}
	d.off += len(s)
	return true
}

// ckey consumes `,"NAME":` for field f when the input continues with it.
func (d *decoder) ckey(f int) bool {
	name := fieldNames[f]
	data, i := d.data, d.off
	if len(data)-i < len(name)+4 || data[i] != ',' || data[i+1] != '"' ||
		string(data[i+2:i+2+len(name)]) != name || data[i+2+len(name)] != '"' || data[i+3+len(name)] != ':' {
		return false
	}
	d.off = i + len(name) + 4
	return true
}

// field consumes the key of string field f and its value.
func (d *decoder) field(f int) bool { return d.ckey(f) && d.str1(f) }

// str1 decodes the canonical string at d.off as the value of field f.
func (d *decoder) str1(f int) bool {
	start := len(d.buf)
	if !d.canonStr() {
		return false
	}
	d.strs[f] = span{start, len(d.buf)}
	return true
}

// list decodes a canonical array of strings into l: not empty unless
// empty is allowed (AppendJSON leaves out an empty "escaped").
func (d *decoder) list(l *strList, empty bool) bool {
	if !d.lit("[") {
		return false
	}
	l.set = true
	if d.lit("]") {
		return empty
	}
	for i := 0; ; i++ {
		l.grow()
		start := len(d.buf)
		if !d.canonStr() {
			return false
		}
		*l.at(i) = span{start, len(d.buf)}
		if d.lit("]") {
			l.n = i + 1
			return true
		}
		if !d.lit(",") {
			return false
		}
	}
}

// uint1 decodes the unsigned integer at d.off as strconv.AppendUint
// writes it: no leading zero, no overflow.
func (d *decoder) uint1(f int) bool {
	data, i := d.data, d.off
	if i >= len(data) || data[i] < '0' || data[i] > '9' {
		return false
	}
	var v uint64
	if data[i] == '0' {
		i++
	} else {
		for ; i < len(data) && '0' <= data[i] && data[i] <= '9'; i++ {
			dig := uint64(data[i] - '0')
			if v > (math.MaxUint64-dig)/10 {
				return false
			}
			v = v*10 + dig
		}
	}
	d.uints[f-fSeq] = v
	d.off = i
	return true
}

// canonStr decodes the JSON string at d.off into d.buf, as str does, when
// it is exactly what appendString writes for its value: the only escapes
// are \" \\ \n \r \t, \u00xx (lower-case hex) for the other control
// characters and \u2028 \u2029; every other byte is as it is, valid UTF-8.
// It returns false otherwise (d.buf may then hold a partial value).
func (d *decoder) canonStr() bool {
	data := d.data
	if d.off >= len(data) || data[d.off] != '"' {
		return false
	}
	i := d.off + 1
	start := i // bytes since start are plain and not yet in buf
	for {
		i = skipPlain(data, i)
		if i >= len(data) {
			return false
		}
		c := data[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
				return false
			}
			i += size
			continue
		}
		d.buf = append(d.buf, data[start:i]...)
		switch c {
		case '"':
			d.off = i + 1
			return true
		case '\\':
			n, ok := d.canonEscape(i)
			if !ok {
				return false
			}
			i, start = n, n
		default:
			return false // a control character appendString escapes
		}
	}
}

// canonEscape decodes the escape at data[i] (a backslash) into d.buf when
// it is one appendString writes, and returns the offset after it.
func (d *decoder) canonEscape(i int) (int, bool) {
	data := d.data
	if i+1 >= len(data) {
		return 0, false
	}
	switch data[i+1] {
	case '"', '\\':
		d.buf = append(d.buf, data[i+1])
		return i + 2, true
	case 'n':
		d.buf = append(d.buf, '\n')
		return i + 2, true
	case 'r':
		d.buf = append(d.buf, '\r')
		return i + 2, true
	case 't':
		d.buf = append(d.buf, '\t')
		return i + 2, true
	case 'u':
	default:
		return 0, false
	}
	if len(data)-i < 6 {
		return 0, false
	}
	u := data[i+2 : i+6]
	switch {
	case string(u) == "2028":
		d.buf = append(d.buf, "\u2028"...)
	case string(u) == "2029":
		d.buf = append(d.buf, "\u2029"...)
	case u[0] == '0' && u[1] == '0' && (u[2] == '0' || u[2] == '1') && lowerHex(u[3]) >= 0:
		c := (u[2]-'0')<<4 | byte(lowerHex(u[3]))
		if c == '\n' || c == '\r' || c == '\t' {
			return 0, false // appendString writes these as \n, \r, \t
		}
		d.buf = append(d.buf, c)
	default:
		return 0, false
	}
	return i + 6, true
}

// lowerHex returns the value of the lower-case hex digit c, or -1.
func lowerHex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}
