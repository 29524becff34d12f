package policy

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/ident"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/schemas"
)

// Bounds of a control's durations, in hours.
const (
	// DefaultMaxDurationHours is a control's max_duration_hours when it
	// sets none.
	DefaultMaxDurationHours = 24
	// MaxDurationHoursLimit caps max_duration_hours and
	// max_extension_hours: 14 days, the cap of Teleport's and AWS's
	// just-in-time access.
	MaxDurationHoursLimit = 336
	// MaxApprovers caps number_of_approvers.
	MaxApprovers = 10
)

// ControlInput creates an operator control, or replaces its fields in
// UpdateControl (where ResourceType, when set, must be the control's:
// OCI's update cannot change it).
type ControlInput struct {
	OperatorControlName       string   `json:"operator_control_name"`
	Description               string   `json:"description,omitempty"`
	CompartmentID             string   `json:"compartment_id"`
	ResourceType              string   `json:"resource_type"`
	ApproversList             []string `json:"approvers_list,omitempty"`
	ApproverGroupsList        []string `json:"approver_groups_list,omitempty"`
	PreApprovedOpActions      []string `json:"pre_approved_op_action_list,omitempty"`
	ApprovalRequiredOpActions []string `json:"approval_required_op_action_list,omitempty"`
	IsFullyPreApproved        bool     `json:"is_fully_pre_approved"`
	// NumberOfApprovers defaults to 1.
	NumberOfApprovers        int      `json:"number_of_approvers,omitempty"`
	EmailIDList              []string `json:"email_id_list,omitempty"`
	SystemMessage            string   `json:"system_message,omitempty"`
	IsDefaultOperatorControl bool     `json:"is_default_operator_control"`
	// MaxDurationHours defaults to DefaultMaxDurationHours,
	// MaxExtensionHours to MaxDurationHours.
	MaxDurationHours  int `json:"max_duration_hours,omitempty"`
	MaxExtensionHours int `json:"max_extension_hours,omitempty"`
}

// validate fills c's decision fields from in, with defaults, and lists
// what is wrong.
func (s *Service) controlFields(c *Control, in ControlInput) error {
	p := problems{object: ObjectControl}
	c.OperatorControlName = in.OperatorControlName
	if c.OperatorControlName == "" && in.IsDefaultOperatorControl {
		c.OperatorControlName = DefaultControlName
	}
	checkName(&p, "operator_control_name", c.OperatorControlName)
	c.Description, c.SystemMessage = in.Description, in.SystemMessage
	if c.ResourceType == "" {
		c.ResourceType = in.ResourceType
		if !slices.Contains(ResourceTypes(), c.ResourceType) {
			p.add("resource_type", "%q is not one of %s", c.ResourceType, strings.Join(ResourceTypes(), ", "))
		}
	} else if in.ResourceType != "" && in.ResourceType != c.ResourceType {
		p.add("resource_type", "cannot change (%s): create another control", c.ResourceType)
	}
	if c.CompartmentID == "" {
		c.CompartmentID = in.CompartmentID
	}
	if c.CompartmentID == "" {
		p.add("compartment_id", "is required")
	}
	c.ApproversList = sortedUnique(in.ApproversList)
	c.ApproverGroupsList = sortedUnique(in.ApproverGroupsList)
	for field, list := range map[string][]string{"approvers_list": c.ApproversList, "approver_groups_list": c.ApproverGroupsList} {
		for i, v := range list {
			if strings.TrimSpace(v) == "" {
				p.add(fmt.Sprintf("%s[%d]", field, i), "is empty")
			}
		}
	}
	c.PreApprovedOpActions = sortedUnique(in.PreApprovedOpActions)
	c.ApprovalRequiredOpActions = sortedUnique(in.ApprovalRequiredOpActions)
	for field, list := range map[string][]string{"pre_approved_op_action_list": c.PreApprovedOpActions, "approval_required_op_action_list": c.ApprovalRequiredOpActions} {
		for _, name := range list {
			a, ok := s.catalog.Action(name)
			switch {
			case !ok:
				p.add(field, "%q is not an action of the catalog", name)
			case c.ResourceType != "" && !slices.Contains(a.ResourceTypes, c.ResourceType):
				p.add(field, "%s does not apply to resource type %s (only %s)", name, c.ResourceType, strings.Join(a.ResourceTypes, ", "))
			}
		}
	}
	for _, name := range c.PreApprovedOpActions {
		if slices.Contains(c.ApprovalRequiredOpActions, name) {
			p.add("approval_required_op_action_list", "%s is pre-approved too: name it in one list", name)
		}
	}
	c.IsFullyPreApproved = in.IsFullyPreApproved
	c.NumberOfApprovers = in.NumberOfApprovers
	if c.NumberOfApprovers == 0 {
		c.NumberOfApprovers = 1
	}
	if c.NumberOfApprovers < 1 || c.NumberOfApprovers > MaxApprovers {
		p.add("number_of_approvers", "%d is not between 1 and %d", c.NumberOfApprovers, MaxApprovers)
	}
	c.EmailIDList = sortedUnique(in.EmailIDList)
	for i, e := range c.EmailIDList {
		if at := strings.Index(e, "@"); at <= 0 || at == len(e)-1 || strings.ContainsAny(e, " \t\n") {
			p.add(fmt.Sprintf("email_id_list[%d]", i), "%q is not an email address", e)
		}
	}
	c.IsDefaultOperatorControl = in.IsDefaultOperatorControl
	c.MaxDurationHours = in.MaxDurationHours
	if c.MaxDurationHours == 0 {
		c.MaxDurationHours = DefaultMaxDurationHours
	}
	c.MaxExtensionHours = in.MaxExtensionHours
	if c.MaxExtensionHours == 0 {
		c.MaxExtensionHours = c.MaxDurationHours
	}
	for field, v := range map[string]int{"max_duration_hours": c.MaxDurationHours, "max_extension_hours": c.MaxExtensionHours} {
		if v < 1 || v > MaxDurationHoursLimit {
			p.add(field, "%d is not between 1 and %d hours", v, MaxDurationHoursLimit)
		}
	}
	slices.SortFunc(p.list, func(a, b FieldProblem) int { return strings.Compare(a.Field, b.Field) })
	return p.err()
}

