package policy

import (
	"time"

	"github.com/auditpipe/auditpipe/schemas"
)

// Object types, as lifecycle events and errors name them.
const (
	ObjectCompartment   = "compartment"
	ObjectResource      = "resource"
	ObjectControl       = schemas.ObjectOperatorControl
	ObjectAssignment    = schemas.ObjectAssignment
	ObjectAccessRequest = schemas.ObjectAccessRequest
	ObjectGrant         = "grant"
)

// Compartment groups resources; compartments form a tree (ParentID empty
// at a root).
type Compartment struct {
	ID                 string    `json:"id"`
	Name               string    `json:"name"`
	Description        string    `json:"description,omitempty"`
	ParentID           string    `json:"parent_id,omitempty"`
	TimeOfCreation     time.Time `json:"time_of_creation"`
	TimeOfModification time.Time `json:"time_of_modification"`
	// Version is the ETag: it grows by one with every change.
	Version int64 `json:"version"`
}

// Host is one machine a resource consists of, at one layer.
type Host struct {
	Name  string `json:"name"`
	Layer string `json:"layer"`
}

// Resource is a system under operator control (an Exadata
// infrastructure, an Autonomous VM cluster …): its hosts, by layer.
type Resource struct {
	ID                 string    `json:"id"`
	Name               string    `json:"name"`
	ResourceType       string    `json:"resource_type"`
	CompartmentID      string    `json:"compartment_id"`
	Hosts              []Host    `json:"hosts"`
	TimeOfCreation     time.Time `json:"time_of_creation"`
	TimeOfModification time.Time `json:"time_of_modification"`
	Version            int64     `json:"version"`
}

// Layers returns the layers of the resource's hosts, in schemas.Layers
// order.
func (r *Resource) Layers() []string {
	var out []string
	for _, l := range schemas.Layers() {
		for _, h := range r.Hosts {
			if h.Layer == l {
				out = append(out, l)
				break
			}
		}
	}
	return out
}

// ControlState is an operator control's lifecycle state.
type ControlState string

// Operator control states (OCI's).
const (
	ControlCreated    ControlState = "CREATED"
	ControlAssigned   ControlState = "ASSIGNED"
	ControlUnassigned ControlState = "UNASSIGNED"
	ControlDeleted    ControlState = "DELETED"
)

// DefaultControlName is the name OCI gives the control that applies to a
// resource with no assignment in force.
const DefaultControlName = "DEFAULT_OPERATOR_CONTROL"

// Control is an operator control (OCI's OperatorControl): which actions
// are pre-approved, which need approval and by whom.
type Control struct {
	ID                   string   `json:"id"`
	OperatorControlName  string   `json:"operator_control_name"`
	Description          string   `json:"description,omitempty"`
	CompartmentID        string   `json:"compartment_id"`
	ResourceType         string   `json:"resource_type"`
	ApproversList        []string `json:"approvers_list,omitempty"`
	ApproverGroupsList   []string `json:"approver_groups_list,omitempty"`
	PreApprovedOpActions []string `json:"pre_approved_op_action_list,omitempty"`
	// ApprovalRequiredOpActions need NumberOfApprovers approvals.
	ApprovalRequiredOpActions []string `json:"approval_required_op_action_list,omitempty"`
	// IsFullyPreApproved pre-approves every catalog action of the
	// control's resource type.
	IsFullyPreApproved bool     `json:"is_fully_pre_approved"`
	NumberOfApprovers  int      `json:"number_of_approvers"`
	EmailIDList        []string `json:"email_id_list,omitempty"`
	SystemMessage      string   `json:"system_message,omitempty"`
	// IsDefaultOperatorControl: the control of every resource of its
	// type that has no assignment in force (at most one per type).
	IsDefaultOperatorControl bool `json:"is_default_operator_control"`
	// MaxDurationHours bounds an access request's duration, and
	// MaxExtensionHours each extension's (see the README).
	MaxDurationHours   int          `json:"max_duration_hours"`
	MaxExtensionHours  int          `json:"max_extension_hours"`
	LifecycleState     ControlState `json:"lifecycle_state"`
	TimeOfCreation     time.Time    `json:"time_of_creation"`
	TimeOfModification time.Time    `json:"time_of_modification"`
	TimeOfDeletion     time.Time    `json:"time_of_deletion,omitzero"`
	LastModifiedBy     string       `json:"last_modified_info,omitempty"`
	Version            int64        `json:"version"`
}

// AssignmentState is an assignment's lifecycle state (OCI's
// OperatorControlAssignment states that the flows use: CREATED while its
// window has not begun, APPLIED while in force, DELETED once removed or
// its window ended).
type AssignmentState string

