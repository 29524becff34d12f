package policy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/schemas"
)

// Bounds of a request's text fields.
const (
	maxReasonLen  = 2000
	maxMessageLen = 4000
	// maxFutureAccess bounds how far ahead a future access may start.
	maxFutureAccess = 30 * 24 * time.Hour
)

// RequestInput creates an access request.
type RequestInput struct {
	ResourceID string `json:"resource_id"`
	// ActionRequests are catalog action names.
	ActionRequests []string `json:"action_requests_list"`
	// SubResourceList narrows the grant to these hosts of the resource.
	SubResourceList []string `json:"sub_resource_list,omitempty"`
	Reason          string   `json:"reason"`
	Severity        string   `json:"severity"` // S1 … S4
	// DurationHours is how long the access lasts, at most the
	// control's max_duration_hours.
	DurationHours int `json:"duration"`
	// TimeRequestedForFutureAccess, when set, is when the access should
	// begin (within 30 days).
	TimeRequestedForFutureAccess time.Time `json:"time_requested_for_future_access,omitzero"`
	// AuditType is the auditing the requester asks for: empty or
	// COMMAND_AUDIT (OCI's default), or COMMAND_KEYSTROKE_AUDIT. It
	// only ever makes the auditing stricter: an approver may still
	// raise it, nobody lowers it.
	AuditType string `json:"audit_type,omitempty"`
	// SSHPublicKeys are the operator's SSH public keys, authorized_keys
	// lines ("ssh-ed25519 AAAA… comment"; an SSH certificate principal
	// is its CA's line with options, `cert-authority,principals="…"
	// ssh-ed25519 AAAA…`). The grant carries them and the host agent
	// installs them for the login user: without one the user cannot log
	// in with a key.
	SSHPublicKeys []string `json:"ssh_public_keys,omitempty"`
}

// Bounds of a request's SSH public keys.
const (
	maxSSHKeys   = 8
	maxSSHKeyLen = 16 << 10
)

// ApproveInput is an approver's approval: the audit type they require,
// and a shorter duration (of the access, or of the pending extension).
type ApproveInput struct {
	Comment       string `json:"approver_comment,omitempty"`
	AuditType     string `json:"audit_type,omitempty"`
	DurationHours int    `json:"duration,omitempty"`
	IfMatch       int64  `json:"-"`
}

// DeploymentReport is a host agent's report on a grant's login user.
type DeploymentReport struct {
	LoginID string `json:"loginid"`
	Host    string `json:"host"`
	// State is StateDeployed, StateDeployFailed or StateUndeployed.
	State   RequestState `json:"state"`
	Message string       `json:"message,omitempty"`
}

// saveRequest writes r; prev is the version it was read at (0: insert).
func saveRequest(tx *txn, r *AccessRequest, prev int64) error {
	r.Version = prev + 1
	doc, err := encodeDoc(r)
	if err != nil {
		return err
	}
	if prev == 0 {
		if _, err := tx.exec("INSERT INTO access_requests (id, resource_id, compartment_id, requestor_id, operator_control_id, lifecycle_state, start_ms, expiry_ms, created_ms, version, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			r.ID, r.ResourceID, r.CompartmentID, r.RequestorID, r.OpctlID, string(r.LifecycleState), ms(r.TimeRequestedForFutureAccess), ms(r.TimeOfExpiry), r.TimeOfCreation.UnixMilli(), r.Version, doc); err != nil {
			return fmt.Errorf("policy store: create access request: %w", err)
		}
		return nil
	}
	res, err := tx.exec("UPDATE access_requests SET lifecycle_state = ?, start_ms = ?, expiry_ms = ?, version = ?, doc = ? WHERE id = ? AND version = ?",
		string(r.LifecycleState), ms(r.TimeRequestedForFutureAccess), ms(r.TimeOfExpiry), r.Version, doc, r.ID, prev)
	if err != nil {
		return fmt.Errorf("policy store: update access request: %w", err)
	}
	return updated(res, ObjectAccessRequest, r.ID)
}

func getRequest(tx *txn, id string, lock bool) (AccessRequest, error) {
	return getObj[AccessRequest](tx, "access_requests", ObjectAccessRequest, id, lock)
}

// GetRequest returns an access request.
func (s *Service) GetRequest(ctx context.Context, id string) (AccessRequest, error) {
	return getRequest(s.store.read(ctx), id, false)
}

// GetRequestTx returns an access request as the caller's transaction
// sees it.
func (s *Service) GetRequestTx(tx *Tx, id string) (AccessRequest, error) {
	return getRequest(tx.t, id, false)
}