func sortedUnique(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// saveControl writes c (inserting when insert) and checks that it stays
// the only default control of its type.
func (s *Service) saveControl(tx *txn, c *Control, insert bool) error {
	if c.IsDefaultOperatorControl && c.LifecycleState != ControlDeleted {
		var n int
		if err := tx.queryRow("SELECT COUNT(*) FROM operator_controls WHERE resource_type = ? AND is_default = ? AND lifecycle_state <> ? AND id <> ?",
			c.ResourceType, true, string(ControlDeleted), c.ID).Scan(&n); err != nil {
			return fmt.Errorf("policy store: control: %w", err)
		}
		if n > 0 {
			return &ConflictError{Object: ObjectControl, ID: c.ID, Reason: "another control is already the default operator control of resource type " + c.ResourceType}
		}
	}
	doc, err := encodeDoc(c)
	if err != nil {
		return err
	}
	if insert {
		_, err = tx.exec("INSERT INTO operator_controls (id, compartment_id, resource_type, lifecycle_state, is_default, created_ms, version, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
			c.ID, c.CompartmentID, c.ResourceType, string(c.LifecycleState), c.IsDefaultOperatorControl, c.TimeOfCreation.UnixMilli(), c.Version, doc)
		if err != nil {
			return fmt.Errorf("policy store: create control: %w", err)
		}
		return nil
	}
	res, err := tx.exec("UPDATE operator_controls SET lifecycle_state = ?, is_default = ?, version = ?, doc = ? WHERE id = ? AND version = ?",
		string(c.LifecycleState), c.IsDefaultOperatorControl, c.Version, doc, c.ID, c.Version-1)
	if err != nil {
		return fmt.Errorf("policy store: update control: %w", err)
	}
	return updated(res, ObjectControl, c.ID)
}

func controlDetails(c *Control) map[string]string {
	return map[string]string{
		"operator_control_name":            c.OperatorControlName,
		"pre_approved_op_action_list":      strings.Join(c.PreApprovedOpActions, ","),
		"approval_required_op_action_list": strings.Join(c.ApprovalRequiredOpActions, ","),
		"approver_groups_list":             strings.Join(c.ApproverGroupsList, ","),
		"number_of_approvers":              strconv.Itoa(c.NumberOfApprovers),
		"is_fully_pre_approved":            strconv.FormatBool(c.IsFullyPreApproved),
	}
}

// CreateControl creates an operator control (state CREATED).
func (s *Service) CreateControl(ctx context.Context, who auth.Identity, in ControlInput) (Control, error) {
	now := s.clock()
	c := Control{ID: newID("operatorcontrol"), LifecycleState: ControlCreated, TimeOfCreation: now, TimeOfModification: now, LastModifiedBy: who.Name, Version: 1}
	if err := s.controlFields(&c, in); err != nil {
		return Control{}, err
	}
	err := s.store.tx(ctx, func(tx *txn) error {
		if err := needCompartment(tx, ObjectControl, c.CompartmentID); err != nil {
			return err
		}
		if err := s.saveControl(tx, &c, true); err != nil {
			return err
		}
		return s.record(tx, change{object: ObjectControl, id: c.ID, compart: c.CompartmentID, actor: who.Name,
			to: string(c.LifecycleState), action: "created", details: controlDetails(&c)}, now)
	})
	return c, err
}

// GetControl returns an operator control.
func (s *Service) GetControl(ctx context.Context, id string) (Control, error) {
	return getControl(s.store.read(ctx), id, false)
}

func getControl(tx *txn, id string, lock bool) (Control, error) {
	return getObj[Control](tx, "operator_controls", ObjectControl, id, lock)
}

// ControlFilter selects operator controls.
type ControlFilter struct {
	CompartmentID string
	Recursive     bool
	ResourceType  string
	State         ControlState
	Page          Page
}

// ListControls lists operator controls, newest first, and the next
// page's cursor.
func (s *Service) ListControls(ctx context.Context, f ControlFilter) ([]Control, string, error) {
	var w where
	if err := s.compartmentCond(ctx, &w, f.CompartmentID, f.Recursive); err != nil {
		return nil, "", err
	}
	w.eq("resource_type", f.ResourceType)
	w.eq("lifecycle_state", string(f.State))
	return list[Control](ctx, s.store, "operator_controls", w, f.Page)
}

// UpdateControl replaces a control's fields (not its resource type nor
// compartment). Requests decided already keep their decision; pending
// ones are decided by the control as it is now.
func (s *Service) UpdateControl(ctx context.Context, who auth.Identity, id string, ifMatch int64, in ControlInput) (Control, error) {
	now := s.clock()
	var c Control
	err := s.store.tx(ctx, func(tx *txn) error {
		var err error
		if c, err = getControl(tx, id, true); err != nil {
			return err
		}
		if err := checkVersion(ObjectControl, id, ifMatch, c.Version); err != nil {
			return err
		}
		if c.LifecycleState == ControlDeleted {
			return &ConflictError{Object: ObjectControl, ID: id, Reason: "is deleted"}
		}
		if err := s.controlFields(&c, in); err != nil {
			return err
		}
		c.Version++
		c.TimeOfModification, c.LastModifiedBy = now, who.Name
		if err := s.saveControl(tx, &c, false); err != nil {
			return err
		}
		return s.record(tx, change{object: ObjectControl, id: id, compart: c.CompartmentID, actor: who.Name,
			from: string(c.LifecycleState), to: string(c.LifecycleState), action: "updated", details: controlDetails(&c)}, now)
	})
	return c, err
}

// DeleteControl deletes a control (state DELETED; it stays readable as
// the history of the requests it decided). A control still assigned is
// refused: unassign it first.
func (s *Service) DeleteControl(ctx context.Context, who auth.Identity, id string, ifMatch int64) (Control, error) {
	now := s.clock()
	var c Control
	err := s.store.tx(ctx, func(tx *txn) error {
		var err error
		if c, err = getControl(tx, id, true); err != nil {
			return err
		}
		if err := checkVersion(ObjectControl, id, ifMatch, c.Version); err != nil {
			return err
		}
		if c.LifecycleState == ControlDeleted {
			return &ConflictError{Object: ObjectControl, ID: id, Reason: "is deleted already"}
		}
		var n int
		if err := tx.queryRow("SELECT COUNT(*) FROM assignments WHERE operator_control_id = ? AND lifecycle_state <> ?", id, string(AssignmentDeleted)).Scan(&n); err != nil {
			return fmt.Errorf("policy store: delete control: %w", err)
		}
		if n > 0 {
			return &ConflictError{Object: ObjectControl, ID: id, Reason: fmt.Sprintf("is assigned (%d assignments): unassign it first", n)}
		}
		from := c.LifecycleState
		c.LifecycleState = ControlDeleted
		c.Version++
		c.TimeOfModification, c.TimeOfDeletion, c.LastModifiedBy = now, now, who.Name
		if err := s.saveControl(tx, &c, false); err != nil {
			return err
		}
		return s.record(tx, change{object: ObjectControl, id: id, compart: c.CompartmentID, actor: who.Name, from: string(from), to: string(c.LifecycleState), action: "deleted"}, now)
	})
	return c, err
}

// setControlAssigned moves the control to ASSIGNED when it has an
// assignment that is not deleted, else to UNASSIGNED (once it had one).
func (s *Service) setControlAssigned(tx *txn, controlID, actor string, now time.Time) error {
	c, err := getControl(tx, controlID, true)
	if err != nil {
		return err
	}
	var n int
	if err := tx.queryRow("SELECT COUNT(*) FROM assignments WHERE operator_control_id = ? AND lifecycle_state <> ?", controlID, string(AssignmentDeleted)).Scan(&n); err != nil {
		return fmt.Errorf("policy store: control: %w", err)
	}
	want := ControlUnassigned
	if n > 0 {
		want = ControlAssigned
	}
	if c.LifecycleState == want || c.LifecycleState == ControlDeleted {
		return nil
	}
	from := c.LifecycleState
	c.LifecycleState = want
	c.Version++
	c.TimeOfModification = now
	if err := s.saveControl(tx, &c, false); err != nil {
		return err
	}
	return s.record(tx, change{object: ObjectControl, id: c.ID, compart: c.CompartmentID, actor: actor, from: string(from), to: string(want), action: strings.ToLower(string(want))}, now)
}

// AssignmentInput creates an assignment of a control to a resource.
type AssignmentInput struct {
	OperatorControlID string `json:"operator_control_id"`
	ResourceID        string `json:"resource_id"`
	Comment           string `json:"comment,omitempty"`
	AssignmentWindow
}

// AssignmentWindow is when an assignment is in force, and the resource's
// SIEM destination while it is.
type AssignmentWindow struct {
	IsEnforcedAlways   bool      `json:"is_enforced_always"`
	TimeAssignmentFrom time.Time `json:"time_assignment_from,omitzero"`
	TimeAssignmentTo   time.Time `json:"time_assignment_to,omitzero"`
	// Forwarding needs IsEnforcedAlways (the seed), an address, a port
	// and the SIEM's CA certificate (PEM).
	IsLogForwarded            bool   `json:"is_log_forwarded"`
	RemoteSyslogServerAddress string `json:"remote_syslog_server_address,omitempty"`
	RemoteSyslogServerPort    int    `json:"remote_syslog_server_port,omitempty"`
	RemoteSyslogServerCACert  string `json:"remote_syslog_server_ca_cert,omitempty"`
}

func (w *AssignmentWindow) check(p *problems, now time.Time, creating bool) {
	if w.IsEnforcedAlways {
		if !w.TimeAssignmentFrom.IsZero() || !w.TimeAssignmentTo.IsZero() {
			p.add("time_assignment_from", "an always-enforced assignment has no window")
		}
	} else {
		switch {
		case w.TimeAssignmentFrom.IsZero() || w.TimeAssignmentTo.IsZero():
			p.add("time_assignment_from", "time_assignment_from and time_assignment_to are required unless is_enforced_always")
		case !w.TimeAssignmentTo.After(w.TimeAssignmentFrom):
			p.add("time_assignment_to", "is not after time_assignment_from")
		case creating && !w.TimeAssignmentTo.After(now):
			p.add("time_assignment_to", "is in the past")
		}
	}
	if !w.IsLogForwarded {
		if w.RemoteSyslogServerAddress != "" || w.RemoteSyslogServerPort != 0 || w.RemoteSyslogServerCACert != "" {
			p.add("is_log_forwarded", "the remote syslog server is set but is_log_forwarded is not")
		}
		return
	}
	if !w.IsEnforcedAlways {
		p.add("is_log_forwarded", "log forwarding needs an always-enforced assignment (is_enforced_always)")
	}
	if a := w.RemoteSyslogServerAddress; net.ParseIP(a) == nil && !ident.IsHost(a) {
		p.add("remote_syslog_server_address", "%q is not a host name or IP address", a)
	}
	if w.RemoteSyslogServerPort < 1 || w.RemoteSyslogServerPort > 65535 {
		p.add("remote_syslog_server_port", "%d is not a port", w.RemoteSyslogServerPort)
	}
	if err := checkCACert(w.RemoteSyslogServerCACert); err != nil {
		p.add("remote_syslog_server_ca_cert", "%v", err)
	}
}

// checkCACert accepts PEM holding one or more X.509 certificates.
func checkCACert(s string) error {
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("the SIEM's CA certificate (PEM) is required: forwarding is over TLS only")
	}
	rest := []byte(s)
	n := 0
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return fmt.Errorf("PEM block %q, want CERTIFICATE", blk.Type)
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return fmt.Errorf("not an X.509 certificate: %v", err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("no PEM certificate")
	}
	return nil
}

