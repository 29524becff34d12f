package policy

import (
	"fmt"
	"slices"
	"strings"
)

// RequestState is an access request's lifecycle state, named as OCI's
// AccessRequest lifecycle_state.
type RequestState string

// The states the flows use. OCI also has REVOKING, COMPLETING,
// UNDEPLOYFAILED, CLOSEFAILED, REVOKEFAILED, EXPIRYFAILED and INREVIEW: a
// revocation, a completion and an expiry here take effect in the
// transaction that records them (the signed revocation is in the outbox),
// so there is no state between, and no review step.
const (
	StateCreated           RequestState = "CREATED"
	StateApprovalWaiting   RequestState = "APPROVALWAITING"
	StatePreApproved       RequestState = "PREAPPROVED"
	StateApproved          RequestState = "APPROVED"
	StateApprovedForFuture RequestState = "APPROVEDFORFUTURE"
	StateMoreInfo          RequestState = "MOREINFO"
	StateRejected          RequestState = "REJECTED"
	StateDeployed          RequestState = "DEPLOYED"
	StateDeployFailed      RequestState = "DEPLOYFAILED"
	StateUndeployed        RequestState = "UNDEPLOYED"
	StateRevoked           RequestState = "REVOKED"
	StateExtending         RequestState = "EXTENDING"
	StateExtended          RequestState = "EXTENDED"
	StateExtensionRejected RequestState = "EXTENSIONREJECTED"
	StateCompleted         RequestState = "COMPLETED"
	StateExpired           RequestState = "EXPIRED"
)

// RequestStates returns every state the table uses, in flow order.
func RequestStates() []RequestState {
	return []RequestState{StateCreated, StateApprovalWaiting, StateMoreInfo, StatePreApproved, StateApproved, StateApprovedForFuture,
		StateDeployed, StateDeployFailed, StateUndeployed, StateExtending, StateExtended, StateExtensionRejected,
		StateRejected, StateRevoked, StateCompleted, StateExpired}
}

// Terminal reports whether no action but an agent's late report leaves s.
func (s RequestState) Terminal() bool {
	switch s {
	case StateRejected, StateRevoked, StateCompleted, StateExpired:
		return true
	}
	return false
}

// Granted reports whether a request in s holds a live grant (a login
// user published on opctl.grants.v1).
func (s RequestState) Granted() bool {
	switch s {
	case StatePreApproved, StateApproved, StateDeployed, StateDeployFailed, StateUndeployed, StateExtending, StateExtended, StateExtensionRejected:
		return true
	}
	return false
}

// Pending reports whether a request in s waits for a decision.
func (s RequestState) Pending() bool {
	return s == StateCreated || s == StateApprovalWaiting || s == StateMoreInfo
}

// RequestAction is what happens to an access request: a user's call (approve,
// reject, revoke …), an agent's report, or time (expire, start).
type RequestAction string

// The actions of the transition table.
const (
	ActSubmit             RequestAction = "submit"               // created, waits for approvers
	ActAutoApprove        RequestAction = "auto_approve"         // created, every action pre-approved
	ActAutoApproveFuture  RequestAction = "auto_approve_future"  // the same, access starts later
	ActRecordApproval     RequestAction = "record_approval"      // an approval, not yet enough
	ActApprove            RequestAction = "approve"              // the approval that completes the count
	ActApproveForFuture   RequestAction = "approve_future"       // the same, access starts later
	ActReject             RequestAction = "reject"               // an approver says no
	ActAsk                RequestAction = "ask"                  // an approver asks for more information
	ActAnswer             RequestAction = "answer"               // the requester answers
	ActStart              RequestAction = "start"                // the future access time came
	ActReportDeployed     RequestAction = "report_deployed"      // the agent created the user
	ActReportDeployFailed RequestAction = "report_deploy_failed" // the agent could not
	ActReportUndeployed   RequestAction = "report_undeployed"    // the agent removed the user
	ActExtend             RequestAction = "extend"               // the requester asks for more time
	ActRevoke             RequestAction = "revoke"               // an approver or admin ends it
	ActComplete           RequestAction = "complete"             // the requester ends it
	ActExpire             RequestAction = "expire"               // its time ran out
)

// past is the lifecycle event name of each action (access_request.<past>).
var past = map[RequestAction]string{
	ActSubmit: "submitted", ActAutoApprove: "auto_approved", ActAutoApproveFuture: "auto_approved_for_future",
	ActRecordApproval: "approval_recorded", ActApprove: "approved", ActApproveForFuture: "approved_for_future",
	ActReject: "rejected", ActAsk: "more_info_requested", ActAnswer: "more_info_answered", ActStart: "started",
	ActReportDeployed: "deployed", ActReportDeployFailed: "deploy_failed", ActReportUndeployed: "undeployed",
	ActExtend: "extension_requested", ActRevoke: "revoked", ActComplete: "completed", ActExpire: "expired",
}

// Past returns the action as the lifecycle event names it.
func (a RequestAction) Past() string { return past[a] }

type stateAction struct {
	from RequestState
	act  RequestAction
}

