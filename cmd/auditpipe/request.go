package main

import (
	"context"
	"fmt"
	"io"
	"sort"
)

// requestCommands are the subcommands of `auditpipe request`, one place
// for all of them.
func requestCommands() map[string]command {
	return map[string]command{
		"report": {"print an access request's audit log report: its sessions and commands as a process tree", runRequestReport},
	}
}

// cmdRequest is `auditpipe request SUBCOMMAND [flags] [args]`.
func cmdRequest(ctx context.Context, e env) error {
	subs := requestCommands()
	if len(e.args) == 0 {
		requestUsage(e.stderr, subs)
		return errUsage
	}
	switch e.args[0] {
	case "-h", "--help", "help":
		requestUsage(e.stderr, subs)
		return errHelp
	}
	c, ok := subs[e.args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "auditpipe request: unknown subcommand %q\n\n", e.args[0])
		requestUsage(e.stderr, subs)
		return errUsage
	}
	e.args = e.args[1:]
	return c.run(ctx, e)
}

func requestUsage(w io.Writer, subs map[string]command) {
	fmt.Fprintln(w, "usage: auditpipe request <subcommand> [flags] [args]")
	fmt.Fprintln(w, "\nsubcommands:")
	names := make([]string, 0, len(subs))
	for n := range subs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, subs[n].summary)
	}
}
