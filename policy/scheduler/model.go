package scheduler

import (
	"time"

	"github.com/auditpipe/auditpipe/schemas"
)

// Object types, as history entries, lifecycle events and errors name
// them.
const (
	ObjectInstance    = "managed_instance"
	ObjectGroup       = "managed_instance_group"
	ObjectJob         = schemas.ObjectScheduledJob
	ObjectExecution   = "job_execution"
	ObjectWorkRequest = schemas.ObjectWorkRequest
)

// Instance is a managed instance: one host whose agent runs work
// requests (OCI OS Management's ManagedInstance, reduced to what the
// scheduler needs). ResourceID, when set, names the policy resource the
// host belongs to: patch runs on the instance are then governed (they
// need an approved access request, see the README).
type Instance struct {
	ID            string    `json:"id"`
	DisplayName   string    `json:"display_name"`
	Host          string    `json:"host"`
	CompartmentID string    `json:"compartment_id"`
	ResourceID    string    `json:"resource_id,omitempty"`
	TimeCreated   time.Time `json:"time_created"`
	TimeUpdated   time.Time `json:"time_updated"`
	Version       int64     `json:"version"`
}

// Group is a managed instance group (OCI's ManagedInstanceGroup): named
// instances, in the order a job dispatches them.
type Group struct {
	ID               string    `json:"id"`
	DisplayName      string    `json:"display_name"`
	Description      string    `json:"description,omitempty"`
	CompartmentID    string    `json:"compartment_id"`
	ManagedInstances []string  `json:"managed_instances"`
	TimeCreated      time.Time `json:"time_created"`
	TimeUpdated      time.Time `json:"time_updated"`
	Version          int64     `json:"version"`
}

// JobState is a scheduled job's lifecycle state.
type JobState string

// Job states (OCI's, those the flows use).
const (
	JobActive  JobState = "ACTIVE"
	JobDeleted JobState = "DELETED"
)

// Job is a scheduled job (OCI OS Management's ScheduledJob) with the
// rate control of an AWS maintenance window task.
type Job struct {
	ID            string `json:"id"`
	DisplayName   string `json:"display_name"`
	Description   string `json:"description,omitempty"`
	CompartmentID string `json:"compartment_id"`

	ScheduleType  ScheduleType `json:"schedule_type"`
	TimeZone      string       `json:"time_zone"`
	IntervalType  IntervalType `json:"interval_type,omitempty"`
	IntervalValue int          `json:"interval_value,omitempty"`
	// TimeFirstExecution anchors the schedule (every execution is
	// computed from it); TimeNextExecution is the next one due, zero
	// when there is none (a ONETIME job that ran, a deleted job).
	TimeFirstExecution time.Time `json:"time_first_execution"`
	TimeNextExecution  time.Time `json:"time_next_execution,omitzero"`
	TimeLastExecution  time.Time `json:"time_last_execution,omitzero"`

	OperationType string   `json:"operation_type"`
	UpdateType    string   `json:"update_type,omitempty"`
	PackageNames  []string `json:"package_names,omitempty"`

	// ManagedInstances or ManagedInstanceGroups: one of them, as in OCI.
	ManagedInstances      []string `json:"managed_instances,omitempty"`
	ManagedInstanceGroups []string `json:"managed_instance_groups,omitempty"`

	MaxConcurrency string `json:"max_concurrency"`
	MaxErrors      string `json:"max_errors"`
	// CutoffMinutes after an execution starts, nothing new of it starts
	// (AWS's cutoff, counted from the start). TimeoutMinutes after a work
	// request is dispatched without a result, it fails.
	CutoffMinutes  int `json:"cutoff_minutes"`
	TimeoutMinutes int `json:"timeout_minutes"`

	LifecycleState JobState  `json:"lifecycle_state"`
	CreatedBy      string    `json:"created_by"`
	TimeCreated    time.Time `json:"time_created"`
	TimeUpdated    time.Time `json:"time_updated"`
	Version        int64     `json:"version"`
}

// Trigger is why an execution started.
type Trigger string

// Triggers.
const (
	TriggerScheduled Trigger = "SCHEDULED" // its time_next_execution came
	TriggerRunNow    Trigger = "RUN_NOW"   // run now, overriding the schedule
)

