package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// strictDecode is the former UnmarshalJSON, kept as the reference of
// DecodeJSON: encoding/json's Decoder with DisallowUnknownFields, then
// Decoder.More as the check for trailing data. quirk reports that it
// succeeded although non-whitespace follows the first value: More is false
// when that starts with ']' or '}', so the former decoder accepted it (and
// anything after it). DecodeJSON rejects such input; see DecodeJSON.
func strictDecode(b []byte) (ev Event, quirk bool, err error) {
	type plain Event
	var p plain
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Event{}, false, err
	}
	if dec.More() {
		return Event{}, false, errors.New("trailing data after JSON object")
	}
	rest := bytes.TrimLeft(b[dec.InputOffset():], " \t\r\n")
	return Event(p), len(rest) > 0, nil
}

// fullEvent has every field set, to check that decoding overwrites all of
// them (and leaves them on error).
func fullEvent() Event {
	return Event{
		Layer: "L", ReqAuthID: "R", Event: KindKeys, SrcHost: "sh", Res: "r",
		DestHost: "dh", PID: "1", Title: "t", Args: []string{"a0", "a1"},
		RecID: "9", TTY: "tty", Host: "h", Time: "tm", RawData: "raw",
		LoginID: "li", PPID: "2", Ses: "3", EUID: "eu", Exe: "ex", Cwd: "cw",
		Keys: "k", Escaped: []string{"raw_data"}, EventID: "eid", TS: "ts", Seq: 77,
	}
}

// benchEvent is a realistic command event, about 1 KB of raw_data.
func benchEvent() Event {
	raw := "type=PROCTITLE msg=audit(11/14/2023 22:13:20.200:101) : proctitle=tar -czf /backup/etc.tgz /etc \n" +
		"type=PATH msg=audit(11/14/2023 22:13:20.200:101) : item=1 name=/lib64/ld-linux-x86-64.so.2 inode=1182648 dev=f9:00 mode=file,755 ouid=root ogid=root rdev=00:00 nametype=NORMAL cap_fp=none cap_fi=none cap_fe=0 cap_fver=0 \n" +
		"type=PATH msg=audit(11/14/2023 22:13:20.200:101) : item=0 name=/usr/bin/tar inode=1189225 dev=f9:00 mode=file,755 ouid=root ogid=root rdev=00:00 nametype=NORMAL cap_fp=none cap_fi=none cap_fe=0 cap_fver=0 \n" +
		"type=CWD msg=audit(11/14/2023 22:13:20.200:101) : cwd=/root \n" +
		"type=EXECVE msg=audit(11/14/2023 22:13:20.200:101) : argc=4 a0=tar a1=-czf a2=/backup/etc.tgz a3=/etc \n" +
		"type=SYSCALL msg=audit(11/14/2023 22:13:20.200:101) : arch=x86_64 syscall=execve success=yes exit=0 a0=0xfff6d0 a1=0xff42d0 a2=0xfff960 a3=0x7ffc1dd337e0 items=2 ppid=4000 pid=1101 auid=op1001 uid=root gid=root euid=root suid=root fsuid=root egid=root sgid=root fsgid=root tty=pts0 ses=7 comm=tar exe=/usr/bin/tar subj=unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023 key=(null) \n"
	return Event{
		Layer: "CPS", ReqAuthID: "2", Event: KindCommand,
		Title: "tar\x00-czf\x00/backup/etc.tgz\x00/etc",
		Args:  []string{"tar", "-czf", "/backup/etc.tgz", "/etc"},
		PID:   "1101", PPID: "4000", EUID: "root", Exe: "/usr/bin/tar", Cwd: "/root", Res: "success",
		RecID: "101", TTY: "pts0", Host: "scaqae08dv0605m", Time: "Tue Nov 14 22:13:20 2023",
		RawData: raw, LoginID: "op1001", Ses: "7",
		EventID: "a11b3a6dff4bb1c48777dae9ea38ee14", TS: "2023-11-14T22:13:20.200Z", Seq: 123456,
	}
}

