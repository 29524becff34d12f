package app

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe/agent"
	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/collector"
	"github.com/auditpipe/auditpipe/forwarder"
	"github.com/auditpipe/auditpipe/indexer"
	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/httpserve"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/policy/scheduler"
	"github.com/auditpipe/auditpipe/queryapi"
)

// Config is the one configuration file of every target: a section per
// component, each with its defaults and its own Validate, and the
// process-wide settings.
type Config struct {
	// Target is what the process runs: collector, agent, host (collector
	// and agent), indexer, forwarder, policy or all (the all-in-one).
	// Default all; the --target flag overrides it.
	Target string `yaml:"target"`
	// Log is the process's log output.
	Log LogConfig `yaml:"log"`
	// Server is the process's one HTTP listener.
	Server ServerConfig `yaml:"server"`
	// DrainTimeout bounds the wait, at shutdown of a process that runs the
	// collector beside a consumer, for the consumer to take the
	// collector's last batch. Default 30s.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// Embedded is the all-in-one's embedded broker and store.
	Embedded EmbeddedConfig `yaml:"embedded"`
	// Kafka is the broker connection every component shares. Brokers are
	// required unless the target is all (the embedded broker).
	Kafka kafka.Config `yaml:"kafka"`
	// HostKeys are the host agents' enrolled public keys, which every
	// consumer of opctl.agent.v1 in the process (the policy service's
	// agent reports, the scheduler's work progress, the indexer's
	// inventories) verifies each message against.
	HostKeys HostKeysConfig `yaml:"host_keys"`
	// ClickHouse is the store the indexer writes and the query endpoint
	// reads: a server when clickhouse.clickhouse.addr is set, else chDB.
	ClickHouse clickhouse.StoreConfig `yaml:"clickhouse"`
	// Query bounds the query endpoint's statements: formatted answers
	// and the query_log buffer's wait.
	Query queryapi.Config `yaml:"query"`
	// Collector, Indexer and Forwarder are the components' own sections.
	Collector collector.Config `yaml:"collector"`
	Indexer   indexer.Config   `yaml:"indexer"`
	Forwarder forwarder.Config `yaml:"forwarder"`
	// Agent is the host agent (targets agent and host).
	Agent agent.Config `yaml:"agent"`
	// Policy is the control plane: its store, signing key, time-driven
	// work, outbox relay and the agents' reports.
	Policy policy.Config `yaml:"policy"`
	// Scheduler is the job scheduler (targets scheduler and all): part
	// of the policy service, in its store, signing with its key.
	Scheduler scheduler.Config `yaml:"scheduler"`
}

// HostKeysConfig is where the host agents' keys are enrolled.
type HostKeysConfig struct {
	// Dir holds one public key per host, DIR/<host>.pub (`auditpipe agent
	// enroll`; removing the file revokes the host's key). A message
	// on opctl.agent.v1 is applied only when the key enrolled for the
	// host it names signed it. Read at each message: an enrollment
	// takes effect without a restart. Default /etc/auditpipe/host-keys;
	// target all: embedded.data_dir/host-keys, where the all-in-one
	// enrolls its own agent's key (agent.key) at the first start.
	Dir string `yaml:"dir"`
}

// DefaultHostKeysDir is host_keys.dir by default.
const DefaultHostKeysDir = "/etc/auditpipe/host-keys"

// LogConfig is the log output.
type LogConfig struct {
	// Level is debug, info, warn or error. Default info.
	Level LogLevel `yaml:"level"`
	// Format is logfmt or json. Default logfmt.
	Format string `yaml:"format"`
}

// LogLevel is a slog level written as debug, info, warn or error.
type LogLevel string

// Level returns the slog level (info when unknown; Validate rejects that).
func (l LogLevel) Level() slog.Level {
	var v slog.Level
	if err := v.UnmarshalText([]byte(l)); err != nil {
		return slog.LevelInfo
	}
	return v
}

