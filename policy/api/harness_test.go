package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/policy/scheduler"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The identities of the tests: one per role, and the "other" ones that
// the per-object rules keep out (an approver of another group, another
// operator, the agent of another host). Agents are named after their
// host.
var (
	idAdmin     = auth.Identity{Name: "admin", Role: auth.RoleAdmin}
	idAuditor   = auth.Identity{Name: "auditor", Role: auth.RoleAuditor}
	idApprover  = auth.Identity{Name: "alice", Role: auth.RoleApprover, Groups: []string{"EXPLICIT_APPROVED_POLICY_USERS"}}
	idApprover2 = auth.Identity{Name: "carol", Role: auth.RoleApprover, Groups: []string{"EXPLICIT_APPROVED_POLICY_USERS"}}
	idStranger  = auth.Identity{Name: "mallory", Role: auth.RoleApprover, Groups: []string{"OTHER_GROUP"}}
	idOperator  = auth.Identity{Name: "oracle-op-1", Role: auth.RoleOperator}
	idOperator2 = auth.Identity{Name: "oracle-op-2", Role: auth.RoleOperator}
	idCollector = auth.Identity{Name: "collector-1", Role: auth.RoleCollector}
	idAgent     = auth.Identity{Name: "exa1-cps01", Role: auth.RoleAgent}
	idAgent2    = auth.Identity{Name: "exa1-cel01", Role: auth.RoleAgent}
	idIndexer   = auth.Identity{Name: "indexer-1", Role: auth.RoleIndexer}
	idForwarder = auth.Identity{Name: "forwarder-1", Role: auth.RoleForwarder}
	idScheduler = auth.Identity{Name: "scheduler-1", Role: auth.RoleScheduler}
	idMetrics   = auth.Identity{Name: "prometheus", Role: auth.RoleMetrics}
	// idNone sends no credential.
	idNone = auth.Identity{}
)

var allIdentities = []auth.Identity{idAdmin, idAuditor, idApprover, idApprover2, idStranger, idOperator, idOperator2, idCollector,
	idAgent, idAgent2, idIndexer, idForwarder, idScheduler, idMetrics}

// server is the API over a real SQLite store, behind the real
// authentication, as the process mounts it, with a client whose every
// request and response is checked against policy/openapi.yaml.
type server struct {
	t      testing.TB
	ctx    context.Context
	svc    *policy.Service
	api    *API
	reg    *prometheus.Registry
	srv    *httptest.Server
	tokens map[string]string // identity name → token
	doc    *openapi3.T
	router routers.Router
	client *http.Client
	seq    atomic.Int64
}

// loadDocument reads and validates policy/openapi.yaml.
func loadDocument(t testing.TB) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(filepath.Join("..", "openapi.yaml"))
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.yaml does not validate: %v", err)
	}
	return doc
}

type serverOptions struct {
	report http.Handler
	// noScheduler serves the API without the scheduler (target policy).
	noScheduler bool
}