func TestDecodeGood(t *testing.T) {
	tests := []struct {
		name, in string
		want     Event
	}{
		{"empty object", `{}`, Event{}},
		{"null", ` null `, Event{}},
		{"whitespace", " \t\r\n{ \"layer\" :\n\"a\" ,\t\"seq\"\r: 5 ,\"args\" : [ \"x\" , \"y\" ] } \n\t", Event{Layer: "a", Seq: 5, Args: []string{"x", "y"}}},
		{"all fields",
			`{"layer":"L","req_auth_id":"R","event":"keys","srchost":"sh","res":"r","desthost":"dh","pid":"1","title":"t","args":["a0","a1"],"rec_id":"9","tty":"tty","host":"h","time":"tm","raw_data":"raw","loginid":"li","ppid":"2","ses":"3","euid":"eu","exe":"ex","cwd":"cw","keys":"k","escaped":["raw_data"],"event_id":"eid","ts":"ts","seq":77}`,
			fullEvent()},
		{"nulls", `{"layer":null,"args":null,"escaped":null,"seq":null}`, Event{}},
		{"empty arrays", `{"args":[],"escaped":[]}`, Event{Args: []string{}, Escaped: []string{}}},
		{"empty strings", `{"layer":"","args":[""]}`, Event{Args: []string{""}}},
		{"duplicate key last wins", `{"layer":"a","layer":"b","seq":1,"seq":2}`, Event{Layer: "b", Seq: 2}},
		{"duplicate key null keeps", `{"layer":"a","layer":null,"seq":1,"seq":null}`, Event{Layer: "a", Seq: 1}},
		{"null element", `{"args":["a",null]}`, Event{Args: []string{"a", ""}}},
		{"duplicate array shorter", `{"args":["a","b","c"],"args":["x"]}`, Event{Args: []string{"x"}}},
		{"duplicate array null keeps element", `{"args":["a","b","c"],"args":[null,"x"]}`, Event{Args: []string{"a", "x"}}},
		{"duplicate array null keeps beyond length", `{"args":["a","b","c"],"args":["x"],"args":[null,null,null,null]}`, Event{Args: []string{"x", "b", "c", ""}}},
		{"duplicate array after null", `{"args":["a","b"],"args":null,"args":[null]}`, Event{Args: []string{""}}},
		{"duplicate array after empty", `{"args":["a","b"],"args":[],"args":[null]}`, Event{Args: []string{""}}},
		{"duplicate array null to nil", `{"args":["a"],"args":null}`, Event{}},
		{"many args", `{"args":["0","1","2","3","4","5","6","7","8","9","10","11","12","13","14","15","16","17","18","19"],"args":["x",null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null]}`,
			Event{Args: []string{"x", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16", "17", "18", "19", ""}}},
		{"escapes", `{"title":"\"\\\/\b\f\n\r\t\u0041\u00e9\u20AC\ud83d\ude00\u0000x"}`, Event{Title: "\"\\/\b\f\n\r\tAé€😀\x00x"}},
		{"lone high surrogate", `{"title":"\ud800"}`, Event{Title: "\ufffd"}},
		{"high surrogate then text", `{"title":"\ud800x"}`, Event{Title: "\ufffdx"}},
		{"low surrogate first", `{"title":"\udc00\ud800"}`, Event{Title: "\ufffd\ufffd"}},
		{"high surrogate then BMP escape", `{"title":"\ud800\u0041"}`, Event{Title: "\ufffdA"}},
		{"high surrogate then pair", `{"title":"\ud800\ud800\udc00"}`, Event{Title: "\ufffd\U00010000"}},
		{"high surrogate then other escape", `{"title":"\ud800\n"}`, Event{Title: "\ufffd\n"}},
		{"invalid UTF-8", "{\"title\":\"a\xffb\xc3\"}", Event{Title: "a\ufffdb\ufffd"}},
		{"UTF-8 surrogate", "{\"title\":\"\xed\xa0\x80\"}", Event{Title: "\ufffd\ufffd\ufffd"}},
		{"truncated UTF-8", "{\"title\":\"\xe2\x82\"}", Event{Title: "\ufffd\ufffd"}},
		{"valid UTF-8", `{"title":"héllo ✓ 😀 ` + "\ufffd" + `","args":["ü"]}`, Event{Title: "héllo ✓ 😀 \ufffd", Args: []string{"ü"}}},
		{"DEL and long", "{\"raw_data\":\"\x7f" + strings.Repeat("abcdefgh", 40) + "\\n\"}", Event{RawData: "\x7f" + strings.Repeat("abcdefgh", 40) + "\n"}},
		{"case-insensitive key", `{"LAYER":"a","Seq":1,"Raw_Data":"r","ARGS":["x"]}`, Event{Layer: "a", Seq: 1, RawData: "r", Args: []string{"x"}}},
		{"case-insensitive then exact", `{"Layer":"a","layer":"b","LAYER":"c"}`, Event{Layer: "c"}},
		{"Kelvin sign key", `{"\u212aeys":"k"}`, Event{Keys: "k"}},
		{"long s key", "{\"\u017fes\":\"s\"}", Event{Ses: "s"}},
		{"escaped key", `{"l\u0061yer":"a","r\u0061w_data":"r"}`, Event{Layer: "a", RawData: "r"}},
		{"seq zero", `{"seq":0}`, Event{}},
		{"seq max", `{"seq":18446744073709551615}`, Event{Seq: 1<<64 - 1}},
		{"kind", `{"event":"command"}`, Event{Event: KindCommand}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Event
			if err := got.DecodeJSON([]byte(tt.in)); err != nil {
				t.Fatalf("DecodeJSON: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("DecodeJSON:\n got %#v\nwant %#v", got, tt.want)
			}
			// The reference agrees.
			ref, _, err := strictDecode([]byte(tt.in))
			if err != nil {
				t.Fatalf("reference: %v", err)
			}
			if !reflect.DeepEqual(ref, tt.want) {
				t.Errorf("reference:\n got %#v\nwant %#v", ref, tt.want)
			}
			// So does json.Unmarshal, into a filled event.
			got = fullEvent()
			if err := json.Unmarshal([]byte(tt.in), &got); err != nil {
				t.Fatalf("json.Unmarshal: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("json.Unmarshal:\n got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestDecodeBad(t *testing.T) {
	tests := []struct {
		name, in string
		err      string // the error's message contains this
		syntax   bool   // the error wraps ErrSyntax
		quirk    bool   // the former decoder accepted it (see DecodeJSON)
	}{
		{"empty", ``, "unexpected end of input", true, false},
		{"blank", " \n\t", "unexpected end of input", true, false},
		{"array", `[]`, "want a JSON object, got array", false, false},
		{"string", `"x"`, "want a JSON object, got string", false, false},
		{"number", `12`, "want a JSON object, got number", false, false},
		{"bool", `true`, "want a JSON object, got boolean", false, false},
		{"garbage", `x`, "invalid character 'x'", true, false},
		// Bug (mutants): the look for a low surrogate after a high one
		// read past the end of an input cut short there (a panic).
		{"high surrogate at the end", `{"layer":"\ud800`, "unexpected end of input", true, false},
		{"high surrogate then a backslash at the end", `{"layer":"\ud800\`, "unexpected end of input", true, false},
		{"true cut short", `{"layer":tru`, "invalid character 't' looking for beginning of value", true, false},
		{"false cut short", `{"host":fals`, "invalid character 'f' looking for beginning of value", true, false},
		{"unknown field", `{"layer":"a","foo":1}`, `unknown field "foo"`, false, false},
		{"unknown escaped field", `{"f\u006fo":1}`, `unknown field "foo"`, false, false},
		{"empty key", `{"":"a"}`, `unknown field ""`, false, false},
		{"Go field name", `{"ReqAuthID":"a"}`, `unknown field "ReqAuthID"`, false, false},
		{"string field number", `{"layer":1}`, `field "layer": want a string, got number`, false, false},
		{"string field bool", `{"host":false}`, `field "host": want a string, got boolean`, false, false},
		{"string field object", `{"raw_data":{}}`, `field "raw_data": want a string, got object`, false, false},
		{"string field array", `{"event":["login"]}`, `field "event": want a string, got array`, false, false},
		{"args string", `{"args":"a"}`, `field "args": want an array of strings, got string`, false, false},
		{"args object", `{"args":{}}`, `field "args": want an array of strings, got object`, false, false},
		{"args element number", `{"args":["a",1]}`, `field "args": element 1: want a string, got number`, false, false},
		{"escaped element array", `{"escaped":[[]]}`, `field "escaped": element 0: want a string, got array`, false, false},
		{"seq negative", `{"seq":-1}`, `field "seq": want an unsigned integer, got -1`, false, false},
		{"seq negative zero", `{"seq":-0}`, `field "seq": want an unsigned integer, got -0`, false, false},
		{"seq fraction", `{"seq":1.5}`, `field "seq": want an unsigned integer, got 1.5`, false, false},
		{"seq fraction zero", `{"seq":1.0}`, `field "seq": want an unsigned integer, got 1.0`, false, false},
		{"seq exponent", `{"seq":1e3}`, `field "seq": want an unsigned integer, got 1e3`, false, false},
		{"seq exponent upper", `{"seq":0E0}`, `field "seq": want an unsigned integer, got 0E0`, false, false},
		{"seq overflow", `{"seq":18446744073709551616}`, `field "seq": want an unsigned integer, got 18446744073709551616 (overflow)`, false, false},
		{"seq string", `{"seq":"1"}`, `field "seq": want an unsigned integer, got string`, false, false},
		{"seq bool", `{"seq":true}`, `field "seq": want an unsigned integer, got boolean`, false, false},
		{"seq leading zero", `{"seq":01}`, "invalid character '1' after object key:value pair", true, false},
		{"trailing", `{"layer":"a"} x`, "trailing data", true, false},
		{"trailing object", `{}{}`, "trailing data", true, false},
		{"trailing comma", `{},`, "trailing data", true, false},
		{"trailing brace", `{"layer":"a"}}`, "trailing data", true, true},
		{"trailing bracket", "{}\n] garbage", "trailing data", true, true},
		{"null trailing brace", `null}`, "trailing data", true, true},
		{"null trailing", `nullx`, "trailing data", true, false},
		{"comma before brace", `{"layer":"a",}`, "looking for beginning of object key string", true, false},
		{"lone comma", `{,}`, "looking for beginning of object key string", true, false},
		{"missing colon", `{"layer" "a"}`, "after object key", true, false},
		{"missing comma", `{"layer":"a" "host":"b"}`, "after object key:value pair", true, false},
		{"single quotes", `{'layer':"a"}`, `invalid character '\''`, true, false},
		{"control character", "{\"layer\":\"a\x01\"}", "invalid character byte 0x01 in string literal", true, false},
		{"newline in string", "{\"layer\":\"a\nb\"}", "in string literal", true, false},
		{"control character in key", "{\"la\tyer\":\"a\"}", "in string literal", true, false},
		{"bad escape", `{"layer":"\x41"}`, "in string escape code", true, false},
		// Bug (mutants): the error named the backslash's offset, not the
		// bad character's; a \u escape cut short at the very end read past it.
		{"bad escape offset", `{"layer":"\q"}`, "invalid character 'q' in string escape code at offset 11", true, false},
		{"unicode escape cut short at the end", `{"layer":"\u12`, "unexpected end of input", true, false},
		{"short unicode escape", `{"layer":"\u12"}`, "in \\u hexadecimal character escape", true, false},
		{"bad unicode escape", `{"layer":"\u12g4"}`, "in \\u hexadecimal character escape", true, false},
		{"bad escape after surrogate", `{"layer":"\ud800\u12g4"}`, "in \\u hexadecimal character escape", true, false},
		{"unterminated string", `{"layer":"a`, "unexpected end of input", true, false},
		{"unterminated escape", `{"layer":"a\`, "unexpected end of input", true, false},
		{"unterminated object", `{"layer":"a"`, "unexpected end of input", true, false},
		// Mutants (issue 15, make mutate): the bounds of key's and seqField's
		// scans moved past the end (i <= len(data)) read data[len(data)].
		{"unterminated key", `{"lay`, "unexpected end of input", true, false},
		{"unterminated long key", `{"req_auth_id`, "unexpected end of input", true, false},
		{"unterminated seq", `{"seq":12`, "unexpected end of input", true, false},
		// Mutants (issue 15): number's, literal's and hasPrefix's bounds past
		// the end of the input (a number, null, true cut short).
		{"unterminated negative seq", `{"seq":-12`, `want an unsigned integer, got -12`, false, false},
		{"unterminated null", `{"layer":nu`, "unexpected end of input", true, false},
		{"unterminated true", `{"layer":tr`, "invalid character 't'", true, false},
		{"unterminated array", `{"args":["a"`, "unexpected end of input", true, false},
		{"bad literal", `{"layer":nul}`, "in literal null", true, false},
		{"bad literal case", `{"layer":Null}`, "invalid character 'N'", true, false},
		{"bad true", `{"layer":tru}`, "invalid character 't'", true, false},
		{"array trailing comma", `{"args":["a",]}`, "looking for beginning of value", true, false},
		{"array lone comma", `{"args":[,]}`, "looking for beginning of value", true, false},
		{"array missing comma", `{"args":["a" "b"]}`, "after array element", true, false},
		{"bad seq", `{"seq":+1}`, "invalid character '+'", true, false},
		{"BOM", "\xef\xbb\xbf{}", "byte 0xef", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := fullEvent()
			err := e.DecodeJSON([]byte(tt.in))
			if err == nil {
				t.Fatalf("DecodeJSON: no error, want %q", tt.err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "event: ") || !strings.Contains(msg, tt.err) {
				t.Errorf("DecodeJSON: error %q, want it to start with \"event: \" and contain %q", msg, tt.err)
			}
			if got := errors.Is(err, ErrSyntax); got != tt.syntax {
				t.Errorf("errors.Is(%q, ErrSyntax) = %v, want %v", msg, got, tt.syntax)
			}
			if !reflect.DeepEqual(e, fullEvent()) {
				t.Errorf("DecodeJSON changed the event on error: %#v", e)
			}
			_, quirk, refErr := strictDecode([]byte(tt.in))
			if tt.quirk {
				if refErr != nil || !quirk {
					t.Errorf("reference: err %v, quirk %v; want it to accept the input", refErr, quirk)
				}
			} else if refErr == nil {
				t.Errorf("reference accepts the input")
			}
			if err := json.Unmarshal([]byte(tt.in), &e); err == nil {
				t.Errorf("json.Unmarshal accepts the input")
			}
		})
	}
}

// TestDecodeUnmarshal checks that json.Unmarshal goes through the decoder,
// alone and nested.
func TestDecodeUnmarshal(t *testing.T) {
	want := benchEvent()
	raw := want.AppendJSON(nil)
	var got Event
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("json.Unmarshal:\n got %#v\nwant %#v", got, want)
	}
	var list []Event
	in := "[" + string(raw) + ", {\"host\":\"b\"}, null]"
	if err := json.Unmarshal([]byte(in), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || !reflect.DeepEqual(list[0], want) || list[1].Host != "b" || !reflect.DeepEqual(list[2], Event{}) {
		t.Errorf("json.Unmarshal of a list: %#v", list)
	}
	err := json.Unmarshal([]byte(`[{"host":"a","bogus":1}]`), &list)
	if err == nil || !strings.Contains(err.Error(), `event: unknown field "bogus"`) {
		t.Errorf("json.Unmarshal of a list with an unknown field: %v", err)
	}
}

func TestDecodeSeeds(t *testing.T) {
	for name, in := range seedInputs(t) {
		want, _, err := strictDecode(in)
		if err != nil {
			t.Errorf("%s: reference: %v", name, err)
			continue
		}
		got := fullEvent()
		if err := got.DecodeJSON(in); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %#v\nwant %#v", name, got, want)
		}
	}
}

func TestDecodeAllocs(t *testing.T) {
	bench := benchEvent()
	raw := bench.AppendJSON(nil)
	var e Event
	if err := e.DecodeJSON(raw); err != nil {
		t.Fatal(err)
	}
	// One string for all the fields, one slice for the arguments.
	if n := testing.AllocsPerRun(100, func() { _ = e.DecodeJSON(raw) }); n > 2 {
		t.Errorf("%v allocations per decode, want at most 2", n)
	}
}

// seedInputs returns the seed examples, each object of the collector's
// golden files (several indented objects one after another), and the
// AppendJSON encoding of each of those, by name.
func seedInputs(tb testing.TB) map[string][]byte {
	tb.Helper()
	out := map[string][]byte{}
	add := func(name string, data []byte) {
		dec := json.NewDecoder(bytes.NewReader(data))
		for i := 0; ; i++ {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err == io.EOF {
				break
			} else if err != nil {
				tb.Fatalf("%s: %v", name, err)
			}
			n := fmt.Sprintf("%s#%d", name, i)
			out[n] = raw
			var e Event
			if err := e.DecodeJSON(raw); err == nil {
				out[n+"/AppendJSON"] = e.AppendJSON(nil)
			}
		}
	}
	seeds, err := filepath.Glob(filepath.Join("testdata", "seed", "*.json"))
	if err != nil || len(seeds) == 0 {
		tb.Fatalf("no seed examples: %v", err)
	}
	for _, p := range seeds {
		data, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		add(p, data)
	}
	golden := 0
	err = filepath.WalkDir(filepath.Join("..", "collector", "testdata"), func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() || !strings.HasSuffix(p, ".golden.json") {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		golden++
		add(p, data)
		return nil
	})
	if err != nil || golden == 0 {
		tb.Fatalf("no golden files under ../collector/testdata: %v", err)
	}
	full, bench := fullEvent(), benchEvent()
	out["fullEvent/AppendJSON"] = full.AppendJSON(nil)
	out["benchEvent/AppendJSON"] = bench.AppendJSON(nil)
	return out
}

// FuzzDecodeEvent checks DecodeJSON against the former strict decoder
// (strictDecode) and json.Unmarshal: same success or failure, same value.
func FuzzDecodeEvent(f *testing.F) {
	for _, in := range seedInputs(f) {
		f.Add(in)
	}
	for _, in := range []string{
		`{}`, `null`, `{"args":["a","b","c"],"args":["x"],"args":[null,null,null,null]}`,
		`{"title":"\ud800\ud800\udc00\u00e9\"\\\/\b\f\n\r\t"}`, "{\"title\":\"a\xffb\xed\xa0\x80\"}",
		`{"LAYER":"a","\u212aeys":"k","seq":18446744073709551615}`, `{"seq":18446744073709551616}`,
		`{"layer":"a"}}`, `{"seq":1.5e3}`, `{"args":[1]}`,
	} {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkDecode(t, in)
		// Random bytes seldom form the objects where the semantics are
		// subtle (repeated keys, nulls in arrays, folded keys): also build
		// one from fragments the input picks.
		checkDecode(t, fragmentObject(in))
	})
}

var (
	fuzzKeys = []string{`"layer"`, `"LAYER"`, `"l\u0061yer"`, `"args"`, `"ARGS"`, `"escaped"`, `"seq"`, `"Seq"`,
		`"\u212aeys"`, "\"\u017fes\"", `"title"`, `"bogus"`, `""`, `"raw_data"`}
	fuzzValues = []string{`"x"`, `""`, `null`, `[]`, `["a","b"]`, `[null]`, `[null,null,"c",null]`, `["d",null]`,
		`0`, `7`, `18446744073709551615`, `18446744073709551616`, `1.5`, `-1`, `1e2`,
		`"\ud800\udc00"`, `"\ud800"`, `"\udc00\ud800\u0041"`, "\"\xff\xed\xa0\x80\"", `"\u00e9\n\/"`,
		`true`, `{}`, `[1]`, ` "y" `}
)

// fragmentObject builds a JSON object from in: each pair of bytes picks a
// key and a value.
func fragmentObject(in []byte) []byte {
	out := []byte{'{'}
	for i := 0; i+1 < len(in); i += 2 {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, fuzzKeys[int(in[i])%len(fuzzKeys)]...)
		out = append(out, ':')
		out = append(out, fuzzValues[int(in[i+1])%len(fuzzValues)]...)
	}
	return append(out, '}')
}

// checkDecode compares DecodeJSON on in, and json.Unmarshal (which
// validates the input, then calls DecodeJSON), each with the reference:
// encoding/json's strict decoding into a type without the decoder.
func checkDecode(t *testing.T, in []byte) {
	t.Helper()
	want, quirk, wantErr := strictDecode(in)
	got := fullEvent()
	err := got.DecodeJSON(in)
	if err != nil {
		if !strings.HasPrefix(err.Error(), "event: ") {
			t.Fatalf("error %q does not start with \"event: \"", err)
		}
		if !reflect.DeepEqual(got, fullEvent()) {
			t.Fatalf("DecodeJSON changed the event on error %v: %#v", err, got)
		}
		if errors.Is(err, ErrSyntax) && json.Valid(in) {
			t.Fatalf("syntax error %q for valid JSON", err)
		}
	}
	if quirk {
		// The documented difference: the former decoder accepted a
		// ']' or '}' (and anything after it) after the object.
		if err == nil {
			t.Fatalf("DecodeJSON accepts trailing data in %q", in)
		}
		return
	}
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("input %q: DecodeJSON error %v, reference error %v", in, err, wantErr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("input %q:\nDecodeJSON %#v\n reference %#v", in, got, want)
	}
	// json.Unmarshal validates the input, then calls UnmarshalJSON.
	viaJSON := fullEvent()
	jerr := json.Unmarshal(in, &viaJSON)
	if !json.Valid(in) {
		if jerr == nil {
			t.Fatalf("json.Unmarshal accepts invalid JSON %q", in)
		}
		return
	}
	// Against the reference, not DecodeJSON: json.Unmarshal ends in
	// DecodeJSON (through UnmarshalJSON), so comparing the two compared
	// the decoder with itself.
	if (jerr == nil) != (wantErr == nil) {
		t.Fatalf("input %q: json.Unmarshal error %v, reference error %v", in, jerr, wantErr)
	}
	if jerr == nil && !reflect.DeepEqual(viaJSON, want) {
		t.Fatalf("input %q:\njson.Unmarshal %#v\n     reference %#v", in, viaJSON, want)
	}
}

// BenchmarkDecodeEvent compares DecodeJSON with json.Unmarshal (which now
// calls it after validating the input) and with the former strict decoder,
// on a command event with about 1 KB of raw_data.
func BenchmarkDecodeEvent(b *testing.B) {
	bench := benchEvent()
	raw := bench.AppendJSON(nil)
	b.Run("DecodeJSON", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for b.Loop() {
			var e Event
			if err := e.DecodeJSON(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for b.Loop() {
			var e Event
			if err := json.Unmarshal(raw, &e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("strict-encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := strictDecode(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Mutants (issue 15, make mutate): the 40-byte bound of the number text
// quoted in an error moved by one (i-off <= 40) or computed from the
// input's start (i+off < 40) went unnoticed.
func TestDecodeNumberTextBounded(t *testing.T) {
	digits := strings.Repeat("1", 39) + strings.Repeat("2", 30)
	var e Event
	err := e.DecodeJSON([]byte(`{"seq":-` + digits + `}`))
	if err == nil {
		t.Fatal("DecodeJSON accepted a negative seq")
	}
	if want := "got -" + digits[:39]; !strings.HasSuffix(err.Error(), want) {
		t.Errorf("error %q, want it to end with the number's first 40 bytes %q", err, want)
	}
}

// TestDecodeReadsNothingPastTheInput: the input is a slice of a larger
// buffer (a Kafka fetch, a file read) whose next bytes would complete a
// literal cut short at its end: the decoder reports the input as it is.
// Bug (mutant): the bound of the literal check added the offset instead of
// subtracting it and read the bytes past the input's end ("got boolean").
func TestDecodeReadsNothingPastTheInput(t *testing.T) {
	for _, tt := range []struct{ buf, want string }{
		{`{"layer":true}`, "invalid character 't' looking for beginning of value"},
		{`{"host":false}`, "invalid character 'f' looking for beginning of value"},
	} {
		in := []byte(tt.buf)[:len(tt.buf)-3] // the literal's last two bytes and the brace are past the end
		var e Event
		err := e.DecodeJSON(in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("DecodeJSON(%q) = %v, want an error containing %q", in, err, tt.want)
		}
	}
}
