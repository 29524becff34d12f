package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/auditpipe/auditpipe/agent"
	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/collector"
	"github.com/auditpipe/auditpipe/forwarder"
	"github.com/auditpipe/auditpipe/indexer"
	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/privfile"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/internal/tlsconfig"
	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/policy/scheduler"
	"github.com/auditpipe/auditpipe/queryapi"
	"github.com/auditpipe/auditpipe/schemas"
)

// shared is what modules hand to the modules that depend on them.
type shared struct {
	// kafka is the configured broker connection, or in target all the
	// embedded broker's address with its superuser's credentials (the
	// broker module's own). Modules connect with kafkaFor.
	kafka  kafka.Config
	broker *kafka.Embedded
	engine clickhouse.Engine
	// policy is the policy module's service (the API's, and tests').
	policy *policy.Service
	// scheduler is the scheduler's service, made by the policy module
	// when the process runs the scheduler module (its routes are in the
	// policy API); nil otherwise.
	scheduler *scheduler.Service
}

// kafkaFor is the Kafka connection of a module with role. Against the
// embedded broker each module has a principal of its own (its role's
// password file, DATA/kafka-credentials/<role>.password), so that the
// broker's ACLs hold inside the all-in-one too, and a local user who read
// one credential file would get only that role. Otherwise it is the
// configured connection: a process runs one target, with the principal
// its kafka.sasl names.
func (a *App) kafkaFor(role kafka.Role) kafka.Config {
	kc := a.shared.kafka
	if a.shared.broker == nil {
		return kc
	}
	c := a.shared.broker.Client(role)
	kc.TLS, kc.SASL = c.TLS, c.SASL
	return kc
}

// modules is the one list of auditpipe's modules. Adding a component is
// one package plus one entry here (and its name in the targets that run
// it). Modules that do not depend on each other start in this order.
func modules() []Module {
	return []Module{
		{Name: "server", Init: initServer},
		{Name: "broker", Init: initBroker},
		{Name: "kafka", After: []string{"broker"}, Init: initKafka},
		{Name: "store", Init: initStore},
		{Name: "query", Deps: []string{"store", "server"}, Init: initQuery},
		{Name: "indexer", Deps: []string{"kafka", "store"}, Init: initIndexer},
		{Name: "forwarder", Deps: []string{"kafka"}, Init: initForwarder},
		// After the store: in the all-in-one the API serves the audit
		// log reports from it.
		{Name: "policy", Deps: []string{"kafka"}, After: []string{"store"}, Init: initPolicy},
		// The scheduler is part of the policy service: its store, its
		// signing key, its outbox relay, its API.
		{Name: "scheduler", Deps: []string{"policy"}, Init: initScheduler},
		// The collector starts after the consumers of its process, so
		// that at shutdown it stops first and they drain its last batch,
		// and after the policy service, whose grants it then finds on
		// the topic when it starts.
		{Name: "collector", Deps: []string{"kafka"}, After: []string{"indexer", "forwarder", "policy"}, Init: initCollector},
		{Name: "agent", Deps: []string{"kafka"}, After: []string{"collector"}, Init: initAgent},
	}
}

// targets maps each target to the modules it names; their dependencies
// come with them.
func targets() map[string][]string {
	return map[string][]string{
		TargetCollector: {"server", "collector"},
		TargetAgent:     {"server", "agent"},
		TargetHost:      {"server", "collector", "agent"},
		TargetIndexer:   {"server", "query", "indexer"},
		TargetForwarder: {"server", "forwarder"},
		TargetPolicy:    {"server", "policy"},
		TargetScheduler: {"server", "scheduler"},
		TargetAll:       {"broker", "server", "query", "indexer", "forwarder", "policy", "scheduler", "collector"},
	}
}