// RequestFilter selects access requests.
type RequestFilter struct {
	State         RequestState
	ResourceID    string
	CompartmentID string
	Recursive     bool
	RequestorID   string
	// OperatorControlIDs, when not nil, keeps the requests decided by
	// one of these controls (opctl_id); an empty, non-nil list keeps none.
	OperatorControlIDs []string
	Page               Page
}

// ListRequests lists access requests, newest first, and the next page's
// cursor.
func (s *Service) ListRequests(ctx context.Context, f RequestFilter) ([]AccessRequest, string, error) {
	var w where
	if err := s.compartmentCond(ctx, &w, f.CompartmentID, f.Recursive); err != nil {
		return nil, "", err
	}
	w.eq("lifecycle_state", string(f.State))
	w.eq("resource_id", f.ResourceID)
	w.eq("requestor_id", f.RequestorID)
	if f.OperatorControlIDs != nil {
		w.in("operator_control_id", f.OperatorControlIDs)
	}
	return list[AccessRequest](ctx, s.store, "access_requests", w, f.Page)
}

// move applies action to r's state (or returns the *TransitionError)
// and records the change.
func (s *Service) move(tx *txn, r *AccessRequest, act RequestAction, actor, comment string, now time.Time) error {
	to, err := Next(r.ID, r.LifecycleState, act)
	if err != nil {
		return err
	}
	from := r.LifecycleState
	r.LifecycleState = to
	r.TimeOfModification = now
	return s.record(tx, change{object: ObjectAccessRequest, id: r.ID, resource: r.ResourceID, compart: r.CompartmentID, actor: actor,
		from: string(from), to: string(to), action: string(act), kind: act.Past(), comment: comment, details: requestDetails(r)}, now)
}

func requestDetails(r *AccessRequest) map[string]string {
	d := map[string]string{
		"actions":    strings.Join(r.ActionRequests, ","),
		"operator":   r.RequestorID,
		"opctl_id":   r.OpctlID,
		"audit_type": r.AuditType,
		"duration":   strconv.Itoa(r.DurationHours),
		"severity":   r.Severity,
		"loginid":    r.UserID,
		"approvals":  fmt.Sprintf("%d/%d", len(r.Approvals()), r.NumberOfApproversRequired),
	}
	if !r.TimeOfExpiry.IsZero() {
		d["time_of_expiry"] = r.TimeOfExpiry.Format(time.RFC3339)
	}
	if r.LifecycleState == StateExtending || r.ExtendDurationHours > 0 {
		d["extend_duration"] = strconv.Itoa(r.ExtendDurationHours)
	}
	return d
}

// preApproved reports whether c approves every one of actions by itself.
func preApproved(c *Control, actions []string) bool {
	if c.IsFullyPreApproved {
		return true
	}
	for _, a := range actions {
		if !slices.Contains(c.PreApprovedOpActions, a) {
			return false
		}
	}
	return true
}

// CreateRequest records who's request and decides what it can at once:
// auto-approved (PREAPPROVED, its grant issued; APPROVEDFORFUTURE for a
// future access) when the control in force pre-approves every action,
// else APPROVALWAITING. An action the control neither pre-approves nor
// lists as approval-required is refused.
func (s *Service) CreateRequest(ctx context.Context, who auth.Identity, in RequestInput) (AccessRequest, error) {
	var r AccessRequest
	err := s.store.tx(ctx, func(tx *txn) error {
		var err error
		r, err = s.createRequest(tx, who, in)
		return err
	})
	return r, err
}

// CreateRequestTx is CreateRequest in the caller's transaction (the
// scheduler's, which creates the request of a governed patch run with the
// work requests that wait for it). A *ValidationError, *ConflictError or
// *NotFoundError comes before anything is written: the caller may go on
// with its transaction.
func (s *Service) CreateRequestTx(tx *Tx, who auth.Identity, in RequestInput) (AccessRequest, error) {
	return s.createRequest(tx.t, who, in)
}

