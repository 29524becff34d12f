package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/schemas"
)

// TestSeedSample applies the bundled sample's seed (deploy/sample/
// policy.yaml): the control is assigned, the request auto-approved with
// its grant on the pinned login; a second application creates nothing
// and finds the same request, also after it was revoked.
func TestSeedSample(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b)
			seed, err := LoadSeed("../deploy/sample/policy.yaml")
			if err != nil {
				t.Fatal(err)
			}
			res, err := ApplySeed(f.ctx, f.svc, seed)
			if err != nil {
				t.Fatal(err)
			}
			if res.Created != 5 || len(res.Requests) != 1 {
				t.Fatalf("created %d objects, requests %d; want 5 and 1", res.Created, len(res.Requests))
			}
			r := res.Requests[0]
			const login = "830916abb78e4157b9e45b641e34fcf6"
			if r.LifecycleState != StatePreApproved || r.UserID != login || !r.IsAutoApproved {
				t.Fatalf("request %s: %s, login %s, auto %v; want PREAPPROVED on %s", r.ID, r.LifecycleState, r.UserID, r.IsAutoApproved, login)
			}
			g := must[Grant](t)(f.svc.GetGrant(f.ctx, login))
			if g.RequestID != r.ID || strings.Join(g.Hosts, ",") != "cell01.example.com" {
				t.Errorf("grant %+v", g)
			}
			c, _, err := f.svc.ControlInForce(f.ctx, "ocid1.exadatainfrastructure.oc1..cell01", f.clock.Now())
			if err != nil {
				t.Fatal(err)
			}
			if c.OperatorControlName != "system_diag" || c.LifecycleState != ControlAssigned {
				t.Errorf("control in force: %s %s", c.OperatorControlName, c.LifecycleState)
			}
			must[AccessRequest](t)(f.svc.Revoke(f.ctx, explicit, r.ID, "done", 0))
			again, err := ApplySeed(f.ctx, f.svc, seed)
			if err != nil {
				t.Fatal(err)
			}
			if again.Created != 0 || len(again.Requests) != 1 || again.Requests[0].ID != r.ID || again.Requests[0].LifecycleState != StateRevoked {
				t.Fatalf("second application: created %d, requests %+v; want nothing created and the revoked request", again.Created, again.Requests)
			}
		})
	}
}

func TestSeedErrors(t *testing.T) {
	write := func(t *testing.T, text string) string {
		p := filepath.Join(t.TempDir(), "seed.yaml")
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tt := range []struct{ name, seed, err string }{
		{"unknown field", "compartments:\n  - id: c\n    name: c\n    colour: red\n", "compartments[0].colour: unknown field"},
		{"bad login", "requests:\n  - requester: op\n    login: OP1\n", `requests[0].login: "OP1" is not 32 lowercase hex digits`},
		{"compartment without id", "compartments:\n  - name: c\n", "compartments[0].id: required"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := LoadSeed(write(t, tt.seed)); err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
		})
	}
	f := newFixture(t, backends(t)[0])
	seed := Seed{
		Compartments: []SeedCompartment{{ID: "c", Name: "c"}},
		Resources:    []SeedResource{{ID: "r", Name: "r", ResourceType: ResourceExaCC, Compartment: "c", Hosts: []SeedHost{{Name: "h", Layer: "CELL"}}}},
		Controls:     []SeedControl{{Name: "strict", Compartment: "c", ResourceType: ResourceExaCC, ApproverGroups: []string{"G"}, ApprovalRequiredAction: []string{"INFRA_DIAG"}}},
		Assignments:  []SeedAssignment{{Control: "strict", Resource: "r"}},
		Requests:     []SeedRequest{{Requester: "op", Resource: "r", Actions: []string{"INFRA_DIAG"}, Reason: "x", Severity: SeverityS3, DurationHours: 1, Login: strings.Repeat("ab", 16)}},
	}
	if _, err := ApplySeed(f.ctx, f.svc, seed); err == nil || !strings.Contains(err.Error(), "requests[0]: login: operator control strict does not pre-approve") {
		t.Errorf("a pinned login on a request waiting for approval: %v", err)
	}
	if rs, _, err := f.svc.ListRequests(f.ctx, RequestFilter{}); err != nil || len(rs) != 0 {
		t.Errorf("requests after the refused seed: %d %v, want none created", len(rs), err)
	}
	seed.Assignments[0].Control = "nope"
	if _, err := ApplySeed(f.ctx, f.svc, seed); err == nil || !strings.Contains(err.Error(), `assignments[0]: control: "nope" is not a control of the seed`) {
		t.Errorf("an unknown control: %v", err)
	}
}

// TestSeedKeysAndAuditType: a seeded request carries the operator's SSH
// keys and the keystroke audit it asks for into its grant.
func TestSeedKeysAndAuditType(t *testing.T) {
	f := newFixture(t, backends(t)[0])
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHNlZWQ op@laptop"
	p := filepath.Join(t.TempDir(), "seed.yaml")
	if err := os.WriteFile(p, []byte(`compartments: [{id: c, name: c}]
resources: [{id: r, name: r, resource_type: EXACC, compartment: c, hosts: [{name: h, layer: CELL}]}]
controls: [{name: diag, compartment: c, resource_type: EXACC, approver_groups: [G], pre_approved_actions: [INFRA_DIAG]}]
assignments: [{control: diag, resource: r}]
requests:
  - {requester: op, resource: r, actions: [INFRA_DIAG], reason: x, severity: S3, duration_hours: 1,
     audit_type: COMMAND_KEYSTROKE_AUDIT, ssh_public_keys: ["`+key+`"]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	seed, err := LoadSeed(p)
	if err != nil {
		t.Fatal(err)
	}
	res, err := ApplySeed(f.ctx, f.svc, seed)
	if err != nil || len(res.Requests) != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	g := must[Grant](t)(f.svc.GetGrant(f.ctx, res.Requests[0].UserID))
	if g.AuditType != schemas.AuditCommandKeystroke || len(g.SSHAuthorizedKeys) != 1 || g.SSHAuthorizedKeys[0] != key {
		t.Errorf("grant %s", jsonOf(g))
	}
}
