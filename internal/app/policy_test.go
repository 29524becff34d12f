package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse/chdb"
	"github.com/auditpipe/auditpipe/collector"
	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/internal/testenv"
	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/policy/auditreport"
	"github.com/auditpipe/auditpipe/policy/client"
)

// Identities of the policy tests.
var (
	policyAdmin = auth.Identity{Name: "admin", Role: auth.RoleAdmin}
	approver    = auth.Identity{Name: "bob", Role: auth.RoleApprover, Groups: []string{"EXPLICIT_APPROVED_POLICY_USERS"}}
	operatorID  = auth.Identity{Name: "oracle-op-1", Role: auth.RoleOperator}
)

// runningCollector is the collector a started App runs.
func runningCollector(t *testing.T, a *App) *collector.Collector {
	t.Helper()
	for _, s := range a.running {
		if c, ok := s.svc.(collectorService); ok {
			return c.Collector
		}
	}
	t.Fatal("no collector running")
	return nil
}

// cellResource creates, through svc, a compartment, an Exadata resource
// with one cell host and a control pre-approving INFRA_DIAG assigned to
// it for good; it returns the resource's id.
func cellResource(t *testing.T, svc *policy.Service, host string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := svc.CreateCompartment(ctx, policyAdmin, policy.CompartmentInput{ID: "tenancy", Name: "tenancy"}); err != nil {
		t.Fatal(err)
	}
	res, err := svc.CreateResource(ctx, policyAdmin, policy.ResourceInput{ID: "exa-" + host, Name: host, ResourceType: policy.ResourceExadataInfra,
		CompartmentID: "tenancy", Hosts: []policy.Host{{Name: host, Layer: "CELL"}}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := svc.CreateControl(ctx, policyAdmin, policy.ControlInput{OperatorControlName: "system_diag", CompartmentID: "tenancy",
		ResourceType: policy.ResourceExadataInfra, PreApprovedOpActions: []string{"INFRA_DIAG"}, ApproverGroupsList: approver.Groups})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateAssignment(ctx, policyAdmin, policy.AssignmentInput{OperatorControlID: c.ID, ResourceID: res.ID,
		AssignmentWindow: policy.AssignmentWindow{IsEnforcedAlways: true}}); err != nil {
		t.Fatal(err)
	}
	return res.ID
}

func diagRequest(t *testing.T, svc *policy.Service, resource string) policy.AccessRequest {
	t.Helper()
	r, err := svc.CreateRequest(context.Background(), operatorID, policy.RequestInput{ResourceID: resource, ActionRequests: []string{"INFRA_DIAG"},
		Reason: "disk latency", Severity: policy.SeverityS3, DurationHours: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.LifecycleState != policy.StatePreApproved || r.UserID == "" {
		t.Fatalf("request %s is %s (login %q), want PREAPPROVED with a grant", r.ID, r.LifecycleState, r.UserID)
	}
	return r
}

// until polls cond every millisecond until it holds and returns when it
// first did; it fails the test after d.
func until(t *testing.T, what string, d time.Duration, cond func() bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(time.Millisecond)
	}
}

// summary is "min … median … max" of ds.
func summary(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("min %v, median %v, max %v (%d runs)", s[0].Round(time.Millisecond), s[len(s)/2].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond), len(s))
}

// TestRevocationAndExpiryReachCollector runs the real modules (policy on
// SQLite, the embedded broker, a collector following grants) and
// measures how long a revocation made through the service, and an
// expiry made by the policy's Tick, take to reach the collector's grant
// table. The issue asks for 2 s; the bound asserted is generous (10 s:
// the machine is shared), the figures are logged for the README.
func TestRevocationAndExpiryReachCollector(t *testing.T) {
	dir := t.TempDir()
	cfg := sampleConfig(dir, filepath.Join(dir, "audit.log"))
	cfg.Collector.Grants = nil
	appendTo(t, cfg.Collector.Input.Path, "")
	a, stop := startWith(t, cfg, "server", "broker", "policy", "collector")
	defer stop()
	svc := a.shared.policy
	table := runningCollector(t, a).Grants()
	resource := cellResource(t, svc, "cell01")
	const runs = 5
	const bound = 10 * time.Second

	var revocations []time.Duration
	for range runs {
		r := diagRequest(t, svc, resource)
		until(t, "the grant reaches the collector", bound, func() bool { _, ok := table.Lookup(r.UserID); return ok })
		began := time.Now()
		if _, err := svc.Revoke(context.Background(), approver, r.ID, "done", 0); err != nil {
			t.Fatal(err)
		}
		revocations = append(revocations, until(t, "the revocation reaches the collector", bound, func() bool { return table.Revoked(r.UserID) }).Sub(began))
	}

	// Requests last at least an hour: a service on the same store whose
	// clock is an hour behind (minus a few seconds) makes ones that
	// expire a few seconds from now, expired by the module's Tick.
	key, err := sign.LoadPrivateKey(filepath.Join(cfg.Embedded.DataDir, GrantsKeyName))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := sign.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	var expiries []time.Duration
	for i := range runs {
		lead := 2*time.Second + time.Duration(i)*137*time.Millisecond // the tick falls anywhere in its second
		back, err := policy.NewService(svc.Store(), svc.Catalog(), signer, policy.Options{Now: func() time.Time { return time.Now().Add(lead - time.Hour) }})
		if err != nil {
			t.Fatal(err)
		}
		r := diagRequest(t, back, resource)
		until(t, "the grant reaches the collector", bound, func() bool { _, ok := table.Lookup(r.UserID); return ok })
		if table.Revoked(r.UserID) {
			t.Fatalf("%s revoked before it expired", r.UserID)
		}
		at := until(t, "the expiry reaches the collector", lead+bound, func() bool { return table.Revoked(r.UserID) })
		if at.Before(r.TimeOfExpiry) {
			t.Fatalf("revoked at %v, before its expiry %v", at, r.TimeOfExpiry)
		}
		expiries = append(expiries, at.Sub(r.TimeOfExpiry))
		got, err := svc.GetRequest(context.Background(), r.ID)
		if err != nil || got.LifecycleState != policy.StateExpired {
			t.Fatalf("request %s: %v %v, want EXPIRED", r.ID, got.LifecycleState, err)
		}
	}
	t.Logf("revocation → collector: %s; expiry time → collector: %s (tick_interval %v)", summary(revocations), summary(expiries), cfg.Policy.TickInterval)
}

// TestAllInOnePolicySample is make run's story: the all-in-one with the
// bundled sample's seed (deploy/sample/policy.yaml) creates the control,
// its assignment and the first operator's auto-approved request, whose
// grant is the sample's login user; that operator's commands (not the
// keystrokes: the request audits commands only) are tied to the request
// in ClickHouse, the request's lifecycle events are there
// too, and a revocation reaches ClickHouse and the collector. The policy
// API is mounted on the all-in-one's mux: the request, its revocation,
// its history and its audit log report go through it, with the admin
// token. The second operator's static grant (collector.grants) keeps
// working beside it.
func TestAllInOnePolicySample(t *testing.T) {
	if _, err := chdb.FindLibrary(""); err != nil {
		testenv.SkipOrFail(t, testenv.CHDB, "needs libchdb.so (run 'make deps'): %v", err)
	}
	dir := t.TempDir()
	log := filepath.Join(dir, "audit.log")
	cfg := sampleConfig(dir, log)
	cfg.Collector.Grants = map[string]string{"5f1c0e9d2a7b4c3e8d6f0a1b2c3d4e5f": "req2"}
	cfg.Collector.FlushInterval = 300 * time.Millisecond
	cfg.Collector.Host = "cell01.example.com"
	cfg.Policy.SeedFile = "../../deploy/sample/policy.yaml"
	first, second := sampleHalves(t)
	appendTo(t, log, first+second)
	r := start(t, cfg)
	svc := r.app.shared.policy
	const login = "830916abb78e4157b9e45b641e34fcf6"
	g, err := svc.GetGrant(context.Background(), login)
	if err != nil {
		t.Fatalf("the seed's grant: %v", err)
	}
	// 17 of the sample's 18: the auto-approved request audits commands
	// (COMMAND_AUDIT, OCI's default; an approver may ask for keystrokes),
	// so the first operator's keystroke event is not emitted.
	waitCount(t, r, "SELECT count() FROM audit_events WHERE event != 'chain'", "17", 60*time.Second)
	if got := count(t, r, "SELECT count(), uniqExact(req_auth_id), countIf(event = 'keys') FROM audit_events WHERE loginid = '"+login+"' AND event != 'chain'"); got != "12 1 0" {
		t.Errorf("the seeded operator's events, requests, keystroke events: %s, want 12 on one request, no keystrokes", got)
	}
	if got := count(t, r, "SELECT any(req_auth_id) FROM audit_events WHERE loginid = '"+login+"'"); got != g.RequestID {
		t.Errorf("the seeded operator's events are tied to %q, want the seeded request %s", got, g.RequestID)
	}
	if got := count(t, r, "SELECT count() FROM audit_events WHERE req_auth_id = 'req2' AND event = 'command'"); got != "4" {
		t.Errorf("the static grant's commands: %s, want 4", got)
	}
	lifecycle := "SELECT arrayStringConcat(groupArray(kind), ' ') FROM (SELECT kind FROM lifecycle_events WHERE object_id = '" + g.RequestID + "' ORDER BY kafka_offset)"
	waitCount(t, r, lifecycle, "access_request.created access_request.auto_approved", 30*time.Second)

	pc := &client.Client{BaseURL: strings.TrimSuffix(r.url, "/"), Token: r.token}
	ctx := context.Background()
	if got, err := pc.GetRequest(ctx, g.RequestID); err != nil || got.LifecycleState != policy.StatePreApproved || got.UserID != login {
		t.Fatalf("the seeded request over the API: %+v %v", got, err)
	}
	req, _ := http.NewRequest(http.MethodGet, pc.BaseURL+"/v1/accessRequests/"+g.RequestID+"/auditLogReport", nil)
	req.Header.Set("Authorization", "Bearer "+r.token.Reveal())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var report auditreport.Report
	err = json.NewDecoder(resp.Body).Decode(&report)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || report.Status != auditreport.StatusAvailable {
		t.Fatalf("the audit log report over the API: %d %+v %v", resp.StatusCode, report.Status, err)
	}
	if _, err := pc.Revoke(ctx, g.RequestID, 0, "work done"); err != nil {
		t.Fatal(err)
	}
	waitCount(t, r, lifecycle, "access_request.created access_request.auto_approved access_request.revoked", 30*time.Second)
	table := runningCollector(t, r.app).Grants()
	until(t, "the revocation reaches the collector", 30*time.Second, func() bool { return table.Revoked(login) })
	h, err := pc.History(ctx, g.RequestID)
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, e := range h {
		steps = append(steps, e.Action+"→"+e.To)
	}
	if got := strings.Join(steps, " "); got != "create→CREATED auto_approve→PREAPPROVED revoke→REVOKED" {
		t.Errorf("history %s", got)
	}
}

// TestPolicyFollowsTheAgent: the policy module and a host agent (not
// live: it renders under agent.root) on one broker. The agent applies
// the grant of an auto-approved request for its host and reports it on
// opctl.agent.v1: the request is DEPLOYED; revoked, the agent removes
// it and reports UNDEPLOYED, recorded in the request's history.
func TestPolicyFollowsTheAgent(t *testing.T) {
	dir := t.TempDir()
	cfg := sampleConfig(dir, filepath.Join(dir, "audit.log"))
	cfg.Agent.Host = "cell01"
	cfg.Agent.Root = filepath.Join(dir, "plan")
	// The all-in-one's key, which the policy module creates at start
	// before the agent is built.
	cfg.Agent.GrantKeys = []string{filepath.Join(cfg.Embedded.DataDir, GrantsPublicKeyName)}
	a, stop := startWith(t, cfg, "server", "broker", "policy", "agent")
	defer stop()
	// The all-in-one made its agent's key (0600) and enrolled it for the
	// agent's host (0600 like every file under --data: the all-in-one
	// reads it as the user that wrote it), with no manual step: its
	// reports are accepted below.
	for f, want := range map[string]os.FileMode{filepath.Join(cfg.Embedded.DataDir, AgentKeyName): 0o600, filepath.Join(cfg.Embedded.DataDir, HostKeysDirName, "cell01.pub"): 0o600} {
		if st, err := os.Stat(f); err != nil || st.Mode().Perm() != want {
			t.Fatalf("%s: %v, %v; want a %v file", f, st, err, want)
		}
	}
	svc := a.shared.policy
	resource := cellResource(t, svc, "cell01")
	r := diagRequest(t, svc, resource)
	ctx := context.Background()
	state := func() policy.RequestState {
		got, err := svc.GetRequest(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.LifecycleState
	}
	until(t, "the agent's DEPLOYED report applied", 60*time.Second, func() bool { return state() == policy.StateDeployed })
	if _, err := svc.Revoke(ctx, approver, r.ID, "done", 0); err != nil {
		t.Fatal(err)
	}
	until(t, "the agent's UNDEPLOYED report recorded", 60*time.Second, func() bool {
		h, err := svc.History(ctx, policy.ObjectAccessRequest, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		last := h[len(h)-1]
		return last.Action == string(policy.ActReportUndeployed) && last.Actor == "agent@cell01"
	})
	if s := state(); s != policy.StateRevoked {
		t.Errorf("after the revocation and the agent's report: %s, want REVOKED", s)
	}
}
