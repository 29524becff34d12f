package leader

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/auditpipe/auditpipe/internal/pgtest"
)

// TestMain fails the package's tests when a goroutine outlives them: no
// goroutine of an elector may outlive its Run.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fast is a configuration for tests: a follower tries every 100 ms.
func fast() Config {
	c := DefaultConfig()
	c.PollInterval = 100 * time.Millisecond
	return c
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want []string // substrings of the error, none for valid
	}{
		{name: "defaults", edit: func(*Config) {}},
		{name: "zero poll", edit: func(c *Config) { c.PollInterval = 0 }, want: []string{"poll_interval: 0s: must be positive"}},
		{name: "negative ping", edit: func(c *Config) { c.PingTimeout = -time.Second }, want: []string{"ping_timeout: -1s: must be positive"}},
		{name: "session too short", edit: func(c *Config) { c.SessionTimeout = 2 * time.Second }, want: []string{"session_timeout: 2s: must be at least 3s"}},
		{name: "session within poll and ping", edit: func(c *Config) { c.PollInterval, c.PingTimeout = 5*time.Second, 5*time.Second },
			want: []string{"session_timeout: 10s: must exceed poll_interval + ping_timeout (10s)"}},
		{name: "every field", edit: func(c *Config) { *c = Config{} },
			want: []string{"poll_interval:", "ping_timeout:", "session_timeout:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.edit(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted %+v", c)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if _, err := NewPostgres("postgres://127.0.0.1:1/x", 1, c, Deps{}); err == nil {
				t.Error("NewPostgres accepted an invalid configuration")
			}
		})
	}
}

func TestSessionParams(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want map[string]string
	}{
		{10 * time.Second, map[string]string{"tcp_keepalives_idle": "5", "tcp_keepalives_interval": "1", "tcp_keepalives_count": "3", "tcp_user_timeout": "10000"}},
		{60 * time.Second, map[string]string{"tcp_keepalives_idle": "30", "tcp_keepalives_interval": "10", "tcp_keepalives_count": "3", "tcp_user_timeout": "60000"}},
		{3 * time.Second, map[string]string{"tcp_keepalives_idle": "1", "tcp_keepalives_interval": "1", "tcp_keepalives_count": "3", "tcp_user_timeout": "3000"}},
	}
	for _, tt := range tests {
		got := sessionParams(tt.d)
		if len(got) != len(tt.want) {
			t.Errorf("sessionParams(%s) = %v, want %v", tt.d, got, tt.want)
		}
		for k, v := range tt.want {
			if got[k] != v {
				t.Errorf("sessionParams(%s)[%s] = %q, want %q", tt.d, k, got[k], v)
			}
		}
	}
}

func TestKeyFor(t *testing.T) {
	if KeyFor("auditpipe.policy") != KeyFor("auditpipe.policy") {
		t.Fatal("KeyFor is not stable")
	}
	if KeyFor("auditpipe.policy") == KeyFor("auditpipe.scheduler") {
		t.Fatal("two names, one key")
	}
}

// TestSessionSettings: the lock's session is named in pg_stat_activity, and
// the server takes the keepalive settings the elector connects with.
func TestSessionSettings(t *testing.T) {
	dsn := pgtest.Start(t)
	e, err := NewPostgres(dsn, 7, fast(), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	admin := connect(t, dsn)
	leading := make(chan struct{})
	r := start(e, func(ctx context.Context) error {
		close(leading)
		<-ctx.Done()
		return nil
	})
	<-leading
	var app string
	if err := admin.QueryRow(context.Background(), "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())").Scan(&app); err != nil {
		t.Fatal(err)
	}
	if app != "auditpipe policy leader" {
		t.Errorf("the lock's session is named %q", app)
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}

	// A session opened as the elector opens its own: pg_settings shows
	// the values in their base units (seconds, and ms for the timeout).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, e.conn.Copy())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	for name, want := range map[string]string{"tcp_keepalives_idle": "5", "tcp_keepalives_interval": "1", "tcp_keepalives_count": "3", "tcp_user_timeout": "10000"} {
		var got string
		if err := c.QueryRow(ctx, "SELECT setting FROM pg_settings WHERE name = $1", name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %s on the lock's session, want %s", name, got, want)
		}
	}
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// holders returns the backends holding an advisory lock in dsn's database.
func holders(t *testing.T, admin *pgx.Conn) []uint32 {
	t.Helper()
	rows, err := admin.Query(context.Background(), "SELECT pid::int8 FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	out := make([]uint32, len(pids))
	for i, p := range pids {
		out[i] = uint32(p)
	}
	return out
}

// eventually polls cond every 10 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// run is an elector's Run in a goroutine.
type run struct {
	cancel context.CancelFunc
	errc   chan error
}

func start(e Elector, work func(ctx context.Context) error) *run {
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{cancel: cancel, errc: make(chan error, 1)}
	go func() { r.errc <- e.Run(ctx, work) }()
	return r
}

// stop cancels Run and returns its error.
func (r *run) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.errc:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return 30 s after its context ended")
		return nil
	}
}

