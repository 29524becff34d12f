package forwarder

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/siemtest"
	"github.com/auditpipe/auditpipe/schemas"
)

// interopEvents returns events of every kind, split and not, whose raw_data
// has newlines (and CR LF, NUL, tabs, ESC) at every position near the cuts,
// non-ASCII text, the collector's escapes of invalid UTF-8 (\xNN and \\),
// '#' that is not an rsyslog escape, a leading U+FEFF, and quotes,
// backslashes and ']' in every SD value.
func interopEvents() []*schemas.Event {
	// The audit kinds: a chain checkpoint without its fields does not validate.
	kinds := []schemas.Kind{schemas.KindLogin, schemas.KindLogout, schemas.KindCommand, schemas.KindKeys}
	var evs []*schemas.Event
	add := func(kind schemas.Kind, res, raw string) {
		i := len(evs)
		host := fmt.Sprintf(`h"o\st]%d`, i%3)
		evs = append(evs, &schemas.Event{
			Layer: `C"P\S]`, ReqAuthID: fmt.Sprintf(`req "%d" \ ]`, i), Event: kind, Res: res,
			Host: host, RecID: strconv.Itoa(1000 + i), TTY: "pts/0", Time: "Thu Oct 29 03:20:22 2020",
			LoginID: `op"er]a\tor 日本`, RawData: raw,
			EventID: schemas.NewEventID(host, 1603941622, 418, uint64(i)), TS: "2020-10-29T03:20:22.418Z", Seq: uint64(i),
		})
		if kind == schemas.KindCommand {
			evs[i].Args = []string{"sudo", "-i"}
		}
	}
	seed := loginEvent().RawData
	for _, k := range kinds {
		add(k, "success", seed)
		add(k, "failed", "type=USER_CMD msg=audit(10/29/2020 03:20:29.418:7) : cmd=echo 日本語 \"q\" \\\\ ] # not #1 escape \\xff\\xfe \n")
	}
	add(schemas.KindKeys, "", "\ufefftype=TTY msg=audit(…) : data=ls\tx\x1b[A\r\n \n")
	add(schemas.KindKeys, "", "type=TTY data=a\x00b \n\n")
	add(schemas.KindCommand, "", "")
	// Split events: lines of 1 to 4 bytes put a line end within a few
	// bytes of every cut; the padding moves the cuts across them.
	dense := strings.Repeat("a\nbc\n\nd\r\n€ \n", 1200)
	for pad := 0; pad < 12; pad++ {
		add(kinds[pad%len(kinds)], "success", strings.Repeat("p", pad)+dense+"type=EOE \n")
	}
	add(schemas.KindCommand, "failed", strings.Repeat("x\n", 5000)+strings.Repeat("\n", 9000)+"y \n")
	// A json too long for one part (a long title and argument list, with
	// '"', '\', ']' and non-ASCII): parts with a json piece and no MSG
	// come first (issue 9).
	add(schemas.KindCommand, "success", "type=EXECVE msg=audit(10/29/2020 03:20:29.418:8) : argc=2 a0=echo a1=… \n")
	long := strings.Repeat(`echo "日本語" \ ] `, 900)
	evs[len(evs)-1].Title, evs[len(evs)-1].Args = long, []string{"echo", long}
	return evs
}

