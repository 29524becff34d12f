package forwarder

import (
	"strconv"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/internal/siemtest"
	"github.com/auditpipe/auditpipe/schemas"
)

// jsonLayout says where a message's json went: "whole" (one message),
// "beside" (split, the json whole in part 1 beside the MSG's first piece),
// "alone" (split, the json whole in part 1, the MSG from part 2),
// "pieces2" and "pieces3+" (split, the json in two or more pieces).
func jsonLayout(t *testing.T, msgs []Received) string {
	t.Helper()
	if len(msgs) == 1 && msgs[0].Params["parts"] == "" {
		return "whole"
	}
	n := 0
	for _, m := range msgs {
		if _, ok := m.Params["json"]; ok {
			n++
		}
	}
	switch {
	case n == 1 && msgs[0].MSG != "":
		return "beside"
	case n == 1:
		return "alone"
	case n == 2:
		return "pieces2"
	}
	return "pieces3+"
}

// TestSplitCarriesJSON is the regression test for the issue 9 blocker:
// a split event (or one that fitted only without it) was sent without the
// json parameter, so auditpipe verify --from-syslog could prove none of
// its fields. The title grows the json one rune at a time ('"' and '\'
// escaped twice, in the JSON and in the SD-PARAM, ']' once, a three-byte
// rune) across every boundary: the message fitting whole, the json in
// part 1 beside the MSG, the json alone in part 1 and the MSG from part 2,
// the json in two and in more pieces. Every message fits once rsyslog has
// escaped it, no MSG ends with a line end, the json pieces come first at
// offsets that follow each other, the MSG starts beside the last piece
// when there is room for minChunk bytes and encoding="base64" there, and
// the reassembled json with the reassembled raw_data hashes to the hash
// parameter of every part.
func TestSplitCarriesJSON(t *testing.T) {
	const max = 1200
	fm := sizedFormatter(t, max)
	tests := []struct {
		name  string
		raw   string
		title int // the longest title, in runes
		want  []string
	}{
		// A part's header is longer than a whole message's: a json too
		// long for the latter is too long for part 1 too.
		{"empty raw_data", "", 1400, []string{"whole", "pieces2", "pieces3+"}},
		{"short raw_data", "x \n", 1400, []string{"whole", "pieces2", "pieces3+"}},
		{"long raw_data", strings.Repeat("ab\ncd \r\n€ ", 300), 1400, []string{"beside", "alone", "pieces2", "pieces3+"}},
		{"line ends only", strings.Repeat("\n", 2000), 700, []string{"beside", "alone", "pieces2"}},
	}
	runes := []rune(`a"b\c]d日`)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[string]bool{}
			var title strings.Builder
			for n := 0; n <= tc.title; n++ {
				ev := loginEvent()
				ev.Event, ev.Args = schemas.KindCommand, []string{"ls"}
				ev.RawData, ev.Title = tc.raw, title.String()
				title.WriteRune(runes[n%len(runes)])
				frames, err := fm.frames(ev)
				if err != nil {
					t.Fatalf("title of %d runes: %v", n, err)
				}
				msgs := make([]Received, len(frames))
				for i, fr := range frames {
					m := unframe(t, fr)
					if l := len(siemtest.EscapeRsyslog(string(m))); l > max {
						t.Fatalf("title of %d runes: part %d is %d bytes once rsyslog escaped it, over %d", n, i+1, l, max)
					}
					msgs[i] = received(t, m)
					if s := msgs[i].MSG; s != "" && isEOL(s[len(s)-1]) {
						t.Fatalf("title of %d runes: part %d ends with %q", n, i+1, s[len(s)-1])
					}
				}
				layout := jsonLayout(t, msgs)
				seen[layout] = true
				checkJSONPieces(t, n, max, frames, msgs)
				if got := mustReassemble(t, msgs...); got != ev.RawData {
					t.Fatalf("title of %d runes: raw_data %q, want %q", n, got, ev.RawData)
				}
				checkEventJSON(t, ev, msgs)
			}
			for _, w := range tc.want {
				if !seen[w] {
					t.Errorf("no title gave the layout %q (saw %v)", w, seen)
				}
			}
		})
	}
}