func (s *Service) createRequest(tx *txn, who auth.Identity, in RequestInput) (AccessRequest, error) {
	now := s.clock()
	r := AccessRequest{
		ID: newID("accessrequest"), RequestorID: who.Name, ResourceID: in.ResourceID,
		SubResourceList: sortedUnique(in.SubResourceList), ActionRequests: sortedUnique(in.ActionRequests),
		Reason: in.Reason, Severity: in.Severity, DurationHours: in.DurationHours, AuditType: schemas.AuditCommand,
		SSHPublicKeys:                slices.Clone(in.SSHPublicKeys),
		TimeRequestedForFutureAccess: in.TimeRequestedForFutureAccess.UTC().Truncate(time.Millisecond),
		LifecycleState:               StateCreated, TimeOfCreation: now, TimeOfModification: now,
	}
	p := problems{object: ObjectAccessRequest}
	if who.Name == "" {
		p.add("operator_id", "the requester has no name")
	}
	if r.ResourceID == "" {
		p.add("resource_id", "is required")
	}
	if len(r.ActionRequests) == 0 {
		p.add("action_requests_list", "name at least one action")
	}
	for _, a := range r.ActionRequests {
		if _, ok := s.catalog.Action(a); !ok {
			p.add("action_requests_list", "%q is not an action of the catalog", a)
		}
	}
	if strings.TrimSpace(r.Reason) == "" || len(r.Reason) > maxReasonLen {
		p.add("reason", "is required, at most %d bytes", maxReasonLen)
	}
	if !slices.Contains([]string{SeverityS1, SeverityS2, SeverityS3, SeverityS4}, r.Severity) {
		p.add("severity", "%q is not S1, S2, S3 or S4", r.Severity)
	}
	if r.DurationHours < 1 {
		p.add("duration", "must be at least 1 hour")
	}
	if f := r.TimeRequestedForFutureAccess; !f.IsZero() && (!f.After(now) || f.Sub(now) > maxFutureAccess) {
		p.add("time_requested_for_future_access", "must be in the future, within %s", maxFutureAccess)
	}
	switch in.AuditType {
	case "", schemas.AuditCommand:
	case schemas.AuditCommandKeystroke:
		r.AuditType = in.AuditType
	default:
		p.add("audit_type", "%q is not %s or %s", in.AuditType, schemas.AuditCommand, schemas.AuditCommandKeystroke)
	}
	if len(r.SSHPublicKeys) > maxSSHKeys {
		p.add("ssh_public_keys", "at most %d keys", maxSSHKeys)
	}
	for i, k := range r.SSHPublicKeys {
		if err := checkAuthorizedKey(k); err != nil {
			p.add("ssh_public_keys", "[%d]: %v", i, err)
		}
	}
	if err := p.err(); err != nil {
		return AccessRequest{}, err
	}
	err := func() error {
		res, err := getResource(tx, r.ResourceID, false)
		if err != nil {
			return asField(err, ObjectAccessRequest, "resource_id")
		}
		r.ResourceName, r.ResourceType, r.CompartmentID = res.Name, res.ResourceType, res.CompartmentID
		c, _, err := controlInForce(tx, &res, now)
		if err != nil {
			return err
		}
		r.OpctlID, r.OpctlName, r.NumberOfApproversRequired = c.ID, c.OperatorControlName, c.NumberOfApprovers
		p := problems{object: ObjectAccessRequest}
		for _, name := range r.ActionRequests {
			a, _ := s.catalog.Action(name)
			switch {
			case !slices.Contains(a.ResourceTypes, res.ResourceType):
				p.add("action_requests_list", "%s does not apply to resource type %s", name, res.ResourceType)
			case !c.IsFullyPreApproved && !slices.Contains(c.PreApprovedOpActions, name) && !slices.Contains(c.ApprovalRequiredOpActions, name):
				p.add("action_requests_list", "%s is neither pre-approved nor approval-required under operator control %s (%s): it cannot be granted", name, c.OperatorControlName, c.ID)
			}
		}
		if r.DurationHours > c.MaxDurationHours {
			p.add("duration", "%d hours is more than operator control %s allows (%d)", r.DurationHours, c.OperatorControlName, c.MaxDurationHours)
		}
		if err := p.err(); err != nil {
			return err
		}
		priv, err := s.catalog.Effective(r.ActionRequests...)
		if err != nil {
			return err
		}
		for _, h := range r.SubResourceList {
			if !slices.Contains(hostNames(&res), h) {
				p.add("sub_resource_list", "%q is not a host of resource %s", h, res.ID)
			}
		}
		if len(hostsFor(&res, priv.Layers, r.SubResourceList)) == 0 {
			p.add("action_requests_list", "no host of resource %s (sub-resources included) is on the actions' layers %s", res.ID, strings.Join(priv.Layers, ", "))
		}
		if err := p.err(); err != nil {
			return err
		}
		start := now
		if !r.TimeRequestedForFutureAccess.IsZero() {
			start = r.TimeRequestedForFutureAccess
		}
		r.TimeOfExpiry = start.Add(time.Duration(r.DurationHours) * time.Hour)
		if err := s.record(tx, change{object: ObjectAccessRequest, id: r.ID, resource: r.ResourceID, compart: r.CompartmentID, actor: who.Name,
			to: string(r.LifecycleState), action: "create", kind: "created", comment: r.Reason, details: requestDetails(&r)}, now); err != nil {
			return err
		}
		if err := saveRequest(tx, &r, 0); err != nil { // before its grant, which names it
			return err
		}
		switch {
		case !preApproved(&c, r.ActionRequests):
			err = s.move(tx, &r, ActSubmit, who.Name, "", now)
		case !r.TimeRequestedForFutureAccess.IsZero():
			r.IsAutoApproved = true
			err = s.move(tx, &r, ActAutoApproveFuture, ActorPolicy, "", now)
		default:
			r.IsAutoApproved = true
			if err = s.issueGrant(tx, &r, &res, now, now); err == nil {
				err = s.move(tx, &r, ActAutoApprove, ActorPolicy, "", now)
			}
		}
		if err != nil {
			return err
		}
		return saveRequest(tx, &r, r.Version)
	}()
	if err != nil {
		return AccessRequest{}, err
	}
	return r, nil
}

