package pkgmgr

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/agent/pkgmgr/pkgmgrtest"
)

// testPackages are the local repository's packages: hello 1.0 and 2.0
// (2.0 fixes a CVE), tool 1.0 and 1.1 (no CVE), broken (its postinst
// exits 1) and slow (its postinst sleeps).
var testPackages = []pkgmgrtest.Package{
	{Name: "hello", Version: "1.0", Postinst: `echo "hello 1.0 configured"`},
	{Name: "hello", Version: "2.0", Postinst: `echo "hello 2.0 configured"`},
	{Name: "tool", Version: "1.0"},
	{Name: "tool", Version: "1.1"},
	{Name: "broken", Version: "1.0", Postinst: `echo "broken: cannot configure" >&2; exit 1`},
	{Name: "slow", Version: "1.0", Postinst: `echo "slow: configuring"; sleep 120`},
}

// trackerJSON is the security feed the test writes, in the shape of
// https://security-tracker.debian.org/tracker/data/json.
const trackerJSON = `{
  "hello": {
    "CVE-2026-1001": {"description": "overflow", "scope": "remote",
      "releases": {"bookworm": {"status": "resolved", "fixed_version": "2.0", "urgency": "high",
        "repositories": {"bookworm": "2.0"}}}},
    "CVE-2026-1002": {"description": "old, fixed before 1.0",
      "releases": {"bookworm": {"status": "resolved", "fixed_version": "0.9", "urgency": "low"}}},
    "CVE-2026-1003": {"description": "not fixed yet",
      "releases": {"bookworm": {"status": "open", "urgency": "medium"}}},
    "CVE-2026-1000": {"description": "fixed in 2.0",
      "releases": {"bookworm": {"status": "resolved", "fixed_version": "2.0", "urgency": "medium"},
                   "trixie": {"status": "resolved", "fixed_version": "2.0", "urgency": "medium"}}}
  },
  "tool": {
    "CVE-2026-2001": {"description": "fixed in a later release only",
      "releases": {"trixie": {"status": "resolved", "fixed_version": "1.1", "urgency": "low"}}}
  }
}`

func requireApt(t *testing.T) { pkgmgrtest.RequireApt(t) }

func buildRepo(t *testing.T, pkgs []pkgmgrtest.Package) string { return pkgmgrtest.BuildRepo(t, pkgs) }

// recorder keeps the events a run reports.
type recorder struct {
	mu     sync.Mutex
	events []Event
	on     func(Event)
}

func (r *recorder) add(ev Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	on := r.on
	r.mu.Unlock()
	if on != nil {
		on(ev)
	}
}

func (r *recorder) percents() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int
	for _, ev := range r.events {
		if ev.Percent >= 0 {
			out = append(out, ev.Percent)
		}
	}
	return out
}

