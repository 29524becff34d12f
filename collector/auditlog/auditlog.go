// Package auditlog parses auditd log lines without regular expressions or
// copies: a line becomes a Record of offsets into it, and the body's
// key=value fields are walked in place. It reads both log formats (RAW, and
// ENRICHED where interpreted fields follow a 0x1d separator), with or
// without a "node=NAME " prefix.
package auditlog

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/elastic/go-libaudit/v2/auparse"
)

// Reasons a line is rejected; they label the collector's reject counter and
// dead letters.
const (
	ReasonEmpty        = "empty"
	ReasonNoType       = "no_type"
	ReasonBadTimestamp = "bad_timestamp"
	ReasonTooLong      = "line_too_long"
)

// ParseError is a rejected line with the reason.
type ParseError struct {
	Reason string // one of the Reason constants
	Detail string
}

func (e *ParseError) Error() string { return "auditlog: " + e.Detail }

// ErrEmpty is returned (wrapped in a *ParseError) for a blank line.
var ErrEmpty = errors.New("empty line")

type span struct{ start, end int }

func (s span) of(b []byte) []byte { return b[s.start:s.end] }

// Record is one parsed line. Its accessors return slices of Line, valid as
// long as Line is.
type Record struct {
	Line     []byte
	node     span
	typ      span
	body     span
	enriched span
	// TypeNum is the numeric record type, 0 when the name is unknown.
	TypeNum uint16
	// Sec, Msec and Serial come from msg=audit(SEC.MSEC:SERIAL).
	Sec    int64
	Msec   int
	Serial uint64
}

// Node is the NAME of a "node=NAME " prefix, or nil.
func (r *Record) Node() []byte { return r.node.of(r.Line) }

// Type is the record type's name, e.g. "SYSCALL" or "UNKNOWN[1334]".
func (r *Record) Type() []byte { return r.typ.of(r.Line) }

// Body is the text after "msg=audit(…): ", up to the enrichment separator.
func (r *Record) Body() []byte { return r.body.of(r.Line) }

// Enriched is the text after the 0x1d separator (ENRICHED format), or nil.
func (r *Record) Enriched() []byte { return r.enriched.of(r.Line) }

// Types maps record type names to numbers. It is built once by NewTypes
// and read-only afterwards.
type Types struct {
	byName map[string]uint16
}

// NewTypes builds the record type table from go-libaudit's catalogue.
func NewTypes() *Types {
	t := &Types{byName: make(map[string]uint16, 300)}
	for n := 1000; n < 3000; n++ {
		name := auparse.AuditMessageType(n).String()
		if !strings.HasPrefix(name, "UNKNOWN[") {
			t.byName[name] = uint16(n)
		}
	}
	return t
}

// Num returns the number of a type name, parsing "UNKNOWN[n]" forms; 0
// when unknown.
func (t *Types) Num(name []byte) uint16 {
	// The records of command events first: they are most of any log.
	switch string(name) {
	case "SYSCALL":
		return 1300
	case "PATH":
		return 1302
	case "CWD":
		return 1307
	case "EXECVE":
		return 1309
	case "EOE":
		return 1320
	case "PROCTITLE":
		return 1327
	}
	if n, ok := t.byName[string(name)]; ok {
		return n
	}
	if len(name) > 9 && string(name[:8]) == "UNKNOWN[" && name[len(name)-1] == ']' {
		if n, err := strconv.ParseUint(string(name[8:len(name)-1]), 10, 16); err == nil {
			return uint16(n)
		}
	}
	return 0
}

// Parse parses one line (without or with its trailing newline) into r,
// which keeps a reference to line. Line length limits are the reader's
// business (ReasonTooLong labels those rejects).
func (t *Types) Parse(line []byte, r *Record) error {
	for len(line) > 0 && (line[len(line)-1] == '\n' || line[len(line)-1] == '\r') {
		line = line[:len(line)-1]
	}
	*r = Record{Line: line}
	i := skipSpaces(line, 0)
	if i == len(line) {
		return &ParseError{Reason: ReasonEmpty, Detail: "blank line"}
	}
	if hasPrefixAt(line, i, "node=") {
		j := indexByteFrom(line, i+5, ' ')
		if j < 0 {
			return &ParseError{Reason: ReasonNoType, Detail: "node= prefix without a record"}
		}
		r.node = span{i + 5, j}
		i = skipSpaces(line, j)
	}
	if !hasPrefixAt(line, i, "type=") {
		return &ParseError{Reason: ReasonNoType, Detail: fmt.Sprintf("line does not start with type= (%q)", clip(line[i:]))}
	}
	j := indexByteFrom(line, i+5, ' ')
	if j < 0 || j == i+5 {
		return &ParseError{Reason: ReasonNoType, Detail: fmt.Sprintf("no record after type (%q)", clip(line[i:]))}
	}
	r.typ = span{i + 5, j}
	r.TypeNum = t.Num(line[i+5 : j])
	i = skipSpaces(line, j)
	if !hasPrefixAt(line, i, "msg=audit(") {
		return &ParseError{Reason: ReasonBadTimestamp, Detail: fmt.Sprintf("no msg=audit( after type (%q)", clip(line[i:]))}
	}
	i += len("msg=audit(")
	var ok bool
	var sec, msec, serial uint64
	var nd int
	if sec, i, nd, ok = digits(line, i); !ok || nd > 12 || i >= len(line) || line[i] != '.' {
		return badTS(line)
	}
	if msec, i, nd, ok = digits(line, i+1); !ok || nd > 3 || i >= len(line) || line[i] != ':' {
		return badTS(line)
	}
	for ; nd < 3; nd++ {
		msec *= 10
	}
	if serial, i, nd, ok = digits(line, i+1); !ok || nd > 19 || i >= len(line) || line[i] != ')' {
		return badTS(line)
	}
	i++
	// The colon after the stamp is optional: ausearch reads records
	// without it (msg=audit(1.100:2) a=1), so they are not rejected here.
	switch {
	case i < len(line) && line[i] == ':':
		i++
	case i < len(line) && line[i] != ' ':
		return badTS(line)
	}
	r.Sec, r.Msec, r.Serial = int64(sec), int(msec), serial
	i = skipSpaces(line, i)
	end := len(line)
	if k := indexByteFrom(line, i, 0x1d); k >= 0 {
		r.enriched = span{k + 1, len(line)}
		end = k
	}
	for end > i && line[end-1] == ' ' {
		end--
	}
	r.body = span{i, end}
	return nil
}

func badTS(line []byte) error {
	return &ParseError{Reason: ReasonBadTimestamp, Detail: fmt.Sprintf("malformed msg=audit(SEC.MSEC:SERIAL): (%q)", clip(line))}
}

// clip shortens text quoted in errors.
func clip(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}

func digits(b []byte, i int) (v uint64, next, n int, ok bool) {
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		if i-start >= 19 {
			return 0, i, i - start, false
		}
		v = v*10 + uint64(b[i]-'0')
		i++
	}
	return v, i, i - start, i > start
}

func skipSpaces(b []byte, i int) int {
	for i < len(b) && b[i] == ' ' {
		i++
	}
	return i
}

func hasPrefixAt(b []byte, i int, p string) bool {
	return len(b)-i >= len(p) && string(b[i:i+len(p)]) == p
}

func indexByteFrom(b []byte, i int, c byte) int {
	if i >= len(b) {
		return -1
	}
	if j := bytes.IndexByte(b[i:], c); j >= 0 {
		return i + j
	}
	return -1
}