// transitions is the request state machine: (state, action) -> next state.
// An extension waits in EXTENDING and is decided by the same actions as a
// request (record_approval, approve, reject). An agent's reports keep the
// state where it is not about deployment (EXTENDING … and after a
// revocation), so a late report is recorded, not refused.
var transitions = buildTransitions()

func buildTransitions() map[stateAction]RequestState {
	transitions := map[stateAction]RequestState{}
	add := func(from []RequestState, act RequestAction, to RequestState) {
		for _, f := range from {
			transitions[stateAction{f, act}] = to
		}
	}
	one := func(s ...RequestState) []RequestState { return s }
	deployStates := one(StatePreApproved, StateApproved, StateDeployed, StateDeployFailed, StateUndeployed)
	extStates := one(StateExtending, StateExtended, StateExtensionRejected)
	granted := append(slices.Clone(deployStates), extStates...)
	waiting := one(StateApprovalWaiting, StateMoreInfo)

	add(one(StateCreated), ActSubmit, StateApprovalWaiting)
	add(one(StateCreated), ActAutoApprove, StatePreApproved)
	add(one(StateCreated), ActAutoApproveFuture, StateApprovedForFuture)

	add(one(StateApprovalWaiting), ActRecordApproval, StateApprovalWaiting)
	add(one(StateMoreInfo), ActRecordApproval, StateMoreInfo)
	add(waiting, ActApprove, StateApproved)
	add(waiting, ActApproveForFuture, StateApprovedForFuture)
	add(waiting, ActReject, StateRejected)
	add(waiting, ActAsk, StateMoreInfo)
	add(one(StateMoreInfo), ActAnswer, StateApprovalWaiting)
	add(waiting, ActRevoke, StateRevoked)
	add(waiting, ActComplete, StateCompleted)
	add(waiting, ActExpire, StateExpired)

	add(one(StateApprovedForFuture), ActStart, StateApproved)
	add(one(StateApprovedForFuture), ActRevoke, StateRevoked)
	add(one(StateApprovedForFuture), ActComplete, StateCompleted)
	add(one(StateApprovedForFuture), ActExpire, StateExpired)

	add(deployStates, ActReportDeployed, StateDeployed)
	add(deployStates, ActReportDeployFailed, StateDeployFailed)
	add(deployStates, ActReportUndeployed, StateUndeployed)
	for _, s := range extStates {
		add(one(s), ActReportDeployed, s)
		add(one(s), ActReportDeployFailed, s)
		add(one(s), ActReportUndeployed, s)
	}
	add(granted, ActRevoke, StateRevoked)
	add(granted, ActComplete, StateCompleted)
	add(granted, ActExpire, StateExpired)
	add(one(StatePreApproved, StateApproved, StateDeployed, StateDeployFailed, StateUndeployed, StateExtended, StateExtensionRejected), ActExtend, StateExtending)

	add(one(StateExtending), ActRecordApproval, StateExtending)
	add(one(StateExtending), ActApprove, StateExtended)
	add(one(StateExtending), ActReject, StateExtensionRejected)

	// After the grant ended, the agent confirms the user is gone.
	for _, s := range one(StateRevoked, StateCompleted, StateExpired) {
		add(one(s), ActReportUndeployed, s)
	}
	return transitions
}

// Next returns the state action leads to from state, or a
// *TransitionError naming both when the table has no such move.
func Next(requestID string, state RequestState, action RequestAction) (RequestState, error) {
	to, ok := transitions[stateAction{state, action}]
	if !ok {
		return "", &TransitionError{RequestID: requestID, State: state, Action: action}
	}
	return to, nil
}

// Transition is one row of the table.
type Transition struct {
	From   RequestState
	Action RequestAction
	To     RequestState
}

// Transitions returns the table, ordered by state (RequestStates order)
// then action.
func Transitions() []Transition {
	order := RequestStates()
	var out []Transition
	for k, to := range transitions {
		out = append(out, Transition{From: k.from, Action: k.act, To: to})
	}
	slices.SortFunc(out, func(a, b Transition) int {
		if c := slices.Index(order, a.From) - slices.Index(order, b.From); c != 0 {
			return c
		}
		return strings.Compare(string(a.Action), string(b.Action))
	})
	return out
}

// RequestActions returns every action, in table order of first use.
func RequestActions() []RequestAction {
	return []RequestAction{ActSubmit, ActAutoApprove, ActAutoApproveFuture, ActRecordApproval, ActApprove, ActApproveForFuture,
		ActReject, ActAsk, ActAnswer, ActStart, ActReportDeployed, ActReportDeployFailed, ActReportUndeployed,
		ActExtend, ActRevoke, ActComplete, ActExpire}
}

// TransitionTableMarkdown renders the table as the README shows it: one
// row per state, its actions with the state each leads to.
func TransitionTableMarkdown() string {
	var b strings.Builder
	b.WriteString("| state | action → next state |\n|---|---|\n")
	for _, s := range RequestStates() {
		var cells []string
		for _, a := range RequestActions() {
			if to, ok := transitions[stateAction{s, a}]; ok {
				cells = append(cells, fmt.Sprintf("%s → %s", a, to))
			}
		}
		fmt.Fprintf(&b, "| %s | %s |\n", s, strings.Join(cells, ", "))
	}
	return b.String()
}