// assignmentState is the state a live assignment should be in at now.
func assignmentState(a *Assignment, now time.Time) AssignmentState {
	switch {
	case a.IsEnforcedAlways:
		return AssignmentApplied
	case !now.Before(a.TimeAssignmentTo):
		return AssignmentDeleted
	case !now.Before(a.TimeAssignmentFrom):
		return AssignmentApplied
	}
	return AssignmentCreated
}

// overlaps reports whether the windows of a and b meet.
func overlaps(a, b *Assignment) bool {
	if a.IsEnforcedAlways || b.IsEnforcedAlways {
		return true
	}
	return a.TimeAssignmentFrom.Before(b.TimeAssignmentTo) && b.TimeAssignmentFrom.Before(a.TimeAssignmentTo)
}

// checkOverlap refuses a when another live assignment of its resource
// meets its window: one control per resource at a time.
func checkOverlap(tx *txn, a *Assignment) error {
	others, err := docs[Assignment](tx, "SELECT doc FROM assignments WHERE resource_id = ? AND lifecycle_state <> ? AND id <> ?", a.ResourceID, string(AssignmentDeleted), a.ID)
	if err != nil {
		return err
	}
	for _, o := range others {
		if overlaps(a, &o) {
			return &ConflictError{Object: ObjectAssignment, ID: a.ID, Reason: fmt.Sprintf("resource %s has assignment %s (control %s) at that time: one control per resource at a time", a.ResourceID, o.ID, o.OperatorControlID)}
		}
	}
	return nil
}