// requestAndControl reads the request for change, checks ifMatch, and
// reads the control that decides it.
func requestAndControl(tx *txn, id string, ifMatch int64) (AccessRequest, Control, error) {
	r, err := getRequest(tx, id, true)
	if err != nil {
		return AccessRequest{}, Control{}, err
	}
	if err := checkVersion(ObjectAccessRequest, id, ifMatch, r.Version); err != nil {
		return AccessRequest{}, Control{}, err
	}
	c, err := getControl(tx, r.OpctlID, false)
	return r, c, err
}

func forbidden(who auth.Identity, action RequestAction, r *AccessRequest, reason string) error {
	return &ForbiddenError{Who: who.Name, Action: string(action), Object: ObjectAccessRequest, ID: r.ID, Reason: reason}
}

// mayDecide checks that who may approve, reject or ask about r under c.
func mayDecide(who auth.Identity, act RequestAction, r *AccessRequest, c *Control) error {
	if who.Name == r.RequestorID {
		return forbidden(who, act, r, "the requester never decides their own request")
	}
	if !isApprover(c, who) {
		return forbidden(who, act, r, fmt.Sprintf("not in approvers_list nor in a group of approver_groups_list [%s] of operator control %s",
			strings.Join(c.ApproverGroupsList, ", "), c.OperatorControlName))
	}
	return nil
}

// checkAllowed returns the *TransitionError when r's state has no act.
func checkAllowed(r *AccessRequest, act RequestAction) error {
	_, err := Next(r.ID, r.LifecycleState, act)
	return err
}

// Approve records who's approval of the request, or of its pending
// extension. The approval that completes number_of_approvers distinct
// approvers decides it: APPROVED with a grant (APPROVEDFORFUTURE for a
// future access), or EXTENDED with the grant's expiry moved. An approver
// may require keystroke audit (the strictest wins) and shorten the
// duration (the shortest wins).
func (s *Service) Approve(ctx context.Context, who auth.Identity, id string, in ApproveInput) (AccessRequest, error) {
	return s.onRequest(ctx, id, in.IfMatch, ActApprove, func(tx *txn, r *AccessRequest, c *Control, now time.Time) error {
		if err := mayDecide(who, ActApprove, r, c); err != nil {
			return err
		}
		p := problems{object: ObjectAccessRequest}
		switch in.AuditType {
		case "", schemas.AuditCommand, schemas.AuditCommandKeystroke:
		default:
			p.add("audit_type", "%q is not %s or %s", in.AuditType, schemas.AuditCommand, schemas.AuditCommandKeystroke)
		}
		extending := r.LifecycleState == StateExtending
		limit := r.DurationHours
		if extending {
			limit = r.ExtendDurationHours
		}
		if in.DurationHours < 0 || in.DurationHours > limit {
			p.add("duration", "%d hours: an approver may shorten the duration (1 to %d), not lengthen it", in.DurationHours, limit)
		}
		if err := p.err(); err != nil {
			return err
		}
		for _, d := range r.Approvals() {
			if d.ApproverID == who.Name {
				return &ConflictError{Object: ObjectAccessRequest, ID: r.ID, Reason: who.Name + " approved it already: one approver counts once"}
			}
		}
		d := ApproverDetail{ApproverID: who.Name, ApprovalAction: DecisionApprove, ApprovalComment: in.Comment, AuditType: in.AuditType, DurationHours: in.DurationHours, TimeOfAuthorization: now}
		if extending {
			r.ExtensionApproverDetails = append(r.ExtensionApproverDetails, d)
		} else {
			r.ApproverDetails = append(r.ApproverDetails, d)
		}
		if in.Comment != "" {
			r.ApproverComment = in.Comment
		}
		approvals := r.Approvals()
		if len(approvals) < r.NumberOfApproversRequired {
			return s.move(tx, r, ActRecordApproval, who.Name, in.Comment, now)
		}
		hours := limit
		for _, a := range approvals {
			if a.DurationHours > 0 {
				hours = min(hours, a.DurationHours)
			}
		}
		if extending {
			return s.grantExtension(tx, r, hours, who.Name, in.Comment, now)
		}
		r.DurationHours = hours
		for _, a := range approvals {
			if a.AuditType == schemas.AuditCommandKeystroke {
				r.AuditType = a.AuditType
			}
		}
		if f := r.TimeRequestedForFutureAccess; !f.IsZero() && f.After(now) {
			r.TimeOfExpiry = f.Add(time.Duration(hours) * time.Hour)
			return s.move(tx, r, ActApproveForFuture, who.Name, in.Comment, now)
		}
		r.TimeOfExpiry = now.Add(time.Duration(hours) * time.Hour)
		res, err := getResource(tx, r.ResourceID, false)
		if err != nil {
			return err
		}
		if err := s.issueGrant(tx, r, &res, now, now); err != nil {
			return err
		}
		return s.move(tx, r, ActApprove, who.Name, in.Comment, now)
	})
}

