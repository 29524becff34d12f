package schemas

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// chainEvent is a signed chain checkpoint.
func chainEvent() Event {
	return Event{
		Layer: "CPS", ReqAuthID: "-", Event: KindChain, Host: "h1", RawData: "",
		EventID: NewChainEventID("h1", 1, 3), TS: "2023-11-14T22:13:20.200Z",
		PrevHash: strings.Repeat("a", 64), ChainFirst: 1, ChainLast: 3, ChainCount: 3,
		ChainHead: strings.Repeat("b", 64), KeyID: "0123456789abcdef", Sig: "c2ln",
	}
}

// canonicalEvents are events whose AppendJSON bytes DecodeJSONCanonical
// must take as canonical: every kind, and strings with every escape
// appendString writes.
func canonicalEvents() map[string]Event {
	odd := benchEvent()
	odd.RawData = "q\"b\\n\nr\rt\tc\x01\x1f\x7f é 日本 \u2028\u2029 ]"
	odd.Args = []string{}
	odd.Ses = ""
	odd.Escaped = []string{"raw_data", "title"}
	login := fullEvent()
	login.Event = KindLogin
	logout := login
	logout.Event = KindLogout
	unknown := fullEvent()
	unknown.Event = "bogus"
	unsigned := chainEvent()
	unsigned.KeyID, unsigned.Sig = "", ""
	keyOnly := chainEvent()
	keyOnly.Sig = ""
	return map[string]Event{
		"command": benchEvent(), "odd strings": odd, "login": login, "logout": logout,
		"keys": fullEvent(), "chain": chainEvent(), "unsigned chain": unsigned,
		"chain with key_id only": keyOnly, "unknown kind": unknown, "zero": {},
	}
}