func saveAssignment(tx *txn, a *Assignment, insert bool) error {
	doc, err := encodeDoc(a)
	if err != nil {
		return err
	}
	if insert {
		if _, err := tx.exec("INSERT INTO assignments (id, operator_control_id, resource_id, compartment_id, lifecycle_state, is_enforced_always, from_ms, to_ms, created_ms, version, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			a.ID, a.OperatorControlID, a.ResourceID, a.ResourceCompartmentID, string(a.LifecycleState), a.IsEnforcedAlways, ms(a.TimeAssignmentFrom), ms(a.TimeAssignmentTo), a.TimeOfAssignment.UnixMilli(), a.Version, doc); err != nil {
			return fmt.Errorf("policy store: create assignment: %w", err)
		}
		return nil
	}
	res, err := tx.exec("UPDATE assignments SET lifecycle_state = ?, is_enforced_always = ?, from_ms = ?, to_ms = ?, version = ?, doc = ? WHERE id = ? AND version = ?",
		string(a.LifecycleState), a.IsEnforcedAlways, ms(a.TimeAssignmentFrom), ms(a.TimeAssignmentTo), a.Version, doc, a.ID, a.Version-1)
	if err != nil {
		return fmt.Errorf("policy store: update assignment: %w", err)
	}
	return updated(res, ObjectAssignment, a.ID)
}