// ServerConfig is the HTTP listener: /metrics, /-/healthy, /-/ready and
// the target's API.
type ServerConfig struct {
	// HTTPAddr is host:port. Default by target (loopback): collector,
	// agent and host 127.0.0.1:9461, indexer 127.0.0.1:9462, forwarder
	// 127.0.0.1:9463, policy 127.0.0.1:9465, all 127.0.0.1:9464. "off"
	// serves nothing.
	HTTPAddr string `yaml:"http_addr"`
	// TLS puts the listener on HTTPS; with a client CA, client
	// certificates authenticate too (mutual TLS). Default off.
	TLS ServerTLS `yaml:"tls"`
	// Auth is who may call the endpoints.
	Auth AuthConfig `yaml:"auth"`
	// ReadHeaderTimeout bounds the TLS handshake and a request's
	// headers, and the wait for a new connection's first request: a
	// client that connects and sends nothing is closed after it.
	// Default 10s.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds the reading of a request, headers and body,
	// from its first byte; not the answer (query results and the
	// console's event stream may last longer). Default 60s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// IdleTimeout closes a keep-alive connection that sends no new
	// request for this long. Default 60s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes bounds a request's header. Default 64KiB.
	MaxHeaderBytes config.Size `yaml:"max_header_bytes"`
	// MaxConnections is the most connections the listener keeps open at
	// once. At the limit a new connection closes the oldest one that is
	// idle or has not sent a request yet, and is refused only when every
	// open one is in a request. Default 1024, lowered at start to a
	// quarter of the process's RLIMIT_NOFILE when that is less (the
	// process's descriptors are shared with chDB, the broker's log and
	// the Kafka clients).
	MaxConnections int `yaml:"max_connections"`
}

// options are the listener's bounds.
func (s ServerConfig) options() httpserve.Options {
	return httpserve.Options{
		ReadHeaderTimeout: s.ReadHeaderTimeout,
		ReadTimeout:       s.ReadTimeout,
		IdleTimeout:       s.IdleTimeout,
		MaxHeaderBytes:    int(s.MaxHeaderBytes),
		MaxConnections:    s.MaxConnections,
	}
}

// ServerTLS is the listener's certificate and the CA of client
// certificates.
type ServerTLS struct {
	// CertFile and KeyFile are the server's certificate (PEM). Both set
	// turn TLS on.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile verifies client certificates (PEM); a verified
	// certificate whose common name auth.clients lists authenticates.
	ClientCAFile string `yaml:"client_ca_file"`
}

// AuthConfig says who may call the process's endpoints. /-/healthy and
// /-/ready are open (probes); everything else needs a credential.
type AuthConfig struct {
	// TokensFile lists the bearer tokens by name, role and SHA-256 (never
	// the token). Required unless the target is all, which creates
	// embedded.data_dir/tokens.yaml and an admin token on first start, or
	// clients are configured.
	TokensFile string `yaml:"tokens_file"`
	// Clients map client certificate common names to roles.
	Clients []auth.Client `yaml:"clients"`
	// OpenMetrics serves /metrics without a credential; allowed only on a
	// loopback address. Default false.
	OpenMetrics bool `yaml:"open_metrics"`
}