// TestElectorContract runs the same behaviours on both electors: the work
// runs as the leader with the gauge at 1; Run returns nil when its context
// ends and the work stopped for it; when the work fails by itself Run
// returns its error, and the gauge is back at 0 with one transition each
// way.
func TestElectorContract(t *testing.T) {
	errBoom := errors.New("boom")
	electors := []struct {
		name string
		make func(t *testing.T, reg prometheus.Registerer) Elector
	}{
		{"always", func(t *testing.T, reg prometheus.Registerer) Elector { return NewAlways(Deps{Registry: reg}) }},
		{"postgres", func(t *testing.T, reg prometheus.Registerer) Elector {
			e, err := NewPostgres(pgtest.Start(t), KeyFor("contract"), fast(), Deps{Registry: reg})
			if err != nil {
				t.Fatal(err)
			}
			return e
		}},
	}
	cases := []struct {
		name    string
		work    func(ctx context.Context) error
		wantErr error
	}{
		{"stops with its context", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, nil},
		{"stops with its context, nil", func(ctx context.Context) error { <-ctx.Done(); return nil }, nil},
		{"fails by itself", func(ctx context.Context) error { return errBoom }, errBoom},
		{"returns by itself", func(ctx context.Context) error { return nil }, nil},
	}
	for _, el := range electors {
		for _, tc := range cases {
			t.Run(el.name+"/"+tc.name, func(t *testing.T) {
				reg := prometheus.NewRegistry()
				e := el.make(t, reg)
				running := make(chan struct{})
				var leaderGauge atomic.Value
				r := start(e, func(ctx context.Context) error {
					leaderGauge.Store(gatherValue(t, reg, "auditpipe_policy_leader", ""))
					close(running)
					return tc.work(ctx)
				})
				select {
				case <-running:
				case <-time.After(30 * time.Second):
					t.Fatal("the work did not start within 30 s")
				}
				if g := leaderGauge.Load().(float64); g != 1 {
					t.Errorf("auditpipe_policy_leader = %v while the work runs, want 1", g)
				}
				var err error
				if tc.wantErr != nil || strings.Contains(tc.name, "by itself") {
					select {
					case err = <-r.errc:
					case <-time.After(30 * time.Second):
						t.Fatal("Run did not return after the work did")
					}
					r.cancel()
				} else {
					err = r.stop(t)
				}
				if tc.wantErr == nil && err != nil {
					t.Fatalf("Run: %v, want nil", err)
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Fatalf("Run: %v, want %v", err, tc.wantErr)
				}
				if g := gatherValue(t, reg, "auditpipe_policy_leader", ""); g != 0 {
					t.Errorf("auditpipe_policy_leader = %v after Run, want 0", g)
				}
				for _, to := range []string{"leader", "follower"} {
					if n := gatherValue(t, reg, "auditpipe_policy_leader_transitions_total", to); n != 1 {
						t.Errorf("transitions to %s = %v, want 1", to, n)
					}
				}
			})
		}
	}
}

// gatherValue reads the metric called name (with label to=label, when
// set) from reg: by its exported name, which dashboards use.
func gatherValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && (len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != label) {
				continue
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s{to=%q} not registered", name, label)
	return 0
}

