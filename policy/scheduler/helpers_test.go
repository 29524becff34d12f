package scheduler

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/pgtest"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/schemas"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// backend opens a fresh, empty policy store of one engine.
type backend struct {
	name string
	open func(t testing.TB) policy.StoreConfig
}

// backends are the engines every store test runs on, as in package
// policy: SQLite, and a real PostgreSQL from internal/pgtest (skipped, or
// failed under AUDITPIPE_REQUIRE, where PostgreSQL is missing).
func backends() []backend {
	return []backend{
		{name: policy.DriverSQLite, open: func(t testing.TB) policy.StoreConfig {
			c := policy.DefaultStoreConfig()
			c.Path = filepath.Join(t.TempDir(), "policy.db")
			return c
		}},
		{name: policy.DriverPostgres, open: func(t testing.TB) policy.StoreConfig {
			c := policy.DefaultStoreConfig()
			c.Driver, c.DSN = policy.DriverPostgres, config.Secret(pgtest.Start(t))
			return c
		}},
	}
}

// clock is a test clock shared by the policy service and the scheduler.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *clock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// fixture is a policy service and a scheduler over one fresh store.
type fixture struct {
	t     testing.TB
	ctx   context.Context
	cfg   policy.StoreConfig
	pol   *policy.Service
	svc   *Service
	store *policy.Store
	clock *clock
	keys  *sign.Keyring
	reg   *prometheus.Registry
	// last is the outbox id read up to by dispatches.
	last int64
}

// t0 is a Monday.
var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func testSigner(t testing.TB) *sign.Signer {
	s, err := sign.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newFixture(t testing.TB, b backend) *fixture {
	t.Helper()
	cfg := b.open(t)
	f := &fixture{t: t, ctx: context.Background(), cfg: cfg, clock: &clock{t: t0}}
	f.pol, f.svc, f.store, f.reg = f.open()
	f.keys = sign.NewKeyring(testSigner(t).PublicKey())
	must[policy.Compartment](t)(f.pol.CreateCompartment(f.ctx, admin, policy.CompartmentInput{ID: "tenancy", Name: "tenancy"}))
	return f
}

// open opens another connection to the fixture's store with its own
// policy service and scheduler (a second process).
func (f *fixture) open() (*policy.Service, *Service, *policy.Store, *prometheus.Registry) {
	f.t.Helper()
	st, err := policy.OpenStore(f.ctx, f.cfg, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { st.Close() })
	cat, err := policy.DefaultCatalog()
	if err != nil {
		f.t.Fatal(err)
	}
	signer := testSigner(f.t)
	pol, err := policy.NewService(st, cat, signer, policy.Options{Now: f.clock.Now})
	if err != nil {
		f.t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	svc, err := New(pol, signer, Options{Now: f.clock.Now, Registerer: reg})
	if err != nil {
		f.t.Fatal(err)
	}
	return pol, svc, st, reg
}

// identities of the tests.
var (
	admin    = auth.Identity{Name: "admin", Role: auth.RoleAdmin}
	approver = auth.Identity{Name: "bob", Role: auth.RoleApprover, Groups: []string{"PATCH_APPROVERS"}}
	agentID  = auth.Identity{Name: "agents", Role: auth.RoleAgent}
)

func must[T any](t testing.TB) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// instances creates ungoverned instances with the given hosts (id =
// host).
func (f *fixture) instances(hosts ...string) []string {
	f.t.Helper()
	for _, h := range hosts {
		must[Instance](f.t)(f.svc.CreateInstance(f.ctx, admin, InstanceInput{ID: h, DisplayName: h, Host: h, CompartmentID: "tenancy"}))
	}
	return hosts
}

// job creates a job with defaults filled: a one-time UPDATEALL SECURITY
// run a minute from now on instances.
func (f *fixture) job(in JobInput) Job {
	f.t.Helper()
	if in.DisplayName == "" {
		in.DisplayName = "security updates"
	}
	if in.CompartmentID == "" {
		in.CompartmentID = "tenancy"
	}
	if in.ScheduleType == "" {
		in.ScheduleType = OneTime
	}
	if in.TimeNextExecution.IsZero() {
		in.TimeNextExecution = f.clock.Now().Add(time.Minute)
	}
	if in.OperationType == "" {
		in.OperationType, in.UpdateType = schemas.OperationUpdateAll, schemas.UpdateSecurity
	}
	return must[Job](f.t)(f.svc.CreateJob(f.ctx, admin, in))
}

func (f *fixture) tick(at time.Time) TickResult {
	f.t.Helper()
	f.clock.Set(at)
	res, err := f.svc.Tick(f.ctx, at)
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

// dispatches returns the dispatch messages written since the last call,
// verified with the fixture's keyring and checked to be keyed by their
// instance.
func (f *fixture) dispatches() []schemas.Dispatch {
	f.t.Helper()
	recs, err := f.store.Outbox(f.ctx, f.last, 100000)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []schemas.Dispatch
	for _, r := range recs {
		f.last = r.ID
		if r.Topic != schemas.TopicDispatch {
			continue
		}
		m, err := grants.DecodeDispatch(r.Key, r.Value, f.keys)
		if err != nil {
			f.t.Fatalf("outbox %d: %v", r.ID, err)
		}
		out = append(out, m.Dispatch)
	}
	return out
}

// lifecycle returns the lifecycle events of the outbox about object id
// (all when empty).
func (f *fixture) lifecycle(id string) []schemas.Lifecycle {
	f.t.Helper()
	recs, err := f.store.Outbox(f.ctx, 0, 100000)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []schemas.Lifecycle
	for _, r := range recs {
		if r.Topic != schemas.TopicLifecycle {
			continue
		}
		l, err := schemas.DecodeLifecycle(r.Value)
		if err != nil {
			f.t.Fatalf("outbox %d: %v", r.ID, err)
		}
		if string(r.Key) != l.Key() {
			f.t.Fatalf("outbox %d: key %q, event's %q", r.ID, r.Key, l.Key())
		}
		if id == "" || l.ObjectID == id {
			out = append(out, l)
		}
	}
	return out
}

// report is an agent's report on a dispatched work request.
func (f *fixture) report(d schemas.Dispatch, seq int64, status string, percent int, msg string) WorkRequest {
	f.t.Helper()
	p := schemas.WorkProgress{WorkRequestID: d.WorkRequestID, Host: d.Host, Seq: seq, Status: status, PercentComplete: percent, Time: f.clock.Now()}
	if msg != "" {
		p.Logs = []schemas.LogLine{{Time: f.clock.Now(), Message: msg}}
	}
	if status == schemas.WorkFailed {
		p.Errors = []schemas.LogLine{{Time: f.clock.Now(), Code: "PACKAGE_SCRIPT_FAILED", Message: "post-installation script returned error exit status 1"}}
	}
	return must[WorkRequest](f.t)(f.svc.ReportProgress(f.ctx, agentID, p))
}

// work returns the work requests of an execution in dispatch order.
func (f *fixture) work(execID string) []WorkRequest {
	f.t.Helper()
	ws := must[[]WorkRequest](f.t)(func() ([]WorkRequest, error) {
		ws, _, err := f.svc.ListWorkRequests(f.ctx, WorkRequestFilter{ExecutionID: execID, Page: policy.Page{Limit: 1000}})
		return ws, err
	}())
	sortByPosition(ws)
	return ws
}

func statuses(ws []WorkRequest) map[string]Status {
	out := map[string]Status{}
	for _, w := range ws {
		out[w.Host] = w.Status
	}
	return out
}

var pageAll = policy.Page{Limit: 1000}