// EmbeddedConfig configures the all-in-one's embedded parts.
type EmbeddedConfig struct {
	// DataDir holds the broker's log (kafka/), the chDB store (chdb/),
	// the collector's state (collector/), the replay memories of the
	// indexer (indexer/) and the forwarder (forwarder/), the policy store
	// (policy.db) and the grant signing key (grants.key); in target all,
	// these replace collector.state_dir, clickhouse.embedded.dir and the
	// defaults of indexer.state_dir, forwarder.assignments.state_dir,
	// policy.store.path and policy.key_file. Default data.
	DataDir string `yaml:"data_dir"`
	// Partitions of the audit topic on the embedded broker. Default 1.
	Partitions int `yaml:"partitions"`
	// KafkaListen is the embedded broker's address, host:port, so that
	// other processes (auditpipe grant publish, a forwarder) can reach it;
	// port 0 picks a free one at each start. It serves TLS and
	// SASL/SCRAM-SHA-512 only. Default 127.0.0.1:9466.
	KafkaListen string `yaml:"kafka_listen"`
	// KafkaTLS is the embedded broker's certificate. Default: a CA and a
	// certificate for the listen address made at the first start in
	// data_dir/kafka-tls (ca.crt is what clients trust).
	KafkaTLS EmbeddedTLS `yaml:"kafka_tls"`
	// KafkaMaxConnections is the most connections the embedded broker
	// keeps open at once. At the limit a new connection closes the
	// oldest one that has not authenticated yet, and is refused only
	// when every open one has. Default 512, lowered at start to a
	// quarter of the process's RLIMIT_NOFILE when that is less.
	KafkaMaxConnections int `yaml:"kafka_max_connections"`
	// KafkaAuthTimeout is the time a new connection to the embedded
	// broker has to finish its TLS handshake and SASL authentication
	// (up to its first request past them); it is closed otherwise.
	// Default 10s.
	KafkaAuthTimeout time.Duration `yaml:"kafka_auth_timeout"`
	// KafkaIdleTimeout closes an authenticated connection to the
	// embedded broker that sends no request for that long (Kafka's
	// connections.max.idle.ms; clients reconnect). Default 10m.
	KafkaIdleTimeout time.Duration `yaml:"kafka_idle_timeout"`
}

// EmbeddedTLS is a certificate for the embedded broker from elsewhere.
type EmbeddedTLS struct {
	// CertFile and KeyFile are the broker's certificate and key (PEM).
	// Default "": made in data_dir/kafka-tls.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// CAFile is what the all-in-one's own clients trust (PEM). Default
	// "": the system's pool.
	CAFile string `yaml:"ca_file"`
}

// DefaultKafkaListen is the embedded broker's address by default.
const DefaultKafkaListen = "127.0.0.1:9466"

// Target names.
const (
	TargetAll       = "all"
	TargetCollector = "collector"
	TargetAgent     = "agent"
	TargetHost      = "host"
	TargetIndexer   = "indexer"
	TargetForwarder = "forwarder"
	TargetPolicy    = "policy"
	TargetScheduler = "scheduler"
)

// DefaultConfig returns every default. The Kafka brokers are empty: a
// separate process must name them.
func DefaultConfig() Config {
	col := collector.DefaultConfig()
	col.Kafka = kafka.Config{}.WithDefaults()
	ix := indexer.DefaultConfig()
	ix.StateDir = indexer.DefaultStateDir
	ag := agent.DefaultConfig()
	ag.Kafka = kafka.Config{}.WithDefaults()
	fw := forwarder.Config{}.WithDefaults()
	fw.Assignments.StateDir = forwarder.DefaultStateDir
	pol := policy.DefaultConfig()
	// Resolved by target (resolved): policy.db, or DATA/policy.db in the
	// all-in-one.
	pol.Store.Path = ""
	return Config{
		Target:       TargetAll,
		Log:          LogConfig{Level: "info", Format: "logfmt"},
		DrainTimeout: 30 * time.Second,
		Server: ServerConfig{
			ReadHeaderTimeout: httpserve.DefaultReadHeaderTimeout,
			ReadTimeout:       httpserve.DefaultReadTimeout,
			IdleTimeout:       httpserve.DefaultIdleTimeout,
			MaxHeaderBytes:    httpserve.DefaultMaxHeaderBytes,
			MaxConnections:    httpserve.DefaultMaxConnections,
		},
		Embedded: EmbeddedConfig{DataDir: "data", Partitions: 1, KafkaListen: DefaultKafkaListen,
			KafkaMaxConnections: kafka.DefaultEmbeddedMaxConnections, KafkaAuthTimeout: kafka.DefaultEmbeddedAuthTimeout,
			KafkaIdleTimeout: kafka.DefaultEmbeddedIdleTimeout},
		Kafka:      kafka.Config{}.WithDefaults(),
		HostKeys:   HostKeysConfig{Dir: DefaultHostKeysDir},
		ClickHouse: ix.Store,
		Query:      queryapi.DefaultConfig(),
		Collector:  col,
		Indexer:    ix,
		Forwarder:  fw,
		Agent:      ag,
		Policy:     pol,
		Scheduler:  scheduler.DefaultConfig(),
	}
}