// checkJSONPieces checks where a split event's json went: pieces in parts
// 1..k at offsets that follow each other, nothing of the json after them,
// and the MSG beside the last piece unless too little room was left there.
func checkJSONPieces(t *testing.T, n, max int, frames [][]byte, msgs []Received) {
	t.Helper()
	if msgs[0].Params["parts"] == "" {
		if _, ok := msgs[0].Params["json"]; !ok {
			t.Fatalf("title of %d runes: unsplit message without json", n)
		}
		return
	}
	off, last := 0, -1
	for i, m := range msgs {
		piece, ok := m.Params["json"]
		if !ok {
			if _, has := m.Params["json_offset"]; has {
				t.Fatalf("title of %d runes: part %d: json_offset without json", n, i+1)
			}
			continue
		}
		if last != i-1 {
			t.Fatalf("title of %d runes: part %d carries json after part %d without", n, i+1, last+1)
		}
		if m.Params["json_offset"] != strconv.Itoa(off) {
			t.Fatalf("title of %d runes: part %d: json_offset %q, want %d", n, i+1, m.Params["json_offset"], off)
		}
		if i < len(msgs)-1 && m.MSG != "" && msgs[i+1].Params["json"] != "" {
			t.Fatalf("title of %d runes: part %d has MSG before the json's end", n, i+1)
		}
		off += len(piece)
		last = i
	}
	if last < 0 {
		t.Fatalf("title of %d runes: %d parts, none with json", n, len(msgs))
	}
	// Room for the MSG beside the last piece: its first minChunk bytes
	// and encoding="base64", within the few bytes that the widest part
	// numbers and json_offset that split assumes take more.
	const slack = 12
	if lp := msgs[last]; lp.MSG == "" && last < len(msgs)-1 {
		if room := max - len(siemtest.EscapeRsyslog(string(unframe(t, frames[last])))); room >= 1+len(bom)+minChunk+len(base64Param)+slack {
			t.Fatalf("title of %d runes: part %d left %d bytes beside the json, the MSG starts in part %d", n, last+1, room, last+2)
		}
	}
}

