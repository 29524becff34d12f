package deploy

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/internal/testenv"
)

// units are the systemd units of deploy/systemd: each runs one target with
// one example configuration of deploy/config, as the user it needs.
var units = []struct {
	unit, target, config, user string
	// caps is the unit's whole capability bounding set.
	caps []string
}{
	{"auditpipe-collector.service", "collector", "collector.yaml", "auditpipe", []string{"CAP_AUDIT_READ"}},
	{"auditpipe-agent.service", "agent", "agent.yaml", "root", agentCaps},
	{"auditpipe-host.service", "host", "host.yaml", "root", append(slices.Clone(agentCaps), "CAP_AUDIT_READ")},
	{"auditpipe-indexer.service", "indexer", "indexer.yaml", "auditpipe", nil},
	{"auditpipe-forwarder.service", "forwarder", "forwarder.yaml", "auditpipe", nil},
	{"auditpipe-policy.service", "policy", "policy.yaml", "auditpipe", nil},
	{"auditpipe-scheduler.service", "scheduler", "scheduler.yaml", "auditpipe", nil},
	{"auditpipe-all.service", "all", "all.yaml", "auditpipe", []string{"CAP_AUDIT_READ"}},
}

var agentCaps = []string{"CAP_CHOWN", "CAP_FOWNER", "CAP_FSETID", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH",
	"CAP_KILL", "CAP_SETUID", "CAP_SETGID", "CAP_AUDIT_CONTROL", "CAP_AUDIT_WRITE"}

// maxExposure is the highest `systemd-analyze security` exposure a unit may
// have, in tenths as --threshold takes it (0 best, 100 worst; systemd calls
// up to 49 "OK"). The agent and the host are root with the rights user
// management needs: 3.4 (34) when written; the others 1.5-1.8.
const maxExposure = "40"

// unitKeys reads a unit file's [Service] section: key → values in order.
func unitKeys(t *testing.T, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = line
		case section == "[Service]":
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: not key=value: %q", path, line)
			}
			keys[k] = append(keys[k], v)
		}
	}
	return keys
}

// TestUnitsMatchTargets: every unit file is listed above, and each runs its
// target with an example configuration of that target, as its user, with
// the hardening every unit carries and exactly its capabilities.
func TestUnitsMatchTargets(t *testing.T) {
	files, err := filepath.Glob("systemd/*.service")
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, u := range units {
		listed = append(listed, "systemd/"+u.unit)
	}
	slices.Sort(listed)
	if !slices.Equal(files, listed) {
		t.Fatalf("deploy/systemd holds %v, the test knows %v", files, listed)
	}
	for _, u := range units {
		t.Run(u.unit, func(t *testing.T) {
			k := unitKeys(t, filepath.Join("systemd", u.unit))
			want := "/usr/bin/auditpipe run --target " + u.target + " --config /etc/auditpipe/" + u.config
			if got := k["ExecStart"]; len(got) != 1 || got[0] != want {
				t.Errorf("ExecStart = %q, want %q", got, want)
			}
			cfg, err := os.ReadFile(filepath.Join("config", u.config))
			if err != nil {
				t.Fatalf("the unit's configuration has no example: %v", err)
			}
			if !bytes.Contains(cfg, []byte("\ntarget: "+u.target+"\n")) {
				t.Errorf("config/%s is not for target %s", u.config, u.target)
			}
			if got := k["User"]; len(got) != 1 || got[0] != u.user {
				t.Errorf("User = %q, want %s", got, u.user)
			}
			for key, val := range map[string]string{
				"Type": "exec", "Restart": "on-failure", "ProtectSystem": "strict",
				"PrivateTmp": "yes", "NoNewPrivileges": "yes", "UMask": "0077",
				"ExecReload": "/bin/kill -HUP $MAINPID",
			} {
				if got := k[key]; len(got) != 1 || got[0] != val {
					t.Errorf("%s = %q, want %s", key, got, val)
				}
			}
			if u.user != "root" && k["ProtectHome"][0] != "yes" {
				t.Errorf("ProtectHome = %q, want yes", k["ProtectHome"])
			}
			var caps []string
			for _, v := range k["CapabilityBoundingSet"] {
				caps = append(caps, strings.Fields(v)...)
			}
			if !slices.Equal(caps, u.caps) {
				t.Errorf("CapabilityBoundingSet = %v, want %v", caps, u.caps)
			}
			// Writable: the state directory, and for root units what a
			// grant changes; nothing for the forwarder.
			for _, p := range k["ReadWritePaths"] {
				for _, f := range strings.Fields(p) {
					if !strings.HasPrefix(f, "/var/lib/auditpipe/") && u.user != "root" {
						t.Errorf("ReadWritePaths names %s outside the state directory", f)
					}
				}
			}
		})
	}
}

