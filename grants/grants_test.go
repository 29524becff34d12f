package grants

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

func signer(t testing.TB, seed byte) *sign.Signer {
	t.Helper()
	s, err := sign.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// envelope signs payload, as an attacker holding key s would.
func envelope(t *testing.T, s *sign.Signer, payload string) []byte {
	t.Helper()
	b, err := s.Sign([]byte(payload)).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDecode: every record a consumer may meet on opctl.grants.v1, and
// what Decode says of it. The refusals are the forgeries of issue 9 (one
// unsigned message re-attributed a session and switched keystroke capture
// off) and their variants.
func TestDecode(t *testing.T) {
	policy, stranger := signer(t, 1), signer(t, 2)
	kr := sign.NewKeyring(policy.PublicKey())
	g := schemas.Grant{LoginID: "op", ReqAuthID: "req1", Resource: "cell01", AuditType: schemas.AuditCommandKeystroke, Expires: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), PublishSeq: 1}
	good, err := Record(policy, g)
	if err != nil {
		t.Fatal(err)
	}
	revoke, err := Revocation(policy, "op", 2)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := json.Marshal(schemas.Grant{LoginID: "op", ReqAuthID: "evil", AuditType: schemas.AuditCommand})
	byStranger, err := Record(stranger, schemas.Grant{LoginID: "op", ReqAuthID: "evil", AuditType: schemas.AuditCommand, PublishSeq: 1})
	if err != nil {
		t.Fatal(err)
	}
	tampered := func() []byte {
		e, err := sign.Decode(good.Value)
		if err != nil {
			t.Fatal(err)
		}
		e.Payload = bytes.Replace(e.Payload, []byte("req1"), []byte("evil"), 1)
		b, _ := e.Marshal()
		return b
	}()
	badSig := func() []byte {
		e, _ := sign.Decode(good.Value)
		e.Sig[0] ^= 0x80
		b, _ := e.Marshal()
		return b
	}()
	namesPolicyKey := func() []byte {
		e := stranger.Sign(plain)
		e.KeyID = policy.KeyID()
		b, _ := e.Marshal()
		return b
	}()
	tests := []struct {
		name   string
		key    string
		value  []byte
		reason string // "" accepted
		want   schemas.Grant
	}{
		{"a signed grant", "op", good.Value, "", g},
		{"a signed revocation", "op", revoke.Value, "", schemas.Grant{LoginID: "op", Revoked: true, PublishSeq: 2}},
		{"an unsigned grant", "op", plain, ReasonUnsigned, schemas.Grant{}},
		{"a bare tombstone", "op", nil, ReasonUnsigned, schemas.Grant{}},
		{"signed by an unknown key", "op", byStranger.Value, ReasonUnknownKey, schemas.Grant{}},
		{"names the policy key, signed by another", "op", namesPolicyKey, ReasonBadSignature, schemas.Grant{}},
		{"tampered payload", "op", tampered, ReasonBadSignature, schemas.Grant{}},
		{"bad signature", "op", badSig, ReasonBadSignature, schemas.Grant{}},
		{"not an envelope", "op", []byte(`{"key_id":1}`), ReasonMalformed, schemas.Grant{}},
		{"signed grant replayed under another login's key", "other", good.Value, ReasonKeyMismatch, schemas.Grant{}},
		{"signed revocation replayed under another login's key", "other", revoke.Value, ReasonKeyMismatch, schemas.Grant{}},
		{"signed, not JSON", "op", envelope(t, policy, "op=req1"), ReasonInvalidPayload, schemas.Grant{}},
		{"signed, empty payload", "op", envelope(t, policy, ""), ReasonInvalidPayload, schemas.Grant{}},
		{"signed, no req_auth_id", "op", envelope(t, policy, `{"loginid":"op"}`), ReasonInvalidPayload, schemas.Grant{}},
		{"signed, unknown audit type", "op", envelope(t, policy, `{"loginid":"op","req_auth_id":"r","audit_type":"NONE"}`), ReasonInvalidPayload, schemas.Grant{}},
		{"signed, unknown field", "op", envelope(t, policy, `{"loginid":"op","req_auth_id":"r","keys_off":true}`), ReasonInvalidPayload, schemas.Grant{}},
		{"signed, two grants", "op", envelope(t, policy, `{"loginid":"op","req_auth_id":"r"}{"loginid":"op","req_auth_id":"x"}`), ReasonInvalidPayload, schemas.Grant{}},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode([]byte(tt.key), tt.value, kr)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if m.KeyID != policy.KeyID() {
					t.Errorf("key id %q, want %q", m.KeyID, policy.KeyID())
				}
				gb, _ := json.Marshal(m.Grant)
				wb, _ := json.Marshal(tt.want)
				if !bytes.Equal(gb, wb) {
					t.Errorf("grant %s, want %s", gb, wb)
				}
				return
			}
			var re *RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("error %v, want a refusal (%s)", err, tt.reason)
			}
			if re.Reason != tt.reason {
				t.Fatalf("reason %s (%v), want %s", re.Reason, err, tt.reason)
			}
			if m.KeyID != "" || m.Grant.LoginID != "" {
				t.Errorf("refused, yet returned %+v", m)
			}
			seen[re.Reason] = true
		})
	}
	for _, r := range Reasons() {
		// Replayed and NotRemembered are the consumer's refusals (they
		// need its replay memory): collector's
		// TestForgedGrantsChangeNoAttribution, TestSeqsFile.
		if !seen[r] && r != ReasonReplayed && r != ReasonNotRemembered {
			t.Errorf("reason %s is never tested", r)
		}
	}
}

