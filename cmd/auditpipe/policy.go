package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/auditpipe/auditpipe/policy/client"
)

// The policy CLI: `auditpipe compartment|resource|control|assignment|
// request SUBCOMMAND`, flags and output only; policy/client does the
// talking to the policy API.

// nounCommand dispatches `auditpipe NOUN SUB [flags] [args]` to subs.
func nounCommand(noun string, subs func() map[string]command) func(context.Context, env) error {
	return func(ctx context.Context, e env) error {
		all := subs()
		usage := func() {
			fmt.Fprintf(e.stderr, "usage: auditpipe %s <subcommand> [flags] [args]\n\nsubcommands:\n", noun)
			names := make([]string, 0, len(all))
			for n := range all {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				fmt.Fprintf(e.stderr, "  %-10s %s\n", n, all[n].summary)
			}
			fmt.Fprintf(e.stderr, "\nRun 'auditpipe %s <subcommand> -h' for its flags.\n", noun)
		}
		if len(e.args) == 0 {
			usage()
			return errUsage
		}
		switch e.args[0] {
		case "-h", "--help", "help":
			usage()
			return errHelp
		}
		c, ok := all[e.args[0]]
		if !ok {
			fmt.Fprintf(e.stderr, "auditpipe %s: unknown subcommand %q\n\n", noun, e.args[0])
			usage()
			return errUsage
		}
		e.args = e.args[1:]
		return c.run(ctx, e)
	}
}

// policyFlags are every policy subcommand's: where the API is, the
// token, the output.
type policyFlags struct {
	server    string
	tokenFile string
	output    string
}

const (
	outputTable = "table"
	outputJSON  = "json"
)

func (p *policyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.server, "server", client.DefaultServer, "`URL` of the policy API (the all-in-one's, or a policy target's)")
	fs.StringVar(&p.tokenFile, "token-file", "", "`FILE` holding the bearer token (default $AUDITPIPE_TOKEN; the all-in-one writes DATA/admin.token on first start)")
	fs.StringVar(&p.output, "output", outputTable, "output format: table or json")
}

func (p *policyFlags) client() (*client.Client, error) {
	if p.output != outputTable && p.output != outputJSON {
		return nil, fmt.Errorf("--output %q: want table or json", p.output)
	}
	tok, err := readToken(p.tokenFile)
	if err != nil {
		return nil, err
	}
	return &client.Client{BaseURL: p.server, Token: tok}, nil
}

// sub is one policy subcommand: its synopsis, its own flags, how many
// positional arguments it takes, and what it does.
type sub struct {
	synopsis string
	args     int // positional arguments required; -1: any (the subcommand checks)
	flags    func(fs *flag.FlagSet)
	run      func(ctx context.Context, c *client.Client, s *subEnv) error
}

// subEnv is what a subcommand's run gets: its arguments, the flags that
// were set, where to write.
type subEnv struct {
	args   []string
	set    map[string]bool
	out    *output
	stderr io.Writer
}

// policyCommand makes a command of sub.
func policyCommand(name, summary string, s sub) command {
	return command{summary: summary, run: func(ctx context.Context, e env) error {
		fs := newFlagSet(name, name+" "+s.synopsis, e.stderr)
		var pf policyFlags
		pf.register(fs)
		if s.flags != nil {
			s.flags(fs)
		}
		if err := parseFlags(fs, e.args); err != nil {
			return err
		}
		if s.args >= 0 && fs.NArg() != s.args {
			fs.Usage()
			return errUsage
		}
		c, err := pf.client()
		if err != nil {
			return err
		}
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		return s.run(ctx, c, &subEnv{args: fs.Args(), set: set, out: &output{w: e.stdout, format: pf.output}, stderr: e.stderr})
	}}
}

// output writes objects as a table or as JSON.
type output struct {
	w      io.Writer
	format string
}

