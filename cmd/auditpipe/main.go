// Command auditpipe is the operator-access audit pipeline: one binary with a
// subcommand per component (collector, indexer, forwarder, all-in-one) and
// client subcommands (parse, index, query, forward, …).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/auditpipe/auditpipe/internal/app"
)

// env is what a subcommand gets from main: its arguments and the process's
// standard streams, so tests can run subcommands in-process.
type env struct {
	args   []string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
	// hup receives SIGHUP: long-running targets reload on it.
	hup <-chan os.Signal
	// ready, when set (tests), receives the HTTP address of a running target.
	ready func(addr string)
}

type command struct {
	summary string
	run     func(ctx context.Context, e env) error
}

// commands is the one place subcommands are wired in.
func commands() map[string]command {
	return map[string]command{
		// Long-running targets (internal/app wires them).
		"run":        {"run a target: --target collector|agent|host|indexer|forwarder|policy|all [--config FILE]", targetCommand("")},
		"collector":  {"run --target collector: audit log → Kafka", targetCommand(app.TargetCollector)},
		"agent":      {"run --target agent: the host agent, grants enforced on this host (rendered under agent.root unless agent.live); 'agent prepare-root' makes a private package root for agent.work.package_root; 'agent enroll' enrolls a host agent's key (host_keys.dir)", runAgent},
		"host":       {"run --target host: the collector and the host agent, the normal host process", targetCommand(app.TargetHost)},
		"indexer":    {"run --target indexer: Kafka → ClickHouse or embedded chDB, query endpoint", targetCommand(app.TargetIndexer)},
		"forwarder":  {"run --target forwarder: Kafka → SIEMs; 'forwarder check' tests a SIEM connection", runForwarder},
		"policy":     {"run --target policy: controls, access requests, grants and their API; outbox → Kafka, expiry, agents' reports", targetCommand(app.TargetPolicy)},
		"scheduler":  {"run --target scheduler: the policy target plus scheduled patch jobs, work requests dispatched to agents and their progress", targetCommand(app.TargetScheduler)},
		"all-in-one": {"run --target all on the embedded defaults: kfake, collector, indexer into chDB, query endpoint, policy on SQLite", cmdAllInOne},
		"config":     {"'config validate FILE' checks a configuration file; 'config defaults' prints every field", cmdConfig},
		"kafka":      {"'kafka ensure-topics --config FILE' creates the pipeline's topics that do not exist yet", cmdKafka},
		"grant":      {"'grant publish|revoke' signs a grant or its revocation and publishes it on opctl.grants.v1; 'grant keygen' makes a signing key", cmdGrant},
		"version":    {"print the version", cmdVersion},

		// Clients.
		// The policy API's (policy/client): --server, default the all-in-one's.
		"compartment":   {"compartments (a tree) that group resources: create, list, show, update, delete", nounCommand("compartment", compartmentCommands)},
		"resource":      {"resources under operator control, with their hosts: create, list, show, update, delete", nounCommand("resource", resourceCommands)},
		"control":       {"operator controls (who approves which actions): create, list, show, update, delete", nounCommand("control", controlCommands)},
		"assignment":    {"assignments of a control to a resource: create, list, show, delete", nounCommand("assignment", assignmentCommands)},
		"request":       {"access requests: create, list, show, approve, reject, revoke, extend, complete, ask, answer, history; report (the audit log report, from ClickHouse)", nounCommand("request", requestCommands)},
		"job":           {"scheduled patch jobs (OCI OS Management): create, list, show, run-now, skip, delete, upcoming, history", nounCommand("job", jobCommands)},
		"workrequest":   {"work requests of the jobs' executions: list, show, logs, errors, cancel", nounCommand("workrequest", workRequestCommands)},
		"instance":      {"managed instances (hosts whose agent runs work requests): create, list, show, delete", nounCommand("instance", instanceCommands)},
		"instancegroup": {"managed instance groups: create, list, show, members, delete", nounCommand("instancegroup", instanceGroupCommands)},
		"report":        {"reports from ClickHouse: 'report compliance' prints the instances missing security updates, with their CVEs", nounCommand("report", reportCommands)},
		"parse":         {"raw auditd lines in, contract events (JSON lines) out", cmdParse},
		"forward":       {"send contract events (JSON lines, file or stdin) to a SIEM over syslog TLS", runForward},
		"index":         {"load contract events (JSON lines, file or stdin) into ClickHouse, idempotently", runIndex},
		"query":         {"run SQL or a named query against ClickHouse, chDB or a query endpoint", runQuery},
		"verify":        {"check the tamper-evident trail: hash chains, gaps, conflicts, signed checkpoints (ClickHouse or a SIEM file)", runVerify},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// SIGHUP reloads; it never ends the process (auditd sends it to its
	// plugins when it reloads).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	stdin, err := detachStdin()
	if err != nil {
		fmt.Fprintf(os.Stderr, "auditpipe: %v\n", err)
		os.Exit(1)
	}
	code := run(ctx, env{args: os.Args[1:], stdin: stdin, stdout: os.Stdout, stderr: os.Stderr, hup: hup})
	stop()
	os.Exit(code)
}

// run runs the command e.args names and returns the exit status.
func run(ctx context.Context, e env) int {
	args, stderr := e.args, e.stderr
	cmds := commands()
	if len(args) > 0 && args[0] == "--version" {
		args[0] = "version"
	}
	if len(args) == 2 && args[0] == "help" {
		if _, ok := cmds[args[1]]; ok {
			args = []string{args[1], "-h"} // help CMD: the command's usage
		}
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "auditpipe: unknown command %q\n\n", args[0])
		usage(stderr, cmds)
		return 2
	}
	e.log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	e.args = args[1:]
	if err := c.run(ctx, e); err != nil {
		if errors.Is(err, errHelp) {
			return 0
		}
		if errors.Is(err, errUsage) {
			return 2
		}
		fmt.Fprintf(stderr, "auditpipe %s: %v\n", args[0], err)
		var ee *exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		return 1
	}
	return 0
}

// errUsage and errHelp end a command that printed its usage: after a bad
// flag or argument (exit status 2), or when asked with -h (status 0).
var (
	errUsage = errors.New("usage")
	errHelp  = errors.New("help")
)

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: auditpipe <command> [flags] [args]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'auditpipe <command> -h' for a command's flags.")
}