// initServer makes the process's one HTTP listener and its
// authentication; the other modules add their handlers to its mux while
// they are initialised. In target all, the data directory's credentials are
// created on first start.
func initServer(_ context.Context, a *App) (Service, error) {
	cfg := a.resolvedConfig().Server
	if cfg.HTTPAddr == "off" {
		return nil, nil
	}
	tokensFile := cfg.Auth.TokensFile
	if tokensFile == "" && a.Config.Target == TargetAll {
		tf, created, err := auth.Bootstrap(a.Config.Embedded.DataDir)
		if err != nil {
			return nil, err
		}
		if created {
			a.Log.Info("first start: an admin token was created; it is in this file only (mode 0600)",
				"file", filepath.Join(a.Config.Embedded.DataDir, auth.AdminTokenName))
		}
		tokensFile = tf
	}
	s := &serverService{a: a, tokensFile: tokensFile}
	tokens, err := s.tokens()
	if err != nil {
		return nil, err
	}
	authn, err := auth.New(tokens, cfg.Auth.Clients)
	if err != nil {
		return nil, fmt.Errorf("server.auth: %w", err)
	}
	a.http.auth = authn
	metrics := promhttp.HandlerFor(a.http.registry, promhttp.HandlerOpts{Registry: a.http.registry})
	if cfg.Auth.OpenMetrics {
		a.http.mux.Handle("GET /metrics", metrics)
	} else {
		a.http.handle("GET /metrics", metrics, auth.RoleMetrics, auth.RoleAuditor)
	}
	if cfg.TLS.CertFile != "" {
		tc, err := tlsconfig.Server(cfg.TLS.CertFile, cfg.TLS.KeyFile, cfg.TLS.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("server.tls: %w", err)
		}
		a.http.tls = tc
	}
	return s, nil
}

// serverService serves the mux; a reload re-reads the tokens file.
type serverService struct {
	a          *App
	tokensFile string
}

func (s *serverService) tokens() ([]auth.Token, error) {
	if s.tokensFile == "" {
		return nil, nil
	}
	return auth.LoadFile(s.tokensFile)
}

// Run implements Service.
func (s *serverService) Run(ctx context.Context) error {
	srv := s.a.resolvedConfig().Server
	return s.a.http.serve(ctx, srv.HTTPAddr, srv.options(), s.a.Log, s.a.deps.Ready)
}

// Reload implements Reloader: tokens added or revoked in the file apply
// at once.
func (s *serverService) Reload(cfg Config) error {
	tokens, err := s.tokens()
	if err != nil {
		return err
	}
	return s.a.http.auth.Set(tokens, cfg.Server.Auth.Clients)
}

