package forwarder

import (
	"bytes"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/schemas"
)

// renderEvents are events of every kind, with raw_data that splits, needs
// escapes, ends without LF and holds what the json parameter escapes.
func renderEvents() map[string]*schemas.Event {
	login := loginEvent()
	login.PrevHash = strings.Repeat("ab", 32)
	login.Seq = 42
	failed := loginEvent()
	failed.Res = "failed"
	failed.RawData = "a \"quoted\" \\ back ] bracket é 日本 \u2028 \x01\t\r\n\x00"
	cmd := loginEvent()
	cmd.Event, cmd.Title, cmd.Args, cmd.Exe, cmd.Ses = schemas.KindCommand, "sudo\x00-i", []string{"sudo", "-i"}, "/usr/bin/sudo", "7"
	cmd.Res = "failed"
	cmd.Escaped = []string{"raw_data"}
	long := loginEvent()
	long.RawData = strings.Repeat("0123456789abc]\"\\\n", 700)
	keys := loginEvent()
	keys.Event, keys.Keys, keys.RawData = schemas.KindKeys, "ls -l\r", ""
	return map[string]*schemas.Event{"login": login, "failed login": failed, "sudo refused": cmd, "split": long, "keys": keys}
}

// checkRenderFast renders value, a Kafka value or input line, as the
// pipeline does (DecodeJSONCanonical, its bytes taken as they are when
// canonical) and as the reference (DecodeJSON, the event encoded again),
// and fails unless the frames are the same bytes. It returns whether the
// fast path was taken.
func checkRenderFast(t *testing.T, fm *formatter, value []byte) bool {
	t.Helper()
	var ref schemas.Event
	refErr := ref.DecodeJSON(value)
	var ev schemas.Event
	c, err := ev.DecodeJSONCanonical(value)
	if (err == nil) != (refErr == nil) {
		t.Fatalf("value %q: error %v, DecodeJSON's %v", value, err, refErr)
	}
	if err != nil {
		return false
	}
	want, wantErr := fm.appendFrames(nil, nil, &ref, canonJSON{})
	var rd renderer
	got, gotErr := rd.frames(fm, &ev, canonOf(value, c))
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("value %q: error %v, reference %v", value, gotErr, wantErr)
	}
	if len(got) != len(want) {
		t.Fatalf("value %q: %d frames, reference %d", value, len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("value %q (canonical %v): frame %d\n      %q\nwant %q", value, c.OK, i, got[i], want[i])
		}
	}
	return c.OK
}

// TestRenderFastEqualsReference: rendering from the Kafka value as it is
// (the collector's canonical bytes) gives the reference rendering byte for
// byte, and a value that is not canonical takes the reference path.
func TestRenderFastEqualsReference(t *testing.T) {
	for _, max := range []int{MinMessageSize, 8192} {
		fm := sizedFormatter(t, max)
		for name, ev := range renderEvents() {
			canon := ev.AppendJSON(nil)
			for _, tc := range []struct {
				variant string
				value   []byte
				fast    bool
			}{
				{"canonical", canon, true},
				{"indented", bytes.Replace(canon, []byte(`,"host":`), []byte(`, "host": `), 1), false},
				{"trailing newline", append(bytes.Clone(canon), '\n'), false},
				{"escaped slash", bytes.Replace(canon, []byte(`"layer":"CPS"`), []byte(`"layer":"CP\/S"`), 1), false},
			} {
				if fast := checkRenderFast(t, fm, tc.value); fast != tc.fast {
					t.Errorf("%s, %s, max %d: fast path %v, want %v", name, tc.variant, max, fast, tc.fast)
				}
			}
		}
	}
}

// FuzzRender renders arbitrary values, and the canonical bytes of events
// made of the input, by both paths (see checkRenderFast).
func FuzzRender(f *testing.F) {
	for _, ev := range renderEvents() {
		f.Add(ev.AppendJSON(nil), 8192)
		f.Add(ev.AppendJSON(nil), MinMessageSize)
	}
	f.Add([]byte(`{"layer":"a","event":"login","host":"h","ts":"x","event_id":"0123456789abcdef0123456789abcdef"}`), 600)
	f.Fuzz(func(t *testing.T, value []byte, max int) {
		fm := fuzzFormatter(t, max)
		if fm == nil {
			return
		}
		checkRenderFast(t, fm, value)
		ev := loginEvent()
		s := strings.ToValidUTF8(string(value), "\uFFFD")
		ev.RawData, ev.LoginID = s, s
		if !checkRenderFast(t, fm, ev.AppendJSON(nil)) {
			t.Fatalf("the canonical bytes of %#v did not take the fast path", ev)
		}
	})
}
