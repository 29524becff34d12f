package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe/internal/app"
	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/kafka"
)

// cmdKafka is `auditpipe kafka ensure-topics --config FILE`: for operators
// who manage topics themselves (kafka.topics.create: false), it creates
// every pipeline topic that does not exist yet with the file's
// partitions and replication factor, compacting grants and assignments;
// existing topics are left alone. `auditpipe kafka ensure-acls` creates
// the roles' ACLs.
func cmdKafka(ctx context.Context, e env) error {
	if len(e.args) > 0 && e.args[0] == "ensure-acls" {
		return cmdKafkaACLs(ctx, e)
	}
	if len(e.args) == 0 || e.args[0] != "ensure-topics" {
		fmt.Fprintln(e.stderr, "usage: auditpipe kafka ensure-topics --config FILE [--timeout D]\n       auditpipe kafka ensure-acls --config FILE [--user ROLE=USERNAME]... [--timeout D]")
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
	kc, err := loadKafka(*file)
	if err != nil {
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

// cmdKafkaACLs is `auditpipe kafka ensure-acls --config FILE`: it creates,
// on a cluster with an authorizer, the ACLs of every role for its
// principal (User:<role>, or the username --user names), as the file's
// kafka section connects (a principal allowed to alter ACLs), and prints
// them. ACLs that exist are left alone.
func cmdKafkaACLs(ctx context.Context, e env) error {
	fs := newFlagSet("kafka ensure-acls", "kafka ensure-acls --config FILE [--user ROLE=USERNAME]... [--timeout D]", e.stderr)
	file := fs.String("config", "", "YAML configuration `FILE` whose kafka section names the brokers and an administrator's credentials")
	timeout := fs.Duration("timeout", time.Minute, "give up after `D`")
	users := map[kafka.Role]string{}
	for _, r := range kafka.Roles() {
		users[r] = string(r)
	}
	fs.Func("user", "`ROLE=USERNAME`: the SASL username of a role (default: the role's name; repeatable)", func(v string) error {
		role, user, ok := strings.Cut(v, "=")
		if !ok || user == "" || !slices.Contains(kafka.Roles(), kafka.Role(role)) {
			return fmt.Errorf("%q: want ROLE=USERNAME, ROLE one of %v", v, kafka.Roles())
		}
		users[kafka.Role(role)] = user
		return nil
	})
	if err := parseFlags(fs, e.args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 || *file == "" {
		fs.Usage()
		return errUsage
	}
	kc, err := loadKafka(*file)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := kc.EnsureACLs(ctx, users); err != nil {
		return err
	}
	for _, r := range kafka.Roles() {
		for _, a := range kafka.RoleACLs(r) {
			fmt.Fprintf(e.stdout, "%s\t%s\n", kafka.Principal(users[r]), a)
		}
	}
	return nil
}

// loadKafka returns the kafka section of the configuration file, with its
// defaults, validated.
func loadKafka(file string) (kafka.Config, error) {
	cfg := app.DefaultConfig()
	if err := config.Load(file, &cfg); err != nil {
		return kafka.Config{}, err
	}
	kc := cfg.Kafka.WithDefaults()
	if err := kc.Validate("kafka"); err != nil {
		return kafka.Config{}, err
	}
	return kc, nil
}
