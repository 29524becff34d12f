package forwarder

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/auditpipe/auditpipe/internal/siemtest"
	"github.com/auditpipe/auditpipe/schemas"
)

// The mutants these tests name ("Mutants killed: message.go:L:C") are at
// the positions gremlins gave them in message.go as it was at commit
// dbc3e4c (the run of 2026-12-03); the json pieces (ceac3b1) moved most of
// them since: `git show dbc3e4c:forwarder/message.go` is the code they
// name. The positions of the equivalent ones are kept up to date in
// scripts/mutate.d/equivalent.

// Mutation testing (issue 15) of message.go: a message is sent whole when
// it fits the limit once rsyslog has escaped its control characters
// (#ooo, four bytes each), with the json parameter, else split (issue 9:
// it used to be sent whole without json first, unproven at the SIEM). At
// exactly the limit it is sent whole; one byte over, it is split, and its
// parts carry the json. The other tests' messages are far from the limit
// or have no control characters.
// Mutants killed: message.go:199:38, 199:40, 199:56 (ARITHMETIC_BASE),
// 199:73 (CONDITIONALS_BOUNDARY), 218:11 (CONDITIONALS_BOUNDARY and
// NEGATION), 219:5 (INCREMENT_DECREMENT).
func TestFitsAtTheLimit(t *testing.T) {
	ev := loginEvent()
	ev.RawData = strings.Repeat("a\tb c", 120) + "end \n" // 120 tabs, 240 spaces
	// escaped renders ev with the limit max and returns its frames'
	// lengths once escaped, and whether the first has the json parameter.
	escaped := func(max int) (lens []int, json bool) {
		t.Helper()
		frames, err := sizedFormatter(t, max).frames(ev)
		if err != nil {
			t.Fatal(err)
		}
		msgs := make([]Received, len(frames))
		for i, fr := range frames {
			lens = append(lens, len(siemtest.EscapeRsyslog(string(unframe(t, fr)))))
			msgs[i] = received(t, unframe(t, fr))
		}
		_, json = msgs[0].Params["json"]
		checkEventJSON(t, ev, msgs)
		return lens, json
	}
	lens, json := escaped(1 << 16)
	if len(lens) != 1 || !json {
		t.Fatalf("with a limit of 64 KiB: %d frames (json %v), want 1 with json", len(lens), json)
	}
	withJSON := lens[0]
	if lens, json := escaped(withJSON); len(lens) != 1 || !json {
		t.Errorf("limit %d, the escaped size with json: %d frames (json %v), want 1 with json", withJSON, len(lens), json)
	}
	lens, json = escaped(withJSON - 1)
	if len(lens) < 2 || !json {
		t.Fatalf("limit %d, one byte less than with json: %d frames (json %v), want it split, with json", withJSON-1, len(lens), json)
	}
	for i, n := range lens {
		if n > withJSON-1 {
			t.Errorf("limit %d: part %d is %d bytes escaped", withJSON-1, i+1, n)
		}
	}
}

// Mutation testing (issue 15) of message.go: with an arena (as the
// pipeline renders), a message costs no allocation of its own, the frames
// handed out stay intact while the arena hands out more (across chunks),
// and they are the bytes frames renders. The allocations were only
// reported by BenchmarkFrames, never checked.
// Mutants killed: message.go:201:47, 201:65 (ARITHMETIC_BASE: a frame's
// capacity too small, so appending to it allocates), 237:16
// (ARITHMETIC_BASE and INVERT_NEGATIVES: the usual " \n" end spelled with a
// strings.Builder), 686:19, 689:27 (CONDITIONALS_NEGATION).
func TestArenaFramesAllocateNothing(t *testing.T) {
	fm, err := newFormatter(testFormat())
	if err != nil {
		t.Fatal(err)
	}
	ev := loginEvent()
	want, err := fm.frames(ev)
	if err != nil {
		t.Fatal(err)
	}
	value := ev.AppendJSON(nil)
	var fromValue schemas.Event
	c, err := fromValue.DecodeJSONCanonical(value)
	if err != nil || !c.OK {
		t.Fatalf("DecodeJSONCanonical: %v, %+v", err, c)
	}
	tests := []struct {
		name string
		ev   *schemas.Event
		cj   canonJSON
	}{
		{"encoded", ev, canonJSON{}},
		{"canonical value", &fromValue, canonOf(value, c)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const runs = 2000 // about 2 MB: several arena chunks
			var a arena
			dst := make([][]byte, 0, runs+1)
			var err error
			allocs := testing.AllocsPerRun(runs, func() {
				if dst, err = fm.appendFrames(dst, &a, tc.ev, tc.cj); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per message, want 0", allocs)
			}
			for i, fr := range dst {
				if string(fr) != string(want[0]) {
					t.Fatalf("frame %d of %d: %q, want %q", i, len(dst), fr, want[0])
				}
			}
		})
	}
}

