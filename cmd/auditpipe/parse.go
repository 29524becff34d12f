package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/auditpipe/auditpipe/collector"
	"github.com/auditpipe/auditpipe/collector/assemble"
	"github.com/auditpipe/auditpipe/collector/auditlog"
	"github.com/auditpipe/auditpipe/collector/builder"
	"github.com/auditpipe/auditpipe/schemas"
)

// cmdParse: raw auditd lines in, one contract event per line out; each
// reject on stderr with its reason. Exit 0 unless the input cannot be read.
func cmdParse(ctx context.Context, e env) error {
	fs := newFlagSet("parse", "parse [--layer L] [--host H] [--passwd FILE] [--group FILE] [--grant LOGIN=REQ_AUTH_ID]... [--all-users] [FILE|-]", e.stderr)
	hostname, _ := os.Hostname()
	layer := fs.String("layer", "HOST", "layer written to every event (CPS, HOST, CELL, GUESTVM, SWITCH, ILOM)")
	host := fs.String("host", hostname, "host of records without a node= prefix")
	passwd := fs.String("passwd", "/etc/passwd", "passwd file for uid → name")
	group := fs.String("group", "/etc/group", "group file for gid → name")
	allUsers := fs.Bool("all-users", false, "emit events of every user (req_auth_id empty where no grant)")
	maxLine := fs.Int("max-line-bytes", collector.DefaultMaxLineBytes, "longest accepted input line")
	grants := grantFlags{}
	fs.Var(grants, "grant", "LOGIN=REQ_AUTH_ID: the login user's access request (repeatable)")
	if err := parseFlags(fs, e.args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return errUsage
	}
	in := e.stdin
	if name := fs.Arg(0); name != "" && name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	names, err := builder.LoadNames(*passwd, *group)
	if err != nil {
		return err
	}
	out := bufio.NewWriterSize(e.stdout, 256<<10)
	defer out.Flush()
	var werr error
	var d *collector.Decoder
	d = collector.NewDecoder(builder.Config{
		Layer: *layer, Host: *host, AllUsers: *allUsers, Names: names, Grants: builder.StaticGrants(grants),
		RawDataInBuffer: true, // written from the canonical bytes only
	}, assemble.Options{}, func(*schemas.Event, *assemble.Event) {
		// The canonical bytes the decoder hashed into the chain are the
		// event's JSON (schemas.Event.AppendJSON): written as they are,
		// not encoded a second time.
		_, err := out.Write(d.Canonical())
		if err == nil {
			err = out.WriteByte('\n')
		}
		if err != nil && werr == nil {
			werr = err
		}
	}, func(r collector.Reject) {
		fmt.Fprintf(e.stderr, "reject line %d: %s: %v\n", r.Tag, r.Reason, r.Err)
	})
	// parse never ticks: no assembly timeout or grant grace applies, and
	// the lines' arrival time is read once per 4096 lines, not per line.
	var tag uint64
	now := time.Now()
	err = collector.ReadLines(in, *maxLine, func(line []byte, err error) error {
		tag++
		if tag%4096 == 0 {
			now = time.Now()
		}
		var tl *collector.LineTooLongError
		if errors.As(err, &tl) {
			d.RejectLine(auditlog.ReasonTooLong, err, tl.Prefix, tag)
			return nil
		}
		d.Line(line, tag, now)
		if werr != nil {
			return werr
		}
		return ctx.Err()
	})
	d.Flush()
	if err == nil {
		err = werr
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("parse: %w", err)
	}
	return nil
}
