package policy

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/schemas"
)

//go:embed catalog.yaml
var embeddedCatalog []byte

// CatalogVersion is the catalog file layout this build reads.
const CatalogVersion = 1

// Risks an action may carry, lowest first.
const (
	RiskLow      = "LOW"
	RiskMedium   = "MEDIUM"
	RiskHigh     = "HIGH"
	RiskCritical = "CRITICAL"
)

// Risks returns the risk levels, lowest first.
func Risks() []string { return []string{RiskLow, RiskMedium, RiskHigh, RiskCritical} }

// Resource types (OCI's resource_type enum).
const (
	ResourceExaCC              = "EXACC"
	ResourceExadataInfra       = "EXADATAINFRASTRUCTURE"
	ResourceCloudExadataInfra  = "CLOUDEXADATAINFRASTRUCTURE"
	ResourceAutonomousVMC      = "AUTONOMOUSVMCLUSTER"
	ResourceCloudAutonomousVMC = "CLOUDAUTONOMOUSVMCLUSTER"
	ResourceCCCInfra           = "CCCINFRASTRUCTURE"
)

// ResourceTypes returns every resource type.
func ResourceTypes() []string {
	return []string{ResourceExaCC, ResourceExadataInfra, ResourceCloudExadataInfra, ResourceAutonomousVMC, ResourceCloudAutonomousVMC, ResourceCCCInfra}
}

// Action is one operator action of the catalog.
type Action struct {
	Name        string `json:"name"`
	DisplayName string `json:"display_name"`
	Description string `json:"description"`
	// Inherits names the action whose privileges this one adds to.
	Inherits string `json:"inherits,omitempty"`
	// Layers are where the action applies: its own scope, not inherited.
	Layers        []string `json:"layers"`
	Risk          string   `json:"risk"`
	ResourceTypes []string `json:"resource_types"`
	// Privileges are the action's own, as the file writes them.
	Privileges schemas.Privileges `json:"privileges"`
	// Effective are Privileges with the inherited ones added (the
	// inheritance resolved), on the action's own Layers.
	Effective schemas.Privileges `json:"effective"`
}

// Catalog is the validated action catalog. It is immutable and safe for
// concurrent use.
type Catalog struct {
	version int
	actions []Action // in file order
	index   map[string]int
}

// catalogFile is the file's layout.
type catalogFile struct {
	Version int                   `yaml:"version"`
	Actions map[string]actionFile `yaml:"actions"`
}

type actionFile struct {
	DisplayName   string         `yaml:"display_name"`
	Description   string         `yaml:"description"`
	Inherits      string         `yaml:"inherits"`
	Layers        []string       `yaml:"layers"`
	Risk          string         `yaml:"risk"`
	ResourceTypes []string       `yaml:"resource_types"`
	Privileges    privilegesFile `yaml:"privileges"`
}

type privilegesFile struct {
	Chroot         *bool    `yaml:"chroot"` // default true: confined unless the action says not
	SuRoot         bool     `yaml:"su_root"`
	SuUsers        []string `yaml:"su_users"`
	SudoAll        bool     `yaml:"sudo_all"`
	SudoCommands   []string `yaml:"sudo_commands"`
	AllCommands    bool     `yaml:"all_commands"`
	Commands       []string `yaml:"commands"`
	DeniedCommands []string `yaml:"denied_commands"`
	ReadAll        bool     `yaml:"read_all"`
	ReadablePaths  []string `yaml:"readable_paths"`
	WriteAll       bool     `yaml:"write_all"`
	WritablePaths  []string `yaml:"writable_paths"`
	SSHAllLayers   bool     `yaml:"ssh_all_layers"`
	Egress         bool     `yaml:"egress"`
}

// DefaultCatalog returns the catalog embedded in the binary
// (policy/catalog.yaml).
func DefaultCatalog() (*Catalog, error) {
	c, err := ParseCatalog(embeddedCatalog)
	if err != nil {
		return nil, fmt.Errorf("embedded %w", err)
	}
	return c, nil
}