// DefaultHTTPAddr is the listener of a target when none is configured.
func DefaultHTTPAddr(target string) string {
	switch target {
	case TargetCollector, TargetAgent, TargetHost:
		return "127.0.0.1:9461"
	case TargetIndexer:
		return "127.0.0.1:9462"
	case TargetForwarder:
		return "127.0.0.1:9463"
	case TargetPolicy, TargetScheduler:
		return "127.0.0.1:9465"
	default:
		return "127.0.0.1:9464"
	}
}

// resolved returns cfg with what the sections share filled in: the one
// Kafka connection in every component, the store in the indexer, and in
// target all the paths under the data directory.
func (c Config) resolved() Config {
	if c.Server.HTTPAddr == "" {
		c.Server.HTTPAddr = DefaultHTTPAddr(c.Target)
	}
	if c.Target == TargetAll {
		c.Collector.StateDir = filepath.Join(c.Embedded.DataDir, "collector")
		if c.Collector.ChainKeyFile == "" {
			// Created at the first start (initCollector).
			c.Collector.ChainKeyFile = filepath.Join(c.Embedded.DataDir, "chain.key")
		}
		// Created at start (initCollector) and trusted besides
		// collector.grant_keys.
		c.Collector.OwnGrantKey = filepath.Join(c.Embedded.DataDir, GrantsPublicKeyName)
		// The same key signs the assignments the forwarder follows.
		c.Forwarder.OwnAssignmentKey = c.Collector.OwnGrantKey
		if c.Indexer.StateDir == indexer.DefaultStateDir {
			c.Indexer.StateDir = filepath.Join(c.Embedded.DataDir, "indexer")
		}
		if c.Forwarder.Assignments.StateDir == forwarder.DefaultStateDir {
			c.Forwarder.Assignments.StateDir = filepath.Join(c.Embedded.DataDir, "forwarder")
		}
		c.ClickHouse.Embedded.Dir = filepath.Join(c.Embedded.DataDir, "chdb")
		if c.HostKeys.Dir == "" || c.HostKeys.Dir == DefaultHostKeysDir {
			c.HostKeys.Dir = filepath.Join(c.Embedded.DataDir, HostKeysDirName)
		}
		if c.Agent.KeyFile == "" || c.Agent.KeyFile == agent.DefaultConfig().KeyFile {
			// Created and enrolled at the first start (ensureAgentKey).
			c.Agent.KeyFile = filepath.Join(c.Embedded.DataDir, AgentKeyName)
		}
		if c.Policy.Store.Path == "" {
			c.Policy.Store.Path = filepath.Join(c.Embedded.DataDir, policyDBName)
		}
		if c.Policy.KeyFile == "" {
			// The all-in-one's grant signing key (created at the first
			// start): its policy service signs grants and assignments
			// with it, which its collector (OwnGrantKey) and forwarder
			// (OwnAssignmentKey) trust.
			c.Policy.KeyFile = filepath.Join(c.Embedded.DataDir, GrantsKeyName)
		}
		if len(c.Kafka.Brokers) == 0 {
			// Replaced by the embedded broker's address at start; set
			// here so that validation of the sections passes.
			c.Kafka.Brokers = []string{"127.0.0.1:0"}
		}
	}
	if c.Policy.Store.Path == "" {
		c.Policy.Store.Path = policy.DefaultStoreConfig().Path
	}
	c.Kafka = c.Kafka.WithDefaults()
	c.Collector.Kafka = c.Kafka
	c.Indexer.Kafka = c.Kafka
	c.Indexer.Store = c.ClickHouse
	c.Forwarder.Kafka = c.Kafka
	c.Forwarder = c.Forwarder.WithDefaults()
	c.Agent.Kafka = c.Kafka
	c.Policy.AgentReports.HostKeysDir = c.HostKeys.Dir
	c.Scheduler.Progress.HostKeysDir = c.HostKeys.Dir
	c.Indexer.HostKeysDir = c.HostKeys.Dir
	c.Query = c.Query.WithDefaults()
	return c
}