// table writes rows under header, aligned (or v as JSON).
func (o *output) table(v any, header []string, rows [][]string) error {
	if o.format == outputJSON {
		return o.json(v)
	}
	tw := tabwriter.NewWriter(o.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// object writes one object: its fields, one a line, in the API's order
// (or the object as JSON).
func (o *output) object(v any) error {
	if o.format == outputJSON {
		return o.json(v)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil { // {
		return err
	}
	tw := tabwriter.NewWriter(o.w, 0, 4, 2, ' ', 0)
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return err
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t%s\n", k, fieldText(raw))
	}
	return tw.Flush()
}

// fieldText is a JSON value as a table cell: a string bare, a list of
// strings joined by commas, anything else as compact JSON.
func fieldText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.ReplaceAll(s, "\n", `\n`)
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return strings.Join(list, ",")
	}
	return string(raw)
}

func (o *output) json(v any) error {
	enc := json.NewEncoder(o.w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// nextPage tells where a list goes on.
func (s *subEnv) nextPage(next string) {
	if next != "" {
		fmt.Fprintf(s.stderr, "more: --page %s (or --all)\n", next)
	}
}

// namesFlag is a repeated flag whose values may also be comma lists.
type namesFlag []string

func (l *namesFlag) String() string { return strings.Join(*l, ",") }

func (l *namesFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// listOpts are a list subcommand's paging flags.
type listOpts struct {
	limit int
	page  string
	all   bool
}

func (l *listOpts) register(fs *flag.FlagSet) {
	fs.IntVar(&l.limit, "limit", 0, "at most `N` items a page (default the server's, 100)")
	fs.StringVar(&l.page, "page", "", "the `TOKEN` a previous list printed, to go on from there")
	fs.BoolVar(&l.all, "all", false, "every page")
}

func (l *listOpts) options(filters map[string]string) client.ListOptions {
	o := client.ListOptions{Limit: l.limit, Page: l.page, Filters: map[string][]string{}}
	for k, v := range filters {
		if v != "" {
			o.Filters[k] = []string{v}
		}
	}
	return o
}

// pages lists one page, or every page with --all.
func pages[T any](ctx context.Context, l *listOpts, s *subEnv, filters map[string]string,
	page func(context.Context, client.ListOptions) (client.Page[T], error)) ([]T, error) {
	o := l.options(filters)
	if l.all {
		return client.All(ctx, o, page)
	}
	p, err := page(ctx, o)
	if err != nil {
		return nil, err
	}
	s.nextPage(p.Next)
	return p.Items, nil
}

// ifMatchFlag is --if-match: the etag (version) to act on; absent, the
// subcommand reads the object and acts on the version it read (as OCI's
// CLI does), so a change made meanwhile is refused (412), not
// overwritten.
type ifMatchFlag struct{ v int64 }

func (f *ifMatchFlag) String() string { return strconv.FormatInt(f.v, 10) }

func (f *ifMatchFlag) Set(s string) error {
	v, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(s, "W/"), `"`), 10, 64)
	if err != nil || v < 1 {
		return fmt.Errorf("%q is not an etag (a version, as show prints it)", s)
	}
	f.v = v
	return nil
}

func (f *ifMatchFlag) register(fs *flag.FlagSet) {
	fs.Var(f, "if-match", "act only if the object is still at this `ETAG` (its version); default: the version read just before")
}

// version returns the --if-match version, or read's.
func (f *ifMatchFlag) version(read func() (int64, error)) (int64, error) {
	if f.v > 0 {
		return f.v, nil
	}
	return read()
}

// readFile returns a file's text (a CA certificate), or "" for "".
func readFile(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// parseTime reads an RFC 3339 time flag ("" is zero).
func parseTime(flagName, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return t, fmt.Errorf("--%s %q: want RFC 3339, e.g. 2026-03-02T09:00:00Z", flagName, s)
	}
	return t, nil
}

// when is a time as a table shows it ("" for zero).
func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04Z")
}

func join(s []string) string { return strings.Join(s, ",") }
