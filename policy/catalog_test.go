package policy

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestCatalogGolden pins every action's effective privileges (the
// inheritance resolved): testdata/effective.golden.json, rewritten by
// -update.
func TestCatalogGolden(t *testing.T) {
	c, err := DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"INFRA_CPS_ONLY", "INFRA_DIAG", "INFRA_UPDATE_RESTART", "INFRA_HYPERVISOR", "INFRA_FULL", "AVM_FULL", "AVM_SYS_DIAG", "AVM_SYS_MAINT", "CCC_SYS_ADMIN_FULL_ACCESS"}
	if !slices.Equal(c.Names(), want) {
		t.Fatalf("actions %v, want %v", c.Names(), want)
	}
	eff := map[string]any{}
	for _, a := range c.Actions() {
		eff[a.Name] = a.Effective
	}
	got, err := json.MarshalIndent(eff, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	golden := filepath.Join("testdata", "effective.golden.json")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wantB, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, wantB) {
		t.Errorf("effective privileges differ from %s (go test ./policy -run CatalogGolden -update):\n%s", golden, got)
	}
}

// TestCatalogInheritance: what each action must and must not allow, the
// seed's words as assertions.
func TestCatalogInheritance(t *testing.T) {
	c, err := DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	get := func(n string) Action {
		a, ok := c.Action(n)
		if !ok {
			t.Fatalf("no action %s", n)
		}
		return a
	}
	diag, upd, hyp, full := get("INFRA_DIAG"), get("INFRA_UPDATE_RESTART"), get("INFRA_HYPERVISOR"), get("INFRA_FULL")
	tests := []struct {
		name string
		ok   bool
	}{
		{"UPDATE_RESTART inherits DIAG's commands", containsAll(upd.Effective.Commands, diag.Effective.Commands)},
		{"UPDATE_RESTART inherits DIAG's sudo commands", containsAll(upd.Effective.SudoCommands, diag.Effective.SudoCommands)},
		{"UPDATE_RESTART adds reboot", slices.Contains(upd.Effective.SudoCommands, "/usr/sbin/reboot") && !slices.Contains(diag.Effective.SudoCommands, "/usr/sbin/reboot")},
		{"HYPERVISOR inherits UPDATE_RESTART's sudo commands", containsAll(hyp.Effective.SudoCommands, upd.Effective.SudoCommands)},
		{"HYPERVISOR inherits DIAG's su to cellmonitor", slices.Contains(hyp.Effective.SuUsers, "cellmonitor")},
		{"HYPERVISOR is on hosts only", slices.Equal(hyp.Effective.Layers, []string{"HOST"})},
		{"no maintenance action becomes root", !diag.Effective.SuRoot && !upd.Effective.SuRoot && !hyp.Effective.SuRoot && !upd.Effective.SudoAll},
		{"the audit subsystem stays out of UPDATE_RESTART", slices.Contains(upd.Effective.DeniedCommands, "/usr/sbin/auditctl")},
		{"chroot up to HYPERVISOR, none for FULL", diag.Effective.Chroot && upd.Effective.Chroot && hyp.Effective.Chroot && !full.Effective.Chroot},
		{"FULL is root everywhere but the guest VMs", full.Effective.SuRoot && full.Effective.SudoAll && !slices.Contains(full.Effective.Layers, "GUESTVM")},
	}
	for _, tt := range tests {
		if !tt.ok {
			t.Error(tt.name)
		}
	}
	// A request for several actions gets the union on the union of layers.
	p, err := c.Effective("INFRA_CPS_ONLY", "INFRA_HYPERVISOR")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Layers, []string{"CPS", "HOST"}) || !slices.Contains(p.SudoCommands, "/usr/bin/virsh") {
		t.Errorf("union %+v", p)
	}
	if _, err := c.Effective("INFRA_NOPE"); err == nil || !strings.Contains(err.Error(), "INFRA_NOPE") {
		t.Errorf("unknown action: %v", err)
	}
}

func containsAll(s, sub []string) bool {
	for _, x := range sub {
		if !slices.Contains(s, x) {
			return false
		}
	}
	return len(sub) > 0
}

const goodAction = `
    display_name: A
    description: a
    layers: [CPS]
    risk: LOW
    resource_types: [EXACC]
`