// Mutation testing (issue 15) of message.go: cutEOL's cases, the fast
// path of the usual single LF among them, and its bound of maxEOL bytes.
// Mutants killed: message.go:234:24 (CONDITIONALS_BOUNDARY), 237:7,
// 237:27 (CONDITIONALS_NEGATION).
func TestCutEOL(t *testing.T) {
	tests := []struct{ in, body, eol string }{
		{"", "", ""},
		{"a", "a", ""},
		{"a \n", "a ", "n"},
		{"\n", "", "n"},
		{"a\r", "a", "r"},
		{"a\r\n", "a", "rn"},
		{"a\n\n", "a", "nn"},
		{"a\n\x00", "a", "n0"},
		{"a\x00\n", "a", "0n"},
		{"\n\na", "\n\na", ""},
		{strings.Repeat("\n", maxEOL), "", strings.Repeat("n", maxEOL)},
		{"a" + strings.Repeat("\n", maxEOL+1), "a\n", strings.Repeat("n", maxEOL)},
	}
	for _, tc := range tests {
		if body, eol := cutEOL(tc.in); body != tc.body || eol != tc.eol {
			t.Errorf("cutEOL(%q) = %q, %q; want %q, %q", tc.in, body, eol, tc.body, tc.eol)
		}
	}
}

// Mutation testing (issue 15) of message.go: canonicalTS is appendTimestamp's
// fast path, taken for every event of the contract: TestTimestampFastPath
// checks the output, which the slow path gives as well, so a fast path
// that refused valid times went unnoticed. The edges of every field are
// here, valid and not.
// Mutants killed: message.go:616:12 (ARITHMETIC_BASE, INVERT_NEGATIVES),
// 616:17, 626:11, 626:24, 626:36, 626:51, 626:67, 626:83, 633:13
// (CONDITIONALS_BOUNDARY), 630:44, 630:61 (CONDITIONALS_NEGATION).
func TestCanonicalTS(t *testing.T) {
	tests := []struct {
		ts   string
		want bool
	}{
		{"2021-04-12T07:38:05.752Z", true},
		{"0000-01-01T00:00:00.000Z", true},
		{"9999-12-31T23:59:59.999Z", true},
		{"2021-01-01T00:00:00.000Z", true},
		{"2021-12-31T00:00:00.000Z", true},
		{"2021-04-30T00:00:00.000Z", true},
		{"2021-02-28T00:00:00.000Z", true},
		{"2024-02-29T00:00:00.000Z", true},
		{"2000-02-29T00:00:00.000Z", true},
		{"1900-02-29T00:00:00.000Z", false},
		{"2023-02-29T00:00:00.000Z", false},
		{"2021-04-31T00:00:00.000Z", false},
		{"2021-00-12T00:00:00.000Z", false},
		{"2021-13-12T00:00:00.000Z", false},
		{"2021-04-00T00:00:00.000Z", false},
		{"2021-04-12T24:00:00.000Z", false},
		{"2021-04-12T23:60:00.000Z", false},
		{"2021-04-12T23:59:60.000Z", false},
		{"2021-04-12T07:38:05.75:Z", false}, // ':' is '9'+1
		{"2021-04-12T07:38:05.75/Z", false}, // '/' is '0'-1
		{"2021-04-12T07:38:05.752z", false},
		{"2021-04-12T07:38:05.752", false},
		{"2021-04-12T07:38:05.752ZZ", false},
	}
	for _, tc := range tests {
		if got := canonicalTS(tc.ts); got != tc.want {
			t.Errorf("canonicalTS(%q) = %v, want %v", tc.ts, got, tc.want)
		}
		if got, want := string(appendTimestamp(nil, tc.ts)), slowTimestamp(tc.ts); got != want {
			t.Errorf("%q: %q, want %q (time.Parse)", tc.ts, got, want)
		}
	}
}

