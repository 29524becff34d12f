package verify

import (
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/forwarder"
	"github.com/auditpipe/auditpipe/schemas"
)

// FuzzParseSyslogLine feeds arbitrary lines to the SIEM file parser and the
// loader: they never panic, and a line the forwarder wrote for an event
// comes back with that event's id.
func FuzzParseSyslogLine(f *testing.F) {
	f.Add(`<86>1 2021-04-12T07:38:05.752Z h opctl - login [opctl@32473 event_id="0123456789abcdef0123456789abcdef" seq="1" prev_hash="" hash="00"] ` + "\ufeff" + `type=USER_LOGIN #012`)
	f.Add(`{"raw":"<86>1 - - - - - [x@1 event_id=\"a\"]"}`)
	f.Add(`123 <86>1 - - - - - -`)
	f.Add("")
	format := forwarder.Format{AppName: "opctl", SDName: "opctl", EnterpriseID: 32473, Facility: 10, MaxSize: 8192}
	f.Fuzz(func(t *testing.T, line string) {
		if m, ok := ParseSyslogLine(line); ok && m.Params == nil {
			t.Fatal("ok without parameters")
		}
		_, _, _, _ = LoadSyslog(strings.NewReader(line))
		// A forwarded event with this text as raw_data parses back.
		ev := schemas.Event{Layer: "HOST", Event: schemas.KindCommand, Host: "h", EventID: strings.Repeat("a", 32), TS: "2024-01-01T00:00:00.000Z", Seq: 1, RawData: line}
		frames, err := forwarder.Frames(format, &ev)
		if err != nil || len(frames) != 1 {
			return
		}
		_, msg, _ := strings.Cut(string(frames[0]), " ")
		if strings.ContainsAny(msg, "\n") {
			return // one message a line: rsyslog escapes the LF, see escapeRsyslog
		}
		m, ok := ParseSyslogLine(msg)
		if !ok || m.Params["event_id"] != ev.EventID {
			t.Fatalf("forwarded line %q parses to %v %v", msg, m.Params, ok)
		}
	})
}
