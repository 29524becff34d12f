package forwarder

import (
	"errors"
	"fmt"
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
	Severity     int
	MaxSize      int
}

// formatter renders events as RFC 5424 messages, each already framed for
// RFC 5425 ("LEN SP MSG"). The constant parts are checked once with
// go-syslog's builder; the per-event parts are made valid by construction
// (sanitised and truncated to the header limits, SD-PARAM values escaped),
// which the round-trip and fuzz tests check against go-syslog's parser.
type formatter struct {
	pri     string // "<110>1 "
	appName string
	sdID    string
	maxSize int
}

func newFormatter(f Format) (*formatter, error) {
	if f.Facility < 0 || f.Facility > 23 {
		return nil, fmt.Errorf("facility %d: want 0..23", f.Facility)
	}
	if f.Severity < 0 || f.Severity > 7 {
		return nil, fmt.Errorf("severity %d: want 0..7", f.Severity)
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
	pri := "<" + strconv.Itoa(f.Facility*8+f.Severity) + ">1 "
	return &formatter{pri: pri, appName: f.AppName, sdID: sdID, maxSize: f.MaxSize}, nil
}

// frames renders ev as one framed message, or as numbered parts when the
// message would exceed the maximum size. Each frame is "LEN SP MSG".
func (f *formatter) frames(ev *schemas.Event) ([][]byte, error) {
	return f.appendFrames(nil, nil, ev)
}

// appendFrames is frames appending to dst, with the bytes of an unsplit
// message taken from a (nil: allocated on their own). The header is built
// on the stack, so an event costs one exact-size copy and no allocation of
// its own when a is set.
func (f *formatter) appendFrames(dst [][]byte, a *arena, ev *schemas.Event) ([][]byte, error) {
	var scratch [512]byte
	head := f.header(scratch[:0], ev)
	head = f.appendSD(head, ev, 0, 0)
	msg := ev.RawData
	if !utf8.ValidString(msg) {
		msg = toValidUTF8(msg)
	}
	size := len(head)
	if msg != "" {
		size += 1 + len(msg)
	}
	if size <= f.maxSize {
		return append(dst, appendFrame(a.alloc(size+frameDigits(size)+1), head, msg)), nil
	}
	parts, err := f.split(ev, msg)
	if err != nil {
		return dst, err
	}
	return append(dst, parts...), nil
}

// split cuts msg into the fewest parts whose messages fit maxSize, at UTF-8
// boundaries, each part with part="i" parts="n" in its structured data.
func (f *formatter) split(ev *schemas.Event, msg string) ([][]byte, error) {
	base := f.header(make([]byte, 0, 256), ev)
	for digits := 1; digits <= 9; digits++ {
		// The widest part header for n parts of this many digits.
		widest := len(f.appendSD(base, ev, pow10(digits)-1, pow10(digits)-1)) + 1
		chunk := f.maxSize - widest
		if chunk < minChunk {
			return nil, fmt.Errorf("event %s: %w (%d bytes of %d)", ev.EventID, ErrHeaderTooLarge, widest, f.maxSize)
		}
		cuts := cutPoints(msg, chunk)
		n := len(cuts)
		if len(strconv.Itoa(n)) > digits {
			continue
		}
		out := make([][]byte, 0, n)
		start := 0
		for i, end := range cuts {
			head := f.appendSD(base, ev, i+1, n)
			out = append(out, frame(head, msg[start:end]))
			start = end
		}
		return out, nil
	}
	return nil, fmt.Errorf("event %s: raw_data of %d bytes needs too many parts", ev.EventID, len(msg))
}

// cutPoints returns the end offsets of consecutive pieces of s, each at most
// max bytes and ending on a UTF-8 boundary.
func cutPoints(s string, max int) []int {
	var cuts []int
	start := 0
	for start < len(s) {
		end := start + max
		if end >= len(s) {
			cuts = append(cuts, len(s))
			break
		}
		for end > start && !utf8.RuneStart(s[end]) {
			end--
		}
		if end == start { // cannot happen with max >= utf8.UTFMax
			end = start + max
		}
		cuts = append(cuts, end)
		start = end
	}
	return cuts
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
	b = append(b, f.pri...)
	b = appendTimestamp(b, ev.TS)
	b = append(b, ' ')
	b = appendHeaderField(b, ev.Host, maxHostname)
	b = append(b, ' ')
	b = append(b, f.appName...)
	b = append(b, " - "...) // PROCID: the sender's process is of no interest to the SIEM
	b = appendHeaderField(b, string(ev.Event), maxMsgID)
	return append(b, ' ')
}

// appendSD appends the structured-data element; part and parts are added
// when parts > 0: SD-ID, then req_auth_id, layer, event, loginid, host and
// event_id.
func (f *formatter) appendSD(b []byte, ev *schemas.Event, part, parts int) []byte {
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
	b = append(b, '"')
	if parts > 0 {
		b = append(b, ` part="`...)
		b = strconv.AppendInt(b, int64(part), 10)
		b = append(b, `" parts="`...)
		b = strconv.AppendInt(b, int64(parts), 10)
		b = append(b, '"')
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

// frame returns "LEN SP head[ SP msg]".
func frame(head []byte, msg string) []byte {
	n := len(head)
	if msg != "" {
		n += 1 + len(msg)
	}
	return appendFrame(make([]byte, 0, n+frameDigits(n)+1), head, msg)
}

// appendFrame appends "LEN SP head[ SP msg]" to b.
func appendFrame(b, head []byte, msg string) []byte {
	n := len(head)
	if msg != "" {
		n += 1 + len(msg)
	}
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, ' ')
	b = append(b, head...)
	if msg != "" {
		b = append(b, ' ')
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
