// Package pkgmgr is the host agent's package-manager adapter: the work a
// patch job asks of an instance (install, update or remove packages,
// update everything of one update type) and the inventory the agent
// reports (installed packages, available updates with their type and
// CVEs), behind one interface. Apt is the apt/dpkg implementation; it can
// run against a private root directory, which is how its tests drive the
// real apt-get and dpkg without touching the host's package database.
// Dnf is the dnf/rpm implementation, over a private --installroot the
// same way, with update types and CVEs from the repositories' updateinfo.
//
// A run never returns a failure as an error: the error return is for a
// request that cannot be run at all (no package named, an unknown update
// type). What happened is in the Result: SUCCEEDED, FAILED with the
// reason (a maintainer script's exit status, a timeout) or CANCELED when
// the caller's context was canceled, with every log line.
package pkgmgr

import (
	"context"
	"fmt"
	"time"
)

// UpdateType classifies an available update, as OCI OS Management's
// update_type does.
type UpdateType string

// The update types. All selects every update in UpdateAll.
const (
	Security    UpdateType = "SECURITY"
	Bugfix      UpdateType = "BUGFIX"
	Enhancement UpdateType = "ENHANCEMENT"
	Other       UpdateType = "OTHER"
	All         UpdateType = "ALL"
)

// ParseUpdateType checks s against the update types.
func ParseUpdateType(s string) (UpdateType, error) {
	switch t := UpdateType(s); t {
	case Security, Bugfix, Enhancement, Other, All:
		return t, nil
	}
	return "", fmt.Errorf("pkgmgr: update type %q: want SECURITY, BUGFIX, ENHANCEMENT, OTHER or ALL", s)
}

// Status is how a run ended, named as the work request states it ends a
// work request in.
type Status string

// The run outcomes.
const (
	Succeeded Status = "SUCCEEDED"
	Failed    Status = "FAILED"
	Canceled  Status = "CANCELED"
)

// Event is what a run reports while it runs: a log line (Line set) or a
// progress step (Percent set, 0–100, with the package manager's message
// in Line). Percent is -1 on a plain log line.
type Event struct {
	Time    time.Time
	Percent int
	Line    string
}

// LogLine is one line of a run's output, stamped when it was read.
type LogLine struct {
	Time time.Time
	Text string
}

// Result is the outcome of a run.
type Result struct {
	Status Status
	// Reason says why a run failed or was canceled; empty on success.
	Reason string
	// Log holds the package manager's output lines in the order read.
	Log []LogLine
}

// Package is an installed package.
type Package struct {
	Name    string
	Version string
	Arch    string
	// Source is the source package it was built from (the name security
	// feeds use).
	Source string
}

// Update is an available update of an installed package.
type Update struct {
	Name      string
	Installed string
	Available string
	Type      UpdateType
	// CVEs are the vulnerabilities the update fixes, sorted; set for
	// SECURITY updates.
	CVEs []string
}

// Inventory is what is installed on an instance and what could be
// updated.
type Inventory struct {
	Installed []Package
	Updates   []Update
}

// Manager is a package manager on one instance. Runs are cancellable by
// ctx; each implementation also bounds a run by its own timeout.
type Manager interface {
	// Install installs pkgs (a name, or name=version).
	Install(ctx context.Context, pkgs []string) (Result, error)
	// Update upgrades pkgs, which must be installed, to their newest
	// version.
	Update(ctx context.Context, pkgs []string) (Result, error)
	// Remove removes pkgs.
	Remove(ctx context.Context, pkgs []string) (Result, error)
	// UpdateAll upgrades every installed package with an update of type t
	// (All: every update).
	UpdateAll(ctx context.Context, t UpdateType) (Result, error)
	// Inventory refreshes the package lists and reports what is installed
	// and what could be updated.
	Inventory(ctx context.Context) (Inventory, error)
}