// Validate checks the process-wide settings and the sections the target
// runs; every error names its field.
func (c Config) Validate() error {
	var errs []error
	if _, ok := targets()[c.Target]; !ok {
		errs = append(errs, fmt.Errorf("target: %q is not one of %s", c.Target, strings.Join(Targets(), ", ")))
		return errors.Join(errs...)
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(c.Log.Level)); err != nil {
		errs = append(errs, fmt.Errorf("log.level: %q is not debug, info, warn or error", c.Log.Level))
	}
	switch c.Log.Format {
	case "logfmt", "json":
	default:
		errs = append(errs, fmt.Errorf("log.format: %q is not logfmt or json", c.Log.Format))
	}
	if c.DrainTimeout <= 0 {
		errs = append(errs, fmt.Errorf("drain_timeout: %v must be positive", c.DrainTimeout))
	}
	r := c.resolved()
	mods, err := Modules(c.Target)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	has := func(m string) bool {
		for _, n := range mods {
			if n == m {
				return true
			}
		}
		return false
	}
	if c.Target == TargetAll {
		if c.Embedded.DataDir == "" {
			errs = append(errs, errors.New("embedded.data_dir: required for target all"))
		}
		if c.Embedded.Partitions < 1 {
			errs = append(errs, fmt.Errorf("embedded.partitions: %d must be at least 1", c.Embedded.Partitions))
		}
		if _, _, err := net.SplitHostPort(c.Embedded.KafkaListen); err != nil {
			errs = append(errs, fmt.Errorf("embedded.kafka_listen: %q: %w", c.Embedded.KafkaListen, err))
		}
		if c.Embedded.KafkaMaxConnections < 0 {
			errs = append(errs, fmt.Errorf("embedded.kafka_max_connections: %d is negative", c.Embedded.KafkaMaxConnections))
		}
		if c.Embedded.KafkaAuthTimeout < 0 {
			errs = append(errs, fmt.Errorf("embedded.kafka_auth_timeout: %s is negative", c.Embedded.KafkaAuthTimeout))
		}
		if c.Embedded.KafkaIdleTimeout < 0 {
			errs = append(errs, fmt.Errorf("embedded.kafka_idle_timeout: %s is negative", c.Embedded.KafkaIdleTimeout))
		}
		if t := c.Embedded.KafkaTLS; (t.CertFile == "") != (t.KeyFile == "") {
			errs = append(errs, errors.New("embedded.kafka_tls: cert_file and key_file go together"))
		}
	} else if err := r.Kafka.Validate("kafka"); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, r.Server.validate(c.Target))
	if (has("policy") || has("scheduler") || has("indexer")) && r.HostKeys.Dir == "" {
		errs = append(errs, errors.New("host_keys.dir: required: the host agents' enrolled keys, which every message of opctl.agent.v1 is verified against"))
	}
	if has("collector") {
		errs = append(errs, r.Collector.Validate())
	}
	if has("agent") {
		errs = append(errs, r.Agent.Validate())
	}
	if has("indexer") {
		errs = append(errs, r.Indexer.Validate())
	}
	if has("store") {
		errs = append(errs, r.ClickHouse.Validate("clickhouse"))
	}
	if has("query") {
		errs = append(errs, r.Query.Validate())
	}
	if has("forwarder") && (c.Target == TargetForwarder || len(c.Forwarder.Destinations) > 0 || c.Forwarder.Assignments.Follow) {
		errs = append(errs, r.Forwarder.Validate())
	}
	if has("policy") {
		errs = append(errs, r.validatePolicy(c.Policy.KeyFile))
	}
	if has("scheduler") {
		errs = append(errs, r.Scheduler.Validate(r.Policy.Store.Driver == policy.DriverPostgres))
	}
	return errors.Join(errs...)
}

// policyDBName is the all-in-one's policy store, in its data directory.
const policyDBName = "policy.db"

