package main

import (
	"context"
	"fmt"
	"io"
	"sort"
)

// runSubcommand runs the subcommand of `auditpipe NAME` that e.args
// names, from subs; with none, or -h, it prints the group's usage.
func runSubcommand(ctx context.Context, e env, name, argsHint string, subs map[string]command) error {
	if len(e.args) == 0 {
		subcommandUsage(e.stderr, name, argsHint, subs)
		return errUsage
	}
	switch e.args[0] {
	case "-h", "--help", "help":
		subcommandUsage(e.stderr, name, argsHint, subs)
		return errHelp
	}
	c, ok := subs[e.args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "auditpipe %s: unknown subcommand %q\n\n", name, e.args[0])
		subcommandUsage(e.stderr, name, argsHint, subs)
		return errUsage
	}
	e.args = e.args[1:]
	return c.run(ctx, e)
}

// subcommandUsage lists the subcommands of `auditpipe NAME`, by name.
func subcommandUsage(w io.Writer, name, argsHint string, subs map[string]command) {
	fmt.Fprintf(w, "usage: auditpipe %s <subcommand> %s\n", name, argsHint)
	fmt.Fprintln(w, "\nsubcommands:")
	names := make([]string, 0, len(subs))
	width := 10
	for n := range subs {
		names = append(names, n)
		width = max(width, len(n)+1)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-*s %s\n", width, n, subs[n].summary)
	}
}
