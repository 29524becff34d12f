package main

import (
	"context"
	"fmt"
	"time"

	"github.com/auditpipe/auditpipe/internal/app"
	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/kafka"
)

// cmdKafka is `auditpipe kafka ensure-topics --config FILE`: for operators
// who manage topics themselves (kafka.topics.create: false), it creates
// every pipeline topic that does not exist yet with the file's
// partitions and replication factor, compacting grants and assignments;
// existing topics are left alone.
func cmdKafka(ctx context.Context, e env) error {
	if len(e.args) == 0 || e.args[0] != "ensure-topics" {
		fmt.Fprintln(e.stderr, "usage: auditpipe kafka ensure-topics --config FILE [--timeout D]")
		if len(e.args) > 0 && (e.args[0] == "-h" || e.args[0] == "--help") {
			return errHelp
		}
		return errUsage
	}
	fs := newFlagSet("kafka ensure-topics", "kafka ensure-topics --config FILE [--timeout D]", e.stderr)
	file := fs.String("config", "", "YAML configuration `FILE` whose kafka section names the brokers and the topics' layout")
	timeout := fs.Duration("timeout", time.Minute, "give up after `D` while the brokers are away")
	if err := parseFlags(fs, e.args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 || *file == "" {
		fs.Usage()
		return errUsage
	}
	cfg := app.DefaultConfig()
	if err := config.Load(*file, &cfg); err != nil {
		return err
	}
	kc := cfg.Kafka.WithDefaults()
	if err := kc.Validate("kafka"); err != nil {
		return err
	}
	topics := kafka.PipelineTopics(kc.Topics.Partitions)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := kc.EnsureTopicsRetry(ctx, e.log, topics...); err != nil {
		return err
	}
	for _, t := range topics {
		policy := "delete"
		if t.Compacted {
			policy = "compact"
		}
		fmt.Fprintf(e.stdout, "%s\tpartitions=%d\tcleanup.policy=%s\n", t.Name, t.Partitions, policy)
	}
	return nil
}
