package queryapi

import (
	"errors"
	"fmt"
	"time"

	"github.com/auditpipe/auditpipe/internal/config"
)

// Config is the query endpoint's section of the configuration file
// (query:): the bounds on what its statements may take of the process.
type Config struct {
	// MaxOutputBytes bounds one statement's answer as chDB formats it
	// (max_result_bytes bounds it before formatting only): a larger one
	// is refused with code 396. Default 64MiB.
	MaxOutputBytes config.Size `yaml:"max_output_bytes"`
	// ResultBudget bounds the formatted answers held at once by the
	// process: each running statement reserves three times
	// max_output_bytes (four for Native re-encoded for a client's
	// protocol revision) and keeps its answer's size while it is sent.
	// Default 1GiB; at least three times max_output_bytes.
	ResultBudget config.Size `yaml:"result_budget"`
	// ResultWait is how long a statement waits for room in the result
	// budget before it is answered 503 (not run). Default 10s.
	ResultWait time.Duration `yaml:"result_wait"`
	// LogWait is how long a statement waits for room in the query_log
	// buffer before it is answered 503 (not run): no statement runs whose
	// row the table cannot take. Default 2s.
	LogWait time.Duration `yaml:"log_wait"`
}

// DefaultConfig returns the section's defaults.
func DefaultConfig() Config {
	return Config{MaxOutputBytes: DefaultMaxOutputBytes, ResultBudget: DefaultResultBudget,
		ResultWait: DefaultResultWait, LogWait: DefaultQueryLogWait}
}

// WithDefaults fills the zero fields with their defaults.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	if c.MaxOutputBytes == 0 {
		c.MaxOutputBytes = d.MaxOutputBytes
	}
	if c.ResultBudget == 0 {
		c.ResultBudget = d.ResultBudget
	}
	if c.ResultWait == 0 {
		c.ResultWait = d.ResultWait
	}
	if c.LogWait == 0 {
		c.LogWait = d.LogWait
	}
	return c
}

// Validate checks the section (with its defaults filled in); errors name
// the field.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	if c.MaxOutputBytes < 0 {
		errs = append(errs, fmt.Errorf("query.max_output_bytes: %d: must be positive", c.MaxOutputBytes))
	}
	if c.ResultBudget < 0 || c.MaxOutputBytes > 0 && int64(c.ResultBudget) < resultHold(int64(c.MaxOutputBytes), false) {
		errs = append(errs, fmt.Errorf("query.result_budget: %d: must be at least three times query.max_output_bytes (%d), what one statement reserves", c.ResultBudget, c.MaxOutputBytes))
	}
	if c.ResultWait < 0 {
		errs = append(errs, errors.New("query.result_wait: must not be negative"))
	}
	if c.LogWait < 0 {
		errs = append(errs, errors.New("query.log_wait: must not be negative"))
	}
	return errors.Join(errs...)
}