// Mutation testing (issue 15) of message.go: prev_hash is written as it
// is only when it is lower-case hex; no test event had a prev_hash with a
// digit or letter at the edges of the ranges, so a check one byte off
// passed. isHexOrEmpty alone, then through the message.
// Mutants killed: message.go:386:23, 386:33, 386:47, 386:57
// (CONDITIONALS_BOUNDARY and NEGATION).
func TestPrevHashHex(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{"", true},
		{"0123456789abcdef", true},
		{"09af", true},
		{"/", false}, {":", false}, {"`", false}, {"g", false},
		{"A", false}, {"F", false}, {"0a ", false},
	}
	fm, err := newFormatter(testFormat())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		if got := isHexOrEmpty(tc.s); got != tc.want {
			t.Errorf("isHexOrEmpty(%q) = %v, want %v", tc.s, got, tc.want)
		}
		ev := loginEvent()
		ev.PrevHash = tc.s
		frames, err := fm.frames(ev)
		if err != nil {
			t.Fatal(err)
		}
		want := tc.s
		if !tc.want {
			want = "invalid"
		}
		if got := received(t, unframe(t, frames[0])).Params["prev_hash"]; got != want {
			t.Errorf("prev_hash %q is sent as %q, want %q", tc.s, got, want)
		}
	}
}

// Mutation testing (issue 15) of message.go: a header field keeps the
// printable characters 33 ('!') to 126 ('~'), also after a byte it
// replaced, and is cut at its limit. The round-trip test's host had no
// character at either edge.
// Mutants killed: message.go:584:8, 584:18 (CONDITIONALS_BOUNDARY).
func TestHeaderField(t *testing.T) {
	tests := []struct {
		s    string
		max  int
		want string
	}{
		{"", 5, "-"},
		{"host", 5, "host"},
		{"!~", 5, "!~"},
		{"\x01!~", 5, "_!~"},
		{" x\x7f", 5, "_x_"},
		{"é!", 5, "__!"},
		{"abcdef", 3, "abc"},
		{"abc", 3, "abc"},
		{"a bcd", 3, "a_b"},
	}
	for _, tc := range tests {
		if got := string(appendHeaderField([]byte("<"), tc.s, tc.max)); got != "<"+tc.want {
			t.Errorf("appendHeaderField(%q, %d) = %q, want %q", tc.s, tc.max, got, "<"+tc.want)
		}
	}
}

// Mutation testing (issue 15) of message.go: frameDigits around each
// power of ten (it sizes a frame's allocation: one digit short at 10, 100,
// 1000 costs a second allocation).
// Mutants killed: message.go:666:10 (CONDITIONALS_BOUNDARY).
func TestFrameDigits(t *testing.T) {
	for n, want := range map[int]int{1: 1, 9: 1, 10: 2, 99: 2, 100: 3, 999: 3, 1000: 4, 65535: 5} {
		if got := frameDigits(n); got != want {
			t.Errorf("frameDigits(%d) = %d, want %d", n, got, want)
		}
	}
	for d, want := range []int{1, 10, 100, 1000} {
		if got := pow10(d); got != want {
			t.Errorf("pow10(%d) = %d, want %d", d, got, want)
		}
	}
}