// TestPostgresReleasesOnReturn: when Run returns (work done, or stopped)
// the lock is already free: unlocked, not left to the session's end.
func TestPostgresReleasesOnReturn(t *testing.T) {
	dsn := pgtest.Start(t)
	admin := connect(t, dsn)
	e, err := NewPostgres(dsn, KeyFor("release"), fast(), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	for _, stop := range []string{"work returns", "context ends"} {
		t.Run(stop, func(t *testing.T) {
			leading := make(chan struct{})
			r := start(e, func(ctx context.Context) error {
				close(leading)
				if stop == "work returns" {
					return nil
				}
				<-ctx.Done()
				return nil
			})
			<-leading
			if stop == "context ends" {
				if h := holders(t, admin); len(h) != 1 {
					t.Fatalf("lock holders %v while leading, want one", h)
				}
			}
			if err := r.stop(t); err != nil {
				t.Fatal(err)
			}
			if h := holders(t, admin); len(h) != 0 {
				t.Fatalf("lock holders %v after Run returned, want none", h)
			}
		})
	}
}

// TestPostgresUnreachable: with no server, Run keeps trying, never runs
// the work, and returns nil when its context ends.
func TestPostgresUnreachable(t *testing.T) {
	// Port 1 on loopback: connection refused at once.
	e, err := NewPostgres("postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=1", 1, fast(), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	var ran atomic.Bool
	r := start(e, func(ctx context.Context) error { ran.Store(true); return nil })
	time.Sleep(500 * time.Millisecond)
	if err := r.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if ran.Load() {
		t.Fatal("the work ran without the lock")
	}
	if e.outage.Down() != true {
		t.Fatal("the failing attempts were not reported")
	}
}

// TestBadDSN: a DSN that does not parse is refused without repeating it
// (it may hold a password).
func TestBadDSN(t *testing.T) {
	_, err := NewPostgres("postgres://u:s3cret@[::1", 1, DefaultConfig(), Deps{})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("NewPostgres: %v", err)
	}
}

// worker is work that records how many electors run it at once.
type worker struct {
	active, maxActive atomic.Int32
	mu                sync.Mutex
	runs              []string    // who started, in order
	causes            []error     // context.Cause of each run's end
	started           chan string // who, at each start
}

func newWorker() *worker { return &worker{started: make(chan string, 16)} }

func (w *worker) work(who string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		n := w.active.Add(1)
		for {
			m := w.maxActive.Load()
			if n <= m || w.maxActive.CompareAndSwap(m, n) {
				break
			}
		}
		w.mu.Lock()
		w.runs = append(w.runs, who)
		w.mu.Unlock()
		w.started <- who
		<-ctx.Done()
		w.mu.Lock()
		w.causes = append(w.causes, context.Cause(ctx))
		w.mu.Unlock()
		w.active.Add(-1)
		return ctx.Err()
	}
}

func (w *worker) waitStart(t *testing.T, timeout time.Duration) string {
	t.Helper()
	select {
	case who := <-w.started:
		return who
	case <-time.After(timeout):
		t.Fatalf("no elector started the work within %s", timeout)
		return ""
	}
}