// publishAssignment puts a's signed record in the outbox.
func (s *Service) publishAssignment(tx *txn, a *Assignment, r *Resource, now time.Time) error {
	seq, err := tx.nextSeq(kafka.TopicAssignments, a.ResourceID)
	if err != nil {
		return err
	}
	rec, err := grants.AssignmentRecord(s.signer, schemas.Assignment{PublishSeq: seq,
		ID: a.ID, OperatorControlID: a.OperatorControlID, ResourceID: a.ResourceID, ResourceType: a.ResourceType,
		IsEnforcedAlways: a.IsEnforcedAlways, IsLogForwarded: a.IsLogForwarded,
		RemoteSyslogServerAddress: a.RemoteSyslogServerAddress, RemoteSyslogServerPort: a.RemoteSyslogServerPort,
		RemoteSyslogServerCACert: a.RemoteSyslogServerCACert, Hosts: hostNames(r), LifecycleState: string(a.LifecycleState),
	})
	if err != nil {
		return fmt.Errorf("policy: assignment %s: %w", a.ID, err)
	}
	return tx.outbox(kafka.TopicAssignments, rec, now)
}

func (s *Service) publishRemoval(tx *txn, resourceID string, now time.Time) error {
	seq, err := tx.nextSeq(kafka.TopicAssignments, resourceID)
	if err != nil {
		return err
	}
	rec, err := grants.AssignmentRemoval(s.signer, resourceID, seq)
	if err != nil {
		return fmt.Errorf("policy: assignment removal %s: %w", resourceID, err)
	}
	return tx.outbox(kafka.TopicAssignments, rec, now)
}

