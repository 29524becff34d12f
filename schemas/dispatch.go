package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
)

// packageRe is a package name as apt and dnf take it, optionally with
// =version.
var packageRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9+.:_~-]{0,254}(=[A-Za-z0-9+.:_~-]{1,255})?$`)

// Operation types of a scheduled job and its work requests (OCI OS
// Management's operation_type, the ones for packages).
const (
	OperationInstall   = "INSTALL"   // install the named packages
	OperationUpdate    = "UPDATE"    // update the named packages
	OperationRemove    = "REMOVE"    // remove the named packages
	OperationUpdateAll = "UPDATEALL" // install every available update of UpdateType
)

// Operations lists the operation types.
func Operations() []string {
	return []string{OperationInstall, OperationUpdate, OperationRemove, OperationUpdateAll}
}

// Update types of an UPDATEALL operation (OCI OS Management's
// update_type, without KSPLICE).
const (
	UpdateSecurity    = "SECURITY"
	UpdateBugfix      = "BUGFIX"
	UpdateEnhancement = "ENHANCEMENT"
	UpdateOther       = "OTHER"
	UpdateAll         = "ALL"
)

// UpdateTypes lists the update types.
func UpdateTypes() []string {
	return []string{UpdateSecurity, UpdateBugfix, UpdateEnhancement, UpdateOther, UpdateAll}
}

// Work request statuses (OCI OS Management's WorkRequest status, spelled
// CANCELING as OS Management Hub spells it). A lifecycle event of a work
// request has them as state_from and state_to.
const (
	WorkAccepted   = "ACCEPTED"    // queued: waiting for its turn, or for its access request
	WorkInProgress = "IN_PROGRESS" // dispatched to the instance's agent
	WorkSucceeded  = "SUCCEEDED"
	WorkFailed     = "FAILED"
	WorkCanceling  = "CANCELING" // cancel sent to the agent, not yet confirmed
	WorkCanceled   = "CANCELED"
)

// Dispatch actions.
const (
	DispatchRun    = "RUN"    // run the work request
	DispatchCancel = "CANCEL" // stop it if it runs, and report CANCELED
)

// Dispatch is a message on topic opctl.dispatch.v1 (key = InstanceID):
// the scheduler telling one instance's agent to run, or to cancel, one
// work request. On the topic it is the payload of a signed envelope
// (package grants: DispatchRecord, DecodeDispatch); agents refuse what is
// unsigned or signed by an unknown key. Its JSON Schema is
// jsonschema/dispatch.schema.json.
type Dispatch struct {
	WorkRequestID string `json:"work_request_id"`
	// Action is DispatchRun or DispatchCancel.
	Action      string `json:"action"`
	JobID       string `json:"job_id"`
	ExecutionID string `json:"execution_id"`
	InstanceID  string `json:"instance_id"`
	// Host is the instance's host, the agent's own name.
	Host string `json:"host"`
	// OperationType is one of Operations; UpdateType (one of UpdateTypes)
	// goes with OperationUpdateAll, PackageNames with the others.
	OperationType string   `json:"operation_type,omitempty"`
	UpdateType    string   `json:"update_type,omitempty"`
	PackageNames  []string `json:"package_names,omitempty"`
	// ReqAuthID is the access request that authorizes the run on a
	// governed instance, and LoginID its grant's login user: the agent
	// ties the package changes it makes to them.
	ReqAuthID string `json:"req_auth_id,omitempty"`
	LoginID   string `json:"loginid,omitempty"`
	// NotAfter is the cutoff: an agent that receives a RUN later does not
	// start it (it reports FAILED). Deadline is when the scheduler gives up
	// on a result and fails the work request; the agent stops by then.
	NotAfter time.Time `json:"not_after,omitzero"`
	Deadline time.Time `json:"deadline,omitzero"`
	// Time is when the scheduler dispatched it, UTC.
	Time time.Time `json:"time"`
	// PublishSeq numbers the policy service's records of this key on
	// this topic (policy's publish_seqs table, inside the signed payload):
	// a consumer refuses a record whose number is below the last it
	// applied for the key, or equal to it with other content, as a replay
	// (grants.Seqs).
	PublishSeq int64 `json:"publish_seq,omitempty"`
}

// Validate checks what agents rely on.
func (d *Dispatch) Validate() error {
	switch {
	case d.WorkRequestID == "":
		return errors.New("dispatch: work_request_id is empty")
	case d.InstanceID == "" || d.Host == "":
		return fmt.Errorf("dispatch %s: instance_id and host are required", d.WorkRequestID)
	case d.JobID == "" || d.ExecutionID == "":
		return fmt.Errorf("dispatch %s: job_id and execution_id are required", d.WorkRequestID)
	case d.Time.IsZero():
		return fmt.Errorf("dispatch %s: time is zero", d.WorkRequestID)
	}
	switch d.Action {
	case DispatchCancel:
		return nil
	case DispatchRun:
	default:
		return fmt.Errorf("dispatch %s: action %q is not %s or %s", d.WorkRequestID, d.Action, DispatchRun, DispatchCancel)
	}
	if err := checkOperation(d.OperationType, d.UpdateType, d.PackageNames); err != nil {
		return fmt.Errorf("dispatch %s: %w", d.WorkRequestID, err)
	}
	if d.Deadline.IsZero() || d.NotAfter.IsZero() {
		return fmt.Errorf("dispatch %s: a run needs not_after and deadline", d.WorkRequestID)
	}
	if (d.ReqAuthID == "") != (d.LoginID == "") {
		return fmt.Errorf("dispatch %s: req_auth_id and loginid go together", d.WorkRequestID)
	}
	return nil
}

// CheckOperation checks an operation with its update type and packages:
// UPDATEALL takes an update type and no packages; INSTALL, UPDATE and
// REMOVE take packages and no update type. The scheduler validates jobs
// with it, agents their dispatch.
func CheckOperation(op, updateType string, packages []string) error {
	return checkOperation(op, updateType, packages)
}

func checkOperation(op, updateType string, packages []string) error {
	switch {
	case !slices.Contains(Operations(), op):
		return fmt.Errorf("operation_type %q is not one of %s", op, strings.Join(Operations(), ", "))
	case op == OperationUpdateAll && !slices.Contains(UpdateTypes(), updateType):
		return fmt.Errorf("operation_type UPDATEALL: update_type %q is not one of %s", updateType, strings.Join(UpdateTypes(), ", "))
	case op == OperationUpdateAll && len(packages) > 0:
		return errors.New("operation_type UPDATEALL updates by update_type: package_names must be empty")
	case op != OperationUpdateAll && len(packages) == 0:
		return fmt.Errorf("operation_type %s: package_names must name at least one package", op)
	case op != OperationUpdateAll && updateType != "":
		return fmt.Errorf("operation_type %s: update_type goes with UPDATEALL only", op)
	}
	for _, p := range packages {
		if !packageRe.MatchString(p) {
			return fmt.Errorf("package name %q is not a package name (letters, digits and +-.:_~, optionally =version)", p)
		}
	}
	return nil
}

// LogLine is one line of a work request's log, or one of its errors
// (with a code), as OCI's WorkRequestLogEntry and WorkRequestError.
type LogLine struct {
	Time    time.Time `json:"time"`
	Code    string    `json:"code,omitempty"`
	Message string    `json:"message"`
}

// WorkProgress is an agent's report on one work request, a message on
// topic opctl.agent.v1 (key = Host) beside the agent's grant reports: its
// status, percent complete and the log lines and errors since its last
// report. Seq numbers an agent's reports on one work request from 1 up:
// the scheduler applies each once (a report delivered again is
// recognised and ignored). Its JSON Schema is
// jsonschema/work-progress.schema.json.
type WorkProgress struct {
	WorkRequestID string `json:"work_request_id"`
	Host          string `json:"host"`
	Seq           int64  `json:"seq"`
	// Status is WorkInProgress while it runs, then WorkSucceeded,
	// WorkFailed or WorkCanceled.
	Status          string    `json:"status"`
	PercentComplete int       `json:"percent_complete"`
	Logs            []LogLine `json:"logs,omitempty"`
	Errors          []LogLine `json:"errors,omitempty"`
	// Time is when the agent sent it, UTC.
	Time time.Time `json:"time"`
	// PublishSeq numbers the agent's messages of its host on
	// opctl.agent.v1 (all kinds together; inside the signed payload): each
	// consumer refuses a message whose number is below the last it applied
	// for the host, or equal to it with other content, as a replay.
	PublishSeq int64 `json:"publish_seq,omitempty"`
}

// Validate checks what the scheduler relies on.
func (p *WorkProgress) Validate() error {
	switch {
	case p.WorkRequestID == "":
		return errors.New("work progress: work_request_id is empty")
	case p.Host == "":
		return fmt.Errorf("work progress %s: host is empty", p.WorkRequestID)
	case p.Seq < 1:
		return fmt.Errorf("work progress %s: seq %d is not positive", p.WorkRequestID, p.Seq)
	case p.Status != WorkInProgress && p.Status != WorkSucceeded && p.Status != WorkFailed && p.Status != WorkCanceled:
		return fmt.Errorf("work progress %s: status %q is not %s, %s, %s or %s", p.WorkRequestID, p.Status, WorkInProgress, WorkSucceeded, WorkFailed, WorkCanceled)
	case p.PercentComplete < 0 || p.PercentComplete > 100:
		return fmt.Errorf("work progress %s: percent_complete %d is not 0-100", p.WorkRequestID, p.PercentComplete)
	case p.Status == WorkFailed && len(p.Errors) == 0:
		return fmt.Errorf("work progress %s: FAILED without an error", p.WorkRequestID)
	case p.Time.IsZero():
		return fmt.Errorf("work progress %s: time is zero", p.WorkRequestID)
	}
	for i, l := range append(slices.Clone(p.Logs), p.Errors...) {
		if l.Message == "" || l.Time.IsZero() {
			return fmt.Errorf("work progress %s: log line %d needs a time and a message", p.WorkRequestID, i)
		}
	}
	return nil
}

// DecodeWorkProgress decodes one report strictly (unknown fields and
// trailing data refused) and validates it.
func DecodeWorkProgress(b []byte) (WorkProgress, error) {
	var p WorkProgress
	if err := decodeStrict(b, &p); err != nil {
		return WorkProgress{}, fmt.Errorf("work progress: %w", err)
	}
	if err := p.Validate(); err != nil {
		return WorkProgress{}, err
	}
	return p, nil
}

func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the message")
	}
	return nil
}