// TestInteropReceiversAtDefaults sends every kind of event through the
// forward path to rsyslog and to syslog-ng, both at their defaults (no
// text-changing option turned off), and reassembles what each wrote: every
// event must come back equal to its raw_data, with its SD values and PRI,
// and its json (whole, or in pieces across the parts of a split event)
// with its hash.
// (Issue 14: split events lost newlines at rsyslog's and syslog-ng's
// defaults, which the other tests' rsyslog configuration hid.)
func TestInteropReceiversAtDefaults(t *testing.T) {
	evs := interopEvents()
	dir := t.TempDir()
	ca := siemtest.NewCA(t, dir, "siem-ca")
	cert, key := ca.Issue(t, dir, "siem", siemtest.CertOptions{})
	receivers := []struct {
		name  string
		start func(t *testing.T) (addr string, wait func(n int) []Received)
	}{
		{"rsyslog", func(t *testing.T) (string, func(int) []Received) {
			siemtest.Binary(t)
			rs := siemtest.StartRsyslog(t, siemtest.RsyslogOptions{CA: ca, CertFile: cert, KeyFile: key, Defaults: true})
			return rs.Addr, func(n int) []Received {
				var out []Received
				for _, raw := range rs.WaitMessages(t, n, 20*time.Second) {
					// rsyslog escaped control characters as #ooo.
					m := parse(t, []byte(siemtest.UnescapeRsyslog(raw)))
					r := received(t, []byte(siemtest.UnescapeRsyslog(raw)))
					r.Params["pri"] = strconv.Itoa(int(*m.Priority))
					out = append(out, r)
				}
				return out
			}
		}},
		{"syslog-ng", func(t *testing.T) (string, func(int) []Received) {
			ng := siemtest.StartSyslogNG(t, siemtest.SyslogNGOptions{CA: ca, CertFile: cert, KeyFile: key})
			return ng.Addr, func(n int) []Received {
				var out []Received
				for _, m := range ng.WaitMessages(t, n, 20*time.Second) {
					r := Received{Params: map[string]string{"pri": m.PRI}, MSG: m.MSG}
					if r.MSG != "" {
						r.MSG = bom + r.MSG // syslog-ng took the BOM off
					}
					for k, v := range m.SD {
						if name, ok := strings.CutPrefix(k, "opctl@32473."); ok {
							r.Params[name] = v
						}
					}
					out = append(out, r)
				}
				return out
			}
		}},
	}
	for _, rc := range receivers {
		t.Run(rc.name, func(t *testing.T) {
			addr, wait := rc.start(t)
			d := Destination{Name: "siem", Address: addr, TLS: TLS{CAFile: ca.CertPEM}, CloseTimeout: 10 * time.Second}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			st, err := Send(ctx, d, jsonLines(t, evs), SendOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if st.Events != len(evs) || st.Messages <= len(evs)+12 {
				t.Fatalf("stats %+v for %d events: want some split", st, len(evs))
			}
			got := wait(st.Messages)
			if len(got) != st.Messages {
				t.Fatalf("%s wrote %d messages, want %d", rc.name, len(got), st.Messages)
			}
			fm, err := newFormatter(d.WithDefaults().format())
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range evs {
				n := 1
				if p, ok := got[0].Params["parts"]; ok {
					n, _ = strconv.Atoi(p)
				}
				if n < 1 || n > len(got) {
					t.Fatalf("event %s: parts=%d with %d messages left", ev.EventID, n, len(got))
				}
				parts := got[:n]
				got = got[n:]
				raw, err := Reassemble(parts)
				if err != nil {
					t.Fatalf("event %s: %v", ev.EventID, err)
				}
				if raw != ev.RawData {
					t.Fatalf("event %s: %s kept\n%q\nwant\n%q", ev.EventID, rc.name, raw, ev.RawData)
				}
				// Split or not, the json comes through too: with raw_data it
				// gives back the event's hash (issue 9).
				checkEventJSON(t, ev, parts)
				p := parts[0].Params
				want := map[string]string{
					"event_id": ev.EventID, "req_auth_id": ev.ReqAuthID, "layer": ev.Layer,
					"loginid": ev.LoginID, "host": ev.Host, "event": string(ev.Event),
					"pri": strings.Trim(fm.pri[classify(ev)], "<>1 "),
				}
				for k, v := range want {
					if p[k] != v {
						t.Errorf("event %s: %s=%q, want %q", ev.EventID, k, p[k], v)
					}
				}
			}
		})
	}
}