// TestCatalogErrors: every bad catalog is refused with an error naming
// the action and the field.
func TestCatalogErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown field", "version: 1\nactions:\n  A_X:" + goodAction + "    privileges:\n      sudo_comands: [x]\n",
			[]string{"actions.A_X.privileges.sudo_comands: unknown field", `did you mean "sudo_commands"`}},
		{"unknown top-level field", "version: 1\nactoins: {}\n", []string{"actoins: unknown field"}},
		{"unknown parent", "version: 1\nactions:\n  A_X:" + goodAction + "    inherits: B_Y\n",
			[]string{`actions.A_X.inherits: unknown action "B_Y"`}},
		{"cycle", "version: 1\nactions:\n  A_X:" + goodAction + "    inherits: B_Y\n  B_Y:" + goodAction + "    inherits: A_X\n",
			[]string{"actions.A_X.inherits: inheritance cycle A_X -> B_Y -> A_X", "actions.B_Y.inherits: inheritance cycle B_Y -> A_X -> B_Y"}},
		{"self cycle", "version: 1\nactions:\n  A_X:" + goodAction + "    inherits: A_X\n", []string{"actions.A_X.inherits: inheritance cycle A_X -> A_X"}},
		{"unknown layer", "version: 1\nactions:\n  A_X:\n    display_name: A\n    description: a\n    layers: [CPS, MOON]\n    risk: LOW\n    resource_types: [EXACC]\n",
			[]string{`actions.A_X.layers[1]: unknown layer "MOON"`}},
		{"no layer", "version: 1\nactions:\n  A_X:\n    display_name: A\n    description: a\n    risk: LOW\n    resource_types: [EXACC]\n",
			[]string{"actions.A_X.layers: no layer"}},
		{"unknown risk", "version: 1\nactions:\n  A_X:\n    display_name: A\n    description: a\n    layers: [CPS]\n    risk: SCARY\n    resource_types: [EXACC]\n",
			[]string{`actions.A_X.risk: "SCARY" is not one of`}},
		{"unknown resource type", "version: 1\nactions:\n  A_X:\n    display_name: A\n    description: a\n    layers: [CPS]\n    risk: LOW\n    resource_types: [MAINFRAME]\n",
			[]string{`actions.A_X.resource_types[0]: unknown resource type "MAINFRAME"`}},
		{"relative path", "version: 1\nactions:\n  A_X:" + goodAction + "    privileges:\n      readable_paths: [var/log]\n",
			[]string{`actions.A_X.privileges: readable_paths[0]: "var/log" is not a clean absolute path`}},
		{"no description", "version: 1\nactions:\n  A_X:\n    display_name: A\n    layers: [CPS]\n    risk: LOW\n    resource_types: [EXACC]\n",
			[]string{"actions.A_X.description: is empty"}},
		{"bad name", "version: 1\nactions:\n  infra_x:" + goodAction, []string{`actions.infra_x: action name "infra_x"`}},
		{"wrong version", "version: 2\nactions:\n  A_X:" + goodAction, []string{"version: 2 is not a catalog version"}},
		{"no action", "version: 1\n", []string{"actions: no action"}},
		{"chroot not a bool", "version: 1\nactions:\n  A_X:" + goodAction + "    privileges:\n      chroot: maybe\n", []string{"actions.A_X.privileges.chroot"}},
		{"several at once", "version: 1\nactions:\n  A_X:\n    display_name: A\n    description: a\n    layers: [MOON]\n    risk: SCARY\n    resource_types: [EXACC]\n    inherits: NOPE\n",
			[]string{`layers[0]: unknown layer`, "risk:", `inherits: unknown action "NOPE"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCatalog([]byte(tt.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestLoadCatalog: a file loads like the embedded one; a missing file
// and a bad one name the path.
func TestLoadCatalog(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "catalog.yaml")
	if err := os.WriteFile(good, []byte("version: 1\nactions:\n  ONLY_ONE:"+goodAction), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadCatalog(good)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Names(), []string{"ONLY_ONE"}) || c.Version() != 1 {
		t.Errorf("loaded %v", c.Names())
	}
	a, _ := c.Action("ONLY_ONE")
	if !a.Effective.Chroot {
		t.Error("chroot is not the default")
	}
	if _, err := LoadCatalog(filepath.Join(dir, "none.yaml")); err == nil {
		t.Error("a missing file loaded")
	}
	bad := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(bad, []byte("version: 1\nactions:\n  X:\n    risk: LOW\n"), 0o644)
	if _, err := LoadCatalog(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad file: %v", err)
	}
	if d, err := LoadCatalog(""); err != nil || len(d.Names()) != 9 {
		t.Errorf("empty path: %v", err)
	}
}

// FuzzParseCatalog: the parser never panics, and a catalog it accepts
// is consistent (every effective set valid, every parent known).
func FuzzParseCatalog(f *testing.F) {
	f.Add(embeddedCatalog)
	f.Add([]byte("version: 1\nactions:\n  A_X:" + goodAction + "    inherits: B_Y\n  B_Y:" + goodAction + "    inherits: A_X\n"))
	f.Add([]byte("version: 1\nactions: &a\n  A_X: *a\n"))
	f.Add([]byte("version: 1\nactions:\n  A_X:" + goodAction + "    privileges: {chroot: false, commands: [ls], denied_commands: [ls]}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCatalog(b)
		if err != nil {
			return
		}
		for _, a := range c.Actions() {
			if err := a.Effective.Validate(); err != nil {
				t.Fatalf("%s: accepted, but its effective set is invalid: %v", a.Name, err)
			}
			if a.Inherits != "" {
				if _, ok := c.Action(a.Inherits); !ok {
					t.Fatalf("%s inherits unknown %s", a.Name, a.Inherits)
				}
			}
		}
	})
}
