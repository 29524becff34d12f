package main

import (
	"context"
	"fmt"

	"github.com/auditpipe/auditpipe/policy/auditreport"
)

// runRequestReport is `auditpipe request report ID [--output text|json]
// [--keystrokes] [--server URL [--token-file F] | --embedded DIR |
// --clickhouse ADDR]`: the access request's audit log report, read from
// ClickHouse directly or through a query endpoint.
func runRequestReport(ctx context.Context, e env) error {
	const synopsis = "request report ID [--output text|json] [--keystrokes] [--server URL [--token-file FILE] | --embedded DIR | --clickhouse ADDR]"
	fs := newFlagSet("request report", synopsis, e.stderr)
	var rf readerFlags
	rf.register(fs)
	output := fs.String("output", "text", "output format: text (the process tree) or json (the tree as nested objects)")
	keys := fs.Bool("keystrokes", false, "list each session's keystroke events (they are always counted)")
	if err := parseFlags(fs, e.args); err != nil {
		return err
	}
	if fs.NArg() != 1 || fs.Arg(0) == "" {
		fs.Usage()
		return errUsage
	}
	if *output != "text" && *output != "json" {
		return fmt.Errorf("--output %q: want text or json", *output)
	}
	q, closeReader, err := rf.open(ctx)
	if err != nil {
		return err
	}
	defer closeReader()
	rep, err := auditreport.Build(ctx, q, fs.Arg(0), auditreport.Options{Keystrokes: *keys})
	if err != nil {
		return err
	}
	if *output == "json" {
		return auditreport.WriteJSON(e.stdout, rep)
	}
	return auditreport.WriteText(e.stdout, rep)
}
