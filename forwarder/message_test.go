package forwarder

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/leodido/go-syslog/v4/rfc5424"

	"github.com/auditpipe/auditpipe/schemas"
)

func testFormat() Format {
	return Format{AppName: "opctl", SDName: "opctl", EnterpriseID: 32473, Facility: 10, MaxSize: 8192}
}

func loginEvent() *schemas.Event {
	return &schemas.Event{
		Layer: "CPS", ReqAuthID: "ocid1.req.oc1..aaaa", Event: schemas.KindLogin, Host: "scaqar05dv0511m",
		LoginID: "830916abb78e4157b9e45b641e34fcf6", EventID: "0123456789abcdef0123456789abcdef",
		TS: "2021-04-12T07:38:05.752Z", Time: "Mon Apr 12 07:38:05 2021",
		RawData: "type=USER_LOGIN msg=audit(04/12/2021 07:38:05.752:1742859) : pid=65327 uid=root auid=830916abb78e4157b9e45b641e34fcf6 ses=32770 msg='op=login id=830916abb78e4157b9e45b641e34fcf6 exe=/usr/sbin/sshd hostname=localhost.localdomain addr=127.0.0.1 terminal=/dev/pts/3 res=success' \n",
	}
}

// unframe strips the RFC 5425 "LEN SP" prefix and checks LEN.
func unframe(t testing.TB, f []byte) []byte {
	t.Helper()
	sp := bytes.IndexByte(f, ' ')
	if sp < 1 {
		t.Fatalf("frame %q: no length prefix", f)
	}
	n, err := strconv.Atoi(string(f[:sp]))
	if err != nil || n != len(f)-sp-1 {
		t.Fatalf("frame %q: length %q, want %d", f[:min(len(f), 40)], f[:sp], len(f)-sp-1)
	}
	return f[sp+1:]
}

func parse(t testing.TB, msg []byte) *rfc5424.SyslogMessage {
	t.Helper()
	m, err := rfc5424.NewParser().Parse(msg)
	if err != nil {
		t.Fatalf("go-syslog rejects %q: %v", msg, err)
	}
	return m.(*rfc5424.SyslogMessage)
}

func str(p *string) string {
	if p == nil {
		return "-"
	}
	return *p
}

func TestFormatRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		edit     func(*schemas.Event)
		wantHost string
		wantMsg  string // "" = the event's raw_data
		wantTS   string // "" = the event's ts
	}{
		{name: "login as in the seed", wantHost: "scaqar05dv0511m"},
		{name: "command with NUL, quote, backslash and bracket in SD values",
			edit: func(e *schemas.Event) {
				e.Event = schemas.KindCommand
				e.LoginID = `a"b\c]d`
				e.ReqAuthID = `]]\\""`
				e.RawData = "type=PROCTITLE msg=audit(…) : proctitle=ls\x00/ \n"
			}, wantHost: "scaqar05dv0511m"},
		{name: "empty raw_data", edit: func(e *schemas.Event) { e.RawData = "" }, wantHost: "scaqar05dv0511m"},
		{name: "host with spaces and non-ASCII is sanitised",
			edit: func(e *schemas.Event) { e.Host = "höst name" }, wantHost: "h__st_name"},
		{name: "host over 255 is cut", edit: func(e *schemas.Event) { e.Host = strings.Repeat("h", 300) }, wantHost: strings.Repeat("h", 255)},
		{name: "empty host is the NILVALUE", edit: func(e *schemas.Event) { e.Host = "" }, wantHost: "-"},
		{name: "unparsable ts is the NILVALUE", edit: func(e *schemas.Event) { e.TS = "yesterday" }, wantHost: "scaqar05dv0511m", wantTS: "-"},
		{name: "non-UTC ts is sent in UTC", edit: func(e *schemas.Event) { e.TS = "2021-04-12T09:38:05.752+02:00" }, wantHost: "scaqar05dv0511m", wantTS: "2021-04-12T07:38:05.752Z"},
		{name: "raw_data starting with spaces and with newlines", edit: func(e *schemas.Event) { e.RawData = "  a \n b \n" }, wantHost: "scaqar05dv0511m"},
		{name: "invalid UTF-8 in SD value is replaced", edit: func(e *schemas.Event) { e.LoginID = "a\xffb" }, wantHost: "scaqar05dv0511m"},
	}
	fm, err := newFormatter(testFormat())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := loginEvent()
			if tc.edit != nil {
				tc.edit(ev)
			}
			frames, err := fm.frames(ev)
			if err != nil {
				t.Fatal(err)
			}
			if len(frames) != 1 {
				t.Fatalf("%d frames, want 1", len(frames))
			}
			m := parse(t, unframe(t, frames[0]))
			if *m.Priority != 10*8+6 || m.Version != 1 {
				t.Errorf("PRI %d version %d", *m.Priority, m.Version)
			}
			if got := str(m.Hostname); got != tc.wantHost {
				t.Errorf("HOSTNAME %q, want %q", got, tc.wantHost)
			}
			if str(m.Appname) != "opctl" || str(m.MsgID) != string(ev.Event) || m.ProcID != nil {
				t.Errorf("APP-NAME %q MSGID %q PROCID %q", str(m.Appname), str(m.MsgID), str(m.ProcID))
			}
			wantTS := tc.wantTS
			if wantTS == "" {
				wantTS = ev.TS
			}
			gotTS := "-"
			if m.Timestamp != nil {
				gotTS = m.Timestamp.UTC().Format(schemas.TSLayout)
			}
			if wantTS != "-" {
				w, _ := time.Parse(time.RFC3339Nano, wantTS)
				wantTS = w.UTC().Format(schemas.TSLayout)
			}
			if gotTS != wantTS {
				t.Errorf("TIMESTAMP %q, want %q", gotTS, wantTS)
			}
			sd := (*m.StructuredData)["opctl@32473"]
			want := map[string]string{
				"req_auth_id": ev.ReqAuthID, "layer": ev.Layer, "event": string(ev.Event),
				"loginid": strings.ToValidUTF8(ev.LoginID, "\uFFFD"), "host": ev.Host, "event_id": ev.EventID,
				"seq": strconv.FormatUint(ev.Seq, 10), "prev_hash": ev.PrevHash, "hash": ev.Hash(),
			}
			// json, with raw_data from the MSG, gives back the event's
			// canonical bytes: their hash is the hash parameter.
			var fromSD schemas.Event
			if err := fromSD.DecodeJSON([]byte(sd["json"])); err != nil {
				t.Fatalf("json parameter %q: %v", sd["json"], err)
			}
			fromSD.RawData = ev.RawData
			// (Not for an event holding invalid UTF-8, which no decoded
			// event does: AppendJSON writes it as \ufffd, which decodes to
			// U+FFFD itself.)
			if utf8.ValidString(ev.LoginID) && fromSD.Hash() != ev.Hash() {
				t.Errorf("json parameter %q with raw_data hashes to %s, want %s", sd["json"], fromSD.Hash(), ev.Hash())
			}
			want["json"] = sd["json"]
			if !strings.HasSuffix(ev.RawData, " \n") {
				want["eol"] = "" // these raw_data end in " \n" or in no line end at all
			}
			for k, v := range want {
				if sd[k] != v {
					t.Errorf("SD %s = %q, want %q", k, sd[k], v)
				}
			}
			if len(sd) != len(want) {
				t.Errorf("SD has %d params, want %d: %v", len(sd), len(want), sd)
			}
			if got := received(t, unframe(t, frames[0])); mustReassemble(t, got) != ev.RawData {
				t.Errorf("MSG %q (eol %q) gives back %q, want %q", got.MSG, got.Params["eol"], mustReassemble(t, got), ev.RawData)
			}
		})
	}
}

