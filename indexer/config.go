package indexer

import (
	"errors"
	"fmt"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/schemas"
)

// Config is the indexer's configuration: the YAML file of `auditpipe
// indexer --config FILE`. Every field has a default (DefaultConfig).
type Config struct {
	// Kafka is the broker to consume from: the configuration file's
	// top-level kafka section, set by the composition root.
	Kafka kafka.Config `yaml:"-"`
	// HostKeysDir holds the host agents' enrolled keys (sign.KeyDir): an
	// inventory on opctl.agent.v1 is stored only when signed by the key
	// of the host it names. The top-level host_keys.dir, set by the
	// composition root.
	HostKeysDir string `yaml:"-"`
	// Group is the consumer group. Default "auditpipe-indexer".
	Group string `yaml:"group"`
	// Topics are consumed. Audit events (opctl.audit.v1) go to audit_events,
	// lifecycle events (opctl.lifecycle.v1) to lifecycle_events, both in
	// typed columns, and the host agents' inventories (opctl.agent.v1) to
	// instance_inventory; any other message goes to pipeline_messages
	// whole. Default: opctl.audit.v1, opctl.lifecycle.v1 and
	// opctl.agent.v1.
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
	// StateDir keeps the inventories' replay memory (InventoryStateFile:
	// per host, the number and digest of the last inventory stored), so
	// that a restart refuses an old inventory written again instead of
	// storing it. Default DefaultStateDir in the configuration file
	// (DATA/indexer in target all); "" keeps the memory in memory only,
	// empty at each start. Each indexer of a group keeps its own: after
	// a rebalance, a partition's new owner compares with what it stored
	// itself, when it last had the partition.
	StateDir string `yaml:"state_dir"`
	// Store is where rows go: a ClickHouse server when Store.ClickHouse.Addr
	// is set, else embedded chDB.
	// The configuration file's top-level clickhouse section, set by the
	// composition root.
	Store clickhouse.StoreConfig `yaml:"-"`
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

// DefaultStateDir is indexer.state_dir by default.
const DefaultStateDir = "/var/lib/auditpipe/indexer"

// InventoryStateFile is the file of indexer.state_dir that keeps the
// inventories' replay memory.
const InventoryStateFile = "inventory-seqs.json"

// DefaultConfig returns the configuration with every default set.
func DefaultConfig() Config {
	return Config{
		Kafka:           kafka.Config{}.WithDefaults(),
		Group:           "auditpipe-indexer",
		Topics:          []string{schemas.TopicAudit, schemas.TopicLifecycle, schemas.TopicAgent},
		DeadLetterTopic: schemas.TopicDeadLetter,
		Batch:           BatchConfig{MaxRows: 10000, MaxBytes: 16 << 20, MaxWait: time.Second},
		MaxRowBytes:     1 << 20,
		RetryBackoff:    200 * time.Millisecond,
		RetryBackoffMax: 30 * time.Second,
		ShutdownTimeout: 30 * time.Second,
		Store:           clickhouse.DefaultStoreConfig(),
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
