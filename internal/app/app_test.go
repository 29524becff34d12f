package app

import (
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/forwarder"
	"github.com/auditpipe/auditpipe/internal/httpserve"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/policy"
)

func TestTargetsResolve(t *testing.T) {
	tests := []struct {
		target string
		want   []string
	}{
		{TargetCollector, []string{"server", "kafka", "collector"}},
		{TargetAgent, []string{"server", "kafka", "agent"}},
		{TargetHost, []string{"server", "kafka", "collector", "agent"}},
		{TargetIndexer, []string{"server", "kafka", "store", "query", "indexer"}},
		{TargetForwarder, []string{"server", "kafka", "forwarder"}},
		{TargetPolicy, []string{"server", "kafka", "policy"}},
		{TargetScheduler, []string{"server", "kafka", "policy", "scheduler"}},
		// The collector comes after the consumers and the policy
		// service: it stops first, they drain its last batch, and the
		// seed's grants are on the topic when it starts.
		{TargetAll, []string{"server", "broker", "kafka", "store", "query", "indexer", "forwarder", "policy", "scheduler", "collector"}},
	}
	for _, tt := range tests {
		got, err := Modules(tt.target)
		if err != nil {
			t.Fatalf("%s: %v", tt.target, err)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: modules %v, want %v", tt.target, got, tt.want)
		}
	}
	if _, err := Modules("nonesuch"); err == nil || !strings.Contains(err.Error(), "agent, all, collector, forwarder, host, indexer, policy, scheduler") {
		t.Errorf("unknown target: %v, want the list of targets", err)
	}
}

func TestResolveErrors(t *testing.T) {
	mods := []Module{
		{Name: "a", Deps: []string{"b"}},
		{Name: "b", Deps: []string{"a"}},
		{Name: "c", Deps: []string{"nope"}},
	}
	ts := map[string][]string{"cycle": {"a"}, "missing": {"c"}}
	cfg := DefaultConfig()
	for target, want := range map[string]string{"cycle": "dependency cycle", "missing": `module "nope" (needed by missing → c): unknown`} {
		cfg.Target = target
		if _, err := newApp(cfg, Deps{}, mods, ts); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", target, err, want)
		}
	}
}

// recorder logs what the fake modules do, in order.
type recorder struct {
	mu  sync.Mutex
	log []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, s)
}

func (r *recorder) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

type fakeService struct {
	name  string
	rec   *recorder
	drain bool
	// end, when set, ends Run by itself with this error.
	end chan error
}

func (s *fakeService) Run(ctx context.Context) error {
	s.rec.add("run " + s.name)
	select {
	case <-ctx.Done():
		s.rec.add("stop " + s.name)
		return nil
	case err := <-s.end:
		s.rec.add("end " + s.name)
		return err
	}
}

type drainingService struct{ *fakeService }

func (s drainingService) Drain(context.Context) error {
	s.rec.add("drain " + s.name)
	return nil
}

func fakeModules(rec *recorder, ends map[string]chan error) []Module {
	mk := func(name string, drain bool) func(context.Context, *App) (Service, error) {
		return func(context.Context, *App) (Service, error) {
			rec.add("init " + name)
			s := &fakeService{name: name, rec: rec, end: ends[name]}
			if drain {
				return drainingService{s}, nil
			}
			return s, nil
		}
	}
	return []Module{
		{Name: "broker", Init: mk("broker", false)},
		{Name: "store", Init: mk("store", false)},
		{Name: "indexer", Deps: []string{"broker", "store"}, Init: mk("indexer", true)},
		{Name: "collector", Deps: []string{"broker"}, After: []string{"indexer"}, Init: mk("collector", false)},
		{Name: "closer", Init: func(_ context.Context, a *App) (Service, error) {
			a.OnClose(func() error { rec.add("close"); return nil })
			return nil, nil
		}},
	}
}

