package indexer

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/tlsconfig"
	"github.com/auditpipe/auditpipe/schemas"
)

// Config is the indexer's configuration: the YAML file of `auditpipe
// indexer --config FILE`. Every field has a default (DefaultConfig).
type Config struct {
	// Kafka is the broker to consume from: the configuration file's
	// top-level kafka section, set by the composition root.
	Kafka kafka.Config `yaml:"-"`
	// Group is the consumer group. Default "auditpipe-indexer".
	Group string `yaml:"group"`
	// Topics are consumed. Audit events (opctl.audit.v1) go to audit_events;
	// any other topic goes to pipeline_messages whole. Default:
	// opctl.audit.v1 and opctl.lifecycle.v1.
	Topics []string `yaml:"topics"`
	// DeadLetterTopic receives messages that cannot be indexed, with the
	// reason. Default opctl.deadletter.v1.
	DeadLetterTopic string `yaml:"dead_letter_topic"`
	// Batch bounds one insert.
	Batch BatchConfig `yaml:"batch"`
	// MaxRowBytes: a larger message is dead-lettered as "oversize".
	// Default 1 MiB.
	MaxRowBytes int `yaml:"max_row_bytes"`
	// RetryBackoff is the first wait after a failed insert or commit; it
	// doubles up to RetryBackoffMax. Defaults 200ms and 30s.
	RetryBackoff    time.Duration `yaml:"retry_backoff"`
	RetryBackoffMax time.Duration `yaml:"retry_backoff_max"`
	// ShutdownTimeout bounds the final flush (insert and commit of the last
	// batch) after the context is cancelled. Default 30s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// Store is where rows go: a ClickHouse server when Store.ClickHouse.Addr
	// is set, else embedded chDB.
	// The configuration file's top-level clickhouse section, set by the
	// composition root.
	Store StoreConfig `yaml:"-"`
}

// BatchConfig bounds a batch: it is inserted when any bound is reached.
type BatchConfig struct {
	// MaxRows per insert. Default 10000.
	MaxRows int `yaml:"max_rows"`
	// MaxBytes of message values per insert. Default 16 MiB.
	MaxBytes int `yaml:"max_bytes"`
	// MaxWait from the first message of a batch to its insert. Default 1s.
	MaxWait time.Duration `yaml:"max_wait"`
}

// StoreConfig chooses and configures the ClickHouse the indexer writes to.
type StoreConfig struct {
	// ClickHouse is a server; used when Addr is set.
	ClickHouse ServerConfig `yaml:"clickhouse"`
	// Embedded is chDB; used when no server is configured.
	Embedded EmbeddedConfig `yaml:"embedded"`
	// RetentionDays is the TTL of audit_events and pipeline_messages;
	// 0 keeps rows forever. Default 365.
	RetentionDays int `yaml:"retention_days"`
}

// EmbeddedConfig configures chDB.
type EmbeddedConfig struct {
	// Dir is the data directory. Default "data/chdb".
	Dir string `yaml:"dir"`
	// Lib is the path of libchdb.so. Default: $AUDITPIPE_CHDB_LIB, else
	// $AUDITPIPE_CACHE/chdb/libchdb.so, else ~/.cache/auditpipe/chdb/libchdb.so.
	Lib string `yaml:"lib"`
}

// ServerConfig configures a ClickHouse server connection (clickhouse-go/v2,
// servers 25.8 and later).
type ServerConfig struct {
	// Addr lists host:port of the servers. Default none (embedded).
	Addr []string `yaml:"addr"`
	// Protocol is "native" (port 9000/9440) or "http" (8123/8443). Default "native".
	Protocol string `yaml:"protocol"`
	// Database holds the tables; it must exist unless it is "default".
	// Default "default".
	Database string `yaml:"database"`
	// Username and Password authenticate. Default "default" and empty.
	Username string `yaml:"username"`
	Password Secret `yaml:"password"`
	// TLS for the connection. Default off.
	TLS tlsconfig.Config `yaml:"tls"`
	// DialTimeout bounds a connection attempt. Default 10s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
}

// Secret is a string that never prints: logs and %v show "REDACTED".
type Secret string

// String implements fmt.Stringer.
func (Secret) String() string { return "REDACTED" }

