package policy

import (
	"time"

	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/leader"
)

// Config is the policy service's configuration: the file's policy
// section, wired by the composition root (internal/app).
type Config struct {
	// Store is where the state is kept.
	Store StoreConfig `yaml:"store"`
	// KeyFile is the Ed25519 private key (PEM or base64, mode 0600;
	// `auditpipe grant keygen` makes one) that signs what the service
	// publishes: grants on opctl.grants.v1 and assignments on
	// opctl.assignments.v1. Required for target policy. In target all it
	// defaults to embedded.data_dir/grants.key, created at the first
	// start, which the all-in-one's collector trusts.
	KeyFile string `yaml:"key_file" doc:"private key signing grants and assignments; required for target policy; all-in-one: DATA/grants.key, created at first start"`
	// CatalogFile is an action catalog to use instead of the embedded
	// one (policy/catalog.yaml). Default "" (the embedded catalog).
	CatalogFile string `yaml:"catalog_file"`
	// TickInterval is how often the leader does the time-driven work
	// (expiry, future starts, assignment windows): an expiry reaches the
	// collectors within about this long plus the relay's delay. Default 1s.
	TickInterval time.Duration `yaml:"tick_interval" doc:"how often the leader expires requests, starts future accesses and applies assignment windows"`
	// Relay publishes the outbox to Kafka.
	Relay RelayConfig `yaml:"relay"`
	// Leader is the election among policy processes on one PostgreSQL
	// (the time-driven work and the relay run on one at a time). Unused
	// on SQLite, where the one process always leads.
	Leader leader.Config `yaml:"leader"`
	// AgentReports is the consumer of the host agents' reports on
	// opctl.agent.v1, which move requests to DEPLOYED, DEPLOYFAILED or
	// UNDEPLOYED.
	AgentReports AgentReportsConfig `yaml:"agent_reports"`
	// SeedFile, when set, is a YAML file of compartments, resources,
	// controls, assignments and access requests created through the
	// service at the first start, when the store holds no compartment
	// yet (deploy/sample/policy.yaml is the bundled sample's). Default "".
	SeedFile string `yaml:"seed_file" doc:"objects created at start when missing (make run: deploy/sample/policy.yaml)"`
}

// RelayConfig is the outbox relay's configuration.
type RelayConfig struct {
	// PollInterval is how often the relay looks for records written by
	// other processes (a change made by this process wakes it at once).
	// Default 200ms.
	PollInterval time.Duration `yaml:"poll_interval" doc:"how often the relay looks for other processes' outbox records"`
	// BatchSize bounds the records read and published at once. Default 500.
	BatchSize int `yaml:"batch_size"`
	// WriteTimeout bounds one attempt to publish a batch; a failed
	// attempt is counted and retried with backoff. Default 10s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// Retention is how long published records stay in the outbox before
	// they are deleted (the history table keeps every change for good).
	// Default 168h.
	Retention time.Duration `yaml:"retention"`
}

// AgentReportsConfig is the consumer of opctl.agent.v1.
type AgentReportsConfig struct {
	// Enabled consumes the agents' reports. Default true.
	Enabled *bool `yaml:"enabled"`
	// Topic is the agents' topic. Default opctl.agent.v1.
	Topic string `yaml:"topic"`
	// Group is the consumer group of the policy processes. Default
	// auditpipe-policy.
	Group string `yaml:"group"`
	// DeadLetterTopic receives reports that cannot be applied (malformed,
	// an unknown login, a host the grant does not name). Default
	// opctl.deadletter.v1.
	DeadLetterTopic string `yaml:"dead_letter_topic"`
	// HostKeysDir holds the host agents' enrolled keys (sign.KeyDir): a
	// report is applied only when signed by the key of the host it
	// names. The top-level host_keys.dir, set by the composition root.
	HostKeysDir string `yaml:"-"`
}

// On reports whether the consumer runs.
func (c AgentReportsConfig) On() bool { return c.Enabled == nil || *c.Enabled }

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	on := true
	return Config{
		Store:        DefaultStoreConfig(),
		TickInterval: time.Second,
		Relay:        RelayConfig{PollInterval: 200 * time.Millisecond, BatchSize: 500, WriteTimeout: 10 * time.Second, Retention: 168 * time.Hour},
		Leader:       leader.DefaultConfig(),
		AgentReports: AgentReportsConfig{Enabled: &on, Topic: kafka.TopicAgent, Group: "auditpipe-policy", DeadLetterTopic: kafka.TopicDeadLetter},
	}
}

