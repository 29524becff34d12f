package main

import (
	"context"
	"fmt"

	"github.com/auditpipe/auditpipe/report/compliance"
)

// reportCommands are the subcommands of `auditpipe report`.
func reportCommands() map[string]command {
	return map[string]command{
		"compliance": {"print the patch compliance report: instances missing security updates, with their CVEs", runReportCompliance},
	}
}

// runReportCompliance is `auditpipe report compliance [--compartment ID
// [--recursive] | --group ID] [--details] [--output table|json]
// [--server URL [--token-file F] | --embedded DIR | --clickhouse ADDR]`:
// the seed's compliance_report.py over the latest inventory of each
// instance in ClickHouse.
func runReportCompliance(ctx context.Context, e env) error {
	const synopsis = "report compliance [--compartment ID [--recursive] | --group ID] [--details] [--output table|json] [--server URL [--token-file FILE] | --embedded DIR | --clickhouse ADDR]"
	fs := newFlagSet("report compliance", synopsis, e.stderr)
	var rf readerFlags
	rf.register(fs)
	var scope compliance.Scope
	fs.StringVar(&scope.Compartment, "compartment", "", "report on the instances of compartment `ID` (default: every instance)")
	fs.BoolVar(&scope.Recursive, "recursive", false, "with --compartment, include its sub-compartments")
	fs.StringVar(&scope.Group, "group", "", "report on the instances of instance group `ID`")
	details := fs.Bool("details", false, "list each vulnerable instance's outstanding security updates and their CVEs")
	output := fs.String("output", "table", "output format: table (as compliance_report.py prints it) or json")
	if err := parseFlags(fs, e.args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	if *output != "table" && *output != "json" {
		return fmt.Errorf("--output %q: want table or json", *output)
	}
	switch {
	case scope.Compartment != "" && scope.Group != "":
		return fmt.Errorf("--compartment and --group exclude each other")
	case scope.Recursive && scope.Compartment == "":
		return fmt.Errorf("--recursive needs --compartment")
	}
	q, closeReader, err := rf.open(ctx)
	if err != nil {
		return err
	}
	defer closeReader()
	rep, err := compliance.Read(ctx, q, scope)
	if err != nil {
		return err
	}
	if *output == "json" {
		return compliance.WriteJSON(e.stdout, rep, *details)
	}
	return compliance.WriteText(e.stdout, rep, *details)
}
