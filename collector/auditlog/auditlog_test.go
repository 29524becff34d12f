package auditlog

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/elastic/go-libaudit/v2/auparse"
)

func TestParse(t *testing.T) {
	types := NewTypes()
	tests := []struct {
		name     string
		line     string
		reason   string // wanted ParseError reason; "" = success
		node     string
		typ      string
		typeNum  uint16
		sec      int64
		msec     int
		serial   uint64
		body     string
		enriched string
	}{
		{name: "raw", line: "type=SYSCALL msg=audit(1603941629.418:10777424): arch=c000003e syscall=59\n",
			typ: "SYSCALL", typeNum: 1300, sec: 1603941629, msec: 418, serial: 10777424, body: "arch=c000003e syscall=59"},
		{name: "node prefix", line: "node=cell01 type=EOE msg=audit(1.002:3): ",
			node: "cell01", typ: "EOE", typeNum: 1320, sec: 1, msec: 2, serial: 3, body: ""},
		{name: "enriched", line: "type=USER_LOGIN msg=audit(5.5:6): pid=1 auid=1001\x1dAUID=\"alice\"",
			typ: "USER_LOGIN", typeNum: 1112, sec: 5, msec: 500, serial: 6, body: "pid=1 auid=1001", enriched: "AUID=\"alice\""},
		{name: "unknown numbered type", line: "type=UNKNOWN[1999] msg=audit(1.000:1): x=1",
			typ: "UNKNOWN[1999]", typeNum: 1999, sec: 1, serial: 1, body: "x=1"},
		{name: "unknown named type", line: "type=FROB msg=audit(1.000:1): x=1",
			typ: "FROB", typeNum: 0, sec: 1, serial: 1, body: "x=1"},
		{name: "crlf", line: "type=EOE msg=audit(1.000:1): \r\n", typ: "EOE", typeNum: 1320, sec: 1, serial: 1},
		{name: "blank", line: "   \n", reason: ReasonEmpty},
		{name: "not audit", line: "hello world", reason: ReasonNoType},
		{name: "type only", line: "type=SYSCALL", reason: ReasonNoType},
		{name: "empty type", line: "type= msg=audit(1.0:1):", reason: ReasonNoType},
		{name: "node only", line: "node=x", reason: ReasonNoType},
		{name: "no msg", line: "type=SYSCALL arch=1", reason: ReasonBadTimestamp},
		{name: "bad seconds", line: "type=SYSCALL msg=audit(x.1:2): a=1", reason: ReasonBadTimestamp},
		{name: "four digit millis", line: "type=SYSCALL msg=audit(1.1000:2): a=1", reason: ReasonBadTimestamp},
		{name: "no serial", line: "type=SYSCALL msg=audit(1.100:): a=1", reason: ReasonBadTimestamp},
		// A header without the colon is read, as ausearch reads it.
		{name: "no colon after paren", line: "type=SYSCALL msg=audit(1.100:2) a=1", typ: "SYSCALL", typeNum: 1300, sec: 1, msec: 100, serial: 2, body: "a=1"},
		{name: "no colon, no body", line: "type=EOE msg=audit(1.100:2)", typ: "EOE", typeNum: 1320, sec: 1, msec: 100, serial: 2},
		{name: "junk after paren", line: "type=SYSCALL msg=audit(1.100:2)x a=1", reason: ReasonBadTimestamp},
		{name: "huge serial", line: "type=SYSCALL msg=audit(1.100:99999999999999999999999): a=1", reason: ReasonBadTimestamp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Record
			err := types.Parse([]byte(tt.line), &r)
			if tt.reason != "" {
				var pe *ParseError
				if !errors.As(err, &pe) || pe.Reason != tt.reason {
					t.Fatalf("err = %v, want reason %s", err, tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(r.Node()) != tt.node || string(r.Type()) != tt.typ || r.TypeNum != tt.typeNum ||
				r.Sec != tt.sec || r.Msec != tt.msec || r.Serial != tt.serial ||
				string(r.Body()) != tt.body || string(r.Enriched()) != tt.enriched {
				t.Errorf("got node=%q type=%q(%d) %d.%03d:%d body=%q enriched=%q",
					r.Node(), r.Type(), r.TypeNum, r.Sec, r.Msec, r.Serial, r.Body(), r.Enriched())
			}
		})
	}
}

func TestNextField(t *testing.T) {
	body := []byte(`tty pid=1 comm="a b" msg='op=login id=5 exe="/x"' key=(null) unterminated="abc`)
	want := []Field{
		{Key: []byte("tty"), Bare: true},
		{Key: []byte("pid"), Value: []byte("1")},
		{Key: []byte("comm"), Value: []byte("a b"), Quote: '"'},
		{Key: []byte("msg"), Value: []byte(`op=login id=5 exe="/x"`), Quote: '\''},
		{Key: []byte("key"), Value: []byte("(null)")},
		{Key: []byte("unterminated"), Value: []byte("abc"), Quote: '"'},
	}
	var got []Field
	for {
		f, rest, ok := NextField(body)
		if !ok {
			break
		}
		got = append(got, f)
		body = rest
	}
	if len(got) != len(want) {
		t.Fatalf("got %d fields, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if !bytes.Equal(g.Key, w.Key) || !bytes.Equal(g.Value, w.Value) || g.Quote != w.Quote || g.Bare != w.Bare {
			t.Errorf("field %d: got %q=%q q=%q bare=%v, want %q=%q q=%q bare=%v", i, g.Key, g.Value, g.Quote, g.Bare, w.Key, w.Value, w.Quote, w.Bare)
		}
	}
}

func TestHex(t *testing.T) {
	tests := []struct {
		in   string
		hex  bool
		want string
	}{
		{"6C73002F", true, "ls\x00/"},
		{"6c73002f", true, "ls\x00/"},
		{"6c73002F", true, "ls\x00/"},
		{"6C7", false, ""},
		{"", false, ""},
		{"zz", false, ""},
		{"(null)", false, ""},
	}
	for _, tt := range tests {
		if got := IsHex([]byte(tt.in)); got != tt.hex {
			t.Errorf("IsHex(%q) = %v", tt.in, got)
			continue
		}
		if tt.hex {
			if got := string(AppendHexDecoded(nil, []byte(tt.in))); got != tt.want {
				t.Errorf("decode %q = %q, want %q", tt.in, got, tt.want)
			}
		}
	}
}

// FuzzParse feeds arbitrary lines to the parser: it must never panic, a
// rejected line has a reason, and a parsed one is described consistently:
// the record is the line without its line ending, the type name follows
// "type=" (after the node= prefix), TypeNum is the table's number for it,
// the fields tile the body, and where go-libaudit's auparse also parses
// the line, both read the same type, timestamp and serial.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"../testdata/fixtures", "../testdata/seed"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		for _, name := range files {
			data, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			for _, l := range bytes.Split(data, []byte("\n")) {
				if len(l) < 4096 {
					f.Add(l)
				}
			}
		}
	}
	types := NewTypes()
	f.Fuzz(func(t *testing.T, line []byte) {
		var r Record
		if err := types.Parse(line, &r); err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Reason == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		checkRecord(t, types, line, &r)
	})
}

