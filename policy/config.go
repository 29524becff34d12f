package policy

import (
	"time"

	"github.com/auditpipe/auditpipe/internal/config"
)

// Config is the policy service's configuration (the file's policy
// section; the composition root wires it).
type Config struct {
	// Store is where the state is kept.
	Store StoreConfig `yaml:"store"`
	// CatalogFile is an action catalog to use instead of the embedded
	// one (policy/catalog.yaml). Default "" (the embedded catalog).
	CatalogFile string `yaml:"catalog_file"`
	// TickInterval is how often time-driven work runs (expiry, future
	// starts, assignment windows). Default 5s.
	TickInterval time.Duration `yaml:"tick_interval"`
}

// StoreConfig selects and opens the store.
type StoreConfig struct {
	// Driver is "sqlite" (default: one process, embedded) or "postgres"
	// (several processes, high availability).
	Driver string `yaml:"driver"`
	// Path is the SQLite database file. Default "policy.db".
	Path string `yaml:"path"`
	// DSN is the PostgreSQL connection string (pgx form:
	// postgres://user:pass@host:5432/db?sslmode=verify-full, or
	// key=value). Required with driver postgres.
	DSN config.Secret `yaml:"dsn"`
	// BusyTimeout is how long SQLite waits for another writer. Default 10s.
	BusyTimeout time.Duration `yaml:"busy_timeout"`
	// MaxOpenConns bounds the connections. Default 8.
	MaxOpenConns int `yaml:"max_open_conns"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Store: DefaultStoreConfig(), TickInterval: 5 * time.Second}
}

// DefaultStoreConfig returns the store defaults (SQLite in policy.db).
func DefaultStoreConfig() StoreConfig {
	return StoreConfig{Driver: DriverSQLite, Path: "policy.db", BusyTimeout: 10 * time.Second, MaxOpenConns: 8}
}

// Validate names every bad field, by its path from the policy section.
func (c Config) Validate() error {
	var errs config.Errors
	errs.Merge("", c.Store.validate("policy.store"))
	if c.TickInterval <= 0 {
		errs.Addf("policy.tick_interval", "must be positive")
	}
	return errs.Err()
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