// grantExtension approves r's pending extension for hours: EXTENDED, the
// grant's expiry moved and published again.
func (s *Service) grantExtension(tx *txn, r *AccessRequest, hours int, actor, comment string, now time.Time) error {
	r.ExtendedHours += hours
	r.TimeOfExpiry = r.TimeOfExpiry.Add(time.Duration(hours) * time.Hour)
	r.ExtendDurationHours = hours
	if err := s.move(tx, r, ActApprove, actor, comment, now); err != nil {
		return err
	}
	g, err := getGrant(tx, r.UserID)
	if err != nil {
		return err
	}
	g.Expires = r.TimeOfExpiry
	return s.saveGrant(tx, &g, false, now)
}

// Reject refuses the request, or its pending extension (the grant then
// runs to its expiry): an approver of its control, or an admin, with a
// comment. The requester cannot (they complete instead).
func (s *Service) Reject(ctx context.Context, who auth.Identity, id, comment string, ifMatch int64) (AccessRequest, error) {
	return s.onRequest(ctx, id, ifMatch, ActReject, func(tx *txn, r *AccessRequest, c *Control, now time.Time) error {
		if who.Role != auth.RoleAdmin || who.Name == r.RequestorID {
			if err := mayDecide(who, ActReject, r, c); err != nil {
				return err
			}
		}
		if strings.TrimSpace(comment) == "" {
			return &ValidationError{Object: ObjectAccessRequest, Problems: []FieldProblem{{Field: "approver_comment", Message: "a rejection needs a comment"}}}
		}
		d := ApproverDetail{ApproverID: who.Name, ApprovalAction: DecisionReject, ApprovalComment: comment, TimeOfAuthorization: now}
		if r.LifecycleState == StateExtending {
			r.ExtensionApproverDetails = append(r.ExtensionApproverDetails, d)
		} else {
			r.ApproverDetails = append(r.ApproverDetails, d)
		}
		r.ApproverComment = comment
		return s.move(tx, r, ActReject, who.Name, comment, now)
	})
}

// Revoke ends the request at any time, whatever its state but a final
// one: an approver of its control or an admin. A granted request's
// signed revocation is published.
func (s *Service) Revoke(ctx context.Context, who auth.Identity, id, comment string, ifMatch int64) (AccessRequest, error) {
	return s.onRequest(ctx, id, ifMatch, ActRevoke, func(tx *txn, r *AccessRequest, c *Control, now time.Time) error {
		if who.Role != auth.RoleAdmin && !isApprover(c, who) {
			return forbidden(who, ActRevoke, r, "only an admin or an approver of operator control "+c.OperatorControlName+" revokes")
		}
		if err := s.endGrant(tx, r, now); err != nil {
			return err
		}
		r.ClosureComment = comment
		return s.move(tx, r, ActRevoke, who.Name, comment, now)
	})
}

// Complete is the requester ending their access early (or withdrawing a
// request still waiting); a grant's revocation is published.
func (s *Service) Complete(ctx context.Context, who auth.Identity, id, comment string, ifMatch int64) (AccessRequest, error) {
	return s.requesterAction(ctx, who, id, ifMatch, ActComplete, func(tx *txn, r *AccessRequest, _ *Control, now time.Time) error {
		r.ClosureComment = comment
		if err := s.endGrant(tx, r, now); err != nil {
			return err
		}
		return s.move(tx, r, ActComplete, who.Name, comment, now)
	})
}

