package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/internal/sign"
)

// TestWorkConfigValidate: each bad field of agent.instance and
// agent.work is named; the work fields are checked only with an
// instance (no instance: no work).
func TestWorkConfigValidate(t *testing.T) {
	key, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := sign.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(t.TempDir(), "grants.pub")
	if err := sign.SavePublicKey(pub, s.PublicKey()); err != nil {
		t.Fatal(err)
	}
	base := DefaultConfig()
	base.GrantKeys = []string{pub}
	base.Instance.ID = "ocid1.instance.db01"
	if err := base.Validate(); err != nil {
		t.Fatalf("defaults with an instance: %v", err)
	}
	tests := []struct {
		field  string
		change func(c *Config)
	}{
		{"agent.work.dispatch_topic", func(c *Config) { c.Work.DispatchTopic = "" }},
		{"agent.work.dispatch_keys[0]", func(c *Config) { c.Work.DispatchKeys = []string{"/nonexistent.pub"} }},
		{"agent.work.state_dir", func(c *Config) { c.Work.StateDir = "work" }},
		{"agent.work.package_root", func(c *Config) { c.Work.PackageRoot = "root" }},
		{"agent.work.security_tracker", func(c *Config) { c.Work.SecurityTracker = "feed.json" }},
		{"agent.work.max_run_time", func(c *Config) { c.Work.MaxRunTime = 0 }},
		{"agent.work.progress_interval", func(c *Config) { c.Work.ProgressInterval = -1 }},
		{"agent.work.inventory_interval", func(c *Config) { c.Work.InventoryInterval = 0 }},
		{"agent.work.package_manager", func(c *Config) { c.Work.PackageManager = "yum" }},
		{"agent.instance.compartment_path[1]", func(c *Config) { c.Instance.CompartmentPath = []string{"root", ""} }},
		{"agent.instance.group_ids[0]", func(c *Config) { c.Instance.GroupIDs = []string{""} }},
	}
	for _, tc := range tests {
		c := base
		tc.change(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v", tc.field, err)
		}
	}
	off := base
	off.Instance.ID = ""
	off.Work.StateDir = "relative"
	if err := off.Validate(); err != nil {
		t.Errorf("work fields checked without an instance: %v", err)
	}
}

// TestWorkRelease: the release is the configured one, else the package
// root's os-release, else the host's.
func TestWorkRelease(t *testing.T) {
	root := t.TempDir()
	w := &worker{cfg: DefaultConfig()}
	w.cfg.Work.PackageRoot = root
	host := w.release() // the root has no os-release yet: the host's
	if b, err := os.ReadFile("/etc/os-release"); err == nil && !strings.Contains(string(b), "VERSION_CODENAME="+host) {
		t.Errorf("release %q is not the host's", host)
	}
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/os-release"), []byte("ID=debian\nVERSION_CODENAME=\"trixie\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := w.release(); got != "trixie" {
		t.Errorf("release %q, want the root's trixie", got)
	}
	w.cfg.Work.Release = "bookworm"
	if got := w.release(); got != "bookworm" {
		t.Errorf("release %q, want the configured bookworm", got)
	}
}