// TestReassembleJSON checks the json of an event as its parts give it
// back, and that every change to the pieces (their offsets, a piece
// dropped or repeated, one moved, json_offset alone) is an error; a piece
// changed or the last one dropped is not seen here but by the event's hash
// (verify's tests).
func TestReassembleJSON(t *testing.T) {
	fm := sizedFormatter(t, 600)
	ev := loginEvent()
	ev.RawData = strings.Repeat("0123456789abcde\n", 30)
	frames, err := fm.frames(ev)
	if err != nil {
		t.Fatal(err)
	}
	noRaw := *ev
	noRaw.RawData = ""
	want := string(noRaw.AppendJSON(nil))
	parts := func() []Received {
		out := make([]Received, len(frames))
		for i, fr := range frames {
			out[i] = received(t, unframe(t, fr))
		}
		return out
	}
	if n := len(parts()); n < 4 || parts()[2].Params["json"] == "" {
		t.Fatalf("%d parts, want the json in three or more", n)
	}
	whole := received(t, unframe(t, must(sizedFormatter(t, 8192).frames(ev))[0]))
	tests := []struct {
		name    string
		msgs    func() []Received
		want    string
		wantOK  bool
		wantErr string
	}{
		{name: "split", msgs: parts, want: want, wantOK: true},
		{name: "unsplit", msgs: func() []Received { return []Received{whole} }, want: want, wantOK: true},
		{name: "no json at all", msgs: func() []Received {
			p := parts()
			for _, m := range p {
				delete(m.Params, "json")
				delete(m.Params, "json_offset")
			}
			return p
		}, wantOK: false},
		{name: "a middle piece dropped", msgs: func() []Received {
			p := parts()
			delete(p[1].Params, "json")
			delete(p[1].Params, "json_offset")
			return p
		}, wantErr: "part 3: json piece at offset"},
		{name: "the first piece dropped", msgs: func() []Received {
			p := parts()
			delete(p[0].Params, "json")
			delete(p[0].Params, "json_offset")
			return p
		}, wantErr: "part 2: json piece at offset"},
		{name: "a piece repeated", msgs: func() []Received {
			p := parts()
			p[2].Params["json"], p[2].Params["json_offset"] = p[1].Params["json"], p[1].Params["json_offset"]
			return p
		}, wantErr: "part 3: json piece at offset"},
		{name: "offset moved", msgs: func() []Received {
			p := parts()
			p[1].Params["json_offset"] = strconv.Itoa(len(p[0].Params["json"]) + 1)
			return p
		}, wantErr: "part 2: json piece at offset"},
		{name: "offset not a number", msgs: func() []Received {
			p := parts()
			p[1].Params["json_offset"] = "+5"
			return p
		}, wantErr: "json_offset"},
		{name: "json without json_offset", msgs: func() []Received {
			p := parts()
			delete(p[1].Params, "json_offset")
			return p
		}, wantErr: "no json_offset (part 2)"},
		{name: "json_offset without json", msgs: func() []Received {
			p := parts()
			p[len(p)-1].Params["json_offset"] = "0"
			return p
		}, wantErr: "json_offset without json"},
		{name: "json_offset on an unsplit message", msgs: func() []Received {
			w := Received{Params: map[string]string{}, MSG: whole.MSG}
			for k, v := range whole.Params {
				w.Params[k] = v
			}
			w.Params["json_offset"] = "0"
			return []Received{w}
		}, wantErr: "json_offset without parts"},
		{name: "no message", msgs: func() []Received { return nil }, wantErr: "no message"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			js, ok, err := ReassembleJSON(tc.msgs())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), ErrReassemble.Error()) {
					t.Fatalf("error %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || ok != tc.wantOK || js != tc.want {
				t.Fatalf("got %q, %v, %v; want %q, %v", js, ok, err, tc.want, tc.wantOK)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// FuzzReassembleJSON feeds ReassembleJSON three parts with arbitrary json
// pieces and offsets: it must never panic, every error wraps
// ErrReassemble, and what it accepts is the pieces present, in order, each
// at the offset it names.
func FuzzReassembleJSON(f *testing.F) {
	f.Add("{\"a\"", "0", ":1}", "4", "", "", true)
	f.Add("{}", "0", "", "", "", "", false)
	f.Add("x", "1", "y", "0", "z", "", true)
	f.Fuzz(func(t *testing.T, j1, o1, j2, o2, j3, o3 string, split bool) {
		var msgs []Received
		for _, p := range [][2]string{{j1, o1}, {j2, o2}, {j3, o3}} {
			params := map[string]string{}
			if split {
				params["parts"] = "3"
			}
			if p[0] != "" {
				params["json"] = p[0]
			}
			if p[1] != "" {
				params["json_offset"] = p[1]
			}
			msgs = append(msgs, Received{Params: params})
		}
		js, ok, err := ReassembleJSON(msgs)
		if err != nil {
			if !strings.HasPrefix(err.Error(), ErrReassemble.Error()) {
				t.Fatalf("error %v does not wrap ErrReassemble", err)
			}
			return
		}
		if !split {
			if js != j1 || ok != (j1 != "") {
				t.Fatalf("unsplit: %q, %v; want %q", js, ok, j1)
			}
			return
		}
		var b strings.Builder
		for _, m := range msgs {
			if piece, has := m.Params["json"]; has {
				if m.Params["json_offset"] != strconv.Itoa(b.Len()) {
					t.Fatalf("accepted a piece at json_offset %q, want %d", m.Params["json_offset"], b.Len())
				}
				b.WriteString(piece)
			}
		}
		if js != b.String() || ok != (b.Len() > 0) {
			t.Fatalf("got %q, %v; want %q", js, ok, b.String())
		}
	})
}

// checkEventJSON checks that the messages of ev, as a receiver stored
// them, carry its json (whole or in pieces) and that the json, with the
// reassembled raw_data, gives back ev's hash, the hash parameter of each
// message: what auditpipe verify --from-syslog recomputes.
func checkEventJSON(t testing.TB, ev *schemas.Event, msgs []Received) {
	t.Helper()
	js, ok, err := ReassembleJSON(msgs)
	if err != nil || !ok {
		t.Fatalf("event %s: json %v, %v", ev.EventID, ok, err)
	}
	noRaw := *ev
	noRaw.RawData = ""
	if want := string(noRaw.AppendJSON(nil)); js != want {
		t.Fatalf("event %s: json\n%s\nwant\n%s", ev.EventID, js, want)
	}
	var back schemas.Event
	if err := back.DecodeJSON([]byte(js)); err != nil {
		t.Fatalf("event %s: json: %v", ev.EventID, err)
	}
	if back.RawData, err = Reassemble(msgs); err != nil {
		t.Fatalf("event %s: %v", ev.EventID, err)
	}
	for i, m := range msgs {
		if h := back.Hash(); m.Params["hash"] != h || h != ev.Hash() {
			t.Fatalf("event %s: message %d: hash parameter %s, the reassembled event's %s, want %s", ev.EventID, i+1, m.Params["hash"], h, ev.Hash())
		}
	}
}
