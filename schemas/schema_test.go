package schemas_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/auditpipe/auditpipe/schemas"
)

func compileSchemas(t *testing.T) map[schemas.Kind]*jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	out := map[schemas.Kind]*jsonschema.Schema{}
	for _, k := range schemas.Kinds {
		path := filepath.Join("jsonschema", string(k)+".schema.json")
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if err := c.AddResource(path, doc); err != nil {
			t.Fatal(err)
		}
		if out[k], err = c.Compile(path); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	return out
}

// goldenEvents reads every event of the collector's golden files (the
// seed's examples and the fixtures), which are indented JSON objects one
// after another.
func goldenEvents(t *testing.T) map[string][][]byte {
	t.Helper()
	files, err := filepath.Glob("../collector/testdata/*/*.golden.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	out := map[string][][]byte{}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		for dec.More() {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			out[name] = append(out[name], raw)
		}
	}
	return out
}

// TestGoldenEventsMatchSchemas validates every golden event against the
// JSON Schema of its kind, and checks that decoding and re-encoding it
// gives the same JSON (the encoder writes nothing the type cannot hold).
func TestGoldenEventsMatchSchemas(t *testing.T) {
	sch := compileSchemas(t)
	n := 0
	for name, events := range goldenEvents(t) {
		for i, raw := range events {
			var e schemas.Event
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatalf("%s #%d: %v", name, i, err)
			}
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			if err := sch[e.Event].Validate(inst); err != nil {
				t.Errorf("%s #%d does not match %s.schema.json: %v", name, i, e.Event, err)
			}
			var compact bytes.Buffer
			if err := json.Compact(&compact, raw); err != nil {
				t.Fatal(err)
			}
			if got := e.AppendJSON(nil); !bytes.Equal(got, compact.Bytes()) {
				t.Errorf("%s #%d: round trip differs:\n got %s\nwant %s", name, i, got, compact.Bytes())
			}
			n++
		}
	}
	if n < 15 {
		t.Fatalf("only %d golden events checked", n)
	}
}

// TestSchemasRejectDrift checks that the schemas catch what a drifting
// producer would send.
func TestSchemasRejectDrift(t *testing.T) {
	sch := compileSchemas(t)
	base := map[string]any{}
	raw, err := os.ReadFile("../collector/testdata/seed/example-1-4-command.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &base); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(m map[string]any)
	}{
		{"unknown field", func(m map[string]any) { m["user"] = "x" }},
		{"renamed field", func(m map[string]any) { m["login_id"] = m["loginid"]; delete(m, "loginid") }},
		{"args not an array", func(m map[string]any) { m["args"] = "ls /" }},
		{"rec_id a number", func(m map[string]any) { m["rec_id"] = 10777424 }},
		{"time not ctime", func(m map[string]any) { m["time"] = "2020-10-29 03:20:29" }},
		{"seq negative", func(m map[string]any) { m["seq"] = -1 }},
		{"event_id short", func(m map[string]any) { m["event_id"] = "abc" }},
		{"unknown layer", func(m map[string]any) { m["layer"] = "MOON" }},
		{"res with the seed's slip", func(m map[string]any) { m["res"] = "success'" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := map[string]any{}
			for k, v := range base {
				m[k] = v
			}
			tt.change(m)
			b, _ := json.Marshal(m)
			inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader(b))
			if err := sch[schemas.KindCommand].Validate(inst); err == nil {
				t.Errorf("schema accepted %s", b)
			}
		})
	}
	// And the unchanged event passes (so the cases above fail for their change).
	inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err := sch[schemas.KindCommand].Validate(inst); err != nil {
		t.Fatal(err)
	}
}

// TestEventIDStable pins the event id: it is the dedup key everywhere and
// must never change for the same record.
func TestEventIDStable(t *testing.T) {
	if got := schemas.NewEventID("scaqae08dv0605m", 1603941629, 418, 10777424); got != "051c888bbb8165642492bc2ddf246c5b" {
		t.Fatalf("event id = %s", got)
	}
	if schemas.NewEventID("a", 1, 2, 3) == schemas.NewEventID("b", 1, 2, 3) {
		t.Fatal("host not in the id")
	}
}

func TestEscapeRoundTrip(t *testing.T) {
	for _, s := range []string{"", "plain", `back\slash`, "caf\xe9", "\xff\xfe\\x41", `\x41`, "ok ü 漢字", "\xe6\xbc"} {
		e := schemas.EscapeInvalidUTF8(s)
		if !utf8.ValidString(e) {
			t.Errorf("escaped %q is not UTF-8: %q", s, e)
		}
		if got := schemas.UnescapeInvalidUTF8(e); got != s {
			t.Errorf("round trip of %q gave %q (escaped %q)", s, got, e)
		}
	}
}