// TestRunOrder: modules start in dependency order, then stop in reverse,
// the consumer draining after the producer stopped and before it is
// cancelled; cleanups run after every service ended.
func TestRunOrder(t *testing.T) {
	rec := &recorder{}
	cfg := DefaultConfig()
	cfg.Target = "t"
	a, err := newApp(cfg, Deps{}, fakeModules(rec, nil), map[string][]string{"t": {"collector", "indexer", "closer"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	waitUntil(t, func() bool { return len(rec.events()) >= 8 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := rec.events()
	wantInit := []string{"init broker", "init store", "init indexer", "init collector"}
	if !slices.Equal(got[:4], wantInit) {
		t.Fatalf("init order %v, want %v", got[:4], wantInit)
	}
	wantStop := []string{"stop collector", "drain indexer", "stop indexer", "stop store", "stop broker", "close"}
	if !slices.Equal(got[len(got)-6:], wantStop) {
		t.Fatalf("stop order %v, want %v", got[len(got)-6:], wantStop)
	}
}

// TestModuleEndingStopsTheOthers: a service that ends by itself (stdin at
// EOF, or a failure) stops the process; its error is returned, and nothing
// drains (the producer may be the one that failed).
func TestModuleEndingStopsTheOthers(t *testing.T) {
	rec := &recorder{}
	ends := map[string]chan error{"store": make(chan error, 1)}
	cfg := DefaultConfig()
	cfg.Target = "t"
	a, err := newApp(cfg, Deps{}, fakeModules(rec, ends), map[string][]string{"t": {"collector", "indexer"}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(context.Background()) }()
	waitUntil(t, func() bool { return slices.Contains(rec.events(), "run collector") })
	ends["store"] <- errors.New("disk on fire")
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "store: disk on fire") {
			t.Fatalf("Run: %v, want the store's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after a module ended")
	}
	if slices.Contains(rec.events(), "drain indexer") {
		t.Errorf("drained after a failure: %v", rec.events())
	}
	for _, m := range []string{"collector", "indexer", "broker"} {
		if !slices.Contains(rec.events(), "stop "+m) {
			t.Errorf("%s not stopped: %v", m, rec.events())
		}
	}
}

// TestInitFailureCleansUp: when a module cannot start, what the earlier
// modules opened is closed and nothing runs.
func TestInitFailureCleansUp(t *testing.T) {
	rec := &recorder{}
	mods := append(fakeModules(rec, nil), Module{Name: "bad", Deps: []string{"closer"}, Init: func(context.Context, *App) (Service, error) {
		return nil, errors.New("no such file")
	}})
	cfg := DefaultConfig()
	cfg.Target = "t"
	a, err := newApp(cfg, Deps{}, mods, map[string][]string{"t": {"bad"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "bad: no such file") {
		t.Fatalf("Run: %v", err)
	}
	if got := rec.events(); !slices.Equal(got, []string{"close"}) {
		t.Fatalf("events %v, want only the cleanup", got)
	}
}

// TestHealthAndReady: /-/healthy answers while the process runs; /-/ready
// only when every dependency check passes, naming the ones that fail.
func TestHealthAndReady(t *testing.T) {
	h := newHTTPState()
	var fail error = errors.New("connection refused")
	var mu sync.Mutex
	h.check("kafka", func(context.Context) error { mu.Lock(); defer mu.Unlock(); return fail })
	h.check("clickhouse", func(context.Context) error { return nil })
	addr := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.serve(ctx, "127.0.0.1:0", httpserve.Options{}, nil, func(a string) { addr <- a }) }()
	base := "http://" + <-addr
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/-/healthy"); code != 200 {
		t.Errorf("healthy: %d", code)
	}
	if code, body := get("/-/ready"); code != 503 || !strings.Contains(body, "kafka: connection refused") || strings.Contains(body, "clickhouse") {
		t.Errorf("ready with Kafka down: %d %q", code, body)
	}
	mu.Lock()
	fail = nil
	mu.Unlock()
	if code, body := get("/-/ready"); code != 200 {
		t.Errorf("ready: %d %q", code, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	otherKey := filepath.Join(t.TempDir(), "other.key")
	if _, _, err := sign.EnsureKeyPair(otherKey, otherKey+".pub"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(*Config)
		want []string // every one must be named
	}{
		{"defaults are valid for all", func(*Config) {}, nil},
		{"separate processes need brokers", func(c *Config) { c.Target = TargetIndexer }, []string{"kafka.brokers"}},
		{"several errors at once", func(c *Config) {
			c.Target = TargetCollector
			c.Log.Level = "loud"
			c.Log.Format = "xml"
			c.Collector.Layer = "MOON"
		}, []string{"log.level", "log.format", "kafka.brokers", "collector.layer"}},
		{"an API needs credentials", func(c *Config) {
			c.Target = TargetIndexer
			c.Kafka.Brokers = []string{"k:9092"}
			c.Server.Auth.OpenMetrics = true
		}, []string{"server.auth.tokens_file"}},
		{"forwarder needs a destination", func(c *Config) {
			c.Target = TargetForwarder
			c.Kafka.Brokers = []string{"k:9092"}
		}, []string{"forwarder.destinations"}},
		{"a collector that follows grants names the keys it trusts", func(c *Config) {
			c.Target = TargetCollector
			c.Kafka.Brokers = []string{"k:9092"}
			c.Server.Auth.OpenMetrics = true
		}, []string{"collector.grant_keys: required"}},
		{"unknown target", func(c *Config) { c.Target = "patcher" }, []string{"target:"}},
		{"connection bounds are named", func(c *Config) {
			c.Server.ReadHeaderTimeout = -time.Second
			c.Server.ReadTimeout = -time.Second
			c.Server.IdleTimeout = -time.Second
			c.Server.MaxHeaderBytes = 1 << 30
			c.Server.MaxConnections = -1
			c.Embedded.KafkaMaxConnections = -1
			c.Embedded.KafkaAuthTimeout = -time.Second
		}, []string{"server.read_header_timeout", "server.read_timeout", "server.idle_timeout", "server.max_header_bytes",
			"server.max_connections", "embedded.kafka_max_connections", "embedded.kafka_auth_timeout"}},
		{"policy alone needs a signing key and credentials", func(c *Config) {
			c.Target = TargetPolicy
			c.Kafka.Brokers = []string{"k:9092"}
		}, []string{"policy.key_file: required", "server.auth.tokens_file"}},
		{"policy fields are named", func(c *Config) {
			c.Target = TargetPolicy
			c.Kafka.Brokers = []string{"k:9092"}
			c.Server.Auth.TokensFile = "tokens.yaml"
			c.Policy.KeyFile = "/nonexistent/policy.key"
			c.Policy.Store.Driver = policy.DriverPostgres
			c.Policy.TickInterval = 0
			c.Policy.Relay.BatchSize = 0
			c.Policy.Relay.PollInterval = -1
			c.Policy.Leader.SessionTimeout = time.Second
			c.Policy.AgentReports.Group = ""
			c.Policy.SeedFile = "/nonexistent/seed.yaml"
		}, []string{"policy.key_file:", "policy.store.dsn: required", "policy.tick_interval", "policy.relay.batch_size", "policy.relay.poll_interval",
			"policy.leader.session_timeout", "policy.agent_reports.group", "policy.seed_file"}},
		{"scheduler fields are named", func(c *Config) {
			c.Scheduler.TickInterval = 0
			c.Scheduler.Retention = time.Minute
			c.Scheduler.Progress.Group = ""
		}, []string{"scheduler.tick_interval", "scheduler.retention", "scheduler.progress.group"}},
		{"the scheduler's election is checked on PostgreSQL", func(c *Config) {
			c.Target = TargetScheduler
			c.Kafka.Brokers = []string{"k:9092"}
			c.Server.Auth.TokensFile = "tokens.yaml"
			c.Policy.Store.Driver = policy.DriverPostgres
			c.Scheduler.Leader.SessionTimeout = time.Second
		}, []string{"policy.key_file: required", "scheduler.leader.session_timeout"}},
		{"the all-in-one's collector must trust a policy key set", func(c *Config) {
			c.Policy.KeyFile = otherKey
		}, []string{"policy.key_file: " + otherKey + ": its public key is not in collector.grant_keys"}},
		{"and its forwarder, when it follows the assignments", func(c *Config) {
			c.Policy.KeyFile = otherKey
			c.Collector.GrantKeys = []string{otherKey + ".pub"}
			c.Forwarder.Assignments.Follow = true
		}, []string{"policy.key_file: " + otherKey + ": its public key is not in forwarder.assignment_keys"}},
		{"a policy key both trust", func(c *Config) {
			c.Policy.KeyFile = otherKey
			c.Collector.GrantKeys = []string{otherKey + ".pub"}
			c.Forwarder.Assignments.Follow = true
			c.Forwarder.AssignmentKeys = []string{otherKey + ".pub"}
		}, nil},
		{"all needs its data dir", func(c *Config) { c.Embedded.DataDir = "" }, []string{"embedded.data_dir"}},
		{"a section the target does not run is not checked", func(c *Config) {
			c.Target = TargetForwarder
			c.Kafka.Brokers = []string{"k:9092"}
			c.Forwarder.Destinations = []forwarder.Destination{{Address: "siem:6514"}}
			c.Server.Auth.OpenMetrics = true
			c.Collector.Layer = "MOON"
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.edit(&cfg)
			err := cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %v", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
		})
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
