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
)

// env is what a subcommand gets from main: its arguments and the process's
// standard streams, so tests can run subcommands in-process.
type env struct {
	args   []string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
}

type command struct {
	summary string
	run     func(ctx context.Context, e env) error
}

// commands is the one place subcommands are wired in.
func commands() map[string]command {
	return map[string]command{
		"parse":      {"raw auditd lines in, contract events (JSON lines) out", cmdParse},
		"collector":  {"the long-running collector: audit log → Kafka (--config FILE)", cmdCollector},
		"all-in-one": {"the whole pipeline in one process: kfake, collector, indexer into chDB, query endpoint", cmdAllInOne},

		// forwarder (issue 4)
		"forward":   {"send contract events (JSON lines, file or stdin) to a SIEM over syslog TLS", runForward},
		"forwarder": {"forward audit events from Kafka to SIEMs (--config FILE); 'forwarder check' tests a SIEM connection", runForwarder},

		// indexer (issue 3)
		"index":   {"load contract events (JSON lines, file or stdin) into ClickHouse, idempotently", runIndex},
		"indexer": {"index Kafka topics into ClickHouse or embedded chDB (--config FILE)", runIndexer},
		"query":   {"run SQL or a named query against ClickHouse, chDB or a query endpoint", runQuery},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmds := commands()
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
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := c.run(ctx, env{args: args[1:], stdin: stdin, stdout: stdout, stderr: stderr, log: log}); err != nil {
		if errors.Is(err, errHelp) {
			return 0
		}
		if errors.Is(err, errUsage) {
			return 2
		}
		fmt.Fprintf(stderr, "auditpipe %s: %v\n", args[0], err)
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
