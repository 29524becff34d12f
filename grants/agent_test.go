package grants

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

// TestDecodeAgent: a message of opctl.agent.v1 is accepted only when
// signed by the key enrolled for the host it names (issue 9: one agent
// credential forged WorkProgress, AgentReport and Inventory for every
// host); removing a host's key file revokes it at the next message.
func TestDecodeAgent(t *testing.T) {
	dir := t.TempDir()
	db01, db02, stranger := signer(t, 1), signer(t, 2), signer(t, 3)
	for host, s := range map[string]*sign.Signer{"db01": db01, "db02": db02} {
		if _, err := sign.Enroll(dir, host, s.PublicKey()); err != nil {
			t.Fatal(err)
		}
	}
	hosts := sign.NewKeyDir(dir)
	rep := schemas.AgentReport{Host: "db01", LoginID: "op", State: schemas.AgentDeployed, Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), PublishSeq: 7}
	good, err := AgentRecord(db01, "db01", rep)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := json.Marshal(rep)
	byOtherHost, _ := AgentRecord(db02, "db01", rep)
	byStranger, _ := AgentRecord(stranger, "db01", rep)
	unenrolled := rep
	unenrolled.Host = "db03"
	forUnenrolled, _ := AgentRecord(stranger, "db03", unenrolled)
	tampered := func() []byte {
		e, _ := sign.Decode(good.Value)
		e.Payload = bytes.Replace(e.Payload, []byte("DEPLOYED"), []byte("UNDEPLOYED"), 1)
		b, _ := e.Marshal()
		return b
	}()
	traversal, _ := AgentRecord(db01, "../db01", map[string]any{"host": "../db01", "publish_seq": 1})
	tests := []struct {
		name   string
		key    string
		value  []byte
		reason string
	}{
		{"signed by its host", "db01", good.Value, ""},
		{"unsigned", "db01", plain, ReasonUnsigned},
		{"bare tombstone", "db01", nil, ReasonUnsigned},
		{"another host's key", "db01", byOtherHost.Value, ReasonUnknownKey},
		{"a stranger's key", "db01", byStranger.Value, ReasonUnknownKey},
		{"host not enrolled", "db03", forUnenrolled.Value, ReasonUnknownHost},
		{"a path for a host", "../db01", traversal.Value, ReasonUnknownHost},
		{"tampered", "db01", tampered, ReasonBadSignature},
		{"keyed by another host", "db02", good.Value, ReasonKeyMismatch},
		{"no host in the payload", "db01", envelope(t, db01, `{"loginid":"op"}`), ReasonInvalidPayload},
		{"not an envelope", "db01", []byte(`{"key_id":1}`), ReasonMalformed},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := DecodeAgent([]byte(tt.key), tt.value, hosts)
			if tt.reason == "" {
				if err != nil {
					t.Fatal(err)
				}
				if m.Host != "db01" || m.Kind != schemas.AgentKindReport || m.KeyID != db01.KeyID() || m.Seq != 7 {
					t.Errorf("got %+v", m)
				}
				if _, err := schemas.DecodeAgentReport(m.Payload); err != nil {
					t.Error(err)
				}
				return
			}
			var re *RefusedError
			if !errors.As(err, &re) || re.Reason != tt.reason {
				t.Fatalf("error %v, want reason %s", err, tt.reason)
			}
			seen[re.Reason] = true
		})
	}
	for _, r := range AgentReasons() {
		// Replayed is the consumer's refusal (Seqs, CheckSeq): TestSeqs.
		if !seen[r] && r != ReasonReplayed {
			t.Errorf("reason %s is never tested", r)
		}
	}
	if k := AgentKind(good.Value); k != schemas.AgentKindReport {
		t.Errorf("kind of a signed report: %s", k)
	}
	inv, _ := AgentRecord(db01, "db01", map[string]any{"inventory": "SCHEDULED", "host": "db01", "publish_seq": 1})
	if k := AgentKind(inv.Value); k != schemas.AgentKindInventory {
		t.Errorf("kind of a signed inventory: %s", k)
	}
	// Revoking the host's key: remove its file. The next message is refused.
	if err := os.Remove(filepath.Join(dir, "db01.pub")); err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeAgent([]byte("db01"), good.Value, hosts); Reason(err) != ReasonUnknownHost {
		t.Errorf("after the key was removed: %v, want %s", err, ReasonUnknownHost)
	}
	// Another key for an enrolled host is refused; the same key again is not.
	if _, err := sign.Enroll(dir, "db02", stranger.PublicKey()); err == nil {
		t.Error("enrolled a second key for db02")
	}
	if _, err := sign.Enroll(dir, "db02", db02.PublicKey()); err != nil {
		t.Errorf("enrolling db02's key again: %v", err)
	}
}

// FuzzDecodeAgent: whatever payload a host's own key signs (db01's: the
// root of db01 holds it), a message DecodeAgent accepts speaks for db01
// only: each consumer's strict decoder that accepts the payload reads the
// host db01 from it (no duplicate member, other case, escape or invalid
// UTF-8 makes a decoder see db02 where DecodeAgent checked db01).
func FuzzDecodeAgent(f *testing.F) {
	dir := f.TempDir()
	db01, db02 := signer(f, 1), signer(f, 2)
	for host, s := range map[string]*sign.Signer{"db01": db01, "db02": db02} {
		if _, err := sign.Enroll(dir, host, s.PublicKey()); err != nil {
			f.Fatal(err)
		}
	}
	hosts := sign.NewKeyDir(dir)
	for _, seed := range []string{
		`{"host":"db01","loginid":"op","state":"DEPLOYED","time":"2026-01-01T00:00:00Z"}`,
		`{"host":"db01","Host":"db02","loginid":"op","state":"DEPLOYED","time":"2026-01-01T00:00:00Z"}`,
		`{"host":"db02","host":"db01","loginid":"op","state":"DEPLOYED","time":"2026-01-01T00:00:00Z"}`,
		`{"host":"db01","work_request_id":"wr1","seq":1,"status":"SUCCEEDED","percent_complete":100,"time":"2026-01-01T00:00:00Z"}`,
		`{"inventory":"SCHEDULED","host":"db01","instance_id":"i1","os_family":"debian","packages":[],"time":"2026-01-01T00:00:00Z"}`,
		`{"host":"db\u00301","HOST":"db02"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		value, err := db01.Sign(payload).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		m, err := DecodeAgent([]byte("db01"), value, hosts)
		if err != nil {
			return
		}
		if m.Host != "db01" || m.KeyID != db01.KeyID() {
			t.Fatalf("accepted as %s by %s", m.Host, m.KeyID)
		}
		if r, err := schemas.DecodeAgentReport(m.Payload); err == nil && r.Host != "db01" {
			t.Fatalf("a report of %s accepted with db01's key", r.Host)
		}
		if p, err := schemas.DecodeWorkProgress(m.Payload); err == nil && p.Host != "db01" {
			t.Fatalf("work progress of %s accepted with db01's key", p.Host)
		}
		if inv, err := schemas.DecodeInventory(m.Payload); err == nil && inv.Host != "db01" {
			t.Fatalf("an inventory of %s accepted with db01's key", inv.Host)
		}
	})
}