// Extend asks for hours more (at most the control's
// max_extension_hours), decided through the same approval path: at once
// when the control pre-approves every action, else by
// number_of_approvers approvers (Approve, Reject).
func (s *Service) Extend(ctx context.Context, who auth.Identity, id string, hours int, reason string, ifMatch int64) (AccessRequest, error) {
	return s.requesterAction(ctx, who, id, ifMatch, ActExtend, func(tx *txn, r *AccessRequest, c *Control, now time.Time) error {
		if hours < 1 || hours > c.MaxExtensionHours {
			return &ValidationError{Object: ObjectAccessRequest, Problems: []FieldProblem{{Field: "extend_duration", Message: fmt.Sprintf("%d hours is not between 1 and operator control %s's max_extension_hours (%d)", hours, c.OperatorControlName, c.MaxExtensionHours)}}}
		}
		r.ExtendDurationHours = hours
		r.ExtensionApproverDetails = nil
		if err := s.move(tx, r, ActExtend, who.Name, reason, now); err != nil {
			return err
		}
		if c.LifecycleState != ControlDeleted && preApproved(c, r.ActionRequests) {
			return s.grantExtension(tx, r, hours, ActorPolicy, "", now)
		}
		return nil
	})
}

// Answer is the requester's answer to a MOREINFO question; the request
// waits for approval again.
func (s *Service) Answer(ctx context.Context, who auth.Identity, id, answer string) (AccessRequest, error) {
	return s.requesterAction(ctx, who, id, 0, ActAnswer, func(tx *txn, r *AccessRequest, _ *Control, now time.Time) error {
		if err := addInteraction(tx, r.ID, who.Name, UserOperator, answer, now); err != nil {
			return err
		}
		return s.move(tx, r, ActAnswer, who.Name, answer, now)
	})
}

// requesterAction runs fn on the request for an action only its
// requester may take.
func (s *Service) requesterAction(ctx context.Context, who auth.Identity, id string, ifMatch int64, act RequestAction,
	fn func(tx *txn, r *AccessRequest, c *Control, now time.Time) error) (AccessRequest, error) {
	return s.onRequest(ctx, id, ifMatch, act, func(tx *txn, r *AccessRequest, c *Control, now time.Time) error {
		if who.Name != r.RequestorID {
			return forbidden(who, act, r, "only the requester ("+r.RequestorID+") may")
		}
		return fn(tx, r, c, now)
	})
}

// onRequest reads request id for change with the control that decides
// it, checks ifMatch and that its state allows act, runs fn (which makes
// the change, through move) and saves the request.
func (s *Service) onRequest(ctx context.Context, id string, ifMatch int64, act RequestAction,
	fn func(tx *txn, r *AccessRequest, c *Control, now time.Time) error) (AccessRequest, error) {
	now := s.clock()
	var r AccessRequest
	err := s.store.tx(ctx, func(tx *txn) error {
		var (
			c   Control
			err error
		)
		if r, c, err = requestAndControl(tx, id, ifMatch); err != nil {
			return err
		}
		prev := r.Version
		if err := checkAllowed(&r, act); err != nil {
			return err
		}
		if err := fn(tx, &r, &c, now); err != nil {
			return err
		}
		return saveRequest(tx, &r, prev)
	})
	return r, err
}

// Ask puts an approver's question to the requester (MOREINFO).
func (s *Service) Ask(ctx context.Context, who auth.Identity, id, question string) (AccessRequest, error) {
	return s.onRequest(ctx, id, 0, ActAsk, func(tx *txn, r *AccessRequest, c *Control, now time.Time) error {
		if err := mayDecide(who, ActAsk, r, c); err != nil {
			return err
		}
		if err := addInteraction(tx, r.ID, who.Name, UserCustomer, question, now); err != nil {
			return err
		}
		return s.move(tx, r, ActAsk, who.Name, question, now)
	})
}

func addInteraction(tx *txn, requestID, user, userType, msg string, now time.Time) error {
	if strings.TrimSpace(msg) == "" || len(msg) > maxMessageLen {
		return &ValidationError{Object: ObjectAccessRequest, Problems: []FieldProblem{{Field: "more_info_details", Message: fmt.Sprintf("a message is required, at most %d bytes", maxMessageLen)}}}
	}
	if _, err := tx.exec("INSERT INTO interactions (request_id, user_id, user_type, message, time_ms) VALUES (?, ?, ?, ?, ?)",
		requestID, user, userType, msg, now.UnixMilli()); err != nil {
		return fmt.Errorf("policy store: interaction: %w", err)
	}
	return nil
}

