package pkgmgrtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/auditpipe/auditpipe/internal/testenv"
)

// RPMPackage is an rpm package the test builds: PostLua, when set, is the
// body of its %post scriptlet in Lua (rpm's built-in interpreter, so the
// test's empty install root needs no /bin/sh; rpm runs it chrooted into
// the root like any scriptlet).
type RPMPackage struct {
	Name, Version, PostLua string
}

// RequireDnf skips the test (fails it under AUDITPIPE_REQUIRE) when dnf,
// rpm, rpmbuild, createrepo_c or modifyrepo_c is missing, or the test
// does not run as root (rpm chroots into the install root to run
// scriptlets).
func RequireDnf(t testing.TB) {
	t.Helper()
	for _, c := range []string{"dnf", "rpm", "rpmbuild", "createrepo_c", "modifyrepo_c"} {
		if _, err := exec.LookPath(c); err != nil {
			testenv.SkipOrFail(t, testenv.Dnf, "%s not found (scripts/deps.d/56-dnf.sh installs it)", c)
		}
	}
	if os.Geteuid() != 0 {
		testenv.SkipOrFail(t, testenv.Dnf, "not running as root: rpm chroots into the install root for scriptlets")
	}
}

// BuildRPMRepo builds the packages (noarch, release 1) with rpmbuild from
// a minimal spec each, indexes them with createrepo_c and, when
// updateinfo is not empty, adds it as the repository's updateinfo with
// modifyrepo_c, as a distribution's errata feed is published. It returns
// the repository's directory (a baseurl=file://DIR repository).
func BuildRPMRepo(t testing.TB, pkgs []RPMPackage, updateinfo string) string {
	t.Helper()
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	top := filepath.Join(dir, "rpmbuild")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range pkgs {
		spec := fmt.Sprintf("Name: %s\nVersion: %s\nRelease: 1\nSummary: auditpipe test package %s\nLicense: MIT\nBuildArch: noarch\n\n%%description\nauditpipe test package %s\n",
			p.Name, p.Version, p.Name, p.Name)
		if p.PostLua != "" {
			spec += "\n%post -p <lua>\n" + p.PostLua + "\n"
		}
		spec += "\n%files\n"
		path := filepath.Join(dir, p.Name+"-"+p.Version+".spec")
		Write(t, path, spec, 0o644)
		// _dbpath: rpmbuild opens an rpm database (creating it, Debian's
		// rpm keeps it in $HOME/.rpmdb); the test's own keeps the host's
		// untouched.
		Run(t, dir, "rpmbuild", "--quiet", "--define", "_topdir "+top, "--define", "_rpmdir "+repo,
			"--define", "_dbpath "+filepath.Join(dir, "rpmdb"),
			"--define", "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm", "-bb", path)
	}
	Run(t, dir, "createrepo_c", "--quiet", repo)
	if updateinfo != "" {
		ui := filepath.Join(dir, "updateinfo.xml")
		Write(t, ui, updateinfo, 0o644)
		Run(t, dir, "modifyrepo_c", "--mdtype=updateinfo", ui, filepath.Join(repo, "repodata"))
	}
	return repo
}