// GoString implements fmt.GoStringer.
func (Secret) GoString() string { return "REDACTED" }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// DefaultConfig returns the configuration with every default set.
func DefaultConfig() Config {
	return Config{
		Kafka:           kafka.Config{}.WithDefaults(),
		Group:           "auditpipe-indexer",
		Topics:          []string{schemas.TopicAudit, schemas.TopicLifecycle},
		DeadLetterTopic: schemas.TopicDeadLetter,
		Batch:           BatchConfig{MaxRows: 10000, MaxBytes: 16 << 20, MaxWait: time.Second},
		MaxRowBytes:     1 << 20,
		RetryBackoff:    200 * time.Millisecond,
		RetryBackoffMax: 30 * time.Second,
		ShutdownTimeout: 30 * time.Second,
		Store: StoreConfig{
			ClickHouse:    ServerConfig{Protocol: "native", Database: "default", Username: "default", DialTimeout: 10 * time.Second},
			Embedded:      EmbeddedConfig{Dir: "data/chdb"},
			RetentionDays: 365,
		},
	}
}

// Validate names the first bad field of each kind, prefixed with "indexer".
func (c Config) Validate() error {
	var errs []error
	if c.Group == "" {
		errs = append(errs, errors.New("indexer.group: must not be empty"))
	}
	if len(c.Topics) == 0 {
		errs = append(errs, errors.New("indexer.topics: at least one topic is required"))
	}
	for _, t := range c.Topics {
		if t == c.DeadLetterTopic && t != "" {
			// Dead letters of the dead-letter topic would loop; they are
			// stored whole instead, which never fails, so this is allowed.
			continue
		}
		if t == "" {
			errs = append(errs, errors.New("indexer.topics: empty topic name"))
		}
	}
	if c.DeadLetterTopic == "" {
		errs = append(errs, errors.New("indexer.dead_letter_topic: must not be empty"))
	}
	if c.Batch.MaxRows <= 0 {
		errs = append(errs, fmt.Errorf("indexer.batch.max_rows: %d: must be positive", c.Batch.MaxRows))
	}
	if c.Batch.MaxBytes <= 0 {
		errs = append(errs, fmt.Errorf("indexer.batch.max_bytes: %d: must be positive", c.Batch.MaxBytes))
	}
	if c.Batch.MaxWait <= 0 {
		errs = append(errs, fmt.Errorf("indexer.batch.max_wait: %v: must be positive", c.Batch.MaxWait))
	}
	if c.MaxRowBytes <= 0 {
		errs = append(errs, fmt.Errorf("indexer.max_row_bytes: %d: must be positive", c.MaxRowBytes))
	}
	if c.RetryBackoff <= 0 || c.RetryBackoffMax < c.RetryBackoff {
		errs = append(errs, fmt.Errorf("indexer.retry_backoff: %v (max %v): must be positive and at most retry_backoff_max", c.RetryBackoff, c.RetryBackoffMax))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("indexer.shutdown_timeout: %v: must be positive", c.ShutdownTimeout))
	}
	return errors.Join(errs...)
}

// Validate checks the store configuration; prefix names the enclosing field.
func (s StoreConfig) Validate(prefix string) error {
	var errs []error
	if s.RetentionDays < 0 {
		errs = append(errs, fmt.Errorf("%s.retention_days: %d: must be 0 (forever) or positive", prefix, s.RetentionDays))
	}
	if len(s.ClickHouse.Addr) > 0 {
		for _, a := range s.ClickHouse.Addr {
			if _, _, err := net.SplitHostPort(a); err != nil {
				errs = append(errs, fmt.Errorf("%s.clickhouse.addr: %q: %w", prefix, a, err))
			}
		}
		switch s.ClickHouse.Protocol {
		case "native", "http":
		default:
			errs = append(errs, fmt.Errorf("%s.clickhouse.protocol: %q: want native or http", prefix, s.ClickHouse.Protocol))
		}
		if s.ClickHouse.Database == "" {
			errs = append(errs, fmt.Errorf("%s.clickhouse.database: must not be empty", prefix))
		}
		if err := s.ClickHouse.TLS.Validate(prefix + ".clickhouse.tls"); err != nil {
			errs = append(errs, err)
		}
	} else if s.Embedded.Dir == "" {
		errs = append(errs, fmt.Errorf("%s.embedded.dir: must not be empty when no clickhouse.addr is set", prefix))
	}
	return errors.Join(errs...)
}
