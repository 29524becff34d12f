package schemas_test

import (
	"testing"

	"github.com/auditpipe/auditpipe/schemas"
)

func TestAgentMessageKind(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"grant report", `{"host":"h1","loginid":"abc","state":"DEPLOYED","time":"2026-01-01T00:00:00Z"}`, schemas.AgentKindReport},
		{"work progress", `{"work_request_id":"wr1","host":"h1","seq":1,"status":"IN_PROGRESS","percent_complete":0,"time":"2026-01-01T00:00:00Z"}`, schemas.AgentKindWorkProgress},
		{"work progress, empty id", ` {"work_request_id":"","host":"h1"}`, schemas.AgentKindWorkProgress},
		{"work progress, null id", `{"work_request_id":null}`, schemas.AgentKindWorkProgress},
		{"truncated", `{"work_request_id":"wr1"`, schemas.AgentKindReport},
		{"not an object", `["work_request_id"]`, schemas.AgentKindReport},
		{"empty", ``, schemas.AgentKindReport},
		{"nested member", `{"x":{"work_request_id":"wr1"}}`, schemas.AgentKindReport},
		{"inventory", `{"inventory":"SCHEDULED","host":"h1","instance_id":"i1"}`, schemas.AgentKindInventory},
		{"inventory after a work request", `{"work_request_id":"wr1","inventory":"WORK_REQUEST"}`, schemas.AgentKindInventory},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := schemas.AgentMessageKind([]byte(tc.in)); got != tc.want {
				t.Fatalf("AgentMessageKind(%s) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
}

func FuzzAgentMessageKind(f *testing.F) {
	f.Add([]byte(`{"work_request_id":"wr1","host":"h1"}`))
	f.Add([]byte(`{"host":"h1","loginid":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		k := schemas.AgentMessageKind(b)
		if k != schemas.AgentKindReport && k != schemas.AgentKindWorkProgress {
			t.Fatalf("kind %q", k)
		}
		// What is classified as work progress and decodes is one.
		if _, err := schemas.DecodeWorkProgress(b); err == nil && k != schemas.AgentKindWorkProgress {
			t.Fatalf("a valid work progress classified %s", k)
		}
		if _, err := schemas.DecodeAgentReport(b); err == nil && k != schemas.AgentKindReport {
			t.Fatalf("a valid agent report classified %s", k)
		}
	})
}