// LoadCatalog reads the catalog file at path; an empty path is the
// embedded catalog.
func LoadCatalog(path string) (*Catalog, error) {
	if path == "" {
		return DefaultCatalog()
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	c, err := ParseCatalog(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

var actionNameRe = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// ParseCatalog decodes and validates a catalog file strictly: an unknown
// field, an unknown parent, an inheritance cycle, an unknown layer, risk or
// resource type, a relative path, a missing description are errors, each
// naming its action and field (actions.INFRA_DIAG.inherits: …), all
// reported at once.
func ParseCatalog(b []byte) (*Catalog, error) {
	var f catalogFile
	if err := config.Decode(b, &f); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	order, err := actionOrder(b)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	var errs config.Errors
	if f.Version != CatalogVersion {
		errs.Addf("version", "%d is not a catalog version this build reads (want %d)", f.Version, CatalogVersion)
	}
	if len(f.Actions) == 0 {
		errs.Addf("actions", "no action")
	}
	c := &Catalog{version: f.Version, index: map[string]int{}}
	for _, name := range order {
		a, ok := f.Actions[name]
		if !ok {
			continue
		}
		path := config.KeyPath("actions", name)
		if !actionNameRe.MatchString(name) {
			errs.Addf(path, "action name %q is not upper case letters, digits and _", name)
		}
		checkAction(&errs, path, name, a, f.Actions)
		p := a.Privileges
		own := schemas.Privileges{
			Layers: a.Layers, Chroot: p.Chroot == nil || *p.Chroot,
			SuRoot: p.SuRoot, SuUsers: p.SuUsers, SudoAll: p.SudoAll, SudoCommands: p.SudoCommands,
			AllCommands: p.AllCommands, Commands: p.Commands, DeniedCommands: p.DeniedCommands,
			ReadAll: p.ReadAll, ReadablePaths: p.ReadablePaths, WriteAll: p.WriteAll, WritablePaths: p.WritablePaths,
			SSHAllLayers: p.SSHAllLayers, Egress: p.Egress,
		}
		if err := own.Validate(); err != nil && len(a.Layers) > 0 {
			errs.Add(config.JoinPath(path, "privileges"), errors.New(strings.TrimPrefix(err.Error(), "privileges: ")))
		}
		c.index[name] = len(c.actions)
		c.actions = append(c.actions, Action{
			Name: name, DisplayName: a.DisplayName, Description: a.Description, Inherits: a.Inherits,
			Layers: own.Normalize().Layers, Risk: a.Risk, ResourceTypes: slices.Clone(a.ResourceTypes),
			Privileges: own.Normalize(),
		})
	}
	if err := errs.Err(); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	for i := range c.actions {
		c.actions[i].Effective = c.resolve(c.actions[i].Name)
	}
	return c, nil
}

// checkAction records what is wrong with action name at path.
func checkAction(errs *config.Errors, path, name string, a actionFile, all map[string]actionFile) {
	if strings.TrimSpace(a.DisplayName) == "" {
		errs.Addf(config.JoinPath(path, "display_name"), "is empty")
	}
	if strings.TrimSpace(a.Description) == "" {
		errs.Addf(config.JoinPath(path, "description"), "is empty")
	}
	if len(a.Layers) == 0 {
		errs.Addf(config.JoinPath(path, "layers"), "no layer: name at least one of %s", strings.Join(schemas.Layers(), ", "))
	}
	for i, l := range a.Layers {
		if !slices.Contains(schemas.Layers(), l) {
			errs.Addf(config.IndexPath(config.JoinPath(path, "layers"), i), "unknown layer %q (known: %s)", l, strings.Join(schemas.Layers(), ", "))
		}
	}
	if !slices.Contains(Risks(), a.Risk) {
		errs.Addf(config.JoinPath(path, "risk"), "%q is not one of %s", a.Risk, strings.Join(Risks(), ", "))
	}
	if len(a.ResourceTypes) == 0 {
		errs.Addf(config.JoinPath(path, "resource_types"), "no resource type")
	}
	for i, rt := range a.ResourceTypes {
		if !slices.Contains(ResourceTypes(), rt) {
			errs.Addf(config.IndexPath(config.JoinPath(path, "resource_types"), i), "unknown resource type %q (known: %s)", rt, strings.Join(ResourceTypes(), ", "))
		}
	}
	if a.Inherits == "" {
		return
	}
	if _, ok := all[a.Inherits]; !ok {
		errs.Addf(config.JoinPath(path, "inherits"), "unknown action %q", a.Inherits)
		return
	}
	// Follow the chain: a name met twice is a cycle (reported by each
	// action on it).
	chain := []string{name}
	for cur := a.Inherits; cur != ""; cur = all[cur].Inherits {
		if slices.Contains(chain, cur) {
			errs.Addf(config.JoinPath(path, "inherits"), "inheritance cycle %s -> %s", strings.Join(chain, " -> "), cur)
			return
		}
		if _, ok := all[cur]; !ok {
			return // reported at the action that names it
		}
		chain = append(chain, cur)
	}
}

// actionOrder returns the keys of the actions mapping in file order.
func actionOrder(b []byte) ([]string, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, nil
	}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "actions" {
			continue
		}
		acts := root.Content[i+1]
		if acts.Kind == yaml.AliasNode {
			acts = acts.Alias
		}
		var names []string
		for j := 0; j+1 < len(acts.Content); j += 2 {
			names = append(names, acts.Content[j].Value)
		}
		return names, nil
	}
	return nil, nil
}

// resolve merges name's privileges with those of its ancestors, on name's
// own layers. The catalog is validated: the chain ends.
func (c *Catalog) resolve(name string) schemas.Privileges {
	a := c.actions[c.index[name]]
	eff := a.Privileges
	for cur := a.Inherits; cur != ""; cur = c.actions[c.index[cur]].Inherits {
		eff = eff.Merge(c.actions[c.index[cur]].Privileges)
	}
	eff.Layers = slices.Clone(a.Layers)
	return eff.Normalize()
}

// Version returns the catalog file's version.
func (c *Catalog) Version() int { return c.version }

// Actions returns the actions in file order (copies).
func (c *Catalog) Actions() []Action {
	out := make([]Action, len(c.actions))
	for i, a := range c.actions {
		out[i] = a.clone()
	}
	return out
}

// Names returns the action names in file order.
func (c *Catalog) Names() []string {
	out := make([]string, len(c.actions))
	for i, a := range c.actions {
		out[i] = a.Name
	}
	return out
}

// Action returns the action called name.
func (c *Catalog) Action(name string) (Action, bool) {
	i, ok := c.index[name]
	if !ok {
		return Action{}, false
	}
	return c.actions[i].clone(), true
}

// Effective returns the union of the effective privileges of the actions
// named (see schemas.Privileges.Merge); an unknown name is an error.
func (c *Catalog) Effective(names ...string) (schemas.Privileges, error) {
	if len(names) == 0 {
		return schemas.Privileges{}, errors.New("catalog: no action")
	}
	var parts []schemas.Privileges
	for _, n := range names {
		a, ok := c.Action(n)
		if !ok {
			return schemas.Privileges{}, fmt.Errorf("catalog: unknown action %q", n)
		}
		parts = append(parts, a.Effective)
	}
	return parts[0].Merge(parts[1:]...), nil
}

func (a Action) clone() Action {
	a.Layers = slices.Clone(a.Layers)
	a.ResourceTypes = slices.Clone(a.ResourceTypes)
	a.Privileges = a.Privileges.Normalize()
	a.Effective = a.Effective.Normalize()
	return a
}
