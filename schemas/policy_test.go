package schemas_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/auditpipe/auditpipe/schemas"
)

func compileSchema(t *testing.T, name string) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	path := filepath.Join("jsonschema", name+".schema.json")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if err := c.AddResource(path, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return s
}

func validateJSON(t *testing.T, s *jsonschema.Schema, b []byte) error {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return s.Validate(inst)
}

// TestPolicyGoldenExamples: the golden lifecycle event and grant match
// their schemas, decode strictly into the Go types and encode back to the
// same JSON.
func TestPolicyGoldenExamples(t *testing.T) {
	tests := []struct {
		file, schema string
		decode       func(b []byte) (any, error)
	}{
		{"lifecycle-approved.json", "lifecycle", func(b []byte) (any, error) { l, err := schemas.DecodeLifecycle(b); return l, err }},
		{"agent-report-deployfailed.json", "agent-report", func(b []byte) (any, error) { r, err := schemas.DecodeAgentReport(b); return r, err }},
		{"grant.json", "grant", func(b []byte) (any, error) {
			var g schemas.Grant
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&g); err != nil {
				return nil, err
			}
			return g, g.Validate()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", "policy", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if err := validateJSON(t, compileSchema(t, tt.schema), raw); err != nil {
				t.Fatalf("does not match %s.schema.json: %v", tt.schema, err)
			}
			v, err := tt.decode(raw)
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
		})
	}
}

// TestLifecycleRejectsDrift: what a drifting producer would send is
// refused by the schema and by DecodeLifecycle alike.
func TestLifecycleRejectsDrift(t *testing.T) {
	raw, err := os.ReadFile("testdata/policy/lifecycle-approved.json")
	if err != nil {
		t.Fatal(err)
	}
	sch := compileSchema(t, "lifecycle")
	tests := []struct {
		name   string
		change func(m map[string]any)
	}{
		{"unknown field", func(m map[string]any) { m["user"] = "x" }},
		{"event_id short", func(m map[string]any) { m["event_id"] = "abc" }},
		{"unknown object type", func(m map[string]any) { m["object_type"] = "job" }},
		{"no state_to", func(m map[string]any) { delete(m, "state_to") }},
		{"no actor", func(m map[string]any) { delete(m, "actor") }},
		{"kind without object", func(m map[string]any) { m["kind"] = "approved" }},
		{"detail not a string", func(m map[string]any) { m["details"] = map[string]any{"approvals": 1} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := map[string]any{}
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			tt.change(m)
			b, _ := json.Marshal(m)
			if err := validateJSON(t, sch, b); err == nil {
				t.Errorf("schema accepted %s", b)
			}
			if _, err := schemas.DecodeLifecycle(b); err == nil {
				t.Errorf("DecodeLifecycle accepted %s", b)
			}
		})
	}
}

// TestAgentReportRejectsDrift: what a drifting agent would send is
// refused by the schema and by DecodeAgentReport alike.
func TestAgentReportRejectsDrift(t *testing.T) {
	raw, err := os.ReadFile("testdata/policy/agent-report-deployfailed.json")
	if err != nil {
		t.Fatal(err)
	}
	sch := compileSchema(t, "agent-report")
	tests := []struct {
		name   string
		change func(m map[string]any)
	}{
		{"unknown field", func(m map[string]any) { m["user"] = "x" }},
		{"no host", func(m map[string]any) { delete(m, "host") }},
		{"no loginid", func(m map[string]any) { delete(m, "loginid") }},
		{"unknown state", func(m map[string]any) { m["state"] = "APPLIED" }},
		{"DEPLOYFAILED without a reason", func(m map[string]any) { delete(m, "reason") }},
		{"no time", func(m map[string]any) { delete(m, "time") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := map[string]any{}
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			tt.change(m)
			b, _ := json.Marshal(m)
			if err := validateJSON(t, sch, b); err == nil {
				t.Errorf("schema accepted %s", b)
			}
			if _, err := schemas.DecodeAgentReport(b); err == nil {
				t.Errorf("DecodeAgentReport accepted %s", b)
			}
		})
	}
}

