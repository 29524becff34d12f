package pkgmgr

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/agent/pkgmgr/pkgmgrtest"
)

// testRPMs are the dnf tests' packages: hello 1.0 and 2.0 (2.0 is a
// security update fixing two CVEs in testdata/updateinfo.xml), tool 1.0
// and 1.1 (a bug-fix update), broken (its %post fails) and slow (its
// %post sleeps).
var testRPMs = []pkgmgrtest.RPMPackage{
	{Name: "hello", Version: "1.0", PostLua: `print("hello 1.0 configured")`},
	{Name: "hello", Version: "2.0", PostLua: `print("hello 2.0 configured")`},
	{Name: "tool", Version: "1.0"},
	{Name: "tool", Version: "1.1"},
	{Name: "broken", Version: "1.0", PostLua: `io.stderr:write("broken: cannot configure\n") os.exit(1)`},
	{Name: "slow", Version: "1.0", PostLua: `print("slow: configuring") io.stdout:flush() posix.sleep(120)`},
}

func buildRPMRepo(t *testing.T) string {
	t.Helper()
	pkgmgrtest.RequireDnf(t)
	ui, err := os.ReadFile(filepath.Join("testdata", "updateinfo.xml"))
	if err != nil {
		t.Fatal(err)
	}
	return pkgmgrtest.BuildRPMRepo(t, testRPMs, string(ui))
}