func assignmentDetails(a *Assignment) map[string]string {
	d := map[string]string{"operator_control_id": a.OperatorControlID, "is_enforced_always": strconv.FormatBool(a.IsEnforcedAlways),
		"is_log_forwarded": strconv.FormatBool(a.IsLogForwarded)}
	if !a.IsEnforcedAlways {
		d["time_assignment_from"] = a.TimeAssignmentFrom.Format(time.RFC3339)
		d["time_assignment_to"] = a.TimeAssignmentTo.Format(time.RFC3339)
	}
	if a.IsLogForwarded {
		d["remote_syslog_server"] = a.RemoteSyslogServerAddress + ":" + strconv.Itoa(a.RemoteSyslogServerPort)
	}
	return d
}

// CreateAssignment assigns a control to a resource: APPLIED at once when
// always enforced or its window has begun (published signed on
// opctl.assignments.v1), else CREATED until Tick applies it.
func (s *Service) CreateAssignment(ctx context.Context, who auth.Identity, in AssignmentInput) (Assignment, error) {
	now := s.clock()
	a := Assignment{ID: newID("operatorcontrolassignment"), OperatorControlID: in.OperatorControlID, ResourceID: in.ResourceID,
		Comment: in.Comment, AssignerID: who.Name, TimeOfAssignment: now, TimeOfModification: now, Version: 1}
	w := in.AssignmentWindow
	w.TimeAssignmentFrom, w.TimeAssignmentTo = w.TimeAssignmentFrom.UTC().Truncate(time.Millisecond), w.TimeAssignmentTo.UTC().Truncate(time.Millisecond)
	setWindow(&a, w)
	p := problems{object: ObjectAssignment}
	if a.OperatorControlID == "" {
		p.add("operator_control_id", "is required")
	}
	if a.ResourceID == "" {
		p.add("resource_id", "is required")
	}
	w.check(&p, now, true)
	if err := p.err(); err != nil {
		return Assignment{}, err
	}
	base := a
	err := s.store.tx(ctx, func(tx *txn) error {
		// A retried transaction starts again; the resource's row lock
		// serializes its assignments.
		a = base
		r, err := getResource(tx, a.ResourceID, true)
		if err != nil {
			return asField(err, ObjectAssignment, "resource_id")
		}
		c, err := getControl(tx, a.OperatorControlID, false)
		if err != nil {
			return asField(err, ObjectAssignment, "operator_control_id")
		}
		if c.LifecycleState == ControlDeleted {
			return &ValidationError{Object: ObjectAssignment, Problems: []FieldProblem{{Field: "operator_control_id", Message: "control " + c.ID + " is deleted"}}}
		}
		if c.ResourceType != r.ResourceType {
			return &ValidationError{Object: ObjectAssignment, Problems: []FieldProblem{{Field: "operator_control_id", Message: fmt.Sprintf("control %s is for %s, resource %s is %s", c.ID, c.ResourceType, r.ID, r.ResourceType)}}}
		}
		a.OpControlName, a.ResourceName, a.ResourceType = c.OperatorControlName, r.Name, r.ResourceType
		a.ResourceCompartmentID, a.CompartmentID = r.CompartmentID, c.CompartmentID
		a.LifecycleState = AssignmentCreated
		if err := checkOverlap(tx, &a); err != nil {
			return err
		}
		if err := saveAssignment(tx, &a, true); err != nil {
			return err
		}
		if err := s.record(tx, change{object: ObjectAssignment, id: a.ID, resource: a.ResourceID, compart: a.ResourceCompartmentID, actor: who.Name,
			to: string(a.LifecycleState), action: "created", comment: a.Comment, details: assignmentDetails(&a)}, now); err != nil {
			return err
		}
		if assignmentState(&a, now) == AssignmentApplied {
			if err := s.applyAssignment(tx, &a, &r, who.Name, now); err != nil {
				return err
			}
		}
		return s.setControlAssigned(tx, a.OperatorControlID, who.Name, now)
	})
	return a, err
}

