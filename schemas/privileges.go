package schemas

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// Layers of a resource, as the seed names them: control plane server,
// database server host (Dom0), storage cell, guest VM, switch, ILOM.
const (
	LayerCPS     = "CPS"
	LayerHost    = "HOST"
	LayerCell    = "CELL"
	LayerGuestVM = "GUESTVM"
	LayerSwitch  = "SWITCH"
	LayerILOM    = "ILOM"
)

// Layers returns every layer name.
func Layers() []string {
	return []string{LayerCPS, LayerHost, LayerCell, LayerGuestVM, LayerSwitch, LayerILOM}
}

// Privileges is what a grant lets its login user do on the hosts it names:
// an operator action's privileges with its inheritance resolved, or the
// union of several actions' (Merge). The host agent turns it into the
// user's sudoers fragment, su rules and chroot; the policy API shows it.
//
// A flag that grants (SuRoot, SudoAll, AllCommands, ReadAll, WriteAll,
// SSHAllLayers, Egress) holds when any merged action sets it; Chroot, a
// confinement, holds only when every merged action confines. Lists are
// sorted and without repeats; a list that an "all" flag makes moot is
// empty (AllCommands: Commands; SudoAll: SudoCommands; ReadAll:
// ReadablePaths; WriteAll: WritablePaths), and DeniedCommands never names
// a command that is allowed, nor remains beside AllCommands or SudoAll.
type Privileges struct {
	// Layers are the layers whose hosts the privileges apply to.
	Layers []string `json:"layers"`
	// Chroot confines the login user to a chroot jail.
	Chroot bool `json:"chroot"`
	// SuRoot lets the user become root (su, sudo -i).
	SuRoot bool `json:"su_root"`
	// SuUsers are the users the login user may su to (e.g. cellmonitor).
	SuUsers []string `json:"su_users,omitempty"`
	// SudoAll lets the user run any command as root with sudo.
	SudoAll bool `json:"sudo_all"`
	// SudoCommands are the commands the user may run as root with sudo.
	SudoCommands []string `json:"sudo_commands,omitempty"`
	// AllCommands lets the user run any command as itself.
	AllCommands bool `json:"all_commands"`
	// Commands are the commands the user may run as itself.
	Commands []string `json:"commands,omitempty"`
	// DeniedCommands are refused even inside a broader allowance.
	DeniedCommands []string `json:"denied_commands,omitempty"`
	// ReadAll lets the user read every file.
	ReadAll bool `json:"read_all"`
	// ReadablePaths are the directories and files the user may read.
	ReadablePaths []string `json:"readable_paths,omitempty"`
	// WriteAll lets the user write every file.
	WriteAll bool `json:"write_all"`
	// WritablePaths are the directories and files the user may write.
	WritablePaths []string `json:"writable_paths,omitempty"`
	// SSHAllLayers lets the user ssh between the resource's hosts, every
	// layer, under the same login.
	SSHAllLayers bool `json:"ssh_all_layers"`
	// Egress allows network connections out of the resource.
	Egress bool `json:"egress"`
}

// Merge returns the union of p and others (see Privileges), normalized.
func (p Privileges) Merge(others ...Privileges) Privileges {
	out := p.clone()
	for _, o := range others {
		out.Layers = append(out.Layers, o.Layers...)
		out.Chroot = out.Chroot && o.Chroot
		out.SuRoot = out.SuRoot || o.SuRoot
		out.SuUsers = append(out.SuUsers, o.SuUsers...)
		out.SudoAll = out.SudoAll || o.SudoAll
		out.SudoCommands = append(out.SudoCommands, o.SudoCommands...)
		out.AllCommands = out.AllCommands || o.AllCommands
		out.Commands = append(out.Commands, o.Commands...)
		out.DeniedCommands = append(out.DeniedCommands, o.DeniedCommands...)
		out.ReadAll = out.ReadAll || o.ReadAll
		out.ReadablePaths = append(out.ReadablePaths, o.ReadablePaths...)
		out.WriteAll = out.WriteAll || o.WriteAll
		out.WritablePaths = append(out.WritablePaths, o.WritablePaths...)
		out.SSHAllLayers = out.SSHAllLayers || o.SSHAllLayers
		out.Egress = out.Egress || o.Egress
	}
	return out.Normalize()
}

func (p Privileges) clone() Privileges {
	p.Layers = slices.Clone(p.Layers)
	p.SuUsers = slices.Clone(p.SuUsers)
	p.SudoCommands = slices.Clone(p.SudoCommands)
	p.Commands = slices.Clone(p.Commands)
	p.DeniedCommands = slices.Clone(p.DeniedCommands)
	p.ReadablePaths = slices.Clone(p.ReadablePaths)
	p.WritablePaths = slices.Clone(p.WritablePaths)
	return p
}

// Normalize returns p with its lists sorted, without repeats, and without
// what a flag makes moot (see Privileges). Layers keep the order of
// Layers().
func (p Privileges) Normalize() Privileges {
	p = p.clone()
	var layers []string
	for _, l := range Layers() {
		if slices.Contains(p.Layers, l) {
			layers = append(layers, l)
		}
	}
	for _, l := range p.Layers { // unknown ones last, for Validate to name
		if !slices.Contains(Layers(), l) && !slices.Contains(layers, l) {
			layers = append(layers, l)
		}
	}
	p.Layers = layers
	p.SuUsers = sortedSet(p.SuUsers)
	p.SudoCommands = sortedSet(p.SudoCommands)
	p.Commands = sortedSet(p.Commands)
	p.ReadablePaths = sortedSet(p.ReadablePaths)
	p.WritablePaths = sortedSet(p.WritablePaths)
	if p.SudoAll {
		p.SudoCommands = nil
	}
	if p.AllCommands {
		p.Commands = nil
	}
	if p.ReadAll {
		p.ReadablePaths = nil
	}
	if p.WriteAll {
		p.WritablePaths = nil
	}
	if p.AllCommands || p.SudoAll {
		p.DeniedCommands = nil
	}
	p.DeniedCommands = slices.DeleteFunc(sortedSet(p.DeniedCommands), func(c string) bool {
		return slices.Contains(p.Commands, c) || slices.Contains(p.SudoCommands, c)
	})
	if len(p.DeniedCommands) == 0 {
		p.DeniedCommands = nil
	}
	return p
}

func sortedSet(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// Validate checks that the layers are known, the paths absolute and clean
// and no name empty.
func (p *Privileges) Validate() error {
	if len(p.Layers) == 0 {
		return fmt.Errorf("privileges: no layer")
	}
	for i, l := range p.Layers {
		if !slices.Contains(Layers(), l) {
			return fmt.Errorf("privileges: layers[%d]: unknown layer %q (known: %s)", i, l, strings.Join(Layers(), ", "))
		}
	}
	for _, list := range []struct {
		name  string
		items []string
		paths bool
	}{
		{"su_users", p.SuUsers, false}, {"sudo_commands", p.SudoCommands, false}, {"commands", p.Commands, false},
		{"denied_commands", p.DeniedCommands, false}, {"readable_paths", p.ReadablePaths, true}, {"writable_paths", p.WritablePaths, true},
	} {
		for i, s := range list.items {
			switch {
			case strings.TrimSpace(s) == "":
				return fmt.Errorf("privileges: %s[%d] is empty", list.name, i)
			case list.paths && (!path.IsAbs(s) || (path.Clean(s) != s && path.Clean(s)+"/" != s)):
				return fmt.Errorf("privileges: %s[%d]: %q is not a clean absolute path", list.name, i, s)
			}
		}
	}
	return nil
}
