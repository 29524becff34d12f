package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/auditpipe/auditpipe/agent/pkgmgr"
	"github.com/auditpipe/auditpipe/internal/app"
)

// runAgent is the agent target, or 'agent prepare-root'.
func runAgent(ctx context.Context, e env) error {
	if len(e.args) > 0 && e.args[0] == "prepare-root" {
		return runAgentPrepareRoot(ctx, e, e.args[1:])
	}
	if len(e.args) > 0 && e.args[0] == "enroll" {
		return runAgentEnroll(e, e.args[1:])
	}
	return targetCommand(app.TargetAgent)(ctx, e)
}

// runAgentPrepareRoot makes a private package root for agent.work.
// package_root (pkgmgr.PrepareRoot), reads its sources' package lists
// (apt-get update) and installs the packages named with --install in it,
// so that an agent has an instance's packages to report and update
// without touching the host's. Run again, it rewrites the sources and
// leaves installed packages as they are.
func runAgentPrepareRoot(ctx context.Context, e env, args []string) error {
	var installs listFlag
	fs := newFlagSet("agent prepare-root", "agent prepare-root --root DIR --source LINE [--install PKG[=VERSION]]...", e.stderr)
	root := fs.String("root", "", "the private root `DIR` (agent.work.package_root)")
	source := fs.String("source", "", "its apt source, one-line format (\"deb [trusted=yes] file:/srv/repo ./\")")
	fs.Var(&installs, "install", "a package to install in the root, PKG or PKG=VERSION (repeatable)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *root == "" || *root == "/" || *source == "" || fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	if err := pkgmgr.PrepareRoot(*root, strings.TrimSpace(*source)+"\n"); err != nil {
		return err
	}
	apt, err := pkgmgr.NewApt(pkgmgr.AptConfig{Root: *root})
	if err != nil {
		return err
	}
	// The inventory runs apt-get update: the lists the installs read.
	if _, err := apt.Inventory(ctx); err != nil {
		return fmt.Errorf("agent prepare-root: read the package lists: %w", err)
	}
	if len(installs) > 0 {
		res, err := apt.Install(ctx, installs)
		if err != nil {
			return fmt.Errorf("agent prepare-root: %w", err)
		}
		if res.Status != pkgmgr.Succeeded {
			return fmt.Errorf("agent prepare-root: install %s: %s: %s", strings.Join(installs, " "), res.Status, res.Reason)
		}
	}
	inv, err := apt.Inventory(ctx)
	if err != nil {
		return fmt.Errorf("agent prepare-root: read the packages: %w", err)
	}
	fmt.Fprintf(e.stdout, "prepared %s: installed %d, updates available %d\n", *root, len(inv.Installed), len(inv.Updates))
	return nil
}