func newServer(t testing.TB, o serverOptions) *server {
	t.Helper()
	ctx := context.Background()
	cfg := policy.DefaultStoreConfig()
	cfg.Path = filepath.Join(t.TempDir(), "policy.db")
	st, err := policy.OpenStore(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cat, err := policy.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := sign.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := policy.NewService(st, cat, signer, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	sched, err := scheduler.New(svc, signer, scheduler.Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if o.noScheduler {
		sched = nil
	}
	a, err := New(svc, Options{Registry: reg, Report: o.report, Scheduler: sched})
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, ctx: ctx, svc: svc, api: a, reg: reg, tokens: map[string]string{}}
	var toks []auth.Token
	for _, id := range allIdentities {
		tok, entry, err := auth.NewToken(id.Name, id.Role)
		if err != nil {
			t.Fatal(err)
		}
		entry.Groups = id.Groups
		toks = append(toks, entry)
		s.tokens[id.Name] = tok
	}
	authn, err := auth.New(toks, nil)
	if err != nil {
		t.Fatal(err)
	}
	// As the process mounts it: authenticated for every role, authorized
	// by the API.
	mux := http.NewServeMux()
	mux.Handle("/v1/", authn.Require(a, auth.Roles()...))
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	s.doc = loadDocument(t)
	s.doc.Servers = nil // match paths on the test server's address
	if s.router, err = legacy.NewRouter(s.doc); err != nil {
		t.Fatal(err)
	}
	s.client = &http.Client{Transport: &contractTransport{s: s, next: http.DefaultTransport}}
	return s
}

// contractTransport validates every request and response against the
// document: every API test is a contract test.
type contractTransport struct {
	s    *server
	next http.RoundTripper
}

// Request-scoped switches of the contract check, as headers the
// transport removes before sending.
const (
	// hdrInvalid marks a request the test makes invalid on purpose (the
	// document may or may not tell: kin-openapi takes unknown query
	// parameters, and the first of two JSON values): its response is
	// still checked.
	hdrInvalid = "X-Test-Invalid-Request"
	// hdrUndocumented marks a request to a path or method the document
	// does not have (the 404 and 405 tests).
	hdrUndocumented = "X-Test-Undocumented"
)

func (c *contractTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t := c.s.t
	invalid, undocumented := req.Header.Get(hdrInvalid) != "", req.Header.Get(hdrUndocumented) != ""
	req.Header.Del(hdrInvalid)
	req.Header.Del(hdrUndocumented)
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		body = b
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	route, params, err := c.s.router.FindRoute(req)
	if err != nil {
		if !undocumented {
			t.Errorf("contract: %s %s is not in openapi.yaml: %v", req.Method, req.URL.Path, err)
		}
		return c.next.RoundTrip(req)
	}
	if undocumented {
		t.Errorf("contract: %s %s is in openapi.yaml but the test says it is not", req.Method, req.URL.Path)
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true, MultiError: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	verr := openapi3filter.ValidateRequest(req.Context(), in)
	if verr != nil && !invalid {
		t.Errorf("contract: request %s %s %s does not match openapi.yaml: %s", req.Method, req.URL.Path, body, short(verr))
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	resp, err := c.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	rb, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	rin := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(rb)), Options: opts}
	if err := openapi3filter.ValidateResponse(req.Context(), rin); err != nil {
		t.Errorf("contract: response %d to %s %s does not match openapi.yaml: %s\n%s", resp.StatusCode, req.Method, req.URL.Path, short(err), rb)
	}
	resp.Body = io.NopCloser(bytes.NewReader(rb))
	return resp, nil
}

// short is an error's first line: kin-openapi's errors go on with the
// whole schema.
func short(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// call is one request to the API.
type call struct {
	who    auth.Identity
	method string
	path   string
	body   any // marshalled as JSON; a string or []byte is sent as it is
	header map[string]string
}

// result is the answer to a call.
type result struct {
	status int
	header http.Header
	body   []byte
}

func (r result) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

func (r result) errCode(t testing.TB) string {
	t.Helper()
	var e Error
	r.decode(t, &e)
	return e.Code
}

func (s *server) do(c call) result {
	t := s.t
	t.Helper()
	var rd io.Reader
	switch b := c.body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(s.ctx, c.method, s.srv.URL+c.path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.who.Name != "" {
		req.Header.Set("Authorization", "Bearer "+s.tokens[c.who.Name])
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{status: resp.StatusCode, header: resp.Header, body: b}
}

// must calls and fails the test unless the status is want.
func (s *server) must(want int, c call) result {
	s.t.Helper()
	r := s.do(c)
	if r.status != want {
		s.t.Fatalf("%s %s as %s: status %d, want %d: %s", c.method, c.path, c.who.Name, r.status, want, r.body)
	}
	return r
}

func (s *server) next(prefix string) string { return fmt.Sprintf("%s-%d", prefix, s.seq.Add(1)) }

// The inventory every test starts from: the seed's example 1-1 on one
// Exadata infrastructure, a control that pre-approves INFRA_CPS_ONLY and
// needs one approval from EXPLICIT_APPROVED_POLICY_USERS for INFRA_DIAG
// and INFRA_UPDATE_RESTART, assigned always.
const (
	fxCompartment = "comp-root"
	fxResource    = "exa1"
)

type fixture struct {
	*server
	control string
}

func newFixture(t testing.TB, o serverOptions) *fixture {
	s := newServer(t, o)
	f := &fixture{server: s}
	s.must(200, call{who: idAdmin, method: "POST", path: "/v1/compartments", body: policy.CompartmentInput{ID: fxCompartment, Name: "root"}})
	f.resource(fxResource)
	var c policy.Control
	s.must(200, call{who: idAdmin, method: "POST", path: "/v1/operatorControls", body: f.controlInput("system_main")}).decode(t, &c)
	f.control = c.ID
	f.assign(c.ID, fxResource)
	return f
}

func (f *fixture) resource(id string) {
	f.must(200, call{who: idAdmin, method: "POST", path: "/v1/resources", body: policy.ResourceInput{ID: id, Name: id, ResourceType: policy.ResourceExadataInfra,
		CompartmentID: fxCompartment, Hosts: []policy.Host{{Name: "exa1-cps01", Layer: "CPS"}, {Name: "exa1-db01", Layer: "HOST"}, {Name: "exa1-cel01", Layer: "CELL"}}}})
}

func (f *fixture) controlInput(name string) policy.ControlInput {
	return policy.ControlInput{OperatorControlName: name, CompartmentID: fxCompartment, ResourceType: policy.ResourceExadataInfra,
		ApproverGroupsList: []string{"EXPLICIT_APPROVED_POLICY_USERS"}, PreApprovedOpActions: []string{"INFRA_CPS_ONLY"},
		ApprovalRequiredOpActions: []string{"INFRA_DIAG", "INFRA_UPDATE_RESTART"}}
}

func (f *fixture) assign(control, resource string) policy.Assignment {
	var a policy.Assignment
	f.must(200, call{who: idAdmin, method: "POST", path: "/v1/operatorControlAssignments",
		body: policy.AssignmentInput{OperatorControlID: control, ResourceID: resource, AssignmentWindow: policy.AssignmentWindow{IsEnforcedAlways: true}}}).decode(f.t, &a)
	return a
}

// request makes who's request for actions on the fixture's resource.
func (f *fixture) request(who auth.Identity, actions ...string) policy.AccessRequest {
	var r policy.AccessRequest
	f.must(200, call{who: who, method: "POST", path: "/v1/accessRequests", body: policy.RequestInput{ResourceID: fxResource, ActionRequests: actions,
		Reason: "SR 3-1234: disk failure", Severity: policy.SeverityS2, DurationHours: 4}}).decode(f.t, &r)
	return r
}

func (f *fixture) get(id string) policy.AccessRequest {
	var r policy.AccessRequest
	f.must(200, call{who: idAdmin, method: "GET", path: "/v1/accessRequests/" + id}).decode(f.t, &r)
	return r
}