// Mutation testing (issue 15) of message.go: split makes the fewest parts,
// so every part but the last is filled to within 32 bytes of the limit
// (the widest header split assumes has encoding="base64", 18 bytes, and
// the longest offset and part number; a cut moves back to a rune's start;
// base64 comes in groups of 4); the other
// tests checked only that parts fit and reassemble, which parts a third
// of the size do as well.
// Mutants killed: message.go:336:14 (CONDITIONALS_BOUNDARY: a space
// counted as a control character), 353:24 (ARITHMETIC_BASE).
func TestSplitPartsAreFull(t *testing.T) {
	const max = 600
	fm := sizedFormatter(t, max)
	tests := []struct {
		name, raw string
		base64    bool
	}{
		{"plain", strings.Repeat("x", 5000), false},
		{"spaces", strings.Repeat("a b ", 1500), false},
		{"runes", strings.Repeat("日本語", 700), false},
		{"control characters", strings.Repeat("a\tb", 1000), false},
		{"line ends only (base64)", strings.Repeat("\n", 3000), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := loginEvent()
			ev.RawData = tc.raw
			frames, err := fm.frames(ev)
			if err != nil {
				t.Fatal(err)
			}
			if len(frames) < 3 {
				t.Fatalf("%d frames, want several", len(frames))
			}
			for i, fr := range frames[:len(frames)-1] {
				r := received(t, unframe(t, fr))
				if got := r.Params["encoding"] == "base64"; r.MSG != "" && got != tc.base64 {
					t.Fatalf("part %d: base64 %v, want %v", i+1, got, tc.base64)
				}
				// The json's last piece is followed by the MSG in the next
				// part when fewer than minChunk bytes are left beside it.
				_, next := received(t, unframe(t, frames[i+1])).Params["json"]
				if _, js := r.Params["json"]; js && !next && r.MSG == "" {
					continue
				}
				if n := len(siemtest.EscapeRsyslog(string(unframe(t, fr)))); n < max-32 || n > max {
					t.Errorf("part %d of %d: %d bytes once escaped, want %d to %d", i+1, len(frames), n, max-32, max)
				}
			}
			if msg, _ := reassemble(t, max, frames); msg != ev.RawData {
				t.Errorf("reassembled %d bytes, want %d", len(msg), len(ev.RawData))
			}
		})
	}
}

// Mutation testing (issue 15) of message.go: a part carries at least
// minChunk bytes of MSG; the header that leaves exactly that much is
// still split, one byte more is ErrHeaderTooLarge. The login id grows the
// header one byte at a time.
// Mutants killed: message.go:298:12 (CONDITIONALS_BOUNDARY).
func TestSplitMinChunk(t *testing.T) {
	const max = 700
	fm := sizedFormatter(t, max)
	ev := loginEvent()
	ev.RawData = strings.Repeat("x", 300)
	last := -1 // the longest login id that is split, and the most a part carries of MSG or json
	var tight int
	for n := 0; n < max; n++ {
		ev.LoginID = strings.Repeat("l", n)
		frames, err := fm.frames(ev)
		if errors.Is(err, ErrHeaderTooLarge) {
			break
		}
		if err != nil {
			t.Fatalf("login id of %d bytes: %v", n, err)
		}
		msg, js := 0, 0 // the largest MSG (without the BOM) and json piece (escaped) of a part
		for _, fr := range frames {
			r := received(t, unframe(t, fr))
			if l := len(strings.TrimPrefix(r.MSG, bom)); l > msg {
				msg = l
			}
			if l := len(appendParamValue(nil, r.Params["json"])); l > js {
				js = l
			}
		}
		last, tight = n, min(msg, js)
	}
	if last < 0 {
		t.Fatal("never split")
	}
	// The json's room binds first (its piece escapes '"' as two bytes).
	if tight != minChunk && tight != minChunk-1 {
		t.Errorf("with the longest login id split (%d bytes) a part carries at most %d bytes, want minChunk (%d)", last, tight, minChunk)
	}
}

// Mutation testing (issue 15) of message.go: the control characters of a
// split event's SD-PARAM values count four times in each part's header
// too, so the parts fit once rsyslog escaped them. TestCutEveryByte's
// headers had none.
// Mutants killed: message.go:296:23 (ARITHMETIC_BASE).
func TestSplitCountsHeaderControls(t *testing.T) {
	const max = 1024
	fm := sizedFormatter(t, max)
	ev := loginEvent()
	ev.LoginID = strings.Repeat("\x01", 20)
	ev.RawData = strings.Repeat("x", 3000)
	frames, err := fm.frames(ev)
	if err != nil {
		t.Fatal(err)
	}
	for i, fr := range frames {
		if n := len(siemtest.EscapeRsyslog(string(unframe(t, fr)))); n > max {
			t.Errorf("part %d of %d: %d bytes once escaped, over %d", i+1, len(frames), n, max)
		}
	}
	if msg, _ := reassemble(t, max, frames); msg != ev.RawData {
		t.Errorf("reassembled %d bytes, want %d", len(msg), len(ev.RawData))
	}
}