// privateRoot builds a root directory for systemd-analyze --root: the
// host's unit directory (for the targets units name), /usr/bin/auditpipe
// (a stand-in: the package installs the real one; verify checks only that
// the command is executable) and the host's kill (ExecReload), with the
// units under etc/systemd/system.
func privateRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	sys := "/usr/lib/systemd/system"
	if _, err := os.Stat(filepath.Join(sys, "multi-user.target")); err != nil {
		sys = "/lib/systemd/system"
	}
	for _, d := range []string{"usr/lib/systemd", "usr/bin", "etc/systemd/system"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("cp", "-a", sys, filepath.Join(root, "usr/lib/systemd/")).CombinedOutput(); err != nil {
		t.Fatalf("copying %s: %v: %s", sys, err, out)
	}
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/bin/auditpipe"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	kill, err := exec.LookPath("kill")
	if err != nil {
		kill = "/usr/bin/kill"
	}
	if b, err := os.ReadFile(kill); err != nil {
		t.Fatalf("the host's kill: %v", err)
	} else if err := os.WriteFile(filepath.Join(root, "usr/bin/kill"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, u := range units {
		b, err := os.ReadFile(filepath.Join("systemd", u.unit))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "etc/systemd/system", u.unit), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testenv.SkipOrFail(t, testenv.Systemd, "systemd-analyze not found (Debian's systemd; scripts/deps.d/60-systemd.sh): run `make deps`")
	}
	return p
}

// TestSystemdVerify runs `systemd-analyze verify` on each unit and fails on
// any message it prints (an unknown key is only a warning to systemd, with
// exit status 0), then `systemd-analyze security --offline` with a
// threshold on the exposure.
func TestSystemdVerify(t *testing.T) {
	sa := systemdAnalyze(t)
	root := privateRoot(t)
	for _, u := range units {
		t.Run(u.unit, func(t *testing.T) {
			path := "/etc/systemd/system/" + u.unit
			cmd := exec.Command("nice", "-n", "10", sa, "verify", "--man=no", "--generators=no", "--root="+root, path)
			out, err := cmd.CombinedOutput()
			if err != nil || len(out) > 0 {
				t.Errorf("systemd-analyze verify %s: %v\n%s", u.unit, err, out)
			}
			cmd = exec.Command("nice", "-n", "10", sa, "security", "--offline=yes", "--threshold="+maxExposure, "--root="+root, path)
			out, err = cmd.CombinedOutput()
			last := strings.TrimSpace(string(out))
			if i := strings.LastIndexByte(last, '\n'); i >= 0 {
				last = last[i+1:]
			}
			if err != nil {
				t.Errorf("systemd-analyze security %s: %v (threshold %s)\n%s", u.unit, err, maxExposure, out)
			}
			t.Log(last)
		})
	}
}

// TestSystemdVerifyCatchesWarnings: the check above fails on a unit with a
// misspelt key (a regression test of the check itself: systemd-analyze
// verify exits 0 on it and only prints a warning).
func TestSystemdVerifyCatchesWarnings(t *testing.T) {
	sa := systemdAnalyze(t)
	root := privateRoot(t)
	path := filepath.Join(root, "etc/systemd/system/auditpipe-forwarder.service")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Replace(b, []byte("PrivateTmp=yes"), []byte("PrivateTemp=yes"), 1)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command(sa, "verify", "--man=no", "--generators=no", "--root="+root, "/etc/systemd/system/auditpipe-forwarder.service").CombinedOutput()
	if !bytes.Contains(out, []byte("PrivateTemp")) {
		t.Fatalf("systemd-analyze verify said nothing of a misspelt key: %q", out)
	}
}
