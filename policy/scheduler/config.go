package scheduler

import (
	"time"

	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/leader"
)

// Config is the scheduler module's configuration: the file's scheduler
// section, wired by the composition root (internal/app). The store and
// the signing key are the policy section's: the scheduler is part of the
// policy service.
type Config struct {
	// TickInterval is how often the leader fires due jobs and moves the
	// executions on (dispatch, timeouts, cutoffs, cleanup). A job fires
	// within about this long after its time_next_execution. Default 1s.
	TickInterval time.Duration `yaml:"tick_interval" doc:"how often the leader fires due jobs and moves executions on"`
	// Retention is how long finished work requests (SUCCEEDED, FAILED,
	// CANCELED) are kept; unstarted and running ones are never deleted.
	// Default 336h (14 days).
	Retention time.Duration `yaml:"retention" doc:"finished work requests older than this are deleted (default 14 days)"`
	// Leader is the election among scheduler processes on one PostgreSQL
	// (Tick runs on one at a time). Unused on SQLite.
	Leader leader.Config `yaml:"leader"`
	// Progress is the consumer of the agents' work progress reports
	// (schemas.WorkProgress) on opctl.agent.v1.
	Progress ProgressConfig `yaml:"progress"`
}

// ProgressConfig is the consumer of the work progress reports.
type ProgressConfig struct {
	// Topic is the agents' topic. Default opctl.agent.v1.
	Topic string `yaml:"topic"`
	// Group is the scheduler processes' consumer group. Default
	// auditpipe-scheduler.
	Group string `yaml:"group"`
	// DeadLetterTopic receives reports that cannot be applied (malformed,
	// an unknown work request, a host other than the work request's).
	// Default opctl.deadletter.v1.
	DeadLetterTopic string `yaml:"dead_letter_topic"`
	// HostKeysDir holds the host agents' enrolled keys (sign.KeyDir): a
	// report is applied only when signed by the key of the host it
	// names. The top-level host_keys.dir, set by the composition root.
	HostKeysDir string `yaml:"-"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		TickInterval: time.Second,
		Retention:    DefaultRetention,
		Leader:       leader.DefaultConfig(),
		Progress:     ProgressConfig{Topic: kafka.TopicAgent, Group: "auditpipe-scheduler", DeadLetterTopic: kafka.TopicDeadLetter},
	}
}

// Validate names every bad field by its path from the file's root;
// postgres says whether the leader section is used.
func (c Config) Validate(postgres bool) error {
	var errs config.Errors
	if c.TickInterval <= 0 {
		errs.Addf("scheduler.tick_interval", "%s: must be positive", c.TickInterval)
	}
	if c.Retention < time.Hour {
		errs.Addf("scheduler.retention", "%s: must be at least 1h", c.Retention)
	}
	if postgres {
		errs.Merge("scheduler.leader", c.Leader.Validate())
	}
	if c.Progress.Topic == "" {
		errs.Addf("scheduler.progress.topic", "required")
	}
	if c.Progress.Group == "" {
		errs.Addf("scheduler.progress.group", "required")
	}
	if c.Progress.DeadLetterTopic == "" {
		errs.Addf("scheduler.progress.dead_letter_topic", "required")
	}
	return errs.Err()
}