// Interactions returns the request's MOREINFO thread, oldest first.
func (s *Service) Interactions(ctx context.Context, id string) ([]Interaction, error) {
	rows, err := s.store.read(ctx).query("SELECT seq, request_id, user_id, user_type, message, time_ms FROM interactions WHERE request_id = ? ORDER BY seq", id)
	if err != nil {
		return nil, fmt.Errorf("policy store: interactions: %w", err)
	}
	defer rows.Close()
	var out []Interaction
	for rows.Next() {
		var (
			in Interaction
			t  int64
		)
		if err := rows.Scan(&in.Seq, &in.RequestID, &in.UserID, &in.UserType, &in.Message, &t); err != nil {
			return nil, fmt.Errorf("policy store: interactions: %w", err)
		}
		in.TimeOfConversation = time.UnixMilli(t).UTC()
		out = append(out, in)
	}
	return out, rows.Err()
}

// ReportDeployment records a host agent's report on a grant's login
// user; the request's state follows its hosts: DEPLOYFAILED when one
// failed, UNDEPLOYED when one lost the user, DEPLOYED once every host
// has it. A host the grant does not name is refused; a report of
// deployment after the grant ended is a *TransitionError (the agent must
// remove the user).
func (s *Service) ReportDeployment(ctx context.Context, who auth.Identity, rep DeploymentReport) (AccessRequest, error) {
	now := s.clock()
	var r AccessRequest
	err := s.store.tx(ctx, func(tx *txn) error {
		var reqID string
		err := tx.queryRow("SELECT request_id FROM grants WHERE login_id = ?", rep.LoginID).Scan(&reqID)
		if errors.Is(err, sql.ErrNoRows) {
			return &NotFoundError{Object: ObjectGrant, ID: rep.LoginID}
		}
		if err != nil {
			return fmt.Errorf("policy store: grant: %w", err)
		}
		if r, err = getRequest(tx, reqID, true); err != nil {
			return err
		}
		prev := r.Version
		g, err := getGrant(tx, rep.LoginID)
		if err != nil {
			return err
		}
		var act RequestAction
		switch rep.State {
		case StateDeployed:
			act = ActReportDeployed
		case StateDeployFailed:
			act = ActReportDeployFailed
		case StateUndeployed:
			act = ActReportUndeployed
		default:
			return &ValidationError{Object: ObjectAccessRequest, Problems: []FieldProblem{{Field: "state", Message: fmt.Sprintf("%q is not DEPLOYED, DEPLOYFAILED or UNDEPLOYED", rep.State)}}}
		}
		if !slices.Contains(g.Hosts, rep.Host) {
			return forbidden(who, act, &r, fmt.Sprintf("host %q is not one of the grant's hosts", rep.Host))
		}
		if err := checkAllowed(&r, act); err != nil {
			return err
		}
		if r.HostDeployments == nil {
			r.HostDeployments = map[string]string{}
		}
		r.HostDeployments[rep.Host] = string(rep.State)
		r.LifecycleDetails = rep.Host + ": " + rep.Message
		// The hosts' reports together decide the state while the grant
		// is being deployed; after it ended the agent's confirmation
		// is recorded as it is.
		target := aggregateDeployment(r.HostDeployments, g.Hosts)
		if r.LifecycleState.Terminal() {
			target = act
		}
		if target != "" {
			if err := s.move(tx, &r, target, who.Name, r.LifecycleDetails, now); err != nil {
				return err
			}
			return saveRequest(tx, &r, prev)
		}
		r.TimeOfModification = now
		if err := s.record(tx, change{object: ObjectAccessRequest, id: r.ID, resource: r.ResourceID, compart: r.CompartmentID, actor: who.Name,
			from: string(r.LifecycleState), to: string(r.LifecycleState), action: string(act), kind: "host_reported", comment: r.LifecycleDetails, details: requestDetails(&r)}, now); err != nil {
			return err
		}
		return saveRequest(tx, &r, prev)
	})
	return r, err
}

// aggregateDeployment is the action the hosts' reports amount to, or ""
// while some hosts have not reported.
func aggregateDeployment(reports map[string]string, hosts []string) RequestAction {
	all := true
	for _, h := range hosts {
		switch RequestState(reports[h]) {
		case StateDeployFailed:
			return ActReportDeployFailed
		case StateUndeployed:
			return ActReportUndeployed
		case StateDeployed:
		default:
			all = false
		}
	}
	if all {
		return ActReportDeployed
	}
	return ""
}

