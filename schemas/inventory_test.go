package schemas_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/auditpipe/auditpipe/schemas"
)

func readInventoryGolden(t testing.TB) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "policy", "inventory.json"))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestInventoryGolden: the golden inventory matches its schema, decodes
// strictly and encodes back to the same JSON.
func TestInventoryGolden(t *testing.T) {
	raw := readInventoryGolden(t)
	if err := validateJSON(t, compileSchema(t, "inventory"), raw); err != nil {
		t.Fatalf("does not match inventory.schema.json: %v", err)
	}
	v, err := schemas.DecodeInventory(raw)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(v)
	var want bytes.Buffer
	if err := json.Compact(&want, raw); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Errorf("round trip differs:\n got %s\nwant %s", got, want.Bytes())
	}
	// The topic's messages tell their type; the others are not
	// inventories.
	for _, tc := range []struct{ file, typ string }{
		{"inventory.json", schemas.AgentKindInventory},
		{"work-progress-failed.json", schemas.AgentKindWorkProgress},
		{"agent-report-deployfailed.json", schemas.AgentKindReport},
	} {
		b, err := os.ReadFile(filepath.Join("testdata", "policy", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		if got := schemas.AgentMessageKind(b); got != tc.typ {
			t.Errorf("%s: type %q, want %q", tc.file, got, tc.typ)
		}
		if _, err := schemas.DecodeInventory(b); (err == nil) != (tc.typ == schemas.AgentKindInventory) {
			t.Errorf("%s: DecodeInventory: %v", tc.file, err)
		}
	}
	if got := schemas.AgentMessageKind([]byte(`["inventory"]`)); got != schemas.AgentKindReport {
		t.Errorf("an array has kind %q", got)
	}
}

// TestInventoryRejectsDrift: what a drifting agent would send is refused
// by the schema and the decoder alike.
func TestInventoryRejectsDrift(t *testing.T) {
	pkg := func(m map[string]any, i int) map[string]any { return m["packages"].([]any)[i].(map[string]any) }
	tests := []struct {
		name   string
		change func(m map[string]any)
	}{
		{"unknown field", func(m map[string]any) { m["kernel"] = "6.1" }},
		{"unknown trigger", func(m map[string]any) { m["inventory"] = "ADHOC" }},
		{"no instance", func(m map[string]any) { delete(m, "instance_id") }},
		{"no host", func(m map[string]any) { delete(m, "host") }},
		{"no packages", func(m map[string]any) { delete(m, "packages") }},
		{"work request trigger without its id", func(m map[string]any) { delete(m, "work_request_id") }},
		{"compartment without path", func(m map[string]any) { delete(m, "compartment_path") }},
		{"path without compartment", func(m map[string]any) { delete(m, "compartment_id") }},
		{"package without version", func(m map[string]any) { delete(pkg(m, 0), "version") }},
		{"unknown package field", func(m map[string]any) { pkg(m, 0)["size"] = 10 }},
		{"update type ALL", func(m map[string]any) { pkg(m, 1)["update_type"] = "ALL" }},
		{"update without type", func(m map[string]any) { delete(pkg(m, 1), "update_type") }},
		{"cves without update", func(m map[string]any) { pkg(m, 0)["cves"] = []string{"CVE-2024-0001"} }},
		{"not a CVE id", func(m map[string]any) { pkg(m, 1)["cves"] = []string{"CVE-2024-5535; DROP TABLE"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := map[string]any{}
			if err := json.Unmarshal(readInventoryGolden(t), &m); err != nil {
				t.Fatal(err)
			}
			tt.change(m)
			b, _ := json.Marshal(m)
			if err := validateJSON(t, compileSchema(t, "inventory"), b); err == nil {
				t.Errorf("schema accepted %s", b)
			}
			if _, err := schemas.DecodeInventory(b); err == nil {
				t.Errorf("decoder accepted %s", b)
			}
		})
	}
	// Go checks one thing the schema cannot: the compartment is the
	// path's last element.
	m := map[string]any{}
	_ = json.Unmarshal(readInventoryGolden(t), &m)
	m["compartment_id"] = "ocid1.compartment.root"
	b, _ := json.Marshal(m)
	if _, err := schemas.DecodeInventory(b); err == nil {
		t.Error("decoder accepted a compartment that is not the path's last")
	}
}

// FuzzDecodeInventory: any input decodes to a valid inventory or an
// error, never a panic; a decoded one survives a round trip.
func FuzzDecodeInventory(f *testing.F) {
	f.Add(readInventoryGolden(f))
	f.Add([]byte(`{"inventory":"SCHEDULED","host":"h","instance_id":"i","os_family":"debian","packages":[],"time":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"packages":[{"name":"a","version":"1","cves":[""]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := schemas.DecodeInventory(b)
		if err != nil {
			return
		}
		out, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		again, err := schemas.DecodeInventory(out)
		if err != nil {
			t.Fatalf("re-encoded inventory refused: %v\n%s", err, out)
		}
		if err := again.Validate(); err != nil {
			t.Fatal(err)
		}
	})
}
