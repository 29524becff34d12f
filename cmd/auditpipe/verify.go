package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/verify"
)

// runVerify is `auditpipe verify [--embedded DIR | --clickhouse ADDR |
// --server URL | --from-syslog FILE] [--host H] [--from T --to T]
// [--request ID] [--pubkey FILE | --pubkey-dir DIR]`: exit 0 when the
// trail is intact, 1 when a finding says something was changed (or verify
// failed), 2 for a usage error, 3 (exitUnproven) when
// nothing was found changed but not everything is proven (events no
// signed checkpoint covers, copies whose content could not be recomputed:
// verify.Finding.Unproven; a forged event at a host's head looks so).
// Each finding is printed with its host and seq.
func runVerify(ctx context.Context, e env) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var rf readerFlags
	rf.register(fs)
	syslogFile := fs.String("from-syslog", "", "check a SIEM's `FILE` of forwarded events (RFC 5424, one message a line, as rsyslog writes it) instead of ClickHouse")
	host := fs.String("host", "", "check only this host")
	from := fs.String("from", "", "only events with ts at or after this RFC 3339 time")
	to := fs.String("to", "", "only events with ts before this RFC 3339 time")
	request := fs.String("request", "", "also list the commands of this access request (req_auth_id) between its login and logout")
	pubkey := fs.String("pubkey", "", "PEM `FILE` of the collectors' Ed25519 public key; checkpoints are then checked and must be signed, every host's with this one key")
	pubkeyDir := fs.String("pubkey-dir", "", "`DIR` of each host's chain public key, DIR/<host>.pub (as `auditpipe agent enroll --dir DIR` writes it); a host's checkpoints must be signed by its own key")
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: auditpipe verify [--embedded DIR | --clickhouse ADDR | --server URL [--token-file FILE] | --from-syslog FILE] [--host H] [--from T --to T] [--request ID] [--pubkey FILE | --pubkey-dir DIR]")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, e.args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	var f verify.Filter
	f.Host, f.Request = *host, *request
	for _, t := range []struct {
		name, v string
		dst     *time.Time
	}{{"--from", *from, &f.From}, {"--to", *to, &f.To}} {
		if t.v == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339Nano, t.v)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		*t.dst = v
	}
	opt := verify.Options{Request: *request}
	if *pubkey != "" && *pubkeyDir != "" {
		return errors.New("--pubkey excludes --pubkey-dir: one key for every host, or each host's own")
	}
	if *pubkeyDir != "" {
		if _, err := os.Stat(*pubkeyDir); err != nil {
			return fmt.Errorf("--pubkey-dir: %w", err)
		}
		opt.HostKeys = sign.NewKeyDir(*pubkeyDir)
	}
	if *pubkey != "" {
		keys, err := sign.LoadKeyring(*pubkey)
		if err != nil {
			return err
		}
		opt.Keys = keys.Keys()
	}
	var rep *verify.Report
	if *syslogFile != "" {
		if rf.store.embedded != "" || rf.store.clickhouse != "" || rf.server != "" {
			return errors.New("--from-syslog excludes --embedded, --clickhouse and --server")
		}
		r, err := verifySyslog(*syslogFile, f, opt, e.stderr)
		if err != nil {
			return err
		}
		rep = r
	} else {
		q, closeReader, err := rf.open(ctx)
		if err != nil {
			return err
		}
		defer closeReader()
		if rep, err = verify.CheckStore(ctx, q, f, opt); err != nil {
			return err
		}
	}
	if err := rep.Write(e.stdout); err != nil {
		return err
	}
	switch {
	case rep.Changed():
		return &exitError{code: 1, err: errors.New("the audit trail is not intact (findings above)")}
	case !rep.Intact():
		return &exitError{code: exitUnproven, err: errors.New("the audit trail is not proven intact: nothing was found changed, but some events are not covered by a signed checkpoint or their content was not recomputed (findings above)")}
	}
	return nil
}

// exitUnproven is verify's exit status when nothing was found changed but
// not everything is proven (1 is a change or a failure, 2 a usage error).
const exitUnproven = 3

// verifySyslog checks a SIEM's file; the lines it had to skip as too long
// are named on stderr.
func verifySyslog(path string, f verify.Filter, opt verify.Options, stderr io.Writer) (*verify.Report, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	recs, finds, st, err := verify.LoadSyslog(file)
	if err != nil {
		return nil, err
	}
	if n := len(st.Overlong); n > 0 {
		fmt.Fprintf(stderr, "verify: %s: %d line(s) over %d MiB skipped (no auditpipe message is that long; were one, its seq shows as a gap): line %s\n",
			path, n, verify.MaxSyslogLine>>20, lineList(st.Overlong))
	}
	kept := recs[:0]
	for _, r := range recs {
		if f.Host != "" && r.Event.Host != f.Host {
			continue
		}
		if ts, err := time.Parse(time.RFC3339Nano, r.Event.TS); err == nil && (!f.From.IsZero() && ts.Before(f.From) || !f.To.IsZero() && !ts.Before(f.To)) {
			continue
		}
		kept = append(kept, r)
	}
	opt.FileOrder = true
	rep := verify.Check(kept, nil, opt)
	rep.AddFindings(finds)
	return rep, nil
}

// lineList is the first line numbers of ls, and how many more.
func lineList(ls []int) string {
	const shown = 10
	var b strings.Builder
	for i, l := range ls[:min(len(ls), shown)] {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(l))
	}
	if len(ls) > shown {
		fmt.Fprintf(&b, " and %d more", len(ls)-shown)
	}
	return b.String()
}