// newDnfRoot prepares a private install root over repo and returns an
// adapter on it.
func newDnfRoot(t *testing.T, repo string, timeout time.Duration, rec *recorder) *Dnf {
	t.Helper()
	root := t.TempDir()
	if err := PrepareDnfRoot(root, "[test]\nname=test\nbaseurl=file://"+repo+"\ngpgcheck=0\n"); err != nil {
		t.Fatal(err)
	}
	d, err := NewDnf(DnfConfig{Root: root, NoGPGCheck: true, RunConfig: RunConfig{Timeout: timeout, OnEvent: rec.add}})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func dnfInstalled(t *testing.T, d *Dnf, name string) string {
	t.Helper()
	inv, err := d.Inventory(context.Background())
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

// hostDnfState is what a dnf run on the host would change: the entries of
// its rpm database and dnf cache and its logs. No test may change it.
func hostDnfState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	// Debian's rpm keeps its database in $HOME/.rpmdb, not /var/lib/rpm.
	dbpath, err := exec.Command("rpm", "--eval", "%_dbpath").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{strings.TrimSpace(string(dbpath)), "/var/lib/rpm", "/var/cache/dnf", "/var/lib/dnf"} {
		if _, err := os.Stat(dir); err == nil {
			fmt.Fprintf(&b, "%s exists\n", dir)
		}
		entries, err := os.ReadDir(dir)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, e := range entries {
			fi, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s/%s %d %v\n", dir, e.Name(), fi.Size(), fi.ModTime())
		}
	}
	for _, f := range []string{"/var/log/dnf.log", "/var/log/dnf.rpm.log", "/var/log/hawkey.log", "/var/log/dnf.librepo.log"} {
		if fi, err := os.Stat(f); err == nil {
			fmt.Fprintf(&b, "%s %d %v\n", f, fi.Size(), fi.ModTime())
		}
	}
	return b.String()
}

func TestDnfRuns(t *testing.T) {
	pkgmgrtest.RequireDnf(t)
	before := hostDnfState(t)
	repo := buildRPMRepo(t)
	defer func() {
		if after := hostDnfState(t); after != before {
			t.Errorf("the host's rpm database, dnf cache or logs changed:\nbefore\n%s\nafter\n%s", before, after)
		}
	}()
	tests := []runCase{
		{
			name: "install", do: installRun("hello=1.0"), wantStatus: Succeeded,
			wantLog: []string{"Installing       : hello-1.0-1.noarch", "hello 1.0 configured"},
			wantVer: map[string]string{"hello": "1.0-1"},
		},
		{
			name: "update to a newer version", setup: []string{"hello=1.0"},
			do:         func(ctx context.Context, m Manager) (Result, error) { return m.Update(ctx, []string{"hello"}) },
			wantStatus: Succeeded,
			wantLog:    []string{"Upgrading        : hello-2.0-1.noarch", "hello 2.0 configured"},
			wantVer:    map[string]string{"hello": "2.0-1"},
		},
		{
			name: "remove", setup: []string{"hello=1.0", "tool=1.0"},
			do:         func(ctx context.Context, m Manager) (Result, error) { return m.Remove(ctx, []string{"hello"}) },
			wantStatus: Succeeded,
			wantLog:    []string{"Erasing          : hello-1.0-1.noarch"},
			wantVer:    map[string]string{"hello": "", "tool": "1.0-1"},
		},
		{
			name: "update all security updates", setup: []string{"hello=1.0", "tool=1.0"},
			do:         func(ctx context.Context, m Manager) (Result, error) { return m.UpdateAll(ctx, Security) },
			wantStatus: Succeeded,
			wantLog:    []string{"hello 2.0 configured"},
			wantVer:    map[string]string{"hello": "2.0-1", "tool": "1.0-1"},
		},
		{
			name: "update all bugfix updates", setup: []string{"hello=1.0", "tool=1.0"},
			do:         func(ctx context.Context, m Manager) (Result, error) { return m.UpdateAll(ctx, Bugfix) },
			wantStatus: Succeeded,
			wantVer:    map[string]string{"hello": "1.0-1", "tool": "1.1-1"},
		},
		{
			name: "update all other updates finds none", noProgress: true, setup: []string{"hello=1.0", "tool=1.0"},
			do:         func(ctx context.Context, m Manager) (Result, error) { return m.UpdateAll(ctx, Other) },
			wantStatus: Succeeded,
			wantLog:    []string{"no OTHER updates available"},
			wantVer:    map[string]string{"hello": "1.0-1", "tool": "1.0-1"},
		},
		{
			name: "failing post scriptlet", do: installRun("broken"), wantStatus: Failed,
			wantReason: "POSTIN scriptlet of broken failed",
			wantLog:    []string{"broken: cannot configure", "Error in POSTIN scriptlet in rpm package broken"},
		},
		{
			name: "timeout", do: installRun("slow"), timeout: 5 * time.Second, wantStatus: Failed,
			wantReason: "dnf timed out after 5s",
		},
		{
			name: "cancel", do: installRun("slow"), cancelOn: "slow: configuring", wantStatus: Canceled,
			wantReason: "canceled",
			wantLog:    []string{"Running scriptlet: slow-1.0-1.noarch", "slow: configuring"},
		},
		{
			name: "unknown package", do: installRun("nosuchpkg"), wantStatus: Failed,
			wantReason: "Unable to find a match: nosuchpkg",
		},
	}
	runCases(t, tests, func(t *testing.T, timeout time.Duration, rec *recorder) Manager {
		return newDnfRoot(t, repo, timeout, rec)
	}, func(t *testing.T, m Manager, name string) string { return dnfInstalled(t, m.(*Dnf), name) })
}

func TestDnfInventory(t *testing.T) {
	repo := buildRPMRepo(t)
	d := newDnfRoot(t, repo, 5*time.Minute, &recorder{})
	res, err := d.Install(context.Background(), []string{"hello=1.0", "tool=1.0"})
	if err != nil || res.Status != Succeeded {
		t.Fatalf("%v %+v\n%s", err, res, logText(res))
	}
	inv, err := d.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range inv.Installed {
		names = append(names, p.Name+"="+p.Version+"/"+p.Arch+"/"+p.Source)
	}
	slices.Sort(names)
	if want := []string{"hello=1.0-1/noarch/hello", "tool=1.0-1/noarch/tool"}; !slices.Equal(names, want) {
		t.Errorf("installed %v, want %v", names, want)
	}
	want := []Update{
		{Name: "hello", Installed: "1.0-1", Available: "2.0-1", Type: Security, CVEs: []string{"CVE-2026-1000", "CVE-2026-1001"}},
		{Name: "tool", Installed: "1.0-1", Available: "1.1-1", Type: Bugfix},
	}
	slices.SortFunc(inv.Updates, func(a, b Update) int { return strings.Compare(a.Name, b.Name) })
	if fmt.Sprint(inv.Updates) != fmt.Sprint(want) {
		t.Errorf("updates\n got %+v\nwant %+v", inv.Updates, want)
	}
}

// TestDnfPrivateRoot: a private root's commands name its own config and
// repository directory, so that the host's repositories are never read.
func TestDnfPrivateRoot(t *testing.T) {
	root := t.TempDir()
	if err := PrepareDnfRoot(root, ""); err != nil {
		t.Fatal(err)
	}
	d, err := NewDnf(DnfConfig{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(d.base(), " ")
	for _, w := range []string{"--installroot=" + root, "--config=" + root + "/etc/dnf/dnf.conf", "--setopt=reposdir=" + root + "/etc/yum.repos.d", "--releasever=1"} {
		if !strings.Contains(got, w) {
			t.Errorf("options %q lack %q", got, w)
		}
	}
	if strings.Contains(got, "--nogpgcheck") {
		t.Errorf("options %q check no signatures without NoGPGCheck", got)
	}
	if _, err := NewDnf(DnfConfig{Root: t.TempDir()}); err == nil {
		t.Error("a root without etc/dnf/dnf.conf: no error")
	}
	if _, err := NewDnf(DnfConfig{Root: "relative"}); err == nil {
		t.Error("a relative root: no error")
	}
}

func TestDnfStoppedBeforeStart(t *testing.T) {
	repo := buildRPMRepo(t)
	d := newDnfRoot(t, repo, 5*time.Minute, &recorder{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, ty := range []UpdateType{All, Other} {
		res, err := d.UpdateAll(ctx, ty)
		if err != nil || res.Status != Canceled {
			t.Errorf("update all %s on a canceled context: %v %+v", ty, err, res)
		}
	}
	res, err := d.Install(ctx, []string{"hello"})
	if err != nil || res.Status != Canceled || len(res.Log) != 0 {
		t.Errorf("install on a canceled context: %v %+v", err, res)
	}
	if _, err := d.UpdateAll(ctx, "SOME"); err == nil {
		t.Error("update all of type SOME: no error")
	}
}

func TestCheckRPMNames(t *testing.T) {
	tests := []struct {
		pkgs      []string
		versioned bool
		ok        bool
	}{
		{[]string{"hello"}, false, true},
		{[]string{"python3.11-libs", "gcc-c++", "perl_x"}, false, true},
		{[]string{"hello=1.0-1.el9"}, true, true},
		{[]string{"hello=2:1.0-1"}, true, true},
		{[]string{"hello=1.0"}, false, false},
		{nil, false, false},
		{[]string{"-y"}, false, false},
		{[]string{"--nogpgcheck"}, true, false},
		{[]string{"hel*"}, false, false},
		{[]string{"hello=-x"}, true, false},
		{[]string{"a b"}, false, false},
	}
	for _, tc := range tests {
		err := checkRPMNames(tc.pkgs, tc.versioned)
		if (err == nil) != tc.ok {
			t.Errorf("checkRPMNames(%q, %v) = %v, want ok %v", tc.pkgs, tc.versioned, err, tc.ok)
		}
	}
}

func TestParseUpdateinfoList(t *testing.T) {
	tests := []struct {
		name, in string
		want     []Advisory
		wantErr  string
	}{
		{name: "empty", in: "\n"},
		{
			name: "advisories",
			in:   "RHSA-2024:1234 Important/Sec. openssl-1:3.0.7-25.el9_3.x86_64\nFEDORA-2024-1 bugfix tool-1.1-1.noarch\nX-1 enhancement a-b-2.0-3.fc39.noarch\nX-2 newpackage n-1-1.noarch\n",
			want: []Advisory{
				{ID: "RHSA-2024:1234", Type: Security, Severity: "Important", Name: "openssl", EVR: "1:3.0.7-25.el9_3", Arch: "x86_64"},
				{ID: "FEDORA-2024-1", Type: Bugfix, Name: "tool", EVR: "1.1-1", Arch: "noarch"},
				{ID: "X-1", Type: Enhancement, Name: "a-b", EVR: "2.0-3.fc39", Arch: "noarch"},
				{ID: "X-2", Type: Other, Name: "n", EVR: "1-1", Arch: "noarch"},
			},
		},
		{
			name: "cves", in: "CVE-2026-1001 Important/Sec. hello-2.0-1.noarch\nCVE-2026-9 Sec. hello-2.0-1.noarch\n",
			want: []Advisory{
				{ID: "CVE-2026-1001", Type: Security, Severity: "Important", Name: "hello", EVR: "2.0-1", Arch: "noarch"},
				{ID: "CVE-2026-9", Type: Security, Name: "hello", EVR: "2.0-1", Arch: "noarch"},
			},
		},
		{name: "header line", in: "Last metadata expiration check: 0:00:01 ago\n", wantErr: "want ID TYPE PACKAGE"},
		{name: "unknown type", in: "X-1 weird a-1-1.noarch\n", wantErr: `unknown advisory type "weird"`},
		{name: "no arch", in: "X-1 bugfix a-1-1\n", wantErr: "has no architecture"},
		{name: "empty arch", in: "0 Sec. 0-0-000000.\n", wantErr: "has no architecture"},
		{name: "no version", in: "X-1 bugfix a-1.noarch\n", wantErr: "no name-version-release"},
		{name: "no release", in: "X-1 bugfix a.noarch\n", wantErr: "has no release"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseUpdateinfoList(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func FuzzParseUpdateinfoList(f *testing.F) {
	f.Add("RHSA-2024:1234 Important/Sec. openssl-1:3.0.7-25.el9_3.x86_64\nFEDORA-2024-1 bugfix tool-1.1-1.noarch\n")
	f.Add("CVE-2026-1001 Important/Sec. hello-2.0-1.noarch\n")
	f.Add("X-1 bugfix a.noarch\n")
	f.Fuzz(func(t *testing.T, in string) {
		advs, err := ParseUpdateinfoList(in)
		if err != nil {
			if advs != nil {
				t.Fatal("advisories with an error")
			}
			return
		}
		for _, a := range advs {
			if a.ID == "" || a.Name == "" || a.EVR == "" || a.Arch == "" {
				t.Fatalf("incomplete advisory %+v from %q", a, in)
			}
			if _, err := ParseUpdateType(string(a.Type)); err != nil || a.Type == All {
				t.Fatalf("advisory type %q from %q", a.Type, in)
			}
		}
	})
}
