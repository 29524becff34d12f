package main

import "context"

// requestCommands are the subcommands of `auditpipe request`, one place
// for all of them.
func requestCommands() map[string]command {
	return map[string]command{
		"report": {"print an access request's audit log report: its sessions and commands as a process tree", runRequestReport},
	}
}

// cmdRequest is `auditpipe request SUBCOMMAND [flags] [args]`.
func cmdRequest(ctx context.Context, e env) error {
	return runSubcommand(ctx, e, "request", "[flags] [args]", requestCommands())
}