func TestFormatterConfig(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Format)
		wantErr string
	}{
		{name: "defaults"},
		{name: "app name with space", edit: func(f *Format) { f.AppName = "op ctl" }, wantErr: "app_name"},
		{name: "app name too long", edit: func(f *Format) { f.AppName = strings.Repeat("a", 49) }, wantErr: "app_name"},
		{name: "app name 48", edit: func(f *Format) { f.AppName = strings.Repeat("a", 48) }},
		{name: "sd name with =", edit: func(f *Format) { f.SDName = "a=b" }, wantErr: "sd_name"},
		{name: "sd name too long", edit: func(f *Format) { f.SDName = strings.Repeat("s", 30) }, wantErr: "sd_name"},
		{name: "facility", edit: func(f *Format) { f.Facility = 24 }, wantErr: "facility"},
		{name: "severity", edit: func(f *Format) { f.Severities = map[Class]int{ClassLogin: -1} }, wantErr: "severities.login"},
		{name: "unknown class", edit: func(f *Format) { f.Severities = map[Class]int{"sudo": 4} }, wantErr: "not an event class"},
		{name: "size", edit: func(f *Format) { f.MaxSize = 479 }, wantErr: "max_message_size"},
		{name: "enterprise", edit: func(f *Format) { f.EnterpriseID = 0 }, wantErr: "enterprise_id"},
		// Mutation testing (issue 15): each bound of newFormatter accepts
		// its edge value and refuses the next one, with its own message
		// (go-syslog's builder refuses an SD-ID over 32 characters as
		// well, with the less helpful "not a valid SD-NAME"). Mutants
		// killed: message.go:80:16, 80:34, 89:8, 89:17, 100:19
		// (CONDITIONALS_BOUNDARY), 100:30, 100:32 (ARITHMETIC_BASE).
		{name: "facility 0", edit: func(f *Format) { f.Facility = 0 }},
		{name: "facility 23", edit: func(f *Format) { f.Facility = 23 }},
		{name: "facility -1", edit: func(f *Format) { f.Facility = -1 }, wantErr: "facility -1"},
		{name: "severity 0", edit: func(f *Format) { f.Severities = map[Class]int{ClassLogin: 0} }},
		{name: "severity 7", edit: func(f *Format) { f.Severities = map[Class]int{ClassLogin: 7} }},
		{name: "severity 8", edit: func(f *Format) { f.Severities = map[Class]int{ClassLogin: 8} }, wantErr: "severities.login 8"},
		{name: "size 480", edit: func(f *Format) { f.MaxSize = 480 }},
		{name: "enterprise 1", edit: func(f *Format) { f.EnterpriseID = 1 }},
		{name: "enterprise -1", edit: func(f *Format) { f.EnterpriseID = -1 }, wantErr: "enterprise_id"},
		// SD-ID "<sd_name>@32473": 26 + 6 = 32 characters, RFC 5424's limit.
		{name: "sd name 26", edit: func(f *Format) { f.SDName = strings.Repeat("s", 26) }},
		{name: "sd name 27", edit: func(f *Format) { f.SDName = strings.Repeat("s", 27) }, wantErr: "is longer than 32 characters"},
		{name: "sd name 27 with a shorter enterprise number", edit: func(f *Format) { f.SDName, f.EnterpriseID = strings.Repeat("s", 27), 9999 }},
		{name: "sd name 28 with a shorter enterprise number", edit: func(f *Format) { f.SDName, f.EnterpriseID = strings.Repeat("s", 28), 9999 }, wantErr: "is longer than 32 characters"},
		{name: "empty sd name", edit: func(f *Format) { f.SDName = "" }, wantErr: "sd_name"},
		{name: "empty app name", edit: func(f *Format) { f.AppName = "" }, wantErr: "app_name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := testFormat()
			if tc.edit != nil {
				tc.edit(&f)
			}
			_, err := newFormatter(f)
			if tc.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want one naming %s", err, tc.wantErr)
			}
		})
	}
}

