package schemas

import (
	"fmt"
	"regexp"
	"slices"
	"time"
)

// Triggers of an inventory report: the agent's schedule
// (agent.work.inventory_interval, and once at start) or the end of a
// work request.
const (
	InventoryScheduled   = "SCHEDULED"
	InventoryWorkRequest = "WORK_REQUEST"
)

// MaxInventoryPackages bounds the packages of one inventory report (a
// Debian host with everything installed has some 60 000 packages).
const MaxInventoryPackages = 100000

var cveRe = regexp.MustCompile(`^CVE-[0-9]{4}-[0-9]{4,}$`)

// Inventory is a host agent's package inventory, a message on topic
// opctl.agent.v1 (key = Host) beside its grant reports and work
// progress: every installed package, each with its available update (if
// any), the update's type and the CVEs it fixes. The indexer stores it in
// instance_inventory, which `auditpipe report compliance` reads. The
// instance's id, name, compartment path and groups are the agent's own
// configuration (agent.instance): the agent is the one place that knows
// which instance it is. Its JSON Schema is
// jsonschema/inventory.schema.json.
type Inventory struct {
	// Inventory is InventoryScheduled or InventoryWorkRequest: what made
	// the agent send it. It also tells an inventory apart from the other
	// messages of the topic.
	Inventory    string `json:"inventory"`
	Host         string `json:"host"`
	InstanceID   string `json:"instance_id"`
	InstanceName string `json:"instance_name,omitempty"`
	// CompartmentPath is the instance's compartment and its ancestors,
	// the root first; CompartmentID is its last element.
	CompartmentID   string   `json:"compartment_id,omitempty"`
	CompartmentPath []string `json:"compartment_path,omitempty"`
	GroupIDs        []string `json:"group_ids,omitempty"`
	// OSFamily is the package manager's family: "debian" (apt/dpkg).
	OSFamily string `json:"os_family"`
	// WorkRequestID is the work request whose end triggered the report.
	WorkRequestID string             `json:"work_request_id,omitempty"`
	Packages      []InventoryPackage `json:"packages"`
	// Time is when the inventory was taken, UTC.
	Time time.Time `json:"time"`
	// PublishSeq numbers the agent's messages of its host on
	// opctl.agent.v1 (all kinds together; inside the signed payload): each
	// consumer refuses a message whose number is below the last it applied
	// for the host, or equal to it with other content, as a replay.
	PublishSeq int64 `json:"publish_seq,omitempty"`
}

// InventoryPackage is one installed package, with its available update.
type InventoryPackage struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch,omitempty"`
	// UpdateVersion is the candidate version when an update is available;
	// UpdateType (SECURITY, BUGFIX, ENHANCEMENT, OTHER) and CVEs go with it.
	UpdateVersion string   `json:"update_version,omitempty"`
	UpdateType    string   `json:"update_type,omitempty"`
	CVEs          []string `json:"cves,omitempty"`
}

// Validate checks what the indexer and the compliance report rely on.
func (v *Inventory) Validate() error {
	switch {
	case v.Inventory != InventoryScheduled && v.Inventory != InventoryWorkRequest:
		return fmt.Errorf("inventory: inventory %q is not %s or %s", v.Inventory, InventoryScheduled, InventoryWorkRequest)
	case v.Host == "":
		return fmt.Errorf("inventory: host is empty")
	case v.InstanceID == "":
		return fmt.Errorf("inventory from %s: instance_id is empty", v.Host)
	case v.OSFamily == "":
		return fmt.Errorf("inventory from %s: os_family is empty", v.Host)
	case v.Time.IsZero():
		return fmt.Errorf("inventory from %s: time is zero", v.Host)
	case v.Inventory == InventoryWorkRequest && v.WorkRequestID == "":
		return fmt.Errorf("inventory from %s: %s without a work_request_id", v.Host, InventoryWorkRequest)
	case len(v.CompartmentPath) > 0 && v.CompartmentPath[len(v.CompartmentPath)-1] != v.CompartmentID:
		return fmt.Errorf("inventory from %s: compartment_id %q is not the last of compartment_path %q", v.Host, v.CompartmentID, v.CompartmentPath)
	case len(v.CompartmentPath) == 0 && v.CompartmentID != "":
		return fmt.Errorf("inventory from %s: compartment_id %q without compartment_path", v.Host, v.CompartmentID)
	case v.Packages == nil:
		return fmt.Errorf("inventory from %s: packages is missing", v.Host)
	case len(v.Packages) > MaxInventoryPackages:
		return fmt.Errorf("inventory from %s: %d packages, more than %d", v.Host, len(v.Packages), MaxInventoryPackages)
	}
	for i, id := range append(slices.Clone(v.CompartmentPath), v.GroupIDs...) {
		if id == "" {
			return fmt.Errorf("inventory from %s: compartment or group id %d is empty", v.Host, i)
		}
	}
	for i, p := range v.Packages {
		if err := p.validate(); err != nil {
			return fmt.Errorf("inventory from %s: package %d: %w", v.Host, i, err)
		}
	}
	return nil
}

func (p *InventoryPackage) validate() error {
	switch {
	case p.Name == "" || p.Version == "":
		return fmt.Errorf("name %q and version %q are required", p.Name, p.Version)
	case p.UpdateVersion == "" && (p.UpdateType != "" || len(p.CVEs) > 0):
		return fmt.Errorf("%s: update_type and cves go with an update_version", p.Name)
	case p.UpdateVersion != "" && !slices.Contains([]string{UpdateSecurity, UpdateBugfix, UpdateEnhancement, UpdateOther}, p.UpdateType):
		return fmt.Errorf("%s: update_type %q is not SECURITY, BUGFIX, ENHANCEMENT or OTHER", p.Name, p.UpdateType)
	}
	for _, c := range p.CVEs {
		if !cveRe.MatchString(c) {
			return fmt.Errorf("%s: %q is not a CVE id", p.Name, c)
		}
	}
	return nil
}

// DecodeInventory decodes one inventory strictly (unknown fields and
// trailing data refused) and validates it.
func DecodeInventory(b []byte) (Inventory, error) {
	var v Inventory
	if err := decodeStrict(b, &v); err != nil {
		return Inventory{}, fmt.Errorf("inventory: %w", err)
	}
	if err := v.Validate(); err != nil {
		return Inventory{}, err
	}
	return v, nil
}