func setWindow(a *Assignment, w AssignmentWindow) {
	a.IsEnforcedAlways, a.TimeAssignmentFrom, a.TimeAssignmentTo = w.IsEnforcedAlways, w.TimeAssignmentFrom, w.TimeAssignmentTo
	a.IsLogForwarded, a.RemoteSyslogServerAddress, a.RemoteSyslogServerPort, a.RemoteSyslogServerCACert =
		w.IsLogForwarded, w.RemoteSyslogServerAddress, w.RemoteSyslogServerPort, w.RemoteSyslogServerCACert
}

// asField turns a NotFoundError of a referenced object into a
// ValidationError of the input's field.
func asField(err error, object, field string) error {
	if nf, ok := err.(*NotFoundError); ok {
		return &ValidationError{Object: object, Problems: []FieldProblem{{Field: field, Message: nf.Error()}}}
	}
	return err
}

// applyAssignment moves a (saved, CREATED) to APPLIED and publishes it.
func (s *Service) applyAssignment(tx *txn, a *Assignment, r *Resource, actor string, now time.Time) error {
	from := a.LifecycleState
	a.LifecycleState = AssignmentApplied
	a.Version++
	a.TimeOfModification = now
	if err := saveAssignment(tx, a, false); err != nil {
		return err
	}
	if err := s.publishAssignment(tx, a, r, now); err != nil {
		return err
	}
	return s.record(tx, change{object: ObjectAssignment, id: a.ID, resource: a.ResourceID, compart: a.ResourceCompartmentID, actor: actor,
		from: string(from), to: string(a.LifecycleState), action: "applied", details: assignmentDetails(a)}, now)
}

// endAssignment moves a to DELETED (removed, or its window ended); an
// applied one publishes its removal.
func (s *Service) endAssignment(tx *txn, a *Assignment, actor, action, description string, now time.Time) error {
	from := a.LifecycleState
	a.LifecycleState = AssignmentDeleted
	a.Version++
	a.TimeOfModification, a.TimeOfDeletion = now, now
	a.DetachmentDescription = description
	if actor != ActorPolicy {
		a.UnassignerID = actor
	}
	if err := saveAssignment(tx, a, false); err != nil {
		return err
	}
	if from == AssignmentApplied {
		if err := s.publishRemoval(tx, a.ResourceID, now); err != nil {
			return err
		}
	}
	if err := s.record(tx, change{object: ObjectAssignment, id: a.ID, resource: a.ResourceID, compart: a.ResourceCompartmentID, actor: actor,
		from: string(from), to: string(a.LifecycleState), action: action, comment: description}, now); err != nil {
		return err
	}
	return s.setControlAssigned(tx, a.OperatorControlID, actor, now)
}

// GetAssignment returns an assignment.
func (s *Service) GetAssignment(ctx context.Context, id string) (Assignment, error) {
	return getAssignment(s.store.read(ctx), id, false)
}

func getAssignment(tx *txn, id string, lock bool) (Assignment, error) {
	return getObj[Assignment](tx, "assignments", ObjectAssignment, id, lock)
}

// AssignmentFilter selects assignments.
type AssignmentFilter struct {
	ResourceID        string
	OperatorControlID string
	CompartmentID     string // the resource's compartment
	Recursive         bool
	State             AssignmentState
	Page              Page
}

// ListAssignments lists assignments, newest first, and the next page's
// cursor.
func (s *Service) ListAssignments(ctx context.Context, f AssignmentFilter) ([]Assignment, string, error) {
	var w where
	if err := s.compartmentCond(ctx, &w, f.CompartmentID, f.Recursive); err != nil {
		return nil, "", err
	}
	w.eq("resource_id", f.ResourceID)
	w.eq("operator_control_id", f.OperatorControlID)
	w.eq("lifecycle_state", string(f.State))
	return list[Assignment](ctx, s.store, "assignments", w, f.Page)
}

// AssignmentUpdate replaces an assignment's window and forwarding, and
// its comment when set.
type AssignmentUpdate struct {
	AssignmentWindow
	Comment *string `json:"comment,omitempty"`
}