// TestTwoElectorsOneLeader: two electors in one process on one database
// and key: exactly one runs the work; when it stops, the other takes over;
// the work never runs twice at once (a graceful stop ends the work before
// the lock is given up).
func TestTwoElectorsOneLeader(t *testing.T) {
	dsn := pgtest.Start(t)
	w := newWorker()
	regs := map[string]*prometheus.Registry{"a": prometheus.NewRegistry(), "b": prometheus.NewRegistry()}
	newElector := func(who string) *Postgres {
		e, err := NewPostgres(dsn, KeyFor("two"), fast(), Deps{Registry: regs[who]})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	runs := map[string]*run{"a": start(newElector("a"), w.work("a")), "b": start(newElector("b"), w.work("b"))}
	defer func() {
		for _, r := range runs {
			r.cancel()
			<-r.errc
		}
	}()
	first := w.waitStart(t, 30*time.Second)
	otherOf := map[string]string{"a": "b", "b": "a"}
	other := otherOf[first]
	// Ten of the follower's attempts: it must not lead meanwhile.
	select {
	case who := <-w.started:
		t.Fatalf("%s started the work while %s leads", who, first)
	case <-time.After(10 * fast().PollInterval):
	}
	if g := gatherValue(t, regs[first], "auditpipe_policy_leader", ""); g != 1 {
		t.Errorf("leader %s: gauge %v", first, g)
	}
	if g := gatherValue(t, regs[other], "auditpipe_policy_leader", ""); g != 0 {
		t.Errorf("follower %s: gauge %v", other, g)
	}
	// Hand over three times: stop the leader, see the other take over,
	// start the stopped one anew.
	leader := first
	for range 3 {
		if err := runs[leader].stop(t); err != nil {
			t.Fatal(err)
		}
		next := w.waitStart(t, 30*time.Second)
		if next != otherOf[leader] {
			t.Fatalf("%s took over, want %s", next, otherOf[leader])
		}
		// Back as a follower (a new elector tries at once: started
		// before the takeover, it might have taken the lock itself).
		runs[leader] = start(newElectorAgain(t, dsn, regs, leader), w.work(leader))
		leader = next
	}
	if m := w.maxActive.Load(); m != 1 {
		t.Fatalf("the work ran %d times at once", m)
	}
}

// newElectorAgain builds an elector on a fresh registry for who (the old
// one's metrics stay registered on the old registry).
func newElectorAgain(t *testing.T, dsn string, regs map[string]*prometheus.Registry, who string) *Postgres {
	t.Helper()
	regs[who] = prometheus.NewRegistry()
	e, err := NewPostgres(dsn, KeyFor("two"), fast(), Deps{Registry: regs[who]})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestTerminatedLeaderSteppedDown: the server ends the leader's session
// (pg_terminate_backend, as a failover or an administrator would): the
// leader's work context ends at once with ErrLost as its cause, and the
// other elector takes over. The first leader polls slowly, so that the
// follower (polling every 100 ms) is the one that takes the lock.
func TestTerminatedLeaderSteppedDown(t *testing.T) {
	dsn := pgtest.Start(t)
	admin := connect(t, dsn)
	w := newWorker()
	slow := DefaultConfig()
	slow.PollInterval = 3 * time.Second
	regA := prometheus.NewRegistry()
	a, err := NewPostgres(dsn, KeyFor("terminate"), slow, Deps{Registry: regA})
	if err != nil {
		t.Fatal(err)
	}
	ra := start(a, w.work("a"))
	defer func() { ra.cancel(); <-ra.errc }()
	if who := w.waitStart(t, 30*time.Second); who != "a" {
		t.Fatalf("%s leads first", who)
	}
	b, err := NewPostgres(dsn, KeyFor("terminate"), fast(), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	rb := start(b, w.work("b"))
	defer func() { rb.cancel(); <-rb.errc }()
	time.Sleep(3 * fast().PollInterval) // b has tried and failed

	h := holders(t, admin)
	if len(h) != 1 {
		t.Fatalf("lock holders %v, want one", h)
	}
	terminated := time.Now()
	pgtest.TerminateBackend(t, dsn, h[0])
	if who := w.waitStart(t, 30*time.Second); who != "b" {
		t.Fatalf("%s took over, want b", who)
	}
	t.Logf("b led %s after a's session was terminated", time.Since(terminated).Round(time.Millisecond))
	eventually(t, 30*time.Second, "a's work ended", func() bool { return w.active.Load() == 1 })
	w.mu.Lock()
	causes := append([]error(nil), w.causes...)
	w.mu.Unlock()
	if len(causes) != 1 || !errors.Is(causes[0], ErrLost) {
		t.Fatalf("causes of the ended work: %v, want one ErrLost", causes)
	}
	if n := gatherValue(t, regA, "auditpipe_policy_leader_transitions_total", "follower"); n != 1 {
		t.Errorf("a's transitions to follower = %v, want 1", n)
	}
	if g := gatherValue(t, regA, "auditpipe_policy_leader", ""); g != 0 {
		t.Errorf("a's gauge = %v after the loss, want 0", g)
	}
	if h2 := holders(t, admin); len(h2) != 1 || h2[0] == h[0] {
		t.Fatalf("lock holders %v after the takeover (terminated %d)", h2, h[0])
	}
}