// checkRecord checks the invariants of r, parsed from line.
func checkRecord(t *testing.T, types *Types, line []byte, r *Record) {
	t.Helper()
	if want := bytes.TrimRight(line, "\r\n"); !bytes.Equal(r.Line, want) {
		t.Fatalf("Line %q, want the input without its line ending %q", r.Line, want)
	}
	rest := bytes.TrimLeft(r.Line, " ")
	if node := r.Node(); r.node.end > 0 {
		prefix := append([]byte("node="), node...)
		if !bytes.HasPrefix(rest, prefix) {
			t.Fatalf("node %q is not the line's prefix: %q", node, r.Line)
		}
		rest = bytes.TrimLeft(rest[len(prefix):], " ")
	}
	typ := r.Type()
	if len(typ) == 0 || bytes.ContainsAny(typ, " ") || !bytes.HasPrefix(rest, append([]byte("type="), typ...)) {
		t.Fatalf("type %q does not follow type= in %q", typ, r.Line)
	}
	if r.TypeNum != types.Num(typ) {
		t.Fatalf("TypeNum %d, the table says %d for %q", r.TypeNum, types.Num(typ), typ)
	}
	if r.Msec < 0 || r.Msec > 999 || r.Sec < 0 {
		t.Fatalf("timestamp %d.%d out of range", r.Sec, r.Msec)
	}
	body := r.Body()
	if !bytes.Contains(r.Line, body) {
		t.Fatalf("body %q is not part of the line %q", body, r.Line)
	}
	for {
		f, next, ok := NextField(body)
		if !ok {
			break
		}
		if len(next) >= len(body) || !bytes.HasSuffix(body, next) {
			t.Fatalf("NextField made no progress on %q (field %+v)", body, f)
		}
		body = next
	}
	// Differential: auparse reads the header of lines that start with
	// "type=" (it refuses node= prefixes); its type names are
	// case-insensitive, ours not (0 = unknown), its serial is 32 bits, and
	// it reads the milliseconds as an integer ("0.1" is 1 ms, as
	// libauparse's sscanf), ours as a fraction (100 ms): the kernel always
	// writes three digits, where both agree.
	if !bytes.HasPrefix(r.Line, []byte("type=")) || !threeDigitMsec(r.Line) {
		return
	}
	msg, err := auparse.ParseLogLine(string(r.Line))
	if err != nil {
		return
	}
	if r.TypeNum != 0 && uint16(msg.RecordType) != r.TypeNum {
		t.Fatalf("type %d, auparse %d (%v) in %q", r.TypeNum, msg.RecordType, msg.RecordType, r.Line)
	}
	if want := time.Unix(r.Sec, int64(r.Msec)*int64(time.Millisecond)); !msg.Timestamp.Equal(want) {
		t.Fatalf("timestamp %v, auparse %v in %q", want, msg.Timestamp, r.Line)
	}
	if r.Serial <= math.MaxUint32 && uint64(msg.Sequence) != r.Serial {
		t.Fatalf("serial %d, auparse %d in %q", r.Serial, msg.Sequence, r.Line)
	}
}

// threeDigitMsec reports whether the first "audit(SEC.MSEC:" of line has
// three digits of milliseconds, as the kernel writes them.
func threeDigitMsec(line []byte) bool {
	_, h, ok := bytes.Cut(line, []byte("audit("))
	if !ok {
		return false
	}
	_, h, ok = bytes.Cut(h, []byte("."))
	if !ok {
		return false
	}
	msec, _, ok := bytes.Cut(h, []byte(":"))
	return ok && len(msec) == 3
}