// Mutation testing (issue 15) of message.go: a base64 part is cut on a
// rune's start too, so that the next part's MSG starts with one; the
// base64 pieces of the other tests never reached a multi-byte rune (their
// backtracking loop was never run). A run of line ends longer than what a
// part's scan can take is followed by runes, and padding moves the base64
// cut across them.
// Mutants killed: message.go:354:11, 354:28 (CONDITIONALS_NEGATION).
func TestSplitBase64EndsOnARune(t *testing.T) {
	const max = 600
	fm := sizedFormatter(t, max)
	ev := loginEvent()
	cutInRune := 0
	for pad := 0; pad < 12; pad++ {
		ev.RawData = strings.Repeat("p", pad) + strings.Repeat("\n", 400) + strings.Repeat("日本語", 200)
		frames, err := fm.frames(ev)
		if err != nil {
			t.Fatalf("pad %d: %v", pad, err)
		}
		msgs := make([]Received, len(frames))
		for i, fr := range frames {
			msgs[i] = received(t, unframe(t, fr))
			text := strings.TrimPrefix(msgs[i].MSG, bom)
			if msgs[i].Params["encoding"] == "base64" {
				b, err := base64.StdEncoding.DecodeString(text)
				if err != nil {
					t.Fatalf("pad %d, part %d: %v", pad, i+1, err)
				}
				text = string(b)
				if strings.ContainsRune(text, '日') || strings.ContainsRune(text, '本') || strings.ContainsRune(text, '語') {
					cutInRune++
				}
			}
			if !utf8.ValidString(text) {
				t.Fatalf("pad %d, part %d (encoding %q): %q is not whole UTF-8", pad, i+1, msgs[i].Params["encoding"], text)
			}
		}
		if got := mustReassemble(t, msgs...); got != ev.RawData {
			t.Fatalf("pad %d: reassembled %d bytes, want %d", pad, len(got), len(ev.RawData))
		}
	}
	if cutInRune == 0 {
		t.Fatal("no base64 part reached the runes: the test does not test the cut")
	}
}

// Mutation testing (issue 15) of message.go: a frame is allocated at its
// exact size. Frames wait in the in-flight window, which counts their
// length against max_in_flight_bytes: capacity beyond it is memory the
// bound does not see, and a capacity short of it costs a second
// allocation and copy.
// Mutants killed: message.go:639:9 (CONDITIONALS_NEGATION), 640:10, 640:21,
// 642:38, 642:53 (ARITHMETIC_BASE).
func TestFrameExactSize(t *testing.T) {
	// LEN of 1, 9, 10, 99, 100, 999 and 1000 bytes: each digit count and its edge.
	for _, head := range []string{"h", strings.Repeat("h", 9), strings.Repeat("h", 10), strings.Repeat("h", 94), strings.Repeat("h", 95), strings.Repeat("h", 100), strings.Repeat("h", 995), strings.Repeat("h", 1000)} {
		for _, msg := range []string{"", "m", strings.Repeat("m", 10)} {
			fr := frame([]byte(head), msg)
			if cap(fr) != len(fr) {
				t.Errorf("frame of %d + %d bytes: capacity %d, length %d", len(head), len(msg), cap(fr), len(fr))
			}
		}
	}
	fm, err := newFormatter(testFormat())
	if err != nil {
		t.Fatal(err)
	}
	ev := loginEvent()
	ev.RawData = strings.Repeat("x", 20000) // split: frames by frame
	frames, err := fm.frames(ev)
	if err != nil {
		t.Fatal(err)
	}
	ev.RawData = "short \n" // whole: the frame by appendFrames
	whole, err := fm.frames(ev)
	if err != nil {
		t.Fatal(err)
	}
	for i, fr := range append(frames, whole...) {
		if cap(fr) != len(fr) {
			t.Errorf("frame %d: capacity %d, length %d", i, cap(fr), len(fr))
		}
	}
}

