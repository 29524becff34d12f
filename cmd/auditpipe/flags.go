package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/auditpipe/auditpipe/collector/builder"
	"github.com/auditpipe/auditpipe/schemas"
)

// grantFlags collects repeated --grant LOGIN=REQ_AUTH_ID flags.
type grantFlags builder.StaticGrants

func (g grantFlags) String() string {
	var parts []string
	for k, v := range g {
		parts = append(parts, k+"="+v.ReqAuthID)
	}
	return strings.Join(parts, ",")
}

func (g grantFlags) Set(s string) error {
	login, id, ok := strings.Cut(s, "=")
	if !ok || login == "" || id == "" {
		return fmt.Errorf("want LOGIN=REQ_AUTH_ID, got %q", s)
	}
	g[login] = schemas.Grant{LoginID: login, ReqAuthID: id, AuditType: schemas.AuditCommandKeystroke}
	return nil
}

// newFlagSet returns a flag set that prints its usage to w and returns
// errors instead of exiting.
func newFlagSet(name, synopsis string, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		fmt.Fprintf(w, "usage: auditpipe %s\n\nflags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args. After -h (usage printed) it returns errHelp, for
// an exit status of 0; after a bad flag, errUsage (status 2).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return errUsage
	}
	return nil
}