// validatePolicy checks the policy section of the resolved configuration;
// keyFile is the one the file set ("" in the all-in-one: its own key,
// created at the first start). A key file set must be readable, and in
// the all-in-one trusted by its collector.
func (c Config) validatePolicy(keyFile string) error {
	errs := []error{c.Policy.Validate()}
	switch {
	case keyFile == "" && c.Target != TargetAll:
		errs = append(errs, errors.New("policy.key_file: required: the private key that signs grants and assignments (auditpipe grant keygen makes one)"))
	case keyFile != "":
		key, err := sign.LoadPrivateKey(keyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("policy.key_file: %w", err))
			break
		}
		if c.Target != TargetAll {
			break
		}
		id := sign.KeyID(key.Public().(ed25519.PublicKey))
		// The all-in-one's collector and forwarder must trust it.
		trusts := func(paths []string) bool {
			kr, err := sign.LoadKeyring(paths...)
			if err != nil {
				return true // their own section reports the bad file
			}
			_, ok := kr.Keys()[id]
			return ok
		}
		if (c.Collector.FollowGrants == nil || *c.Collector.FollowGrants) && !trusts(c.Collector.GrantKeys) {
			errs = append(errs, fmt.Errorf("policy.key_file: %s: its public key is not in collector.grant_keys: the all-in-one's collector would refuse every grant (add it, or leave policy.key_file empty for the all-in-one's own key)", keyFile))
		}
		if c.Forwarder.Assignments.Follow && !trusts(c.Forwarder.AssignmentKeys) {
			errs = append(errs, fmt.Errorf("policy.key_file: %s: its public key is not in forwarder.assignment_keys: the all-in-one's forwarder would refuse every assignment (add it, or leave policy.key_file empty)", keyFile))
		}
	}
	if c.Policy.SeedFile != "" {
		if _, err := policy.LoadSeed(c.Policy.SeedFile); err != nil {
			errs = append(errs, fmt.Errorf("policy.seed_file: %w", err))
		}
	}
	return errors.Join(errs...)
}

// validate checks the listener's TLS and that something can authenticate.
func (s ServerConfig) validate(target string) error {
	var errs []error
	if s.HTTPAddr == "off" {
		return nil
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"read_header_timeout", s.ReadHeaderTimeout}, {"read_timeout", s.ReadTimeout}, {"idle_timeout", s.IdleTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("server.%s: %s is negative", d.name, d.v))
		}
	}
	if s.MaxHeaderBytes < 0 || s.MaxHeaderBytes > 16<<20 {
		errs = append(errs, fmt.Errorf("server.max_header_bytes: %s is not between 0 and 16MiB", s.MaxHeaderBytes))
	}
	if s.MaxConnections < 0 {
		errs = append(errs, fmt.Errorf("server.max_connections: %d is negative", s.MaxConnections))
	}
	if (s.TLS.CertFile == "") != (s.TLS.KeyFile == "") {
		errs = append(errs, errors.New("server.tls: cert_file and key_file go together"))
	}
	if s.TLS.ClientCAFile != "" && s.TLS.CertFile == "" {
		errs = append(errs, errors.New("server.tls.client_ca_file: needs cert_file and key_file (client certificates need TLS)"))
	}
	if len(s.Auth.Clients) > 0 && s.TLS.ClientCAFile == "" {
		errs = append(errs, errors.New("server.auth.clients: needs server.tls.client_ca_file to verify their certificates"))
	}
	if s.Auth.OpenMetrics && !isLoopback(s.HTTPAddr) {
		errs = append(errs, fmt.Errorf("server.auth.open_metrics: %s is not a loopback address: /metrics may be open only on loopback", s.HTTPAddr))
	}
	hasAPI := target == TargetAll || target == TargetIndexer || target == TargetPolicy || target == TargetScheduler
	if target != TargetAll && s.Auth.TokensFile == "" && len(s.Auth.Clients) == 0 && (hasAPI || !s.Auth.OpenMetrics) {
		errs = append(errs, errors.New("server.auth.tokens_file: required (or server.auth.clients; for /metrics alone on loopback, server.auth.open_metrics)"))
	}
	return errors.Join(errs...)
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// PolicyConfig is the policy section with what the target fills in:
// the store and the key in the data directory of the all-in-one.
func (c Config) PolicyConfig() policy.Config { return c.resolved().Policy }