// ExecutionState is an execution's state: IN_PROGRESS until each of its
// work requests is final, then SUCCEEDED (all succeeded), FAILED (one
// failed) or CANCELED (none failed, one was canceled).
type ExecutionState string

// Execution states.
const (
	ExecutionInProgress ExecutionState = "IN_PROGRESS"
	ExecutionSucceeded  ExecutionState = "SUCCEEDED"
	ExecutionFailed     ExecutionState = "FAILED"
	ExecutionCanceled   ExecutionState = "CANCELED"
)

// GovernedRequest is the access request an execution made for its work
// on the instances of one governed resource.
type GovernedRequest struct {
	ResourceID      string `json:"resource_id"`
	AccessRequestID string `json:"access_request_id,omitempty"`
	// Error is why the request could not be made (its work requests
	// failed with it).
	Error string `json:"error,omitempty"`
	// Closed: the scheduler completed the request once the work it
	// covered was over.
	Closed bool `json:"closed,omitempty"`
}

// Execution is one firing of a job: its work requests, one per target,
// with the rate control resolved for their number.
type Execution struct {
	ID             string            `json:"id"`
	JobID          string            `json:"job_id"`
	JobName        string            `json:"job_name"`
	CompartmentID  string            `json:"compartment_id"`
	Trigger        Trigger           `json:"trigger"`
	TimeScheduled  time.Time         `json:"time_scheduled"`
	TimeStarted    time.Time         `json:"time_started"`
	TimeCutoff     time.Time         `json:"time_cutoff"`
	TimeFinished   time.Time         `json:"time_finished,omitzero"`
	Targets        int               `json:"targets"`
	MaxConcurrency int               `json:"max_concurrency"`
	MaxErrors      int               `json:"max_errors"`
	TimeoutMinutes int               `json:"timeout_minutes"`
	Requests       []GovernedRequest `json:"access_requests,omitempty"`
	// Counts are its work requests by status.
	Counts  map[Status]int `json:"counts"`
	State   ExecutionState `json:"state"`
	Version int64          `json:"version"`
}

// WorkRequest is one target's work of one execution (OCI OS
// Management's WorkRequest).
type WorkRequest struct {
	ID            string   `json:"id"`
	JobID         string   `json:"job_id"`
	ExecutionID   string   `json:"execution_id"`
	InstanceID    string   `json:"managed_instance_id"`
	Host          string   `json:"host"`
	CompartmentID string   `json:"compartment_id"`
	ResourceID    string   `json:"resource_id,omitempty"`
	OperationType string   `json:"operation_type"`
	UpdateType    string   `json:"update_type,omitempty"`
	PackageNames  []string `json:"package_names,omitempty"`
	// Position is its place in the execution's dispatch order.
	Position        int    `json:"position"`
	Status          Status `json:"status"`
	PercentComplete int    `json:"percent_complete"`
	// Message says why it is in its status (the last reason given).
	Message string `json:"message,omitempty"`
	// AccessRequestID is the request a governed run waits for; LoginID
	// its grant's login user, set at dispatch.
	AccessRequestID string    `json:"access_request_id,omitempty"`
	LoginID         string    `json:"loginid,omitempty"`
	TimeAccepted    time.Time `json:"time_accepted"`
	TimeStarted     time.Time `json:"time_started,omitzero"`
	TimeFinished    time.Time `json:"time_finished,omitzero"`
	TimeCutoff      time.Time `json:"time_cutoff"`
	TimeDeadline    time.Time `json:"time_deadline,omitzero"`
	// LastReportSeq is the seq of the agent's last report applied.
	LastReportSeq int64 `json:"last_report_seq,omitempty"`
	Version       int64 `json:"version"`
}

// Governed reports whether the work request needs an access request.
func (w *WorkRequest) Governed() bool { return w.ResourceID != "" }

// Log kinds.
const (
	logLine  = "LOG"
	logError = "ERROR"
)

// LogEntry is one line of a work request's log (OCI's
// WorkRequestLogEntry) or one of its errors (WorkRequestError, with a
// code).
type LogEntry struct {
	Seq     int64     `json:"seq"`
	Time    time.Time `json:"timestamp"`
	Code    string    `json:"code,omitempty"`
	Message string    `json:"message"`
}

// Upcoming is one future execution of a job.
type Upcoming struct {
	JobID       string    `json:"job_id"`
	DisplayName string    `json:"display_name"`
	Time        time.Time `json:"time_next_execution"`
}
