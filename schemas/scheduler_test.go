package schemas_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/auditpipe/auditpipe/schemas"
)

// decodeDispatch decodes a dispatch payload strictly and validates it,
// as grants.DecodeDispatch does inside the envelope.
func decodeDispatch(b []byte) (any, error) {
	var d schemas.Dispatch
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, err
	}
	return d, d.Validate()
}

func decodeProgress(b []byte) (any, error) { p, err := schemas.DecodeWorkProgress(b); return p, err }

func decodeLifecycle(b []byte) (any, error) { l, err := schemas.DecodeLifecycle(b); return l, err }

// TestSchedulerGoldenExamples: the scheduler's golden messages match
// their schemas, decode strictly into the Go types and encode back to
// the same JSON.
func TestSchedulerGoldenExamples(t *testing.T) {
	tests := []struct {
		file, schema string
		decode       func(b []byte) (any, error)
	}{
		{"dispatch-run.json", "dispatch", decodeDispatch},
		{"work-progress-failed.json", "work-progress", decodeProgress},
		{"lifecycle-work-request.json", "lifecycle", decodeLifecycle},
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

// TestSchedulerRejectsDrift: what a drifting producer would send is
// refused by the schema and by the Go decoder alike.
func TestSchedulerRejectsDrift(t *testing.T) {
	tests := []struct {
		file, schema string
		decode       func(b []byte) (any, error)
		name         string
		change       func(m map[string]any)
	}{
		{"dispatch-run.json", "dispatch", decodeDispatch, "unknown field", func(m map[string]any) { m["command"] = "rm -rf /" }},
		{"dispatch-run.json", "dispatch", decodeDispatch, "unknown action", func(m map[string]any) { m["action"] = "REBOOT" }},
		{"dispatch-run.json", "dispatch", decodeDispatch, "no host", func(m map[string]any) { delete(m, "host") }},
		{"dispatch-run.json", "dispatch", decodeDispatch, "unknown operation", func(m map[string]any) { m["operation_type"] = "COMPOUND" }},
		{"dispatch-run.json", "dispatch", decodeDispatch, "UPDATEALL without update type", func(m map[string]any) { delete(m, "update_type") }},
		{"dispatch-run.json", "dispatch", decodeDispatch, "UPDATEALL with packages", func(m map[string]any) { m["package_names"] = []string{"openssl"} }},
		{"dispatch-run.json", "dispatch", decodeDispatch, "INSTALL without packages", func(m map[string]any) { m["operation_type"] = "INSTALL"; delete(m, "update_type") }},
		{"dispatch-run.json", "dispatch", decodeDispatch, "INSTALL with update type", func(m map[string]any) { m["operation_type"] = "INSTALL"; m["package_names"] = []string{"openssl"} }},
		{"dispatch-run.json", "dispatch", decodeDispatch, "package name with a space", func(m map[string]any) {
			m["operation_type"] = "INSTALL"
			delete(m, "update_type")
			m["package_names"] = []string{"openssl; reboot"}
		}},
		{"dispatch-run.json", "dispatch", decodeDispatch, "request without its login", func(m map[string]any) { delete(m, "loginid") }},
		{"dispatch-run.json", "dispatch", decodeDispatch, "run without a deadline", func(m map[string]any) { delete(m, "deadline") }},
		{"work-progress-failed.json", "work-progress", decodeProgress, "unknown field", func(m map[string]any) { m["exit_code"] = 1 }},
		{"work-progress-failed.json", "work-progress", decodeProgress, "seq zero", func(m map[string]any) { m["seq"] = 0 }},
		{"work-progress-failed.json", "work-progress", decodeProgress, "status ACCEPTED", func(m map[string]any) { m["status"] = "ACCEPTED" }},
		{"work-progress-failed.json", "work-progress", decodeProgress, "percent over 100", func(m map[string]any) { m["percent_complete"] = 101 }},
		{"work-progress-failed.json", "work-progress", decodeProgress, "FAILED without an error", func(m map[string]any) { delete(m, "errors") }},
		{"work-progress-failed.json", "work-progress", decodeProgress, "log line without a message", func(m map[string]any) {
			m["logs"] = []map[string]any{{"time": "2026-03-08T08:01:10Z"}}
		}},
		{"lifecycle-work-request.json", "lifecycle", decodeLifecycle, "unknown object type", func(m map[string]any) { m["object_type"] = "job_execution" }},
	}
	for _, tt := range tests {
		t.Run(tt.schema+"/"+tt.name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", "policy", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			m := map[string]any{}
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			tt.change(m)
			b, _ := json.Marshal(m)
			if err := validateJSON(t, compileSchema(t, tt.schema), b); err == nil {
				t.Errorf("schema accepted %s", b)
			}
			if _, err := tt.decode(b); err == nil {
				t.Errorf("decoder accepted %s", b)
			}
		})
	}
}

// TestCancelDispatch: a CANCEL needs no operation, cutoff or deadline,
// and matches the schema.
func TestCancelDispatch(t *testing.T) {
	b := []byte(`{"work_request_id":"wr1","action":"CANCEL","job_id":"j","execution_id":"e","instance_id":"i","host":"h","time":"2026-03-08T08:00:00Z"}`)
	if err := validateJSON(t, compileSchema(t, "dispatch"), b); err != nil {
		t.Fatal(err)
	}
	if _, err := decodeDispatch(b); err != nil {
		t.Fatal(err)
	}
}
