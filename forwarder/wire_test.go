package forwarder

import (
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/internal/siemtest"
)

// received parses one message with go-syslog's RFC 5424 parser and returns
// what Reassemble needs: the opctl@32473 parameters and the MSG.
func received(t testing.TB, msg []byte) Received {
	t.Helper()
	m := parse(t, msg)
	r := Received{Params: map[string]string{}}
	if m.StructuredData != nil {
		for k, v := range (*m.StructuredData)["opctl@32473"] {
			r.Params[k] = v
		}
	}
	if m.Message != nil {
		r.MSG = *m.Message
	}
	return r
}

// mustReassemble is Reassemble, failing the test on an error.
func mustReassemble(t testing.TB, msgs ...Received) string {
	t.Helper()
	raw, err := Reassemble(msgs)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// receivers are what real receivers do to a MSG at their defaults, as
// seen with syslog-ng 3.38 and rsyslog 8.2302 from Debian, each followed by
// what the verifier does to undo it (put syslog-ng's BOM back, decode
// rsyslog's #ooo escapes). syslog-ng strips every trailing LF and NUL and
// the leading BOM; rsyslog drops one trailing LF, then a trailing NUL, and
// escapes the other control characters as #ooo.
var receivers = []struct {
	name  string
	strip func(string) string
}{
	{"syslog-ng", func(s string) string {
		s = strings.TrimPrefix(strings.TrimRight(s, "\n\x00"), bom)
		if s != "" {
			s = bom + s
		}
		return s
	}},
	{"rsyslog", func(s string) string {
		s = strings.TrimSuffix(strings.TrimSuffix(s, "\n"), "\x00")
		return siemtest.UnescapeRsyslog(siemtest.EscapeRsyslog(s))
	}},
	{"strips CR too", func(s string) string { return strings.TrimRight(s, "\r\n\x00") }},
}

// TestCutEveryByte is the regression test for split events losing
// newlines (issue 14): a receiver strips a part's trailing LF, so a cut
// just after a newline lost it. The cut position is walked across every
// byte of messages with newlines, CR LF, NUL, runs of line ends, multi-byte
// runes and a leading BOM; every part is checked not to end with a line
// end, and what each receiver keeps must reassemble to raw_data exactly.
func TestCutEveryByte(t *testing.T) {
	bodies := map[string]string{
		"records":       "type=EXECVE msg=audit(10/29/2020 03:20:29.418:1) : argc=2 a0=ls a1=/ \ntype=CWD cwd=/root \n\ntype=PATH name=/ \n",
		"crlf and nul":  "a\r\nb\x00c\n\r\n\x00d \n",
		"runes":         "日本語\n\nログ\r\n€uro \n",
		"leading bom":   "\ufeff \n  lead \n",
		"long run":      "x" + strings.Repeat("\n", 700) + "y" + strings.Repeat("\r\n", 300) + "z",
		"only newlines": strings.Repeat("\n", 900),
	}
	const max = 600 // parts of about 170 bytes of MSG
	fm := sizedFormatter(t, max)
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			ev := loginEvent()
			// Padding of 0..200 bytes moves every cut (parts of about 170
			// bytes) across every byte of the body.
			for pad := 0; pad <= 200; pad++ {
				ev.RawData = strings.Repeat("p", pad) + strings.Repeat(body, 1+600/len(body))
				frames, err := fm.frames(ev)
				if err != nil {
					t.Fatalf("pad %d: %v", pad, err)
				}
				if len(frames) < 2 {
					t.Fatalf("pad %d: %d frames: not split", pad, len(frames))
				}
				for _, rc := range receivers {
					msgs := make([]Received, len(frames))
					for i, fr := range frames {
						if n := len(siemtest.EscapeRsyslog(string(unframe(t, fr)))); n > max {
							t.Fatalf("pad %d: part %d is %d bytes once rsyslog escaped it, over %d", pad, i+1, n, max)
						}
						msgs[i] = received(t, unframe(t, fr))
						if m := msgs[i].MSG; m != "" && isEOL(m[len(m)-1]) {
							t.Fatalf("pad %d: part %d ends with %q", pad, i+1, m[len(m)-1])
						}
						msgs[i].MSG = rc.strip(msgs[i].MSG)
					}
					got, err := Reassemble(msgs)
					if err != nil {
						t.Fatalf("pad %d, %s: %v", pad, rc.name, err)
					}
					if got != ev.RawData {
						t.Fatalf("pad %d, %s: reassembled %q, want %q", pad, rc.name, got, ev.RawData)
					}
				}
			}
		})
	}
}
