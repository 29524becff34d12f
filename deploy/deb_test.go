package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/internal/audittest"
	"github.com/auditpipe/auditpipe/internal/testenv"
)

// debTools returns dpkg-deb, or skips the test.
func debTools(t *testing.T) {
	t.Helper()
	for _, c := range []string{"dpkg", "dpkg-deb", "useradd"} {
		if _, err := exec.LookPath(c); err != nil {
			testenv.SkipOrFail(t, testenv.Apt, "%s not found (dpkg, passwd; scripts/deps.d/55-apt.sh): run `make deps`", c)
		}
	}
}

// TestDebInstallsIntoPrivateRoot builds the binary and the package
// (scripts/deb.sh), installs it with `dpkg --root` into a private root
// (maintainer scripts run chrootless with DPKG_ROOT set, as the package
// manager adapter does), and checks what landed there: the binary, every
// unit, the plugin file inactive, the examples, the auditpipe system user
// and its state directory; the maintainer scripts are valid sh; purge
// removes the user and the state.
func TestDebInstallsIntoPrivateRoot(t *testing.T) {
	debTools(t)
	testenv.RequireRoot(t, "useradd --prefix writes the private root's passwd and shadow as root only")
	dir := t.TempDir()
	bin := auditpipeBinary(t)
	out, err := exec.Command("bash", "../scripts/deb.sh", bin, "0.1.0~test", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/deb.sh: %v\n%s", err, out)
	}
	deb := strings.TrimSpace(string(out))

	t.Run("lintian", func(t *testing.T) {
		lintian, err := exec.LookPath("lintian")
		if err != nil {
			testenv.SkipOrFail(t, testenv.Lintian, "lintian not found (scripts/deps.d/66-lintian.sh): run `make deps`")
		}
		// Errors and warnings fail; the overrides the package ships
		// (deploy/deb/lintian-overrides) say why each is accepted.
		out, err := exec.Command("nice", "-n", "10", lintian, "--fail-on", "error,warning", "--tag-display-limit", "0", deb).CombinedOutput()
		var tags []string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "E: ") || strings.HasPrefix(l, "W: ") {
				tags = append(tags, l)
			}
		}
		if err != nil || len(tags) > 0 {
			t.Errorf("lintian: %v\n%s", err, out)
		}
	})

	info, err := exec.Command("dpkg-deb", "--info", deb).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb --info: %v\n%s", err, info)
	}
	for _, s := range []string{"Package: auditpipe", "Version: 0.1.0~test", "Depends: libc6, passwd", " postinst", " prerm", " postrm", " conffiles"} {
		if !bytes.Contains(info, []byte(s)) {
			t.Errorf("dpkg-deb --info lacks %q:\n%s", s, info)
		}
	}

	root := filepath.Join(dir, "root")
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The private root's account files, as a fresh Debian has them.
	for name, content := range map[string]string{
		"var/lib/dpkg/status": "",
		"etc/passwd":          "root:x:0:0:root:/root:/bin/bash\n",
		"etc/group":           "root:x:0:\nadm:x:4:\n",
		"etc/shadow":          "root:*:19000:0:99999:7:::\n",
		"etc/gshadow":         "root:*::\nadm:*::\n",
	} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	dpkg := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("dpkg", append([]string{"--root=" + root, "--force-script-chrootless", "--force-not-root", "--force-depends"}, args...)...)
		cmd.Env = append(os.Environ(), "PATH=/usr/sbin:/usr/bin:/sbin:/bin")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	// The host's users are global state that the live agent and session
	// tests change under the machine-wide lock (their users come and go):
	// compared without it, this test failed when they ran beside it.
	audittest.Take(t)
	hostPasswd, _ := os.ReadFile("/etc/passwd")
	dpkg("--install", deb)

	if st := dpkg("--status", "auditpipe"); !strings.Contains(st, "Status: install ok installed") {
		t.Fatalf("not installed:\n%s", st)
	}
	files := dpkg("--listfiles", "auditpipe")
	for _, f := range []string{"/usr/bin/auditpipe", "/etc/audit/plugins.d/auditpipe.conf",
		"/usr/share/doc/auditpipe/examples/config/host.yaml", "/usr/share/doc/auditpipe/examples/siem/rsyslog-auditpipe.conf",
		"/usr/share/doc/auditpipe/examples/prometheus/auditpipe-rules.yml"} {
		if !strings.Contains(files, f+"\n") {
			t.Errorf("package lacks %s", f)
		}
	}
	for _, u := range units {
		if !strings.Contains(files, "/lib/systemd/system/"+u.unit+"\n") {
			t.Errorf("package lacks unit %s", u.unit)
		}
	}
	if out, err := exec.Command(filepath.Join(root, "usr/bin/auditpipe"), "--version").CombinedOutput(); err != nil {
		t.Errorf("the installed binary: %v\n%s", err, out)
	}
	plugin, err := os.ReadFile(filepath.Join(root, "etc/audit/plugins.d/auditpipe.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if kv, err := parsePlugin(plugin); err != nil || kv["active"] != "no" {
		t.Errorf("installed plugin file: active %q, %v (want a valid file, inactive)", kv["active"], err)
	}
	if fi, err := os.Stat(filepath.Join(root, "etc/audit/plugins.d/auditpipe.conf")); err != nil || fi.Mode().Perm()&0o022 != 0 {
		t.Errorf("plugin file mode %v, %v: auditd refuses a file others may write", fi.Mode(), err)
	}

	passwd, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil {
		t.Fatal(err)
	}
	var user []string
	for _, l := range strings.Split(string(passwd), "\n") {
		if strings.HasPrefix(l, "auditpipe:") {
			user = strings.Split(l, ":")
		}
	}
	if len(user) != 7 || user[5] != "/var/lib/auditpipe" || user[6] != "/usr/sbin/nologin" {
		t.Fatalf("no auditpipe system user in the root's passwd:\n%s", passwd)
	}
	if group, _ := os.ReadFile(filepath.Join(root, "etc/group")); !bytes.Contains(group, []byte("\nauditpipe:x:"+user[3]+":")) {
		t.Errorf("no auditpipe group %s in the root's group:\n%s", user[3], group)
	}
	if fi, err := os.Stat(filepath.Join(root, "var/lib/auditpipe")); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("state directory: %v %v", fi, err)
	}
	if after, _ := os.ReadFile("/etc/passwd"); !bytes.Equal(after, hostPasswd) {
		t.Errorf("the host's /etc/passwd changed")
	}

	for _, s := range []string{"postinst", "prerm", "postrm"} {
		p := filepath.Join(root, "var/lib/dpkg/info/auditpipe."+s)
		if out, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
			t.Errorf("%s is not valid sh: %v\n%s", s, err, out)
		}
		if out, err := exec.Command("dash", "-n", p).CombinedOutput(); err != nil {
			t.Errorf("%s is not valid for dash: %v\n%s", s, err, out)
		}
	}

	dpkg("--purge", "auditpipe")
	if passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd")); bytes.Contains(passwd, []byte("auditpipe:")) {
		t.Errorf("purge left the user:\n%s", passwd)
	}
	if _, err := os.Stat(filepath.Join(root, "var/lib/auditpipe")); !os.IsNotExist(err) {
		t.Errorf("purge left the state directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "usr/bin/auditpipe")); !os.IsNotExist(err) {
		t.Errorf("purge left the binary: %v", err)
	}
}
