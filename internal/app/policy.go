package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/console"
	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/leader"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/policy/api"
	"github.com/auditpipe/auditpipe/policy/auditreport"
	"github.com/auditpipe/auditpipe/policy/scheduler"
)

// leaderLockName names the advisory lock the policy processes of one
// database elect their leader with (leader.KeyFor).
const leaderLockName = "auditpipe policy duties"

// initPolicy opens the policy store (migrations applied), loads the
// catalog and the signing key, mounts the policy API, applies the seed,
// and returns the module:
// the time-driven work and the outbox relay on the leader (every process
// on SQLite, one at a time on PostgreSQL) and the agents' reports in
// every process. In the all-in-one the key is its own grant signing key
// (created at the first start) and the outbox is published once before
// the collector starts, so that it finds the seed's grants.
func initPolicy(ctx context.Context, a *App) (Service, error) {
	rc := a.resolvedConfig()
	cfg := rc.Policy
	log := a.Log.With("component", "policy")
	kc := a.kafkaFor(kafka.RolePolicy)

	signer, err := policySigner(a, cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	catalog, err := policyCatalog(cfg.CatalogFile)
	if err != nil {
		return nil, err
	}
	store, err := policy.OpenStore(ctx, cfg.Store, log)
	if err != nil {
		return nil, err
	}
	a.OnClose(store.Close)
	svc, err := policy.NewService(store, catalog, signer, policy.Options{Log: log})
	if err != nil {
		return nil, err
	}
	a.shared.policy = svc
	a.http.check("policy_store", store.Ping)
	a.http.registry.MustRegister(policy.NewOutboxCollector(store))
	if a.Has("scheduler") {
		// Made here, not in its module, because its routes are part of
		// the policy API (one handler, one role table, one document).
		sched, err := scheduler.New(svc, signer, scheduler.Options{Log: a.Log.With("component", "scheduler"),
			Registerer: a.http.registry, Retention: rc.Scheduler.Retention})
		if err != nil {
			return nil, err
		}
		a.shared.scheduler = sched
	}
	web, err := mountPolicyAPI(a, svc, log)
	if err != nil {
		return nil, err
	}

	if cfg.SeedFile != "" {
		seed, err := policy.LoadSeed(cfg.SeedFile)
		if err != nil {
			return nil, fmt.Errorf("policy.seed_file: %w", err)
		}
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		res, err := policy.ApplySeed(sctx, svc, seed)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("policy.seed_file: %w", err)
		}
		for _, r := range res.Requests {
			log.Info("seeded access request", "id", r.ID, "state", r.LifecycleState, "requester", r.RequestorID, "loginid", r.UserID)
		}
		log.Info("policy seed applied", "file", cfg.SeedFile, "created", res.Created)
	}

	relay, err := policy.NewRelay(store, kc, cfg.Relay, policy.RelayDeps{Log: log.With("part", "relay"), Registry: a.http.registry})
	if err != nil {
		return nil, err
	}
	if a.Has("broker") {
		// The embedded broker is up: publish what is pending (the
		// seed's grants) before the collector starts following them.
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := relay.Flush(fctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("policy: publishing the outbox at start: %w", err)
		}
	}
	duties, err := policy.NewDuties(svc, relay, cfg.TickInterval, log, a.http.registry)
	if err != nil {
		return nil, err
	}
	ldeps := leader.Deps{Log: log.With("part", "leader"), Registry: a.http.registry, Component: "policy"}
	var elector leader.Elector
	if store.Driver() == policy.DriverPostgres {
		if elector, err = leader.NewPostgres(cfg.Store.DSN.Reveal(), leader.KeyFor(leaderLockName), cfg.Leader, ldeps); err != nil {
			return nil, fmt.Errorf("policy.leader: %w", err)
		}
	} else {
		elector = leader.NewAlways(ldeps)
	}
	m := &policyModule{elector: elector, duties: duties, console: web}
	if cfg.AgentReports.On() {
		if m.reports, err = policy.NewAgentReports(svc, kc, cfg.AgentReports, log.With("part", "agent_reports"), a.http.registry); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// mountPolicyAPI serves the policy API on the process's mux under /v1/,
// for every role: the API authorizes per route and per object. Where the
// process holds a ClickHouse store it answers (the all-in-one's chDB), the
// API serves the access requests' audit log reports from it, on a chDB
// session of their own; elsewhere the report route answers 501 (the
// client builds it from a query endpoint: auditpipe request report).
// The web console (package console) is mounted beside it under
// /console/, signing visitors in with the process's authenticator.
func mountPolicyAPI(a *App, svc *policy.Service, log *slog.Logger) (*console.Console, error) {
	opts := api.Options{Log: log.With("part", "api"), Registry: a.http.registry, Scheduler: a.shared.scheduler}
	if emb, ok := a.shared.engine.(*clickhouse.Embedded); ok {
		qs, err := emb.OpenQuerySession()
		if err != nil {
			return nil, fmt.Errorf("policy: the audit log reports' session: %w", err)
		}
		a.OnClose(qs.Close)
		// The API has checked that the caller may see the request.
		allow := func(*http.Request, string) error { return nil }
		opts.Report = auditreport.NewHandler(qs, allow, log.With("part", "auditreport"), auditreport.Options{})
	}
	h, err := api.New(svc, opts)
	if err != nil {
		return nil, err
	}
	a.http.handle("/v1/", h, auth.Roles()...)
	var web *console.Console
	err = a.http.handleSigned(console.Prefix+"/", func(authn *auth.Authenticator) (http.Handler, error) {
		d := console.Deps{Service: svc, API: h, Auth: authn, Scheduler: a.shared.scheduler, Log: log.With("part", "console")}
		switch eng := a.shared.engine.(type) {
		case *clickhouse.Embedded:
			// A chDB session of the console's own (the live trail
			// polls while reports run).
			qs, err := eng.OpenQuerySession()
			if err != nil {
				return nil, fmt.Errorf("policy: the console's session: %w", err)
			}
			a.OnClose(qs.Close)
			d.Store = qs
		case clickhouse.Engine:
			d.Store = eng
		}
		web, err = console.New(d, console.Options{Secure: a.http.tls != nil})
		return web, err
	})
	return web, err
}

// policySigner loads the key that signs what the service publishes; the
// all-in-one's own key is created at its first start.
func policySigner(a *App, keyFile string) (*sign.Signer, error) {
	if a.Config.Target == TargetAll && keyFile == filepath.Join(a.Config.Embedded.DataDir, GrantsKeyName) {
		return ensureGrantKey(a)
	}
	key, err := sign.LoadPrivateKey(keyFile)
	if err != nil {
		return nil, fmt.Errorf("policy.key_file: %w", err)
	}
	s, err := sign.NewSigner(key)
	if err != nil {
		return nil, fmt.Errorf("policy.key_file: %w", err)
	}
	return s, nil
}

func policyCatalog(path string) (*policy.Catalog, error) {
	if path == "" {
		return policy.DefaultCatalog()
	}
	c, err := policy.LoadCatalog(path)
	if err != nil {
		return nil, fmt.Errorf("policy.catalog_file: %w", err)
	}
	return c, nil
}

// policyModule runs the leader's duties under the election and the
// agents' reports beside them.
type policyModule struct {
	elector leader.Elector
	duties  *policy.Duties
	reports *policy.AgentReports // nil when off
	console *console.Console     // nil without the server module
}

// Run implements Service: it returns when ctx ends, or with the first
// part that failed for good (the others stopped first).
func (m *policyModule) Run(ctx context.Context) error {
	parts := map[string]func(context.Context) error{
		"duties": func(ctx context.Context) error { return m.elector.Run(ctx, m.duties.Run) },
	}
	if m.reports != nil {
		parts["agent reports"] = m.reports.Run
	}
	if m.console != nil {
		// Ends the console's streams before the server shuts down
		// (the server module stops after this one).
		parts["console"] = m.console.Run
	}
	return runParts(ctx, parts)
}

// runParts runs a module's parts until ctx ends or one of them returns:
// one part ending stops the others; the parts' errors are joined, each
// named.
func runParts(ctx context.Context, parts map[string]func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for name, f := range parts {
		wg.Go(func() {
			if err := f(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				mu.Unlock()
			}
			cancel()
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