// reassemble parses parts and returns the raw_data they give back
// (Reassemble), checking that they fit max and agree on event_id.
func reassemble(t testing.TB, max int, frames [][]byte) (msg, eventID string) {
	t.Helper()
	msgs := make([]Received, len(frames))
	for i, f := range frames {
		raw := unframe(t, f)
		if len(raw) > max {
			t.Fatalf("part %d: %d bytes, over the limit %d", i+1, len(raw), max)
		}
		msgs[i] = received(t, raw)
		if msgs[i].Params["event_id"] != msgs[0].Params["event_id"] {
			t.Fatalf("part %d: event_id %q, want %q", i+1, msgs[i].Params["event_id"], msgs[0].Params["event_id"])
		}
	}
	return mustReassemble(t, msgs...), msgs[0].Params["event_id"]
}

func TestSplit(t *testing.T) {
	tests := []struct {
		name      string
		max       int
		raw       string
		wantParts int
	}{
		{name: "fits", max: 8192, raw: strings.Repeat("x", 1000), wantParts: 1},
		{name: "just over", max: 8192, raw: strings.Repeat("x", 8192), wantParts: 2},
		{name: "many parts", max: 1024, raw: strings.Repeat("0123456789", 5000), wantParts: 0},
		{name: "multi-byte runes not cut", max: 600, raw: strings.Repeat("日本語のログ", 500), wantParts: 0},
		// 480 before the chain parameters (seq, prev_hash, hash: 90 bytes more).
		{name: "over ten parts", max: 600, raw: strings.Repeat("a", 20000), wantParts: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fm := sizedFormatter(t, tc.max)
			ev := loginEvent()
			ev.RawData = tc.raw
			frames, err := fm.frames(ev)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantParts > 0 && len(frames) != tc.wantParts {
				t.Errorf("%d parts, want %d", len(frames), tc.wantParts)
			}
			msg, id := reassemble(t, tc.max, frames)
			if msg != tc.raw {
				t.Errorf("reassembled MSG differs: %d bytes, want %d", len(msg), len(tc.raw))
			}
			if id != ev.EventID {
				t.Errorf("event_id %q", id)
			}
		})
	}
}

func TestSplitHeaderTooLarge(t *testing.T) {
	fm := sizedFormatter(t, 480)
	ev := loginEvent()
	ev.LoginID = strings.Repeat("l", 500)
	if _, err := fm.frames(ev); err == nil || !strings.Contains(err.Error(), ErrHeaderTooLarge.Error()) {
		t.Fatalf("error %v, want ErrHeaderTooLarge", err)
	}
}