// TestRecordRefusesInvalid: a publisher cannot sign a grant a consumer
// would refuse.
func TestRecordRefusesInvalid(t *testing.T) {
	s := signer(t, 1)
	for _, g := range []schemas.Grant{{ReqAuthID: "r", PublishSeq: 1}, {LoginID: "op", PublishSeq: 1}, {LoginID: "op", ReqAuthID: "r", AuditType: "SOME", PublishSeq: 1},
		{LoginID: "op", ReqAuthID: "r"}, // unnumbered: every consumer would refuse it as a replay
	} {
		if _, err := Record(s, g); err == nil {
			t.Errorf("signed %+v", g)
		}
	}
	if _, err := Revocation(s, "", 1); err == nil {
		t.Error("signed the revocation of an empty login")
	}
}

// TestAssignments: assignments are signed and refused as grants are (the
// same envelope code), keyed by their resource.
func TestAssignments(t *testing.T) {
	policy, stranger := signer(t, 1), signer(t, 2)
	kr := sign.NewKeyring(policy.PublicKey())
	a := schemas.Assignment{ID: "asg1", OperatorControlID: "oc1", ResourceID: "exacc1", IsEnforcedAlways: true,
		IsLogForwarded: true, RemoteSyslogServerAddress: "siem.example", RemoteSyslogServerPort: 6514, Hosts: []string{"cps01"}, LifecycleState: "APPLIED", PublishSeq: 1}
	good, err := AssignmentRecord(policy, a)
	if err != nil {
		t.Fatal(err)
	}
	if string(good.Key) != "exacc1" {
		t.Fatalf("key %q", good.Key)
	}
	removal, err := AssignmentRemoval(policy, "exacc1", 2)
	if err != nil {
		t.Fatal(err)
	}
	byStranger, _ := AssignmentRecord(stranger, a)
	plain, _ := json.Marshal(a)
	tests := []struct {
		name   string
		key    string
		value  []byte
		reason string
		want   schemas.Assignment
	}{
		{"signed", "exacc1", good.Value, "", a},
		{"signed removal", "exacc1", removal.Value, "", schemas.Assignment{ResourceID: "exacc1", LifecycleState: AssignmentRemoved, PublishSeq: 2}},
		{"unsigned (what the forwarder reads today)", "exacc1", plain, ReasonUnsigned, schemas.Assignment{}},
		{"bare tombstone", "exacc1", nil, ReasonUnsigned, schemas.Assignment{}},
		{"unknown key", "exacc1", byStranger.Value, ReasonUnknownKey, schemas.Assignment{}},
		{"replayed under another resource", "exacc2", good.Value, ReasonKeyMismatch, schemas.Assignment{}},
		{"forwarding without always", "r", envelope(t, policy, `{"resource_id":"r","is_enforced_always":false,"is_log_forwarded":true,"remote_syslog_server_address":"s","remote_syslog_server_port":1,"hosts":["h"]}`), ReasonInvalidPayload, schemas.Assignment{}},
		{"unknown field", "r", envelope(t, policy, `{"resource_id":"r","is_enforced_always":true,"is_log_forwarded":false,"x":1}`), ReasonInvalidPayload, schemas.Assignment{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := DecodeAssignment([]byte(tt.key), tt.value, kr)
			if tt.reason == "" {
				if err != nil {
					t.Fatal(err)
				}
				gb, _ := json.Marshal(m.Assignment)
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
	if _, err := AssignmentRecord(policy, schemas.Assignment{PublishSeq: 1}); err == nil {
		t.Error("signed an assignment without a resource")
	}
}
