package client_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/policy/api"
	"github.com/auditpipe/auditpipe/policy/client"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start runs the real API on a fresh SQLite store behind the real
// authentication and returns a client per identity.
func start(t *testing.T, ids ...auth.Identity) map[string]*client.Client {
	t.Helper()
	cfg := policy.DefaultStoreConfig()
	cfg.Path = filepath.Join(t.TempDir(), "policy.db")
	st, err := policy.OpenStore(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cat, err := policy.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := sign.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := policy.NewService(st, cat, signer, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(svc, api.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var toks []auth.Token
	tokens := map[string]string{}
	for _, id := range ids {
		tok, e, err := auth.NewToken(id.Name, id.Role)
		if err != nil {
			t.Fatal(err)
		}
		e.Groups = id.Groups
		toks = append(toks, e)
		tokens[id.Name] = tok
	}
	authn, err := auth.New(toks, nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", authn.Require(h, auth.Roles()...))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	out := map[string]*client.Client{"": {BaseURL: srv.URL}}
	for name, tok := range tokens {
		out[name] = &client.Client{BaseURL: srv.URL, Token: config.Secret(tok)}
	}
	return out
}

// TestClient: the operations the CLI does not use (catalog, grants,
// deployment reports, assignment updates), pages with All, and the two
// kinds of error answer (the API's JSON, the authentication's text).
func TestClient(t *testing.T) {
	ctx := context.Background()
	c := start(t, auth.Identity{Name: "admin", Role: auth.RoleAdmin}, auth.Identity{Name: "exa1-cps01", Role: auth.RoleAgent},
		auth.Identity{Name: "op", Role: auth.RoleOperator})
	admin, agent, op := c["admin"], c["exa1-cps01"], c["op"]
	acts, err := op.Actions(ctx, policy.ResourceExadataInfra)
	if err != nil || len(acts) == 0 {
		t.Fatalf("actions: %d, %v", len(acts), err)
	}
	if a, err := op.Action(ctx, "INFRA_UPDATE_RESTART"); err != nil || a.Inherits != "INFRA_DIAG" {
		t.Fatalf("action: %+v, %v", a, err)
	}
	if _, err := admin.CreateCompartment(ctx, policy.CompartmentInput{ID: "root", Name: "root"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"exa1", "exa2", "exa3"} {
		if _, err := admin.CreateResource(ctx, policy.ResourceInput{ID: id, Name: id, ResourceType: policy.ResourceExadataInfra, CompartmentID: "root",
			Hosts: []policy.Host{{Name: id + "-cps01", Layer: "CPS"}}}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := client.All(ctx, client.ListOptions{Limit: 2}, admin.ListResources)
	if err != nil || len(all) != 3 || all[0].ID != "exa3" {
		t.Fatalf("All: %d resources, %v", len(all), err)
	}
	ctl, err := admin.CreateControl(ctx, policy.ControlInput{OperatorControlName: "c", CompartmentID: "root", ResourceType: policy.ResourceExadataInfra,
		PreApprovedOpActions: []string{"INFRA_CPS_ONLY"}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := admin.CreateAssignment(ctx, policy.AssignmentInput{OperatorControlID: ctl.ID, ResourceID: "exa1", AssignmentWindow: policy.AssignmentWindow{IsEnforcedAlways: true}})
	if err != nil {
		t.Fatal(err)
	}
	comment := "always, said the change board"
	if a, err = admin.UpdateAssignment(ctx, a.ID, a.Version, policy.AssignmentUpdate{AssignmentWindow: policy.AssignmentWindow{IsEnforcedAlways: true}, Comment: &comment}); err != nil || a.Comment != comment {
		t.Fatalf("update assignment: %+v, %v", a, err)
	}
	r, err := op.CreateRequest(ctx, policy.RequestInput{ResourceID: "exa1", ActionRequests: []string{"INFRA_CPS_ONLY"}, Reason: "SR", Severity: "S3", DurationHours: 1})
	if err != nil || r.LifecycleState != policy.StatePreApproved {
		t.Fatalf("request: %+v, %v", r, err)
	}
	g, err := agent.Grant(ctx, r.UserID)
	if err != nil || g.RequestID != r.ID {
		t.Fatalf("grant: %+v, %v", g, err)
	}
	if r, err = agent.ReportDeployment(ctx, g.LoginID, api.ReportDetails{Host: "exa1-cps01", State: policy.StateDeployed}); err != nil || r.LifecycleState != policy.StateDeployed {
		t.Fatalf("report: %+v, %v", r, err)
	}

	var e *client.Error
	_, err = op.GetControl(ctx, ctl.ID)
	if !errors.As(err, &e) || e.Status != 403 || e.Code != api.CodeNotAuthorized || e.RequestID == "" {
		t.Errorf("operator reading a control: %#v", err)
	}
	_, err = admin.UpdateResource(ctx, "exa2", 9, policy.ResourceUpdate{})
	if !client.IsStatus(err, http.StatusPreconditionFailed) {
		t.Errorf("stale if-match: %v", err)
	}
	_, err = c[""].ListRequests(ctx, client.ListOptions{})
	if !errors.As(err, &e) || e.Status != 401 || e.Message == "" {
		t.Errorf("no token: %#v", err)
	}
}