// Assignment states.
const (
	AssignmentCreated AssignmentState = "CREATED"
	AssignmentApplied AssignmentState = "APPLIED"
	AssignmentDeleted AssignmentState = "DELETED"
)

// Assignment attaches an operator control to a resource (OCI's
// OperatorControlAssignment), always or for a window, with the
// resource's SIEM destination.
type Assignment struct {
	ID                    string `json:"id"`
	OperatorControlID     string `json:"operator_control_id"`
	OpControlName         string `json:"op_control_name"`
	ResourceID            string `json:"resource_id"`
	ResourceName          string `json:"resource_name"`
	ResourceType          string `json:"resource_type"`
	ResourceCompartmentID string `json:"resource_compartment_id"`
	CompartmentID         string `json:"compartment_id"`
	IsEnforcedAlways      bool   `json:"is_enforced_always"`
	// TimeAssignmentFrom and To bound the window when not always
	// enforced (To is exclusive).
	TimeAssignmentFrom        time.Time       `json:"time_assignment_from,omitzero"`
	TimeAssignmentTo          time.Time       `json:"time_assignment_to,omitzero"`
	IsLogForwarded            bool            `json:"is_log_forwarded"`
	RemoteSyslogServerAddress string          `json:"remote_syslog_server_address,omitempty"`
	RemoteSyslogServerPort    int             `json:"remote_syslog_server_port,omitempty"`
	RemoteSyslogServerCACert  string          `json:"remote_syslog_server_ca_cert,omitempty"`
	Comment                   string          `json:"comment,omitempty"`
	AssignerID                string          `json:"assigner_id"`
	UnassignerID              string          `json:"unassigner_id,omitempty"`
	DetachmentDescription     string          `json:"detachment_description,omitempty"`
	LifecycleState            AssignmentState `json:"lifecycle_state"`
	LifecycleDetails          string          `json:"lifecycle_details,omitempty"`
	TimeOfAssignment          time.Time       `json:"time_of_assignment"`
	TimeOfModification        time.Time       `json:"time_of_modification"`
	TimeOfDeletion            time.Time       `json:"time_of_deletion,omitzero"`
	Version                   int64           `json:"version"`
}

// InForce reports whether the assignment governs its resource at t.
func (a *Assignment) InForce(t time.Time) bool {
	if a.LifecycleState == AssignmentDeleted {
		return false
	}
	if a.IsEnforcedAlways {
		return true
	}
	return !t.Before(a.TimeAssignmentFrom) && t.Before(a.TimeAssignmentTo)
}

// Severities of an access request.
const (
	SeverityS1 = "S1"
	SeverityS2 = "S2"
	SeverityS3 = "S3"
	SeverityS4 = "S4"
)

// Approval decisions of an ApproverDetail.
const (
	DecisionApprove = "APPROVE"
	DecisionReject  = "REJECT"
)

// ApproverDetail is one approver's decision (OCI's ApproverDetail).
type ApproverDetail struct {
	ApproverID          string    `json:"approver_id"`
	ApprovalAction      string    `json:"approval_action"` // DecisionApprove or DecisionReject
	ApprovalComment     string    `json:"approval_comment,omitempty"`
	AuditType           string    `json:"audit_type,omitempty"`
	DurationHours       int       `json:"duration,omitempty"`
	TimeOfAuthorization time.Time `json:"time_of_authorization"`
}