// FuzzFrames checks that any event renders to messages go-syslog accepts,
// within the size limit, whose parts reassemble to the raw_data.
func FuzzFrames(f *testing.F) {
	ev := loginEvent()
	f.Add(ev.Host, ev.LoginID, ev.RawData, ev.TS, 8192)
	f.Add("h o s t", `"]\`, strings.Repeat("日本", 3000), "2021-04-12T07:38:05Z", 600)
	f.Add("", "", "", "", 480)
	f.Fuzz(func(t *testing.T, host, login, raw, ts string, max int) {
		fm := fuzzFormatter(t, max)
		if fm == nil {
			return
		}
		ev := loginEvent()
		ev.Host, ev.LoginID, ev.RawData, ev.TS = host, login, raw, ts
		frames, err := fm.frames(ev)
		if err != nil {
			if strings.Contains(err.Error(), ErrHeaderTooLarge.Error()) {
				return
			}
			t.Fatal(err)
		}
		msg, _ := reassemble(t, max, frames)
		if want := strings.ToValidUTF8(raw, "\uFFFD"); msg != want {
			t.Fatalf("reassembled %q, want %q", msg, want)
		}
		// SD-PARAM values come back unescaped, as they were.
		sd := (*parse(t, unframe(t, frames[0])).StructuredData)["opctl@32473"]
		if want := strings.ToValidUTF8(login, "\uFFFD"); sd["loginid"] != want {
			t.Fatalf("loginid %q, want %q", sd["loginid"], want)
		}
		if want := strings.ToValidUTF8(host, "\uFFFD"); sd["host"] != want {
			t.Fatalf("host %q, want %q", sd["host"], want)
		}
		// Every message carries the json, whole or in pieces: with the
		// raw_data it gives back the event's hash (issue 9).
		msgs := make([]Received, len(frames))
		for i, fr := range frames {
			msgs[i] = received(t, unframe(t, fr))
		}
		js, ok, err := ReassembleJSON(msgs)
		if err != nil || !ok {
			t.Fatalf("json: %v, %v", ok, err)
		}
		var back schemas.Event
		if err := back.DecodeJSON([]byte(js)); err != nil {
			t.Fatalf("json %q: %v", js, err)
		}
		back.RawData = msg
		// (Invalid UTF-8 is written as \ufffd in the canonical bytes, and
		// decodes to U+FFFD, which they hold as it is: not the same bytes.)
		if validUTF8(raw, login, host, ts) && back.Hash() != sd["hash"] {
			t.Fatalf("the reassembled event hashes to %s, want %s", back.Hash(), sd["hash"])
		}
	})
}

// BenchmarkFrames renders the seed's login event: "alone" as frames does
// (its own allocations), "arena" as the pipeline does (frames taken from
// an arena, appended to a reused slice), "value/..." from its JSON.
func BenchmarkFrames(b *testing.B) {
	fm, err := newFormatter(testFormat())
	if err != nil {
		b.Fatal(err)
	}
	ev := loginEvent()
	b.Run("alone", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := fm.frames(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("arena", func(b *testing.B) {
		b.ReportAllocs()
		var a arena
		dst := make([][]byte, 0, 1024)
		for b.Loop() {
			if len(dst) == cap(dst) {
				dst = dst[:0]
			}
			if dst, err = fm.appendFrames(dst, &a, ev, canonJSON{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	// From the Kafka value, decoded, as the pipeline renders: the event
	// encoded again for its hash and json parameter ("reference"), or the
	// value taken as it is ("canonical", DecodeJSONCanonical).
	value := ev.AppendJSON(nil)
	for _, fast := range []bool{false, true} {
		name := "value/reference"
		if fast {
			name = "value/canonical"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var rd renderer
			for b.Loop() {
				var e schemas.Event
				var cj canonJSON
				if fast {
					c, err := e.DecodeJSONCanonical(value)
					if err != nil || !c.OK {
						b.Fatal(c, err)
					}
					cj = canonOf(value, c)
				} else if err := e.DecodeJSON(value); err != nil {
					b.Fatal(err)
				}
				if _, err := rd.frames(fm, &e, cj); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// slowTimestamp is appendTimestamp without its fast path.
func slowTimestamp(ts string) string {
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// TestTimestampFastPath checks that the contract's ts, copied as it is,
// gives what time.Parse and Format give, valid or not.
func TestTimestampFastPath(t *testing.T) {
	for _, ts := range []string{
		"2021-04-12T07:38:05.752Z", "0000-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z",
		"2000-02-29T00:00:00.000Z", "1900-02-29T00:00:00.000Z", "2024-02-29T12:00:00.000Z", "2023-02-29T12:00:00.000Z",
		"2021-04-31T07:38:05.752Z", "2021-00-12T07:38:05.752Z", "2021-13-12T07:38:05.752Z", "2021-04-00T07:38:05.752Z",
		"2021-04-12T24:00:00.000Z", "2021-04-12T23:60:00.000Z", "2021-04-12T23:59:60.000Z",
		"2021-04-12t07:38:05.752Z", "2021-04-12T07:38:05.752z", "2021-04-12T07:38:05,752Z", "2021-04-12T07:38:05.75aZ",
		"2021-04-12T07:38:05.752+00:00", "2021-04-12T07:38:05Z", "2021-04-12T07:38:05.7520Z", "",
	} {
		if got, want := string(appendTimestamp(nil, ts)), slowTimestamp(ts); got != want {
			t.Errorf("%q: %q, want %q (time.Parse)", ts, got, want)
		}
	}
}

// FuzzTimestamp compares appendTimestamp with time.Parse and Format.
func FuzzTimestamp(f *testing.F) {
	f.Add("2021-04-12T07:38:05.752Z")
	f.Add("2000-02-29T23:59:59.999Z")
	f.Add("2021-04-12T09:38:05.752+02:00")
	f.Fuzz(func(t *testing.T, ts string) {
		if got, want := string(appendTimestamp(nil, ts)), slowTimestamp(ts); got != want {
			t.Fatalf("%q: %q, want %q (time.Parse)", ts, got, want)
		}
	})
}

// TestParamValueEscaping compares appendParamValue's fast path (8 bytes at
// a time) with the plain escaping rule on values around 8-byte edges.
func TestParamValueEscaping(t *testing.T) {
	plain := func(v string) string {
		v = strings.ToValidUTF8(v, "\uFFFD")
		return strings.NewReplacer(`"`, `\"`, `\`, `\\`, `]`, `\]`).Replace(v)
	}
	for _, special := range []string{`"`, `\`, `]`, "é", "\xff", "\x80", "\x7f", "[", "!", "#"} {
		for n := 0; n < 20; n++ {
			for at := 0; at <= n; at++ {
				v := strings.Repeat("a", at) + special + strings.Repeat("b", n-at)
				if got, want := string(appendParamValue(nil, v)), plain(v); got != want {
					t.Fatalf("%q: %q, want %q", v, got, want)
				}
			}
		}
	}
}

// TestJSONParamValueEscaping compares both paths of appendJSONParamValue
// (a buffer with room for every byte escaped, and one without) with the
// plain escaping rule, around 8-byte edges.
func TestJSONParamValueEscaping(t *testing.T) {
	plain := strings.NewReplacer(`"`, `\"`, `\`, `\\`, `]`, `\]`)
	for _, special := range []string{`"`, `\`, `]`, `""`, `\]"`, "é", "[", "!", "#", "\x00", "\xff"} {
		for n := 0; n < 20; n++ {
			for at := 0; at <= n; at++ {
				v := strings.Repeat("a", at) + special + strings.Repeat(`b"`, (n-at)/2) + strings.Repeat("c", (n-at)%2)
				want := "pre" + plain.Replace(v)
				roomy := append(make([]byte, 0, 3+2*len(v)), "pre"...)
				tight := append(make([]byte, 0, 3), "pre"...)
				if got := string(appendJSONParamValue(roomy, []byte(v))); got != want {
					t.Fatalf("%q, with room: %q, want %q", v, got, want)
				}
				if got := string(appendJSONParamValue(tight, []byte(v))); got != want {
					t.Fatalf("%q, without room: %q, want %q", v, got, want)
				}
			}
		}
	}
}

// fuzzFormatter is sizedFormatter for the fuzz targets: nil when max is
// outside MinMessageSize to 64 KiB.
func fuzzFormatter(t *testing.T, max int) *formatter {
	t.Helper()
	if max < MinMessageSize || max > 1<<16 {
		return nil
	}
	return sizedFormatter(t, max)
}

// sizedFormatter is testFormat's formatter with a MaxSize of max.
func sizedFormatter(t testing.TB, max int) *formatter {
	t.Helper()
	f := testFormat()
	f.MaxSize = max
	fm, err := newFormatter(f)
	if err != nil {
		t.Fatal(err)
	}
	return fm
}

// validUTF8 reports whether every one of ss is valid UTF-8 (their
// concatenation may be when one is not).
func validUTF8(ss ...string) bool {
	for _, s := range ss {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}
