package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/queryapi"
)

// runQuery is `auditpipe query [--embedded DIR | --clickhouse ADDR |
// --server URL] [--output table|json|csv] SQL-or-named-query [ARGS]`.
func runQuery(ctx context.Context, e env) error {
	fs := flag.NewFlagSet("query", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var rf readerFlags
	rf.register(fs)
	output := fs.String("output", clickhouse.OutputTable, "output format: table, json, csv, or events (rows of audit_events as contract events: what forward and index read)")
	all := fs.Bool("all", false, "run every named query and print the answers")
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: auditpipe query [--embedded DIR | --clickhouse ADDR | --server URL] [--output table|json|csv] SQL | NAME [ARGS] | --all")
		fmt.Fprintln(e.stderr, "\nnamed queries:")
		for _, q := range queryapi.NamedQueries() {
			fmt.Fprintf(e.stderr, "  %-18s %s %s\n", q.Name, strings.Join(q.Args, " "), "- "+q.Summary)
		}
		fmt.Fprintln(e.stderr, "\nflags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, e.args); err != nil {
		return err
	}
	if fs.NArg() == 0 && !*all {
		fs.Usage()
		return errUsage
	}
	// The question is settled before a store is opened: a mistyped
	// named query is an error that lists the names.
	var sql string
	if !*all {
		text, named, err := queryapi.Named(fs.Arg(0), fs.Args()[1:])
		if err != nil {
			return err
		}
		if !named {
			if looksLikeName(fs.Arg(0)) {
				var names []string
				for _, q := range queryapi.NamedQueries() {
					names = append(names, q.Name)
				}
				return fmt.Errorf("%q is not a named query (they are %s) nor SQL", fs.Arg(0), strings.Join(names, ", "))
			}
			text = strings.Join(fs.Args(), " ")
		}
		sql = text
	}
	q, closeReader, err := rf.open(ctx)
	if err != nil {
		return err
	}
	defer closeReader()
	if *all {
		return queryapi.PrintNamedQueries(ctx, q, e.stdout, *output)
	}
	res, err := q.Query(ctx, sql)
	if err != nil {
		return err
	}
	return clickhouse.WriteResult(e.stdout, res, *output)
}

// looksLikeName reports whether s is one word that is not the start of a
// statement the endpoint answers: a mistyped named query, not SQL.
func looksLikeName(s string) bool {
	if s == "" || strings.ContainsAny(s, " \t\n(*;'\"") {
		return false
	}
	switch strings.ToUpper(s) {
	case "SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN":
		return false
	}
	return true
}

// readToken returns the bearer token from path, else $AUDITPIPE_TOKEN.
func readToken(path string) (config.Secret, error) {
	if path == "" {
		return config.Secret(os.Getenv("AUDITPIPE_TOKEN")), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	return config.Secret(strings.TrimSpace(string(b))), nil
}