// AccessRequest is an operator's request for actions on a resource
// (OCI's AccessRequest).
type AccessRequest struct {
	ID              string   `json:"id"`
	RequestorID     string   `json:"operator_id"`
	ResourceID      string   `json:"resource_id"`
	ResourceName    string   `json:"resource_name"`
	ResourceType    string   `json:"resource_type"`
	CompartmentID   string   `json:"compartment_id"`
	SubResourceList []string `json:"sub_resource_list,omitempty"`
	ActionRequests  []string `json:"action_requests_list"`
	Reason          string   `json:"reason"`
	Severity        string   `json:"severity"`
	// DurationHours is the access's length (the requested one, as an
	// approver may have shortened it), ExtendDurationHours the pending
	// extension's, ExtendedHours the sum of the extensions granted.
	DurationHours       int    `json:"duration"`
	ExtendDurationHours int    `json:"extend_duration,omitempty"`
	ExtendedHours       int    `json:"extended_hours,omitempty"`
	IsAutoApproved      bool   `json:"is_auto_approved"`
	AuditType           string `json:"audit_type"`
	// SSHPublicKeys are the requester's SSH public keys, which the grant
	// carries to the host agent.
	SSHPublicKeys []string `json:"ssh_public_keys,omitempty"`
	// The control in force when the request was made decides it.
	OpctlID                   string           `json:"opctl_id"`
	OpctlName                 string           `json:"opctl_name"`
	NumberOfApproversRequired int              `json:"number_of_approvers_required"`
	ApproverDetails           []ApproverDetail `json:"approver_details,omitempty"`
	ExtensionApproverDetails  []ApproverDetail `json:"extension_approver_details,omitempty"`
	ApproverComment           string           `json:"approver_comment,omitempty"`
	ClosureComment            string           `json:"closure_comment,omitempty"`
	LifecycleState            RequestState     `json:"lifecycle_state"`
	LifecycleDetails          string           `json:"lifecycle_details,omitempty"`
	// UserID is the login user of the grant (32 hex digits).
	UserID string `json:"user_id,omitempty"`
	// HostDeployments is the last report of each host's agent
	// (DEPLOYED, DEPLOYFAILED, UNDEPLOYED), by host.
	HostDeployments              map[string]string `json:"host_deployments,omitempty"`
	TimeRequestedForFutureAccess time.Time         `json:"time_requested_for_future_access,omitzero"`
	TimeOfCreation               time.Time         `json:"time_of_creation"`
	TimeOfModification           time.Time         `json:"time_of_modification"`
	// TimeOfUserCreation is when the grant began; TimeOfExpiry when it
	// ends (or, while pending, when the request lapses).
	TimeOfUserCreation time.Time `json:"time_of_user_creation,omitzero"`
	TimeOfExpiry       time.Time `json:"time_of_expiry,omitzero"`
	Version            int64     `json:"version"`
}

// Approvals returns the approvers who approved the current decision (the
// request, or the pending extension).
func (r *AccessRequest) Approvals() []ApproverDetail {
	list := r.ApproverDetails
	if r.LifecycleState == StateExtending {
		list = r.ExtensionApproverDetails
	}
	var out []ApproverDetail
	for _, d := range list {
		if d.ApprovalAction == DecisionApprove {
			out = append(out, d)
		}
	}
	return out
}

// HistoryEntry is one change of an object: who, when, from which state
// to which, by which action, with which comment.
type HistoryEntry struct {
	Seq        int64     `json:"seq"`
	ObjectType string    `json:"object_type"`
	ObjectID   string    `json:"object_id"`
	Actor      string    `json:"actor"`
	Time       time.Time `json:"time"`
	From       string    `json:"from,omitempty"`
	To         string    `json:"to"`
	Action     string    `json:"action"`
	Comment    string    `json:"comment,omitempty"`
}

// User types of an interaction.
const (
	UserOperator = "OPERATOR"
	UserCustomer = "CUSTOMER"
)

// Interaction is one message of a request's MOREINFO thread (OCI's
// InteractionSummary): an approver's question or the requester's answer.
type Interaction struct {
	Seq                int64     `json:"seq"`
	RequestID          string    `json:"request_id"`
	UserID             string    `json:"user_id"`
	UserType           string    `json:"user_type"` // UserCustomer asks, UserOperator answers
	Message            string    `json:"message"`
	TimeOfConversation time.Time `json:"time_of_conversation"`
}

// Grant is a login user issued for an approved request, as stored; its
// published form is schemas.Grant.
type Grant struct {
	LoginID    string             `json:"loginid"`
	RequestID  string             `json:"req_auth_id"`
	Resource   string             `json:"resource"`
	Actions    []string           `json:"actions"`
	Hosts      []string           `json:"hosts"`
	Privileges schemas.Privileges `json:"privileges"`
	AuditType  string             `json:"audit_type"`
	Start      time.Time          `json:"start"`
	Expires    time.Time          `json:"expires"`
	// SSHAuthorizedKeys are the request's SSH public keys.
	SSHAuthorizedKeys []string `json:"ssh_authorized_keys,omitempty"`
	// Revoked is when the grant's revocation was published (revoke,
	// expiry, completion); zero while live.
	Revoked time.Time `json:"revoked,omitzero"`
}

// Schema returns the grant as published on opctl.grants.v1.
func (g *Grant) Schema() schemas.Grant {
	p := g.Privileges
	return schemas.Grant{LoginID: g.LoginID, ReqAuthID: g.RequestID, Resource: g.Resource, Actions: g.Actions,
		AuditType: g.AuditType, Expires: g.Expires, Hosts: g.Hosts, Privileges: &p, Start: g.Start, SSHAuthorizedKeys: g.SSHAuthorizedKeys}
}
