package scheduler

import (
	"fmt"
	"strings"

	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/schemas"
)

// Status is a work request's state (OCI OS Management's WorkRequest
// status; CANCELING spelled as OS Management Hub spells it).
type Status string

// Work request statuses.
const (
	Accepted   Status = schemas.WorkAccepted   // queued: its turn, or its access request, has not come
	InProgress Status = schemas.WorkInProgress // dispatched to the instance's agent
	Succeeded  Status = schemas.WorkSucceeded
	Failed     Status = schemas.WorkFailed
	Canceling  Status = schemas.WorkCanceling // cancel sent, not yet confirmed by the agent
	Canceled   Status = schemas.WorkCanceled
)

// Statuses lists every status, in flow order.
func Statuses() []Status {
	return []Status{Accepted, InProgress, Canceling, Succeeded, Failed, Canceled}
}

// Final reports whether nothing moves a work request in s any more (the
// statuses cleanup removes after the retention).
func (s Status) Final() bool { return s == Succeeded || s == Failed || s == Canceled }

// Action is what happens to a work request.
type Action string

// The actions of the transition table.
const (
	ActDispatch       Action = "dispatch"        // its turn came (and its grant exists): sent to the agent
	ActProgress       Action = "progress"        // the agent reports it still runs
	ActSucceed        Action = "succeed"         // the agent reports success
	ActFail           Action = "fail"            // the agent reports failure; or, before dispatch, its access request was refused or the cutoff came first
	ActCancel         Action = "cancel"          // a user, a job's deletion, max errors or the cutoff stops it
	ActReportCanceled Action = "report_canceled" // the agent confirms it stopped
	ActTimeOut        Action = "time_out"        // no result by its deadline
)

// Actions lists every action.
func Actions() []Action {
	return []Action{ActDispatch, ActProgress, ActSucceed, ActFail, ActCancel, ActReportCanceled, ActTimeOut}
}

type statusAction struct {
	from Status
	act  Action
}

// transitions is the work request state machine: (status, action) → next
// status. Work not yet dispatched is canceled at once; work an agent has
// is CANCELING until the agent confirms, or reports that it finished
// anyway. A report after the end changes nothing (see ReportProgress).
var transitions = map[statusAction]Status{
	{Accepted, ActDispatch}: InProgress,
	{Accepted, ActFail}:     Failed,
	{Accepted, ActCancel}:   Canceled,

	{InProgress, ActProgress}:       InProgress,
	{InProgress, ActSucceed}:        Succeeded,
	{InProgress, ActFail}:           Failed,
	{InProgress, ActCancel}:         Canceling,
	{InProgress, ActReportCanceled}: Canceled,
	{InProgress, ActTimeOut}:        Failed,

	{Canceling, ActProgress}:       Canceling,
	{Canceling, ActSucceed}:        Succeeded,
	{Canceling, ActFail}:           Failed,
	{Canceling, ActReportCanceled}: Canceled,
	{Canceling, ActTimeOut}:        Failed,
}

// TransitionError: the work request's status has no such action.
type TransitionError struct {
	WorkRequestID string
	Status        Status
	Action        Action
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("work request %s is %s: action %s is not allowed in state %s", e.WorkRequestID, e.Status, e.Action, e.Status)
}

// Is matches policy.ErrInvalidTransition (HTTP 409, as the policy API
// maps it).
func (e *TransitionError) Is(target error) bool { return target == policy.ErrInvalidTransition }

// Next returns the status act leads to from s, or a *TransitionError.
func Next(id string, s Status, act Action) (Status, error) {
	to, ok := transitions[statusAction{s, act}]
	if !ok {
		return "", &TransitionError{WorkRequestID: id, Status: s, Action: act}
	}
	return to, nil
}

// kind is the lifecycle event's name of a transition
// (work_request.<kind>).
func kind(act Action, to Status) string {
	switch act {
	case ActDispatch:
		return "dispatched"
	case ActTimeOut:
		return "timed_out"
	case ActCancel:
		if to == Canceling {
			return "cancel_requested"
		}
	}
	return strings.ToLower(string(to))
}

// TransitionTableMarkdown renders the table as README.md shows it.
func TransitionTableMarkdown() string {
	var b strings.Builder
	b.WriteString("| status | action → next status |\n|---|---|\n")
	for _, s := range Statuses() {
		var cells []string
		for _, a := range Actions() {
			if to, ok := transitions[statusAction{s, a}]; ok {
				cells = append(cells, string(a)+" → "+string(to))
			}
		}
		fmt.Fprintf(&b, "| %s | %s |\n", s, strings.Join(cells, ", "))
	}
	return b.String()
}
