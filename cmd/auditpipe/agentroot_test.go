package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/agent/pkgmgr"
	"github.com/auditpipe/auditpipe/agent/pkgmgr/pkgmgrtest"
)

// TestAgentPrepareRoot: 'agent prepare-root' makes a private root over a
// local repository with the named version installed and the newer one
// available, as make run's agent reads it; run again, it changes
// nothing; bad usage is refused before anything is written.
func TestAgentPrepareRoot(t *testing.T) {
	pkgmgrtest.RequireApt(t)
	repo := pkgmgrtest.BuildRepo(t, []pkgmgrtest.Package{{Name: "openssl", Version: "3.0.14-1"}, {Name: "openssl", Version: "3.0.15-1"}})
	root := filepath.Join(t.TempDir(), "pkgroot")
	args := []string{"agent", "prepare-root", "--root", root, "--source", "deb [trusted=yes] file:" + repo + " ./", "--install", "openssl=3.0.14-1"}
	for i := range 2 {
		code, out, errOut := runCmd(t, "", args...)
		if code != 0 {
			t.Fatalf("run %d: exit %d: %s", i+1, code, errOut)
		}
		if want := "prepared " + root + ": installed 1, updates available 1\n"; out != want {
			t.Errorf("run %d: stdout %q, want %q", i+1, out, want)
		}
	}
	apt, err := pkgmgr.NewApt(pkgmgr.AptConfig{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := apt.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Installed) != 1 || inv.Installed[0].Name != "openssl" || inv.Installed[0].Version != "3.0.14-1" {
		t.Errorf("installed %+v, want openssl 3.0.14-1", inv.Installed)
	}
	if len(inv.Updates) != 1 || inv.Updates[0].Name != "openssl" || inv.Updates[0].Available != "3.0.15-1" {
		t.Errorf("updates %+v, want openssl 3.0.15-1", inv.Updates)
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		err  string
	}{
		{"no root", []string{"--source", "deb file:/x ./"}, 2, "usage: auditpipe agent prepare-root"},
		{"the host's root", []string{"--root", "/", "--source", "deb file:/x ./"}, 2, "usage: auditpipe agent prepare-root"},
		{"no source", []string{"--root", filepath.Join(t.TempDir(), "r")}, 2, "usage: auditpipe agent prepare-root"},
		{"a package that is not in the repository", []string{"--root", filepath.Join(t.TempDir(), "r"), "--source", "deb [trusted=yes] file:" + repo + " ./", "--install", "nosuchpkg"}, 1, "install nosuchpkg: FAILED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runCmd(t, "", append([]string{"agent", "prepare-root"}, tc.args...)...)
			if code != tc.code || !strings.Contains(errOut, tc.err) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errOut, tc.code, tc.err)
			}
		})
	}
}
