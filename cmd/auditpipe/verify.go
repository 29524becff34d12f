package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/queryapi"
	"github.com/auditpipe/auditpipe/verify"
)

// runVerify is `auditpipe verify [--embedded DIR | --clickhouse ADDR |
// --server URL | --from-syslog FILE] [--host H] [--from T --to T]
// [--request ID] [--pubkey FILE]`: exit 0 when the trail is intact, 1 when
// anything is wrong (each finding printed with its host and seq).
func runVerify(ctx context.Context, e env) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var sf storeFlags
	sf.register(fs)
	server := fs.String("server", "", "query endpoint URL of a running all-in-one or indexer")
	tokenFile := fs.String("token-file", "", "`FILE` holding the endpoint's bearer token, with --server (default $AUDITPIPE_TOKEN; the all-in-one writes DATA/admin.token on first start)")
	syslogFile := fs.String("from-syslog", "", "check a SIEM's `FILE` of forwarded events (RFC 5424, one message a line, as rsyslog writes it) instead of ClickHouse")
	host := fs.String("host", "", "check only this host")
	from := fs.String("from", "", "only events with ts at or after this RFC 3339 time")
	to := fs.String("to", "", "only events with ts before this RFC 3339 time")
	request := fs.String("request", "", "also list the commands of this access request (req_auth_id) between its login and logout")
	pubkey := fs.String("pubkey", "", "PEM `FILE` of the collectors' Ed25519 public keys; checkpoints are then checked and must be signed")
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: auditpipe verify [--embedded DIR | --clickhouse ADDR | --server URL [--token-file FILE] | --from-syslog FILE] [--host H] [--from T --to T] [--request ID] [--pubkey FILE]")
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
	if *pubkey != "" {
		keys, err := sign.LoadKeyring(*pubkey)
		if err != nil {
			return err
		}
		opt.Keys = keys.Keys()
	}
	var rep *verify.Report
	if *syslogFile != "" {
		if sf.embedded != "" || sf.clickhouse != "" || *server != "" {
			return errors.New("--from-syslog excludes --embedded, --clickhouse and --server")
		}
		r, err := verifySyslog(*syslogFile, f, opt)
		if err != nil {
			return err
		}
		rep = r
	} else {
		var q clickhouse.Querier
		if *server != "" {
			if sf.embedded != "" || sf.clickhouse != "" {
				return errors.New("--server excludes --embedded and --clickhouse")
			}
			tok, err := readToken(*tokenFile)
			if err != nil {
				return err
			}
			q = &queryapi.HTTPClient{URL: *server, Token: tok}
		} else {
			st, err := sf.config()
			if err != nil {
				return err
			}
			eng, err := clickhouse.Open(ctx, st)
			if err != nil {
				return err
			}
			defer eng.Close()
			q = eng
		}
		recs, conflicts, err := verify.LoadStore(ctx, q, f)
		if err != nil {
			return err
		}
		rep = verify.Check(recs, conflicts, opt)
	}
	if err := rep.Write(e.stdout); err != nil {
		return err
	}
	if !rep.Intact() {
		return &exitError{code: 1, err: errors.New("the audit trail is not intact (findings above)")}
	}
	return nil
}

func verifySyslog(path string, f verify.Filter, opt verify.Options) (*verify.Report, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	recs, finds, _, err := verify.LoadSyslog(file)
	if err != nil {
		return nil, err
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