func TestDecodeJSONCanonical(t *testing.T) {
	for name, ev := range canonicalEvents() {
		t.Run(name, func(t *testing.T) {
			in, rawStart, rawEnd := ev.AppendJSONRawSpan(nil)
			c := checkCanonical(t, in)
			if !c.OK {
				t.Fatalf("AppendJSON's bytes %q not taken as canonical", in)
			}
			if c.RawStart != rawStart || c.RawEnd != rawEnd {
				t.Fatalf("raw_data span %d..%d, want %d..%d", c.RawStart, c.RawEnd, rawStart, rawEnd)
			}
		})
	}
	// Each input decodes, and is not its event's canonical bytes.
	canon := string(func() []byte { e := benchEvent(); return e.AppendJSON(nil) }())
	for _, tt := range []struct{ name, in string }{
		{"trailing newline", canon + "\n"},
		{"leading space", " " + canon},
		{"space after a colon", strings.Replace(canon, `"layer":"`, `"layer": "`, 1)},
		{"keys reordered", strings.Replace(canon, `{"layer":"CPS","req_auth_id":"2"`, `{"req_auth_id":"2","layer":"CPS"`, 1)},
		{"folded key", strings.Replace(canon, `"host"`, `"HOST"`, 1)},
		{"escaped slash", strings.Replace(canon, `/usr/bin/tar"`, `\/usr/bin/tar"`, 1)},
		{"\\u escape of a letter", strings.Replace(canon, `"layer":"CPS"`, `"layer":"\u0043PS"`, 1)},
		{"\\u00E9", `{"layer":"\u00E9"}`},
		{"\\b", strings.Replace(canon, `tar\u0000`, `tar\b`, 1)},
		{"\\u000a", strings.Replace(canon, `\n`, `\u000a`, 1)},
		{"\\ufffd", strings.Replace(canon, `"layer":"CPS"`, `"layer":"\ufffd"`, 1)},
		{"raw U+2028", strings.Replace(canon, `"layer":"CPS"`, "\"layer\":\"\u2028\"", 1)},
		{"invalid UTF-8", strings.Replace(canon, `"layer":"CPS"`, "\"layer\":\"\xff\"", 1)},
		{"empty ses", strings.Replace(canon, `"ses":"7"`, `"ses":""`, 1)},
		{"empty escaped", strings.Replace(canon, `,"event_id"`, `,"escaped":[],"event_id"`, 1)},
		{"args missing", strings.Replace(canon, `,"args":["tar","-czf","/backup/etc.tgz","/etc"]`, ``, 1)},
		{"null string", strings.Replace(canon, `"tty":"pts0"`, `"tty":null`, 1)},
		{"seq with exponent", strings.Replace(canon, `"seq":123456`, `"seq":123456e0`, 1)},
		{"prev_hash missing", strings.Replace(canon, `,"prev_hash":""`, ``, 1)},
		{"key repeated", strings.Replace(canon, `}`, `,"host":"x"}`, 1)},
		{"null", `null`},
		{"empty object", `{}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if c := checkCanonical(t, []byte(tt.in)); c.OK {
				t.Fatalf("%q taken as canonical", tt.in)
			}
		})
	}
}

// checkCanonical checks DecodeJSONCanonical on in against DecodeJSON (same
// event or same error) and, when it reports in canonical, against
// AppendJSONRawSpan (the same bytes, the same span); it also checks that
// the canonical bytes of what in decodes to are taken as canonical.
func checkCanonical(t *testing.T, in []byte) Canonical {
	t.Helper()
	want := fullEvent()
	wantErr := want.DecodeJSON(in)
	got := fullEvent()
	c, err := got.DecodeJSONCanonical(in)
	if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
		t.Fatalf("input %q: error %v, DecodeJSON's %v", in, err, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("input %q:\nDecodeJSONCanonical %#v\n         DecodeJSON %#v", in, got, want)
	}
	if err != nil {
		if c != (Canonical{}) {
			t.Fatalf("input %q: error %v with %+v", in, err, c)
		}
		return c
	}
	ref, rawStart, rawEnd := got.AppendJSONRawSpan(nil)
	if c.OK && (!bytes.Equal(in, ref) || c.RawStart != rawStart || c.RawEnd != rawEnd) {
		t.Fatalf("input %q taken as canonical (raw_data %d..%d); AppendJSON gives %q (%d..%d)", in, c.RawStart, c.RawEnd, ref, rawStart, rawEnd)
	}
	if !c.OK && bytes.Equal(in, ref) {
		t.Fatalf("input %q is AppendJSON's bytes, not taken as canonical", in)
	}
	if !c.OK && in != nil {
		// The fast path must not miss what the collector writes.
		var again Event
		if c2, err := again.DecodeJSONCanonical(ref); err != nil || !c2.OK {
			t.Fatalf("AppendJSON's bytes %q: canonical %v, error %v", ref, c2.OK, err)
		}
	}
	return c
}

// FuzzDecodeCanonical checks DecodeJSONCanonical on arbitrary input
// against DecodeJSON and AppendJSONRawSpan (see checkCanonical), and on
// the canonical bytes of events built from the input.
func FuzzDecodeCanonical(f *testing.F) {
	for _, in := range seedInputs(f) {
		f.Add(in)
	}
	for _, ev := range canonicalEvents() {
		f.Add(ev.AppendJSON(nil))
	}
	f.Add([]byte(`{"layer":"\u00e9\ud800"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		checkCanonical(t, in)
		checkCanonical(t, fragmentObject(in))
		// An event with the input as its strings, encoded: canonical. (The
		// collector's strings are valid UTF-8; AppendJSON writes an invalid
		// byte as \ufffd, which decodes to U+FFFD, written as it is.)
		for _, ev := range []Event{benchEvent(), chainEvent(), fullEvent()} {
			s := strings.ToValidUTF8(string(in), "\uFFFD")
			ev.RawData, ev.Title, ev.Layer = s, s, s
			if len(in) > 0 && in[0]%2 == 0 {
				ev.Ses, ev.Escaped, ev.KeyID = "", []string{s}, s
			}
			if c := checkCanonical(t, ev.AppendJSON(nil)); !c.OK {
				t.Fatalf("event %#v: its canonical bytes are not taken as canonical", ev)
			}
		}
	})
}

// BenchmarkDecodeCanonical compares DecodeJSONCanonical with DecodeJSON
// followed by AppendJSONRawSpan (what the forwarder did to have the
// event's canonical bytes) on benchEvent's canonical bytes.
func BenchmarkDecodeCanonical(b *testing.B) {
	bench := benchEvent()
	raw := bench.AppendJSON(nil)
	b.Run("DecodeJSONCanonical", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for b.Loop() {
			var e Event
			if c, err := e.DecodeJSONCanonical(raw); err != nil || !c.OK {
				b.Fatal(c, err)
			}
		}
	})
	b.Run("DecodeJSON+AppendJSONRawSpan", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		buf := make([]byte, 0, 2048)
		for b.Loop() {
			var e Event
			if err := e.DecodeJSON(raw); err != nil {
				b.Fatal(err)
			}
			buf, _, _ = e.AppendJSONRawSpan(buf[:0])
		}
	})
}