// Mutation testing (issue 15) of message.go: the arena's edges. A frame
// of arenaMax bytes still comes from a chunk, a larger one has its own
// allocation, and a chunk is filled to its last byte before the next is
// made (16 frames of arenaMax make one chunk). Only memory depends on it,
// which is what the arena is for.
// Mutants killed: message.go:686:19, 689:27 (CONDITIONALS_BOUNDARY).
func TestArenaAlloc(t *testing.T) {
	var nilArena *arena
	if b := nilArena.alloc(10); len(b) != 0 || cap(b) != 10 {
		t.Errorf("nil arena: len %d cap %d, want 0 and 10", len(b), cap(b))
	}
	var a arena
	var first []byte
	for i := range arenaChunk / arenaMax {
		b := a.alloc(arenaMax)
		if len(b) != 0 || cap(b) != arenaMax {
			t.Fatalf("frame %d: len %d cap %d, want 0 and %d", i, len(b), cap(b), arenaMax)
		}
		if i == 0 {
			first = b[:1]
		}
	}
	if full := len(a.buf) == arenaChunk && cap(a.buf) == arenaChunk && &a.buf[0] == &first[0]; !full {
		t.Errorf("after %d frames of %d bytes: chunk len %d cap %d, want the first chunk, full (%d)",
			arenaChunk/arenaMax, arenaMax, len(a.buf), cap(a.buf), arenaChunk)
	}
	big := a.alloc(arenaMax + 1)
	if cap(big) != arenaMax+1 || len(a.buf) != arenaChunk {
		t.Errorf("a frame over arenaMax: cap %d, chunk len %d; want its own allocation", cap(big), len(a.buf))
	}
}

// cutPieces promises pieces that are consecutive, cover the body, and each
// fit max on the wire: a text piece once rsyslog escapes its control
// characters (four bytes each), ending on a UTF-8 boundary and not on a
// line-end byte; a base64 piece once encoded. The base64 case arises only
// where no text end exists (line ends within reach of the start), and its
// cut moves back to a rune's start. Mutant killed: message.go:355:7
// (INCREMENT_DECREMENT: the base64 cut moved forward to a rune's start, a
// piece then up to 4 bytes over max).
func TestCutPiecesBounds(t *testing.T) {
	for _, tc := range []struct {
		name  string
		s     string
		first int // the first piece's bound, when > 0 (beside the json's last piece)
		max   int
	}{
		{"base64 cut inside a rune", "\n\na\u00e9\u00e9", 0, 8},
		{"base64 cut inside a 4-byte rune", "\n\n\U0001F600\U0001F600", 0, 8},
		{"line ends then text", strings.Repeat("\n", 5) + "abc\u00e9def", 0, 8},
		{"text only", strings.Repeat("ab\u00e9", 20), 0, 7},
		{"control characters", strings.Repeat("a\tb", 30), 0, 9},
		{"line ends everywhere", strings.Repeat("x\n\u00e9\r", 25), 0, 12},
		{"smaller first piece", strings.Repeat("ab\u00e9", 20), 5, 9},
		{"smaller first piece, base64", "\n\n\n\n\n\n\nabc" + strings.Repeat("d", 30), 6, 12},
		{"larger first piece", strings.Repeat("a\tb", 30), 20, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pieces := cutPieces(tc.s, tc.first, tc.max)
			start, sawBase64 := 0, false
			for i, p := range pieces {
				lim := tc.max
				if i == 0 && tc.first > 0 {
					lim = tc.first
				}
				if p.end <= start || p.end > len(tc.s) {
					t.Fatalf("piece %d ends at %d after %d (len %d)", i, p.end, start, len(tc.s))
				}
				text := tc.s[start:p.end]
				if p.base64 {
					sawBase64 = true
					if n := base64.StdEncoding.EncodedLen(len(text)); n > lim {
						t.Errorf("piece %d: %d bytes, %d as base64 > max %d", i, len(text), n, lim)
					}
					if p.end < len(tc.s) && !utf8.RuneStart(tc.s[p.end]) {
						t.Errorf("base64 piece %d ends inside a rune (at %d)", i, p.end)
					}
				} else {
					if cost := len(siemtest.EscapeRsyslog(text)); cost > lim {
						t.Errorf("piece %d %q: %d bytes escaped > max %d", i, text, cost, lim)
					}
					if isEOL(text[len(text)-1]) || !utf8.ValidString(text) {
						t.Errorf("text piece %d %q ends on a line end or inside a rune", i, text)
					}
				}
				start = p.end
			}
			if start != len(tc.s) {
				t.Fatalf("pieces cover %d of %d bytes", start, len(tc.s))
			}
			if strings.HasPrefix(tc.s, "\n\n") && !sawBase64 {
				t.Errorf("no base64 piece for a body starting with line ends beyond a text end's reach")
			}
		})
	}
}
