// Package pkgmgrtest builds local package repositories for tests
// of the package-manager adapter and its users: real .deb files made with
// dpkg-deb (with maintainer scripts) and indexed with dpkg-scanpackages,
// for apt-get to install from in a private root (pkgmgr.PrepareRoot);
// and real .rpm files made with rpmbuild, indexed with createrepo_c, with
// an updateinfo added by modifyrepo_c, for dnf to install from in a
// private --installroot (pkgmgr.PrepareDnfRoot).
package pkgmgrtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/internal/testenv"
)

// Package is a package the test builds: Postinst, when set, is the body
// of its post-installation script (/bin/sh).
type Package struct {
	Name, Version, Postinst string
}

// RequireApt skips the test (fails it under AUDITPIPE_REQUIRE) when the
// tools are missing.
func RequireApt(t testing.TB) {
	t.Helper()
	for _, c := range []string{"apt-get", "dpkg", "dpkg-deb", "dpkg-query", "dpkg-scanpackages"} {
		if _, err := exec.LookPath(c); err != nil {
			testenv.SkipOrFail(t, testenv.Apt, "%s not found (scripts/deps.d/55-apt.sh installs it)", c)
		}
	}
}

// BuildRepo writes the packages' trees, builds them with dpkg-deb and
// indexes them with dpkg-scanpackages; it returns the repository's
// directory (a "deb [trusted=yes] file:DIR ./" source).
func BuildRepo(t testing.TB, pkgs []Package) string {
	t.Helper()
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range pkgs {
		tree := filepath.Join(dir, "build", p.Name+"-"+p.Version)
		Write(t, filepath.Join(tree, "usr/share", p.Name, "VERSION"), p.Version+"\n", 0o644)
		Write(t, filepath.Join(tree, "DEBIAN/control"), fmt.Sprintf(
			"Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: auditpipe tests <tests@example.com>\nDescription: auditpipe test package %s\n",
			p.Name, p.Version, p.Name), 0o644)
		if p.Postinst != "" {
			Write(t, filepath.Join(tree, "DEBIAN/postinst"), "#!/bin/sh\n"+p.Postinst+"\n", 0o755)
		}
		Run(t, dir, "dpkg-deb", "--root-owner-group", "--build", tree, repo)
	}
	idx := Run(t, repo, "dpkg-scanpackages", "--multiversion", ".", "/dev/null")
	Write(t, filepath.Join(repo, "Packages"), idx, 0o644)
	return repo
}

// Write writes data to path, making its directory; the modes are set
// whatever the process's umask (dpkg-deb refuses a control directory
// that is not 0755).
func Write(t testing.TB, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// Run runs a command in dir and returns its standard output.
func Run(t testing.TB, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, stderr.String())
	}
	return string(out)
}