// UpdateAssignment changes an assignment's window or SIEM destination;
// an applied one is published again (or removed when its new window has
// not begun).
func (s *Service) UpdateAssignment(ctx context.Context, who auth.Identity, id string, ifMatch int64, u AssignmentUpdate) (Assignment, error) {
	now := s.clock()
	var a Assignment
	err := s.store.tx(ctx, func(tx *txn) error {
		var err error
		if a, err = getAssignment(tx, id, false); err != nil {
			return err
		}
		r, err := getResource(tx, a.ResourceID, true)
		if err != nil {
			return err
		}
		if a, err = getAssignment(tx, id, true); err != nil {
			return err
		}
		if err := checkVersion(ObjectAssignment, id, ifMatch, a.Version); err != nil {
			return err
		}
		if a.LifecycleState == AssignmentDeleted {
			return &ConflictError{Object: ObjectAssignment, ID: id, Reason: "is deleted"}
		}
		w := u.AssignmentWindow
		w.TimeAssignmentFrom, w.TimeAssignmentTo = w.TimeAssignmentFrom.UTC().Truncate(time.Millisecond), w.TimeAssignmentTo.UTC().Truncate(time.Millisecond)
		p := problems{object: ObjectAssignment}
		w.check(&p, now, true)
		if err := p.err(); err != nil {
			return err
		}
		setWindow(&a, w)
		if u.Comment != nil {
			a.Comment = *u.Comment
		}
		if err := checkOverlap(tx, &a); err != nil {
			return err
		}
		from := a.LifecycleState
		a.LifecycleState = assignmentState(&a, now)
		a.Version++
		a.TimeOfModification = now
		if err := saveAssignment(tx, &a, false); err != nil {
			return err
		}
		switch {
		case a.LifecycleState == AssignmentApplied:
			err = s.publishAssignment(tx, &a, &r, now)
		case from == AssignmentApplied:
			err = s.publishRemoval(tx, a.ResourceID, now)
		}
		if err != nil {
			return err
		}
		return s.record(tx, change{object: ObjectAssignment, id: id, resource: a.ResourceID, compart: a.ResourceCompartmentID, actor: who.Name,
			from: string(from), to: string(a.LifecycleState), action: "updated", comment: a.Comment, details: assignmentDetails(&a)}, now)
	})
	return a, err
}

// DeleteAssignment unassigns (state DELETED; an applied assignment's
// removal is published). Requests decided under it keep their grants.
func (s *Service) DeleteAssignment(ctx context.Context, who auth.Identity, id string, ifMatch int64, description string) (Assignment, error) {
	now := s.clock()
	var a Assignment
	err := s.store.tx(ctx, func(tx *txn) error {
		var err error
		if a, err = getAssignment(tx, id, false); err != nil {
			return err
		}
		if _, err := getResource(tx, a.ResourceID, true); err != nil {
			return err
		}
		if a, err = getAssignment(tx, id, true); err != nil {
			return err
		}
		if err := checkVersion(ObjectAssignment, id, ifMatch, a.Version); err != nil {
			return err
		}
		if a.LifecycleState == AssignmentDeleted {
			return &ConflictError{Object: ObjectAssignment, ID: id, Reason: "is deleted already"}
		}
		return s.endAssignment(tx, &a, who.Name, "deleted", description, now)
	})
	return a, err
}

// ControlInForce returns the control that governs resource at t: its
// assignment's in force, else the default control of its type (the
// returned assignment is then nil). No control is a *ConflictError.
func (s *Service) ControlInForce(ctx context.Context, resourceID string, t time.Time) (Control, *Assignment, error) {
	tx := s.store.read(ctx)
	r, err := getResource(tx, resourceID, false)
	if err != nil {
		return Control{}, nil, err
	}
	return controlInForce(tx, &r, t)
}

func controlInForce(tx *txn, r *Resource, t time.Time) (Control, *Assignment, error) {
	as, err := docs[Assignment](tx, "SELECT doc FROM assignments WHERE resource_id = ? AND lifecycle_state <> ?", r.ID, string(AssignmentDeleted))
	if err != nil {
		return Control{}, nil, err
	}
	for _, a := range as {
		if a.InForce(t) {
			c, err := getControl(tx, a.OperatorControlID, false)
			return c, &a, err
		}
	}
	defaults, err := docs[Control](tx, "SELECT doc FROM operator_controls WHERE resource_type = ? AND is_default = ? AND lifecycle_state <> ?", r.ResourceType, true, string(ControlDeleted))
	if err != nil {
		return Control{}, nil, err
	}
	if len(defaults) == 0 {
		return Control{}, nil, &ConflictError{Object: ObjectResource, ID: r.ID, Reason: fmt.Sprintf("no operator control is in force and there is no %s for resource type %s", DefaultControlName, r.ResourceType)}
	}
	return defaults[0], nil, nil
}
