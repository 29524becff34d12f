package grants

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

// TestDispatch: dispatch messages are signed and refused as grants are
// (the same envelope code), keyed by their instance: a signed RUN cannot
// be replayed to another instance, nor forged by another key.
func TestDispatch(t *testing.T) {
	policy, stranger := signer(t, 1), signer(t, 2)
	kr := sign.NewKeyring(policy.PublicKey())
	at := time.Date(2026, 3, 8, 8, 0, 0, 0, time.UTC)
	d := schemas.Dispatch{WorkRequestID: "wr1", Action: schemas.DispatchRun, JobID: "job1", ExecutionID: "ex1", InstanceID: "db01", Host: "db01.example",
		OperationType: schemas.OperationInstall, PackageNames: []string{"openssl=3.0.15-1~deb12u1"}, NotAfter: at.Add(4 * time.Hour), Deadline: at.Add(2 * time.Hour), Time: at, PublishSeq: 1}
	good, err := DispatchRecord(policy, d)
	if err != nil {
		t.Fatal(err)
	}
	if string(good.Key) != "db01" {
		t.Fatalf("key %q", good.Key)
	}
	cancel := schemas.Dispatch{WorkRequestID: "wr1", Action: schemas.DispatchCancel, JobID: "job1", ExecutionID: "ex1", InstanceID: "db01", Host: "db01.example", Time: at, PublishSeq: 2}
	canceled, err := DispatchRecord(policy, cancel)
	if err != nil {
		t.Fatal(err)
	}
	byStranger, _ := DispatchRecord(stranger, d)
	plain, _ := json.Marshal(d)
	tests := []struct {
		name   string
		key    string
		value  []byte
		reason string
		want   schemas.Dispatch
	}{
		{"signed run", "db01", good.Value, "", d},
		{"signed cancel", "db01", canceled.Value, "", cancel},
		{"unsigned", "db01", plain, ReasonUnsigned, schemas.Dispatch{}},
		{"bare tombstone", "db01", nil, ReasonUnsigned, schemas.Dispatch{}},
		{"unknown key", "db01", byStranger.Value, ReasonUnknownKey, schemas.Dispatch{}},
		{"replayed to another instance", "db02", good.Value, ReasonKeyMismatch, schemas.Dispatch{}},
		{"signed, but a shell command for a package", "db01", envelope(t, policy, `{"work_request_id":"w","action":"RUN","job_id":"j","execution_id":"e","instance_id":"db01","host":"h","operation_type":"INSTALL","package_names":["x;reboot"],"not_after":"2026-03-08T12:00:00Z","deadline":"2026-03-08T10:00:00Z","time":"2026-03-08T08:00:00Z"}`), ReasonInvalidPayload, schemas.Dispatch{}},
		{"unknown field", "db01", envelope(t, policy, `{"work_request_id":"w","action":"CANCEL","job_id":"j","execution_id":"e","instance_id":"db01","host":"h","time":"2026-03-08T08:00:00Z","script":"x"}`), ReasonInvalidPayload, schemas.Dispatch{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := DecodeDispatch([]byte(tt.key), tt.value, kr)
			if tt.reason == "" {
				if err != nil {
					t.Fatal(err)
				}
				gb, _ := json.Marshal(m.Dispatch)
				wb, _ := json.Marshal(tt.want)
				if !bytes.Equal(gb, wb) || m.KeyID != policy.KeyID() {
					t.Errorf("got %s by %s, want %s", gb, m.KeyID, wb)
				}
				return
			}
			var re *RefusedError
			if !errors.As(err, &re) || re.Reason != tt.reason {
				t.Fatalf("error %v, want reason %s", err, tt.reason)
			}
		})
	}
	if _, err := DispatchRecord(policy, schemas.Dispatch{WorkRequestID: "w", Action: schemas.DispatchRun, PublishSeq: 1}); err == nil {
		t.Error("signed a dispatch without an instance")
	}
}