// DefaultStoreConfig returns the store defaults (SQLite in policy.db).
func DefaultStoreConfig() StoreConfig {
	return StoreConfig{Driver: DriverSQLite, Path: "policy.db", BusyTimeout: 10 * time.Second, MaxOpenConns: 8}
}

// Validate names every bad field, by its path from the policy section.
// The key file is the composition root's to check (it may be created at
// start).
func (c Config) Validate() error {
	var errs config.Errors
	errs.Merge("", c.Store.validate("policy.store"))
	if c.TickInterval <= 0 {
		errs.Addf("policy.tick_interval", "%s: must be positive", c.TickInterval)
	}
	errs.Merge("", c.Relay.validate("policy.relay"))
	if c.Store.Driver == DriverPostgres {
		errs.Merge("policy.leader", c.Leader.Validate())
	}
	if c.AgentReports.On() {
		if c.AgentReports.Topic == "" {
			errs.Addf("policy.agent_reports.topic", "required while agent_reports.enabled")
		}
		if c.AgentReports.Group == "" {
			errs.Addf("policy.agent_reports.group", "required while agent_reports.enabled")
		}
		if c.AgentReports.DeadLetterTopic == "" {
			errs.Addf("policy.agent_reports.dead_letter_topic", "required while agent_reports.enabled")
		}
	}
	return errs.Err()
}

func (c RelayConfig) validate(prefix string) error {
	var errs config.Errors
	if c.PollInterval <= 0 {
		errs.Addf(prefix+".poll_interval", "%s: must be positive", c.PollInterval)
	}
	if c.BatchSize < 1 || c.BatchSize > 10000 {
		errs.Addf(prefix+".batch_size", "%d: must be 1..10000", c.BatchSize)
	}
	if c.WriteTimeout <= 0 {
		errs.Addf(prefix+".write_timeout", "%s: must be positive", c.WriteTimeout)
	}
	if c.Retention <= 0 {
		errs.Addf(prefix+".retention", "%s: must be positive", c.Retention)
	}
	return errs.Err()
}

// StoreConfig selects and opens the store.
type StoreConfig struct {
	// Driver is "sqlite" (default: one process, embedded) or "postgres"
	// (several processes, high availability).
	Driver string `yaml:"driver"`
	// Path is the SQLite database file. Default "policy.db"; in target
	// all, embedded.data_dir/policy.db.
	Path string `yaml:"path" doc:"SQLite file; default policy.db, DATA/policy.db in the all-in-one"`
	// DSN is the PostgreSQL connection string (pgx form:
	// postgres://user:pass@host:5432/db?sslmode=verify-full, or
	// key=value). Required with driver postgres.
	DSN config.Secret `yaml:"dsn"`
	// BusyTimeout is how long SQLite waits for another writer. Default 10s.
	BusyTimeout time.Duration `yaml:"busy_timeout"`
	// MaxOpenConns bounds the connections. Default 8.
	MaxOpenConns int `yaml:"max_open_conns"`
}

// Validate names every bad field of the store section.
func (c StoreConfig) Validate() error { return c.validate("policy.store") }

func (c StoreConfig) validate(prefix string) error {
	var errs config.Errors
	switch c.Driver {
	case DriverSQLite:
		if c.Path == "" {
			errs.Addf(prefix+".path", "required with driver sqlite")
		}
	case DriverPostgres:
		if c.DSN.Reveal() == "" {
			errs.Addf(prefix+".dsn", "required with driver postgres")
		}
	default:
		errs.Addf(prefix+".driver", "%q is not sqlite or postgres", c.Driver)
	}
	if c.BusyTimeout <= 0 {
		errs.Addf(prefix+".busy_timeout", "must be positive")
	}
	if c.MaxOpenConns <= 0 {
		errs.Addf(prefix+".max_open_conns", "must be positive")
	}
	return errs.Err()
}
