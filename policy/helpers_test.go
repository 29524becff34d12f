package policy

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/pgtest"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// backend opens a fresh, empty store of one engine.
type backend struct {
	name string
	open func(t testing.TB) StoreConfig
}

// backends are the engines every store test runs on: SQLite, and a real
// PostgreSQL (internal/pgtest: a fresh database per test on a cluster of
// the test binary; skipped, or failed under AUDITPIPE_REQUIRE, where
// PostgreSQL is missing).
func backends(t testing.TB) []backend {
	t.Helper()
	return []backend{
		{name: DriverSQLite, open: func(t testing.TB) StoreConfig {
			c := DefaultStoreConfig()
			c.Path = filepath.Join(t.TempDir(), "policy.db")
			return c
		}},
		{name: DriverPostgres, open: func(t testing.TB) StoreConfig {
			c := DefaultStoreConfig()
			c.Driver, c.DSN = DriverPostgres, config.Secret(pgtest.Start(t))
			return c
		}},
	}
}

// clock is a test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// fixture is a service on a fresh store.
type fixture struct {
	t      testing.TB
	ctx    context.Context
	svc    *Service
	store  *Store
	clock  *clock
	keys   *sign.Keyring
	signer *sign.Signer
	// cfg is the store's configuration (a second connection's).
	cfg StoreConfig
}

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func newFixture(t testing.TB, b backend) *fixture {
	t.Helper()
	ctx := context.Background()
	cfg := b.open(t)
	st, err := OpenStore(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cat, err := DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := sign.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: t0}
	svc, err := NewService(st, cat, signer, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, ctx: ctx, svc: svc, store: st, clock: clk, keys: sign.NewKeyring(signer.PublicKey()), signer: signer, cfg: cfg}
}

// identities of the tests.
var (
	admin     = auth.Identity{Name: "admin", Role: auth.RoleAdmin}
	operator  = auth.Identity{Name: "oracle-op-1", Role: auth.RoleOperator}
	operator2 = auth.Identity{Name: "oracle-op-2", Role: auth.RoleOperator}
	preAppr   = auth.Identity{Name: "alice", Role: auth.RoleApprover, Groups: []string{"PRE_APPROVED_POLICY_USERS"}}
	explicit  = auth.Identity{Name: "bob", Role: auth.RoleApprover, Groups: []string{"EXPLICIT_APPROVED_POLICY_USERS"}}
	explicit2 = auth.Identity{Name: "carol", Role: auth.RoleApprover, Groups: []string{"EXPLICIT_APPROVED_POLICY_USERS"}}
	stranger  = auth.Identity{Name: "mallory", Role: auth.RoleApprover, Groups: []string{"OTHER"}}
	agentID   = auth.Identity{Name: "agent01", Role: auth.RoleAgent}
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

// exaHosts are an Exadata infrastructure's hosts on three layers.
func exaHosts(prefix string) []Host {
	return []Host{{Name: prefix + "-cps01", Layer: "CPS"}, {Name: prefix + "-db01", Layer: "HOST"}, {Name: prefix + "-cel01", Layer: "CELL"}}
}

// resource creates a compartment (once) and an EXACC resource in it.
func (f *fixture) resource(id string) Resource {
	f.t.Helper()
	if _, err := f.svc.GetCompartment(f.ctx, "tenancy"); err != nil {
		must[Compartment](f.t)(f.svc.CreateCompartment(f.ctx, admin, CompartmentInput{ID: "tenancy", Name: "tenancy"}))
	}
	return must[Resource](f.t)(f.svc.CreateResource(f.ctx, admin, ResourceInput{ID: id, Name: id, ResourceType: ResourceExaCC, CompartmentID: "tenancy", Hosts: exaHosts(id)}))
}

// control creates a control and assigns it to resource, always.
func (f *fixture) control(resource string, in ControlInput) Control {
	f.t.Helper()
	if in.CompartmentID == "" {
		in.CompartmentID = "tenancy"
	}
	if in.ResourceType == "" {
		in.ResourceType = ResourceExaCC
	}
	c := must[Control](f.t)(f.svc.CreateControl(f.ctx, admin, in))
	if resource != "" {
		must[Assignment](f.t)(f.svc.CreateAssignment(f.ctx, admin, AssignmentInput{OperatorControlID: c.ID, ResourceID: resource, AssignmentWindow: AssignmentWindow{IsEnforcedAlways: true}}))
	}
	return c
}

func (f *fixture) request(who auth.Identity, resource string, hours int, actions ...string) AccessRequest {
	f.t.Helper()
	return must[AccessRequest](f.t)(f.svc.CreateRequest(f.ctx, who, RequestInput{ResourceID: resource, ActionRequests: actions, Reason: "maintenance", Severity: SeverityS3, DurationHours: hours}))
}

// published is the outbox decoded: lifecycle events, verified grants and
// assignments, in outbox order.
type published struct {
	lifecycle   []schemas.Lifecycle
	grants      []grants.Message
	assignments []grants.AssignmentMessage
	last        int64
}

// outbox reads the records written since p.last (all when p is nil),
// verifying every signed one with the fixture's keyring.
func (f *fixture) outbox(p *published) *published {
	f.t.Helper()
	if p == nil {
		p = &published{}
	}
	out := &published{last: p.last}
	recs, err := f.store.Outbox(f.ctx, p.last, 10000)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, r := range recs {
		out.last = r.ID
		switch r.Topic {
		case schemas.TopicLifecycle:
			l, err := schemas.DecodeLifecycle(r.Value)
			if err != nil {
				f.t.Fatalf("outbox %d: %v", r.ID, err)
			}
			if string(r.Key) != l.Key() {
				f.t.Fatalf("outbox %d: key %q, event's %q", r.ID, r.Key, l.Key())
			}
			out.lifecycle = append(out.lifecycle, l)
		case schemas.TopicGrants:
			m, err := grants.Decode(r.Key, r.Value, f.keys)
			if err != nil {
				f.t.Fatalf("outbox %d: %v", r.ID, err)
			}
			out.grants = append(out.grants, m)
		case schemas.TopicAssignments:
			m, err := grants.DecodeAssignment(r.Key, r.Value, f.keys)
			if err != nil {
				f.t.Fatalf("outbox %d: %v", r.ID, err)
			}
			out.assignments = append(out.assignments, m)
		default:
			f.t.Fatalf("outbox %d: topic %s", r.ID, r.Topic)
		}
	}
	return out
}

// kinds returns the kinds of the lifecycle events about object id.
func (p *published) kinds(id string) []string {
	var out []string
	for _, l := range p.lifecycle {
		if l.ObjectID == id {
			out = append(out, l.Kind)
		}
	}
	return out
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// storeDSN returns the DSN the fixture's PostgreSQL store was opened
// with (a second process's connection).
func storeDSN(t testing.TB, f *fixture) config.Secret {
	t.Helper()
	return f.cfg.DSN
}
