package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/auditpipe/auditpipe/collector/builder"
	"github.com/auditpipe/auditpipe/internal/config"
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

// parseFlags parses args, flags before and after positional arguments
// alike (`query request-commands X --output json`); "--" ends the flags.
// fs.Args() holds the positional arguments afterwards. After -h (usage
// printed) it returns errHelp, for an exit status of 0; after a bad flag,
// errUsage (status 2), having suggested the nearest flag.
func parseFlags(fs *flag.FlagSet, args []string) error {
	var pos []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return errHelp
			}
			if s := nearestFlag(fs, err); s != "" {
				fmt.Fprintf(fs.Output(), "did you mean --%s?\n", s)
			}
			return errUsage
		}
		if fs.NArg() == 0 {
			break
		}
		if consumed := len(rest) - fs.NArg(); consumed > 0 && rest[consumed-1] == "--" {
			pos = append(pos, fs.Args()...)
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	// Leave the positional arguments in fs.Args().
	return fs.Parse(append([]string{"--"}, pos...))
}

// nearestFlag returns the defined flag closest to the undefined one err
// names, or "" when none is close.
func nearestFlag(fs *flag.FlagSet, err error) string {
	const prefix = "flag provided but not defined: -"
	msg := err.Error()
	if !strings.HasPrefix(msg, prefix) {
		return ""
	}
	bad := strings.TrimLeft(strings.TrimPrefix(msg, prefix), "-")
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return config.Nearest(bad, names)
}