// initBroker starts the embedded Kafka-protocol broker (kfake) with its log
// in the data directory, secured: TLS with a CA and certificate made on
// first start (DATA/kafka-tls, or embedded.kafka_tls), SASL/SCRAM-SHA-512
// with one principal per role whose passwords are made on first start
// (DATA/kafka-credentials/<role>.password, 0600), and the roles' ACLs. It
// creates the pipeline's topics as the broker's superuser.
func initBroker(ctx context.Context, a *App) (Service, error) {
	cfg := a.Config.Embedded
	// The broker's log holds every event and keystroke: the data
	// directory is the owner's only, and so is every file in it.
	if err := privfile.Dir(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("embedded.data_dir: %w", err)
	}
	logDir := filepath.Join(cfg.DataDir, "kafka")
	if err := makePrivate(logDir); err != nil {
		return nil, fmt.Errorf("embedded.data_dir: %w", err)
	}
	b, err := kafka.NewEmbedded(kafka.EmbeddedConfig{
		Listen:         cfg.KafkaListen,
		DataDir:        logDir,
		Partitions:     cfg.Partitions,
		CredentialsDir: filepath.Join(cfg.DataDir, KafkaCredentialsDir),
		TLSDir:         filepath.Join(cfg.DataDir, KafkaTLSDir),
		CertFile:       cfg.KafkaTLS.CertFile,
		KeyFile:        cfg.KafkaTLS.KeyFile,
		CAFile:         cfg.KafkaTLS.CAFile,
		MaxConnections: cfg.KafkaMaxConnections,
		AuthTimeout:    cfg.KafkaAuthTimeout,
		IdleTimeout:    cfg.KafkaIdleTimeout,
		Log:            a.Log,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	a.OnClose(func() error { b.Close(); return nil })
	a.shared.broker = b
	for _, c := range b.ConnectionCollectors() {
		if err := a.http.registry.Register(c); err != nil {
			return nil, fmt.Errorf("embedded: metrics: %w", err)
		}
	}
	kc := a.Config.Kafka
	adm := b.Admin()
	kc.Brokers, kc.TLS, kc.SASL = adm.Brokers, adm.TLS, adm.SASL
	a.shared.kafka = kc.WithDefaults()
	if err := a.shared.kafka.EnsureTopics(ctx, kafka.PipelineTopics(cfg.Partitions)...); err != nil {
		return nil, err
	}
	a.Log.Info("embedded Kafka broker: TLS and SASL/SCRAM-SHA-512, one principal per role (username = role)",
		"address", strings.Join(b.Brokers(), ","), "ca", b.CAFile(),
		"credentials", filepath.Join(cfg.DataDir, KafkaCredentialsDir, "<role>.password"))
	return idle(), nil
}

// The embedded broker's security files in the data directory.
const (
	KafkaCredentialsDir = "kafka-credentials"
	KafkaTLSDir         = "kafka-tls"
)

// makePrivate makes the files under dir (an older version's, made before
// the process's umask was 077) readable by their owner only.
func makePrivate(dir string) error {
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := fs.FileMode(0o600)
		if d.IsDir() {
			mode = 0o700
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&^mode != 0 {
			return os.Chmod(path, fi.Mode().Perm()&mode)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// initKafka settles the Kafka connection the components share and adds
// its readiness check. Unless kafka.topics.create is off (or the embedded
// broker made them), it creates the topics the process's modules use in
// the background, retrying while the broker is away: the components start
// at once and retry their own reads and writes meanwhile. A failure no
// retry fixes (not authorized to create topics) stops the process with
// the reason.
func initKafka(_ context.Context, a *App) (Service, error) {
	if !a.Has("broker") {
		a.shared.kafka = a.Config.Kafka.WithDefaults()
	}
	kc := a.shared.kafka
	a.http.check("kafka", a.kafkaFor(kafka.RoleCollector).Ping)
	if a.Has("broker") || !kc.Topics.Creates() {
		return nil, nil
	}
	topics := kc.Topics.TopicsNamed(a.topicNames()...)
	log := a.Log.With("component", "kafka")
	return ServiceFunc(func(ctx context.Context) error {
		if err := kc.EnsureTopicsRetry(ctx, log, topics...); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("creating the Kafka topics failed, and is not retried: %w (create them with `auditpipe kafka ensure-topics`, or set kafka.topics.create: false if they are managed otherwise)", err)
		}
		log.Info("Kafka topics ready", "topics", len(topics))
		<-ctx.Done()
		return nil
	}), nil
}

// topicNames are the topics the process's modules read or write.
func (a *App) topicNames() []string {
	cfg := a.resolvedConfig()
	names := []string{}
	add := func(ts ...string) {
		for _, t := range ts {
			if !slices.Contains(names, t) {
				names = append(names, t)
			}
		}
	}
	if a.Has("collector") {
		add(cfg.Collector.Topic, cfg.Collector.DeadLetterTopic, schemas.TopicGrants)
	}
	if a.Has("agent") {
		add(schemas.TopicGrants, cfg.Agent.ReportTopic, cfg.Agent.DeadLetterTopic)
	}
	if a.Has("indexer") {
		add(cfg.Indexer.Topics...)
		add(cfg.Indexer.DeadLetterTopic)
	}
	if a.Has("forwarder") {
		add(schemas.TopicAudit, schemas.TopicLifecycle, cfg.Forwarder.DeadLetterTopic, kafka.TopicAssignments)
	}
	if a.Has("policy") {
		add(kafka.TopicLifecycle, kafka.TopicGrants, kafka.TopicAssignments)
		if cfg.Policy.AgentReports.On() {
			add(cfg.Policy.AgentReports.Topic, cfg.Policy.AgentReports.DeadLetterTopic)
		}
	}
	if a.Has("scheduler") {
		add(kafka.TopicLifecycle, kafka.TopicDispatch, cfg.Scheduler.Progress.Topic, cfg.Scheduler.Progress.DeadLetterTopic)
	}
	return names
}

// initStore opens ClickHouse (a server, or chDB in this process) and
// applies the migrations.
func initStore(ctx context.Context, a *App) (Service, error) {
	cfg := a.resolvedConfig()
	eng, err := clickhouse.Open(ctx, cfg.ClickHouse)
	if err != nil {
		return nil, err
	}
	a.OnClose(eng.Close)
	if _, err := clickhouse.MigrateLayout(ctx, eng, cfg.ClickHouse.Layout(), cfg.ClickHouse.RetentionDays, a.Log); err != nil {
		return nil, err
	}
	a.shared.engine = eng
	a.http.check("clickhouse", func(ctx context.Context) error {
		_, err := eng.Query(ctx, "SELECT 1")
		return err
	})
	return nil, nil
}

// initQuery serves SQL and the named queries on "/", in the shape of
// ClickHouse's HTTP interface, when the store can answer in ClickHouse's
// formats (embedded chDB; a server has an HTTP interface of its own).
// An embedded store's queries run on a pool of chDB connections of their
// own (beside the indexer's, so ingestion goes on; several, so one slow
// reader does not hold up the next; each query killed when its client
// goes), closed when the module stops, which kills the queries still
// running.
func initQuery(_ context.Context, a *App) (Service, error) {
	fq, ok := a.shared.engine.(queryapi.FormatQuerier)
	if !ok {
		return nil, nil
	}
	// The query log goes to the store's write session, never the readers'.
	qcfg := a.resolvedConfig().Query
	qlog := queryapi.NewQueryLogWriter(a.shared.engine, a.Log.With("component", "query"),
		queryapi.QueryLogOptions{Registry: a.http.registry, ReserveWait: qcfg.LogWait})
	closeReaders := func() error { return nil }
	if emb, ok := fq.(*clickhouse.Embedded); ok {
		pool, err := emb.OpenQueryPool(clickhouse.DefaultQuerySessions)
		if err != nil {
			return nil, fmt.Errorf("query: %w", err)
		}
		fq = pool
		closeReaders = pool.Close
	}
	opt := queryapi.QueryHandlerOptions{Limits: queryapi.DefaultLimits(), Registry: a.http.registry, QueryLog: qlog,
		MaxOutputBytes: int64(qcfg.MaxOutputBytes), ResultWait: qcfg.ResultWait,
		ResultBudget: queryapi.NewResultBudget(int64(qcfg.ResultBudget), a.http.registry)}
	a.http.handle("/", queryapi.NewQueryHandler(fq, a.Log.With("component", "query"), opt), auth.RoleAuditor)
	return ServiceFunc(func(ctx context.Context) error {
		err := qlog.Run(ctx)
		return errors.Join(err, closeReaders())
	}), nil
}

func initIndexer(_ context.Context, a *App) (Service, error) {
	cfg := a.resolvedConfig().Indexer
	cfg.Kafka = a.kafkaFor(kafka.RoleIndexer)
	deps := indexer.Deps{Engine: a.shared.engine, Log: a.Log.With("component", "indexer"), Registry: a.http.registry}
	if a.Has("scheduler") {
		// The scheduler's store knows which host each instance is: it
		// binds the agents' inventories (made by the policy module, which
		// starts after the indexer: looked up when an inventory comes).
		deps.Instances = instanceHosts{a}
	}
	ix, err := indexer.New(cfg, deps)
	if err != nil {
		return nil, err
	}
	if !a.Has("collector") {
		return ix, nil
	}
	return &drained{Service: ix, kafka: cfg.Kafka, groups: func() []string { return []string{cfg.Group} }, log: a.Log.Info}, nil
}

// instanceHosts is the scheduler's InstanceHost for the indexer, read
// at each call: the scheduler is made after the indexer.
type instanceHosts struct{ a *App }

func (h instanceHosts) InstanceHost(ctx context.Context, id string) (string, bool, error) {
	s := h.a.shared.scheduler
	if s == nil {
		return "", false, errors.New("the scheduler's store is not open yet")
	}
	return s.InstanceHost(ctx, id)
}

func initForwarder(_ context.Context, a *App) (Service, error) {
	cfg := a.resolvedConfig().Forwarder
	if len(cfg.Destinations) == 0 && !cfg.Assignments.Follow && a.Config.Target == TargetAll {
		return nil, nil // the all-in-one forwards only when a SIEM is given
	}
	cfg.Kafka = a.kafkaFor(kafka.RoleForwarder)
	log := a.Log.With("component", "forwarder")
	static := forwarder.NewStaticSource(cfg.Destinations)
	var src forwarder.Source = static
	if cfg.Assignments.Follow {
		if a.Config.Target == TargetAll {
			// The all-in-one's own key signs the assignments too: made
			// here when the forwarder starts before the collector.
			if _, err := ensureGrantKey(a); err != nil {
				return nil, err
			}
		}
		as, err := forwarder.NewAssignmentSource(cfg, log, a.http.registry)
		if err != nil {
			return nil, err
		}
		src = as
	}
	fw, err := forwarder.New(cfg, forwarder.Options{Log: log, Registerer: a.http.registry, Source: src})
	if err != nil {
		return nil, err
	}
	s := &forwarderService{Forwarder: fw, source: static}
	if !a.Has("collector") {
		return s, nil
	}
	return &drained{Service: s, kafka: cfg.Kafka, groups: fw.Groups, log: a.Log.Info}, nil
}

// forwarderService is the forwarder with its configured destinations
// reloadable: a SIGHUP that adds, removes or changes a destination starts,
// stops or restarts its sender.
type forwarderService struct {
	*forwarder.Forwarder
	source *forwarder.StaticSource
}

// Reload implements Reloader.
func (s *forwarderService) Reload(cfg Config) error {
	s.source.Set(cfg.resolved().Forwarder.Destinations)
	return nil
}

// The all-in-one's grant signing key, in its data directory: its policy
// service signs grants and assignments with it, and so does `auditpipe
// grant publish --key DATA/grants.key`; its collector trusts it.
const (
	GrantsKeyName       = "grants.key"
	GrantsPublicKeyName = "grants.pub"
)

func initCollector(_ context.Context, a *App) (Service, error) {
	rc := a.resolvedConfig()
	cfg := rc.Collector
	cfg.Kafka = a.kafkaFor(kafka.RoleCollector)
	if rc.Target == TargetAll {
		if err := ensureAgentKey(a); err != nil {
			return nil, err
		}
		// The all-in-one signs its chain checkpoints with a key of its own,
		// made at the first start (0600; the public key beside it).
		_, created, err := sign.EnsureKeyPair(cfg.ChainKeyFile, cfg.ChainKeyFile+".pub")
		if err != nil {
			return nil, fmt.Errorf("collector.chain_key_file: %w", err)
		}
		if created {
			a.Log.Info("created the chain checkpoint signing key", "key", cfg.ChainKeyFile, "public_key", cfg.ChainKeyFile+".pub")
		}
		if _, err := ensureGrantKey(a); err != nil {
			return nil, err
		}
	}
	c, err := collector.New(cfg, collector.Deps{Log: a.Log, Registry: a.http.registry, Stdin: a.deps.Stdin})
	if err != nil {
		return nil, err
	}
	return collectorService{c}, nil
}

// initAgent builds the host agent: it follows the signed grants for the
// host and its resources and, with agent.live on, makes the host match
// them; without it, it renders the plan under agent.root.
func initAgent(_ context.Context, a *App) (Service, error) {
	cfg := a.resolvedConfig().Agent
	// Against the embedded broker the agent's own principal (its role's
	// ACLs), not the broker's superuser.
	cfg.Kafka = a.kafkaFor(kafka.RoleAgent)
	if a.Config.Target == TargetAll {
		if err := ensureAgentKey(a); err != nil {
			return nil, err
		}
	}
	ag, err := agent.New(cfg, agent.Deps{Log: a.Log, Registry: a.http.registry})
	if err != nil {
		return nil, err
	}
	return ag, nil
}

// ensureGrantKey creates the all-in-one's grant signing key in its data
// directory (made 0700) on first start, both files 0600; later starts keep
// it. The policy module signs with it; the collector reads only its
// public half.
func ensureGrantKey(a *App) (*sign.Signer, error) {
	dir := a.Config.Embedded.DataDir
	if err := privfile.Dir(dir); err != nil {
		return nil, fmt.Errorf("embedded.data_dir: %w", err)
	}
	s, created, err := sign.EnsureKeyPair(filepath.Join(dir, GrantsKeyName), filepath.Join(dir, GrantsPublicKeyName))
	if err != nil {
		return nil, fmt.Errorf("the all-in-one's grant signing key: %w", err)
	}
	if created {
		a.Log.Info("first start: a grant signing key was created; grants signed by it are trusted (the policy service's, and auditpipe grant publish --key FILE)",
			"key", filepath.Join(dir, GrantsKeyName), "key_id", s.KeyID())
	}
	return s, nil
}

// The all-in-one's host agent key and the directory of enrolled host
// keys, in its data directory.
const (
	AgentKeyName    = "agent.key"
	HostKeysDirName = "host-keys"
)

// ensureAgentKey makes the all-in-one's agent key (agent.key_file,
// DATA/agent.key, 0600, its public half beside it) on the first start
// and enrolls it in host_keys.dir (DATA/host-keys) for the agent's host:
// agent.host, else the collector's host (--host), else the hostname. An
// agent of that host beside the all-in-one (make run's, a test's) signs
// with it; an agent of another host has its own key, enrolled by an
// administrator (`auditpipe agent enroll`). Later starts keep both; a
// host already enrolled with another key is left as it is (logged).
func ensureAgentKey(a *App) error {
	rc := a.resolvedConfig()
	if err := privfile.Dir(a.Config.Embedded.DataDir); err != nil {
		return fmt.Errorf("embedded.data_dir: %w", err)
	}
	s, created, err := sign.EnsureKeyPair(rc.Agent.KeyFile, rc.Agent.KeyFile+".pub")
	if err != nil {
		return fmt.Errorf("the all-in-one's agent key: %w", err)
	}
	host := rc.Agent.Host
	if host == "" {
		host = rc.Collector.Host
	}
	if host == "" {
		if host, err = os.Hostname(); err != nil {
			return fmt.Errorf("the all-in-one's agent key: the host to enroll it for: %w", err)
		}
	}
	path, err := sign.Enroll(rc.HostKeys.Dir, host, s.PublicKey())
	if err != nil {
		a.Log.Warn("the all-in-one's agent key is not enrolled: its agent's reports are refused until the host's enrolled key is its", "host", host, "err", err)
		return nil
	}
	// The all-in-one reads its enrolled keys as the user that wrote them,
	// and every file under --data is private (0600).
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("the all-in-one's agent key: %w", err)
	}
	if created {
		a.Log.Info("first start: the agent key was created and enrolled for its host (other hosts: auditpipe agent enroll)",
			"key", rc.Agent.KeyFile, "key_id", s.KeyID(), "host", host, "enrolled", path)
	}
	return nil
}

// collectorService is the collector with its static grants reloadable.
type collectorService struct{ *collector.Collector }

// Reload implements Reloader: the file's collector.grants apply to the
// events read from then on.
func (s collectorService) Reload(cfg Config) error {
	return s.ReloadGrants(cfg.Collector.Grants)
}

// drained is a consumer that, when its process stops, first waits until
// its groups committed everything on the audit topic: the last batch of
// the collector stopped before it.
type drained struct {
	Service
	kafka  kafka.Config
	groups func() []string
	log    func(msg string, args ...any)
}

// Drain implements Drainer.
func (d *drained) Drain(ctx context.Context) error {
	for _, g := range d.groups() {
		var lag int64
		err := waitFor(ctx, 100*time.Millisecond, func() (bool, error) {
			var err error
			lag, err = d.kafka.Lag(ctx, g, schemas.TopicAudit)
			return err == nil && lag == 0, err
		})
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("group %s has not taken the last events (lag %d): %w", g, lag, err)
			}
			return fmt.Errorf("group %s: %w", g, err)
		}
		d.log("drained", "group", g)
	}
	return nil
}

// Reload implements Reloader for the service drained wraps.
func (d *drained) Reload(cfg Config) error {
	if r, ok := d.Service.(Reloader); ok {
		return r.Reload(cfg)
	}
	return nil
}