// issueGrant creates r's login user (32 random hex digits; a seed may
// pin it, see Seed) for the
// resource's hosts on the actions' layers, from start to r's expiry, and
// puts its signed record in the outbox.
func (s *Service) issueGrant(tx *txn, r *AccessRequest, res *Resource, start, now time.Time) error {
	priv, err := s.catalog.Effective(r.ActionRequests...)
	if err != nil {
		return err
	}
	g := Grant{LoginID: s.newLogin(), RequestID: r.ID, Resource: r.ResourceID, Actions: r.ActionRequests,
		Hosts: hostsFor(res, priv.Layers, r.SubResourceList), Privileges: priv, AuditType: r.AuditType, Start: start, Expires: r.TimeOfExpiry,
		SSHAuthorizedKeys: slices.Clone(r.SSHPublicKeys)}
	r.UserID, r.TimeOfUserCreation = g.LoginID, start
	return s.saveGrant(tx, &g, true, now)
}

func getGrant(tx *txn, login string) (Grant, error) {
	var (
		g   Grant
		doc string
	)
	err := tx.queryRow("SELECT doc FROM grants WHERE login_id = ?", login).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return g, &NotFoundError{Object: ObjectGrant, ID: login}
	}
	if err != nil {
		return g, fmt.Errorf("policy store: grant %s: %w", login, err)
	}
	return g, decodeDoc(doc, &g)
}

// saveGrant writes g and puts what it publishes in the outbox: its
// signed record, or its signed revocation once revoked.
func (s *Service) saveGrant(tx *txn, g *Grant, insert bool, now time.Time) error {
	doc, err := encodeDoc(g)
	if err != nil {
		return err
	}
	if insert {
		_, err = tx.exec("INSERT INTO grants (login_id, request_id, resource_id, revoked_ms, doc) VALUES (?, ?, ?, ?, ?)", g.LoginID, g.RequestID, g.Resource, ms(g.Revoked), doc)
	} else {
		_, err = tx.exec("UPDATE grants SET revoked_ms = ?, doc = ? WHERE login_id = ?", ms(g.Revoked), doc, g.LoginID)
	}
	if err != nil {
		return fmt.Errorf("policy store: grant %s: %w", g.LoginID, err)
	}
	seq, err := tx.nextSeq(schemas.TopicGrants, g.LoginID)
	if err != nil {
		return err
	}
	if !g.Revoked.IsZero() {
		r, err := grants.Revocation(s.signer, g.LoginID, seq)
		if err != nil {
			return err
		}
		return tx.outbox(schemas.TopicGrants, r, now)
	}
	sg := g.Schema()
	sg.PublishSeq = seq
	r, err := grants.Record(s.signer, sg)
	if err != nil {
		return fmt.Errorf("policy: grant %s: %w", g.LoginID, err)
	}
	return tx.outbox(schemas.TopicGrants, r, now)
}

// endGrant revokes r's grant, if it has a live one.
func (s *Service) endGrant(tx *txn, r *AccessRequest, now time.Time) error {
	if r.UserID == "" {
		return nil
	}
	g, err := getGrant(tx, r.UserID)
	if err != nil {
		return err
	}
	if !g.Revoked.IsZero() {
		return nil
	}
	g.Revoked = now
	return s.saveGrant(tx, &g, false, now)
}

// GetGrant returns the grant of a login user.
func (s *Service) GetGrant(ctx context.Context, login string) (Grant, error) {
	return getGrant(s.store.read(ctx), login)
}

// checkAuthorizedKey checks that k is one authorized_keys line: no
// control character (a newline would add a second key), at most
// maxSSHKeyLen bytes, and a key type and a base64 key among its fields
// (options may come first).
func checkAuthorizedKey(k string) error {
	if strings.TrimSpace(k) == "" || len(k) > maxSSHKeyLen {
		return fmt.Errorf("empty, or longer than %d bytes", maxSSHKeyLen)
	}
	if strings.ContainsFunc(k, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("holds a control character (one key per entry, one line)")
	}
	f := strings.Fields(k)
	for i := 0; i+1 < len(f); i++ {
		if (strings.HasPrefix(f[i], "ssh-") || strings.HasPrefix(f[i], "ecdsa-sha2-") || strings.HasPrefix(f[i], "sk-")) &&
			strings.HasPrefix(f[i+1], "AAAA") {
			return nil
		}
	}
	return fmt.Errorf("not an authorized_keys line (TYPE BASE64 [COMMENT], options first)")
}