// TestGrantSSHKeys: a key line with a newline (a second, smuggled
// authorized_keys line) is refused by the schema and by Validate.
func TestGrantSSHKeys(t *testing.T) {
	sch := compileSchema(t, "grant")
	for _, k := range []string{"", "ssh-ed25519 AAAA a\\nssh-ed25519 BBBB b", "ssh-ed25519 AAAA\\u0000"} {
		b := []byte(`{"loginid":"l","req_auth_id":"r","ssh_authorized_keys":["` + k + `"]}`)
		if err := validateJSON(t, sch, b); err == nil {
			t.Errorf("schema accepted %s", b)
		}
		var g schemas.Grant
		if err := json.Unmarshal(b, &g); err != nil {
			t.Fatal(err)
		}
		if err := g.Validate(); err == nil {
			t.Errorf("Validate accepted %q", g.SSHAuthorizedKeys)
		}
	}
}

// TestPrivilegesMerge: a merge is a union of what grants, the chroot
// holds only when every part confines, and the "all" flags make their
// lists moot.
func TestPrivilegesMerge(t *testing.T) {
	diag := schemas.Privileges{Layers: []string{"HOST", "CPS"}, Chroot: true, Commands: []string{"top", "cat", "cat"}, ReadablePaths: []string{"/var/log"}, DeniedCommands: []string{"rm", "vi"}}
	maint := schemas.Privileges{Layers: []string{"CELL"}, Chroot: true, SudoCommands: []string{"reboot"}, Commands: []string{"vi"}, WritablePaths: []string{"/etc"}}
	full := schemas.Privileges{Layers: []string{"HOST"}, SuRoot: true, SudoAll: true, AllCommands: true, ReadAll: true, WriteAll: true}
	tests := []struct {
		name string
		got  schemas.Privileges
		want string
	}{
		{"one", diag.Merge(), `{"layers":["CPS","HOST"],"chroot":true,"su_root":false,"sudo_all":false,"all_commands":false,"commands":["cat","top"],"denied_commands":["rm","vi"],"read_all":false,"readable_paths":["/var/log"],"write_all":false,"ssh_all_layers":false,"egress":false}`},
		{"union", diag.Merge(maint), `{"layers":["CPS","HOST","CELL"],"chroot":true,"su_root":false,"sudo_all":false,"sudo_commands":["reboot"],"all_commands":false,"commands":["cat","top","vi"],"denied_commands":["rm"],"read_all":false,"readable_paths":["/var/log"],"write_all":false,"writable_paths":["/etc"],"ssh_all_layers":false,"egress":false}`},
		{"full wins", diag.Merge(maint, full), `{"layers":["CPS","HOST","CELL"],"chroot":false,"su_root":true,"sudo_all":true,"all_commands":true,"read_all":true,"write_all":true,"ssh_all_layers":false,"egress":false}`},
	}
	for _, tt := range tests {
		b, _ := json.Marshal(tt.got)
		if string(b) != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, b, tt.want)
		}
	}
	if len(diag.Commands) != 3 {
		t.Error("Merge changed its receiver")
	}
	bad := []struct {
		p    schemas.Privileges
		want string
	}{
		{schemas.Privileges{}, "no layer"},
		{schemas.Privileges{Layers: []string{"MOON"}}, `unknown layer "MOON"`},
		{schemas.Privileges{Layers: []string{"CPS"}, ReadablePaths: []string{"var/log"}}, "readable_paths[0]"},
		{schemas.Privileges{Layers: []string{"CPS"}, WritablePaths: []string{"/etc/../root"}}, "writable_paths[0]"},
		{schemas.Privileges{Layers: []string{"CPS"}, Commands: []string{" "}}, "commands[0] is empty"},
	}
	for _, b := range bad {
		if err := b.p.Validate(); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%+v: %v, want %q", b.p, err, b.want)
		}
	}
}