// newRoot prepares a private root over repo and returns an adapter on it
// with its package lists fetched.
func newRoot(t *testing.T, repo string, timeout time.Duration, rec *recorder) (*Apt, string) {
	t.Helper()
	root := t.TempDir()
	if err := PrepareRoot(root, "deb [trusted=yes] file:"+repo+" ./\n"); err != nil {
		t.Fatal(err)
	}
	tr, err := ReadTracker(strings.NewReader(trackerJSON))
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewApt(AptConfig{Root: root, Release: "bookworm", Tracker: tr, RunConfig: RunConfig{Timeout: timeout, OnEvent: rec.add}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Inventory(context.Background()); err != nil {
		t.Fatal(err)
	}
	return a, root
}

func installedVersion(t *testing.T, a *Apt, name string) string {
	t.Helper()
	inv, err := a.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range inv.Installed {
		if p.Name == name {
			return p.Version
		}
	}
	return ""
}

func logText(r Result) string {
	var b strings.Builder
	for _, l := range r.Log {
		b.WriteString(l.Text)
		b.WriteByte('\n')
	}
	return b.String()
}

// hostStatus is the host's dpkg status file; no test may change it.
func hostStatus(t *testing.T) (os.FileInfo, []byte) {
	t.Helper()
	b, err := os.ReadFile("/var/lib/dpkg/status")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat("/var/lib/dpkg/status")
	if err != nil {
		t.Fatal(err)
	}
	return fi, b
}

func TestAptRuns(t *testing.T) {
	requireApt(t)
	repo := buildRepo(t, testPackages)
	beforeFI, before := hostStatus(t)

	tests := []runCase{
		{
			name: "install", do: installRun("hello=1.0"), wantStatus: Succeeded,
			wantLog: []string{"Unpacking hello (1.0)", "Setting up hello (1.0)", "hello 1.0 configured"},
			wantVer: map[string]string{"hello": "1.0"},
		},
		{
			name: "update to a newer version", setup: []string{"hello=1.0"},
			do:         func(ctx context.Context, m Manager) (Result, error) { return m.Update(ctx, []string{"hello"}) },
			wantStatus: Succeeded,
			wantLog:    []string{"Unpacking hello (2.0) over (1.0)", "hello 2.0 configured"},
			wantVer:    map[string]string{"hello": "2.0"},
		},
		{
			name: "remove", setup: []string{"hello=1.0", "tool=1.0"},
			do:         func(ctx context.Context, m Manager) (Result, error) { return m.Remove(ctx, []string{"hello"}) },
			wantStatus: Succeeded,
			wantLog:    []string{"Removing hello (1.0)"},
			wantVer:    map[string]string{"hello": "", "tool": "1.0"},
		},
		{
			name: "update all security updates", setup: []string{"hello=1.0", "tool=1.0"},
			do:         func(ctx context.Context, m Manager) (Result, error) { return m.UpdateAll(ctx, Security) },
			wantStatus: Succeeded,
			wantLog:    []string{"hello 2.0 configured"},
			wantVer:    map[string]string{"hello": "2.0", "tool": "1.0"},
		},
		{
			name: "update all bugfix updates finds none", noProgress: true, setup: []string{"hello=1.0"},
			do:         func(ctx context.Context, m Manager) (Result, error) { return m.UpdateAll(ctx, Bugfix) },
			wantStatus: Succeeded,
			wantLog:    []string{"no BUGFIX updates available"},
			wantVer:    map[string]string{"hello": "1.0"},
		},
		{
			name: "failing postinst", do: installRun("broken"), wantStatus: Failed,
			wantReason: "broken",
			wantLog:    []string{"broken: cannot configure", "installed broken package post-installation script subprocess returned error exit status 1"},
		},
		{
			// The postinst sleeps 120s: whatever apt-get took to reach it,
			// the run times out, so no log line before it is required.
			name: "timeout", do: installRun("slow"), timeout: 3 * time.Second, wantStatus: Failed,
			wantReason: "apt-get timed out after 3s",
		},
		{
			name: "cancel", do: installRun("slow"), cancelOn: "slow: configuring", wantStatus: Canceled,
			wantReason: "canceled",
			wantLog:    []string{"Setting up slow (1.0)", "slow: configuring"},
		},
		{
			name: "unknown package", do: installRun("nosuchpkg"), wantStatus: Failed,
			wantReason: "Unable to locate package nosuchpkg",
		},
	}
	runCases(t, tests, func(t *testing.T, timeout time.Duration, rec *recorder) Manager {
		a, _ := newRoot(t, repo, timeout, rec)
		return a
	}, func(t *testing.T, m Manager, name string) string { return installedVersion(t, m.(*Apt), name) })
	afterFI, after := hostStatus(t)
	if string(before) != string(after) || !afterFI.ModTime().Equal(beforeFI.ModTime()) {
		t.Fatal("the host's /var/lib/dpkg/status changed")
	}
}

func TestAptInventory(t *testing.T) {
	requireApt(t)
	repo := buildRepo(t, testPackages)
	a, _ := newRoot(t, repo, 5*time.Minute, &recorder{})
	res, err := a.Install(context.Background(), []string{"hello=1.0", "tool=1.0"})
	if err != nil || res.Status != Succeeded {
		t.Fatalf("%v %+v\n%s", err, res, logText(res))
	}
	inv, err := a.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range inv.Installed {
		names = append(names, p.Name+"="+p.Version+"/"+p.Source)
	}
	if want := []string{"hello=1.0/hello", "tool=1.0/tool"}; !slices.Equal(names, want) {
		t.Errorf("installed %v, want %v", names, want)
	}
	want := []Update{
		{Name: "hello", Installed: "1.0", Available: "2.0", Type: Security, CVEs: []string{"CVE-2026-1000", "CVE-2026-1001"}},
		{Name: "tool", Installed: "1.0", Available: "1.1", Type: Other},
	}
	if fmt.Sprint(inv.Updates) != fmt.Sprint(want) {
		t.Errorf("updates\n got %+v\nwant %+v", inv.Updates, want)
	}
}

func TestCheckNames(t *testing.T) {
	tests := []struct {
		pkgs      []string
		versioned bool
		ok        bool
	}{
		{[]string{"hello"}, false, true},
		{[]string{"libc6:amd64", "g++"}, false, true},
		{[]string{"hello=1.0-1+deb12u1"}, true, true},
		{[]string{"hello=1.0"}, false, false},
		{nil, false, false},
		{[]string{"-o"}, false, false},
		{[]string{"--allow-unauthenticated"}, true, false},
		{[]string{"hello=-x"}, true, false},
		{[]string{"a b"}, false, false},
	}
	for _, tc := range tests {
		err := checkNames(tc.pkgs, tc.versioned)
		if (err == nil) != tc.ok {
			t.Errorf("checkNames(%q, %v) = %v, want ok %v", tc.pkgs, tc.versioned, err, tc.ok)
		}
	}
}

// TestAptStoppedBeforeStart: a context already canceled ends a run as
// CANCELED without starting apt-get (it used to be FAILED with the start
// error), in UpdateAll's inventory too; an unknown update type is an
// error.
func TestAptStoppedBeforeStart(t *testing.T) {
	requireApt(t)
	repo := buildRepo(t, testPackages[:1])
	a, _ := newRoot(t, repo, 5*time.Minute, &recorder{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := a.Install(ctx, []string{"hello"})
	if err != nil || res.Status != Canceled || len(res.Log) != 0 {
		t.Errorf("install on a canceled context: %v %+v", err, res)
	}
	res, err = a.UpdateAll(ctx, All)
	if err != nil || res.Status != Canceled {
		t.Errorf("update all on a canceled context: %v %+v", err, res)
	}
	if _, err := a.UpdateAll(ctx, "SOME"); err == nil {
		t.Error("update all of type SOME: no error")
	}
}

// TestAptWrapper: a package run goes through the wrapper, which execs
// apt-get with the environment it set, down to the maintainer script.
func TestAptWrapper(t *testing.T) {
	requireApt(t)
	repo := buildRepo(t, []pkgmgrtest.Package{{Name: "wrapped", Version: "1.0", Postinst: `echo "wrapped: AUDITPIPE_WRAPPED=$AUDITPIPE_WRAPPED"`}})
	rec := &recorder{}
	a, _ := newRoot(t, repo, 5*time.Minute, rec)
	a.cfg.Wrapper = []string{"/usr/bin/env", "AUDITPIPE_WRAPPED=yes"}
	res, err := a.Install(context.Background(), []string{"wrapped"})
	if err != nil || res.Status != Succeeded {
		t.Fatalf("%v %+v\n%s", err, res, logText(res))
	}
	if log := logText(res); !strings.Contains(log, "wrapped: AUDITPIPE_WRAPPED=yes") {
		t.Errorf("the postinst did not run under the wrapper:\n%s", log)
	}
}

// TestAptRefusesRootsThatInjectConfig: a private root is written into
// apt's configuration syntax; one whose name would add an option there
// (DPkg::Pre-Invoke runs a command as root) is refused before anything
// runs. A plain one with the dpkg skeleton is taken.
func TestAptRefusesRootsThatInjectConfig(t *testing.T) {
	base := t.TempDir()
	for _, name := range []string{`r"; DPkg::Pre-Invoke {"touch /tmp/pwned";}; x "`, "r;x", "r{x}", "r'x", "r\\x", "r\nx"} {
		root := filepath.Join(base, name)
		if err := PrepareRoot(root, "deb [trusted=yes] file:/nonexistent ./\n"); err != nil {
			t.Fatal(err)
		}
		if _, err := NewApt(AptConfig{Root: root}); err == nil || !strings.Contains(err.Error(), "must not hold") {
			t.Errorf("root %q: %v, want refused", name, err)
		}
	}
	root := filepath.Join(base, "plain root")
	if err := PrepareRoot(root, "deb [trusted=yes] file:/nonexistent ./\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := NewApt(AptConfig{Root: root}); err != nil {
		t.Errorf("a plain root: %v", err)
	}
}
