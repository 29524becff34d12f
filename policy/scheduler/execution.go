package scheduler

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/schemas"
)

// GovernedAction is the catalog action a governed patch run requests
// for every operation type: installing, updating and removing packages
// changes the system and may restart its services, which is what
// INFRA_UPDATE_RESTART allows an operator (its privileges are not what
// the agent uses: the request is the authorization, and the audit
// trail's link from each package change to it).
const GovernedAction = "INFRA_UPDATE_RESTART"

// ActionFor returns the catalog action a patch run of operation op
// needs on a governed resource.
func ActionFor(op string) string {
	switch op {
	case schemas.OperationInstall, schemas.OperationUpdate, schemas.OperationRemove, schemas.OperationUpdateAll:
		return GovernedAction
	}
	return ""
}

// requestSeverity is the severity of the scheduler's access requests:
// planned maintenance.
const requestSeverity = policy.SeverityS4

// Why the scheduler ended a work request itself (the code of its error
// entry).
const (
	codeAccessRefused = "ACCESS_REQUEST_REFUSED"
	codeCutoff        = "CUTOFF"
	codeTimeout       = "TIMEOUT"
	codeMaxErrors     = "MAX_ERRORS"
)

func sortByPosition(ws []WorkRequest) {
	slices.SortFunc(ws, func(a, b WorkRequest) int { return cmp.Compare(a.Position, b.Position) })
}

func (e *Execution) requestsOpen() bool {
	return slices.ContainsFunc(e.Requests, func(r GovernedRequest) bool { return !r.Closed })
}

// effects are what a transaction did that the process reports once it
// committed (metrics): a retried transaction starts them again.
type effects struct {
	fired        []Trigger
	missed       int
	overlapping  int
	dispatchLags []time.Duration
	dispatched   int
	finished     []ExecutionState
}

// fire creates an execution of j, scheduled for scheduled and starting
// now: one work request per target (instances in the job's order, or the
// groups' members in theirs, each once), the access requests of the
// governed ones, and the first dispatches. The caller holds j's row and
// saves it.
func (s *Service) fire(tx *policy.Tx, j *Job, trig Trigger, scheduled, now time.Time, actor string, fx *effects) (Execution, error) {
	instances, skipped, err := s.expand(tx, j)
	if err != nil {
		return Execution{}, err
	}
	conc, _ := parseRate(j.MaxConcurrency)
	maxErr, _ := parseRate(j.MaxErrors)
	e := Execution{
		ID: policy.NewID("jobexecution"), JobID: j.ID, JobName: j.DisplayName, CompartmentID: j.CompartmentID, Trigger: trig,
		TimeScheduled: scheduled, TimeStarted: now, TimeCutoff: now.Add(time.Duration(j.CutoffMinutes) * time.Minute),
		Targets: len(instances), MaxConcurrency: conc.of(len(instances), true), MaxErrors: maxErr.of(len(instances), false), TimeoutMinutes: j.TimeoutMinutes,
		Counts: map[Status]int{}, State: ExecutionInProgress,
	}
	ws := make([]WorkRequest, len(instances))
	for n, i := range instances {
		ws[n] = WorkRequest{
			ID: policy.NewID("workrequest"), JobID: j.ID, ExecutionID: e.ID, InstanceID: i.ID, Host: i.Host, CompartmentID: i.CompartmentID,
			ResourceID: i.ResourceID, OperationType: j.OperationType, UpdateType: j.UpdateType, PackageNames: slices.Clone(j.PackageNames),
			Position: n, Status: Accepted, TimeAccepted: now, TimeCutoff: e.TimeCutoff,
		}
	}
	refused, err := s.requestAccess(tx, j, &e, ws)
	if err != nil {
		return Execution{}, err
	}
	if err := saveExecution(tx, &e, 0); err != nil {
		return Execution{}, err
	}
	comment := fmt.Sprintf("%d work requests", len(ws))
	if len(skipped) > 0 {
		comment += "; gone since the job was made: " + strings.Join(skipped, ", ")
	}
	if err := s.history(tx, ObjectExecution, e.ID, actor, "", string(e.State), strings.ToLower(string(trig)), comment, now); err != nil {
		return Execution{}, err
	}
	for n := range ws {
		w := &ws[n]
		if err := saveWorkRequest(tx, w, 0); err != nil {
			return Execution{}, err
		}
		if err := s.changed(tx, w, actor, "", "accepted", "", now); err != nil {
			return Execution{}, err
		}
		if reason, ok := refused[w.ResourceID]; ok && w.Governed() {
			if err := s.end(tx, &e, w, ActFail, codeAccessRefused, reason, now); err != nil {
				return Execution{}, err
			}
		}
	}
	j.TimeLastExecution, j.TimeUpdated = now, now
	kind := "fired"
	if trig == TriggerRunNow {
		kind = "run_now"
	}
	if err := s.jobChanged(tx, j, actor, string(j.LifecycleState), kind, comment, now, map[string]string{
		"execution_id": e.ID, "time_scheduled": scheduled.Format(time.RFC3339), "targets": strconv.Itoa(len(ws)),
	}); err != nil {
		return Execution{}, err
	}
	fx.fired = append(fx.fired, trig)
	if err := s.advance(tx, &e, ws, nil, now, fx); err != nil {
		return Execution{}, err
	}
	return e, saveExecution(tx, &e, e.Version)
}

// expand returns the job's instances in dispatch order, each once, and
// the targets that no longer exist.
func (s *Service) expand(tx *policy.Tx, j *Job) ([]Instance, []string, error) {
	ids := slices.Clone(j.ManagedInstances)
	var gone []string
	for _, g := range j.ManagedInstanceGroups {
		rows, err := tx.Query("SELECT instance_id FROM instance_group_members WHERE group_id = ? ORDER BY position", g)
		if err != nil {
			return nil, nil, fmt.Errorf("scheduler store: members of %s: %w", g, err)
		}
		members, err := scanIDs(rows)
		if err != nil {
			return nil, nil, err
		}
		if len(members) == 0 {
			if _, err := policy.GetDoc[Group](tx, "instance_groups", ObjectGroup, g, false); errors.Is(err, policy.ErrNotFound) {
				gone = append(gone, g)
			} else if err != nil {
				return nil, nil, err
			}
		}
		ids = append(ids, members...)
	}
	var out []Instance
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		i, err := policy.GetDoc[Instance](tx, "managed_instances", ObjectInstance, id, false)
		if errors.Is(err, policy.ErrNotFound) {
			gone = append(gone, id)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		out = append(out, i)
	}
	return out, gone, nil
}

// requestAccess makes one access request per governed resource among
// ws's instances, for the action the job's operation implies, on those
// instances' hosts, as the scheduler's machine identity; the request
// follows its control's rules (auto-approved when pre-approved). It
// returns why the request of a resource could not be made (the policy
// service refused it), by resource; those work requests fail. Any other
// error is the store's: the firing is retried whole.
func (s *Service) requestAccess(tx *policy.Tx, j *Job, e *Execution, ws []WorkRequest) (map[string]string, error) {
	hosts := map[string][]string{}
	var resources []string
	for _, w := range ws {
		if !w.Governed() {
			continue
		}
		if _, ok := hosts[w.ResourceID]; !ok {
			resources = append(resources, w.ResourceID)
		}
		hosts[w.ResourceID] = append(hosts[w.ResourceID], w.Host)
	}
	refused := map[string]string{}
	// The access covers the cutoff and the last run's timeout after it.
	hours := int((time.Duration(j.CutoffMinutes+j.TimeoutMinutes)*time.Minute + time.Hour - 1) / time.Hour)
	for _, res := range resources {
		in := policy.RequestInput{
			ResourceID: res, ActionRequests: []string{ActionFor(j.OperationType)}, SubResourceList: hosts[res], Severity: requestSeverity, DurationHours: hours,
			Reason: fmt.Sprintf("scheduled job %q (%s), execution %s: %s %s on %s", j.DisplayName, j.ID, e.ID, j.OperationType,
				cmp.Or(j.UpdateType, strings.Join(j.PackageNames, " ")), strings.Join(hosts[res], ", ")),
		}
		gr := GovernedRequest{ResourceID: res}
		r, err := s.policy.CreateRequestTx(tx, s.identity, in)
		switch {
		case err == nil:
			gr.AccessRequestID = r.ID
			for n := range ws {
				if ws[n].ResourceID == res {
					ws[n].AccessRequestID = r.ID
				}
			}
		case errors.Is(err, policy.ErrInvalid), errors.Is(err, policy.ErrConflict), errors.Is(err, policy.ErrNotFound), errors.Is(err, policy.ErrForbidden):
			// Refused before anything was written: the transaction goes on.
			gr.Error, gr.Closed = err.Error(), true
			refused[res] = "the access request for resource " + res + " was refused: " + err.Error()
		default:
			return nil, fmt.Errorf("scheduler: access request for resource %s: %w", res, err)
		}
		e.Requests = append(e.Requests, gr)
	}
	return refused, nil
}

// onExecution reads execution id for change with its work requests not
// yet final, runs fn, advances the execution (timeouts, governance, max errors, cutoff,
// dispatch, its end) and saves it.
func (s *Service) onExecution(tx *policy.Tx, id string, now time.Time, fx *effects, fn func(e *Execution, ws []WorkRequest) error) error {
	e, err := getExecution(tx, id, true)
	if err != nil {
		return err
	}
	prev := e.Version
	before, err := encode(e)
	if err != nil {
		return err
	}
	ws, final, err := executionWork(tx, id)
	if err != nil {
		return err
	}
	if err := fn(&e, ws); err != nil {
		return err
	}
	if err := s.advance(tx, &e, ws, final, now, fx); err != nil {
		return err
	}
	if after, err := encode(e); err != nil || after == before {
		return err // unchanged: a tick with nothing due writes nothing
	}
	return saveExecution(tx, &e, prev)
}

// advance does what is due for an execution at now, in this order:
// work requests past their deadline fail; governed ones whose access
// request was refused (or ended) fail; past max errors, what was not
// dispatched is canceled; past the cutoff, what was not dispatched is
// canceled, or fails when it still waited for its access request; then
// work requests are dispatched in order while fewer than max concurrency
// run (a governed one once its grant exists); and the execution ends
// when every work request did. ws are the execution's work requests
// (those not final, at least) in dispatch order; final counts the final
// ones not in ws.
func (s *Service) advance(tx *policy.Tx, e *Execution, ws []WorkRequest, final map[Status]int, now time.Time, fx *effects) error {
	if e.State != ExecutionInProgress {
		return nil
	}
	for n := range ws {
		w := &ws[n]
		if (w.Status == InProgress || w.Status == Canceling) && !w.TimeDeadline.IsZero() && !now.Before(w.TimeDeadline) {
			if err := s.end(tx, e, w, ActTimeOut, codeTimeout, fmt.Sprintf("no result from %s within %s of its dispatch", w.Host, w.TimeDeadline.Sub(w.TimeStarted)), now); err != nil {
				return err
			}
		}
	}
	// Governed work waiting: is its grant there, or is there no hope?
	ready := map[string]string{} // work request → login user
	waiting := map[string]string{}
	for n := range ws {
		w := &ws[n]
		if w.Status != Accepted || !w.Governed() {
			continue
		}
		r, err := s.policy.GetRequestTx(tx, w.AccessRequestID)
		if err != nil {
			return err
		}
		switch st := r.LifecycleState; {
		case st.Granted() && r.UserID != "" && r.TimeOfExpiry.After(now):
			ready[w.ID] = r.UserID
		case st.Pending() || st == policy.StateApprovedForFuture:
			waiting[w.ID] = fmt.Sprintf("access request %s is %s", r.ID, st)
		default:
			reason := fmt.Sprintf("access request %s is %s", r.ID, st)
			if c := cmp.Or(r.ClosureComment, r.ApproverComment, r.LifecycleDetails); c != "" {
				reason += ": " + c
			}
			if err := s.end(tx, e, w, ActFail, codeAccessRefused, reason, now); err != nil {
				return err
			}
		}
	}
	failed := final[Failed]
	for _, w := range ws {
		if w.Status == Failed {
			failed++
		}
	}
	if failed > e.MaxErrors {
		for n := range ws {
			if ws[n].Status == Accepted {
				if err := s.end(tx, e, &ws[n], ActCancel, codeMaxErrors, fmt.Sprintf("max errors (%d) exceeded: %d of %d work requests failed", e.MaxErrors, failed, e.Targets), now); err != nil {
					return err
				}
			}
		}
	}
	if !now.Before(e.TimeCutoff) {
		for n := range ws {
			w := &ws[n]
			if w.Status != Accepted {
				continue
			}
			var err error
			if why, ok := waiting[w.ID]; ok {
				err = s.end(tx, e, w, ActFail, codeAccessRefused, fmt.Sprintf("cutoff %s passed while %s", e.TimeCutoff.Format(time.RFC3339), why), now)
			} else {
				err = s.end(tx, e, w, ActCancel, codeCutoff, fmt.Sprintf("cutoff %s passed before it could start", e.TimeCutoff.Format(time.RFC3339)), now)
			}
			if err != nil {
				return err
			}
		}
	}
	running := 0
	for _, w := range ws {
		if w.Status == InProgress || w.Status == Canceling {
			running++
		}
	}
	for n := range ws {
		w := &ws[n]
		if running >= e.MaxConcurrency {
			break
		}
		if w.Status != Accepted {
			continue
		}
		login, ok := ready[w.ID]
		if w.Governed() && !ok {
			continue
		}
		if err := s.dispatch(tx, e, w, login, now, fx); err != nil {
			return err
		}
		running++
	}
	return s.finishIfDone(tx, e, ws, final, now, fx)
}

// dispatch sends w to its instance's agent (a signed RUN on
// opctl.dispatch.v1 through the outbox) and moves it to IN_PROGRESS.
func (s *Service) dispatch(tx *policy.Tx, e *Execution, w *WorkRequest, login string, now time.Time, fx *effects) error {
	w.LoginID, w.TimeStarted = login, now
	w.TimeDeadline = now.Add(time.Duration(e.TimeoutMinutes) * time.Minute)
	d := schemas.Dispatch{WorkRequestID: w.ID, Action: schemas.DispatchRun, JobID: w.JobID, ExecutionID: w.ExecutionID, InstanceID: w.InstanceID, Host: w.Host,
		OperationType: w.OperationType, UpdateType: w.UpdateType, PackageNames: w.PackageNames, NotAfter: e.TimeCutoff, Deadline: w.TimeDeadline, Time: now}
	if w.Governed() {
		d.ReqAuthID = w.AccessRequestID
		d.LoginID = login
	}
	seq, err := tx.NextSeq(schemas.TopicDispatch, w.InstanceID)
	if err != nil {
		return err
	}
	d.PublishSeq = seq
	rec, err := grants.DispatchRecord(s.signer, d)
	if err != nil {
		return fmt.Errorf("scheduler: dispatch %s: %w", w.ID, err)
	}
	if err := tx.Outbox(schemas.TopicDispatch, rec, now); err != nil {
		return err
	}
	msg := "dispatched to " + w.Host
	if w.Governed() {
		msg += " under access request " + w.AccessRequestID + " (login " + login + ")"
	}
	if err := addLog(tx, w.ID, logLine, "", msg, now); err != nil {
		return err
	}
	if err := s.move(tx, w, ActDispatch, ActorScheduler, msg, now); err != nil {
		return err
	}
	fx.dispatched++
	fx.dispatchLags = append(fx.dispatchLags, now.Sub(e.TimeScheduled))
	return nil
}

// sendCancel puts a signed CANCEL for w in the outbox.
func (s *Service) sendCancel(tx *policy.Tx, w *WorkRequest, now time.Time) error {
	seq, err := tx.NextSeq(schemas.TopicDispatch, w.InstanceID)
	if err != nil {
		return err
	}
	rec, err := grants.DispatchRecord(s.signer, schemas.Dispatch{WorkRequestID: w.ID, Action: schemas.DispatchCancel, JobID: w.JobID,
		ExecutionID: w.ExecutionID, InstanceID: w.InstanceID, Host: w.Host, Time: now, PublishSeq: seq})
	if err != nil {
		return fmt.Errorf("scheduler: cancel %s: %w", w.ID, err)
	}
	return tx.Outbox(schemas.TopicDispatch, rec, now)
}

// end is the scheduler ending (or canceling) w itself for a reason: an
// entry in its errors (code) or its log, then the move.
func (s *Service) end(tx *policy.Tx, e *Execution, w *WorkRequest, act Action, code, reason string, now time.Time) error {
	kind, c := logLine, ""
	if act == ActFail || act == ActTimeOut {
		kind, c = logError, code
	}
	if err := addLog(tx, w.ID, kind, c, reason, now); err != nil {
		return err
	}
	if act == ActCancel && w.Status == InProgress {
		if err := s.sendCancel(tx, w, now); err != nil {
			return err
		}
	}
	return s.move(tx, w, act, ActorScheduler, reason, now)
}

// move applies act to w (or returns the *TransitionError), saves it and
// records the change: history, and a lifecycle event on
// opctl.lifecycle.v1 keyed by its resource (or itself when ungoverned).
func (s *Service) move(tx *policy.Tx, w *WorkRequest, act Action, actor, reason string, now time.Time) error {
	to, err := Next(w.ID, w.Status, act)
	if err != nil {
		return err
	}
	from := w.Status
	w.Status = to
	if reason != "" {
		w.Message = reason
	}
	if to.Final() {
		w.TimeFinished = now
		if to == Succeeded {
			w.PercentComplete = 100
		}
	}
	if err := saveWorkRequest(tx, w, w.Version); err != nil {
		return err
	}
	return s.changed(tx, w, actor, string(from), kind(act, to), reason, now)
}

// changed records w's change from from to its status.
func (s *Service) changed(tx *policy.Tx, w *WorkRequest, actor, from, kind, reason string, now time.Time) error {
	if err := s.history(tx, ObjectWorkRequest, w.ID, actor, from, string(w.Status), kind, reason, now); err != nil {
		return err
	}
	d := compact(map[string]string{
		"job_id": w.JobID, "execution_id": w.ExecutionID, "instance_id": w.InstanceID, "host": w.Host,
		"operation_type": w.OperationType, "update_type": w.UpdateType, "package_names": strings.Join(w.PackageNames, ","),
		"req_auth_id": w.AccessRequestID, "loginid": w.LoginID, "percent_complete": strconv.Itoa(w.PercentComplete), "message": reason,
	})
	return tx.Lifecycle(schemas.Lifecycle{EventID: policy.RandomHex(), Kind: ObjectWorkRequest + "." + kind, ObjectType: ObjectWorkRequest, ObjectID: w.ID,
		ResourceID: w.ResourceID, CompartmentID: w.CompartmentID, StateFrom: from, StateTo: string(w.Status), Actor: actor, Time: now, Details: d})
}

// finishIfDone counts e's work requests and, once each is final, ends
// the execution: SUCCEEDED, FAILED (one failed, or it had no target) or
// CANCELED.
func (s *Service) finishIfDone(tx *policy.Tx, e *Execution, ws []WorkRequest, final map[Status]int, now time.Time, fx *effects) error {
	e.Counts = map[Status]int{}
	for st, n := range final {
		e.Counts[st] = n
	}
	done := true
	for _, w := range ws {
		e.Counts[w.Status]++
		done = done && w.Status.Final()
	}
	if !done {
		return nil
	}
	switch {
	case e.Targets == 0 || e.Counts[Failed] > 0:
		e.State = ExecutionFailed
	case e.Counts[Canceled] > 0:
		e.State = ExecutionCanceled
	default:
		e.State = ExecutionSucceeded
	}
	e.TimeFinished = now
	summary := fmt.Sprintf("%d succeeded, %d failed, %d canceled of %d", e.Counts[Succeeded], e.Counts[Failed], e.Counts[Canceled], e.Targets)
	if e.Targets == 0 {
		summary = "no target"
	}
	if err := s.history(tx, ObjectExecution, e.ID, ActorScheduler, string(ExecutionInProgress), string(e.State), "finished", summary, now); err != nil {
		return err
	}
	j, err := getJob(tx, e.JobID, false)
	if err != nil {
		return err
	}
	fx.finished = append(fx.finished, e.State)
	return tx.Lifecycle(schemas.Lifecycle{EventID: policy.RandomHex(), Kind: ObjectJob + ".execution_" + strings.ToLower(string(e.State)), ObjectType: ObjectJob, ObjectID: j.ID,
		CompartmentID: j.CompartmentID, StateFrom: string(j.LifecycleState), StateTo: string(j.LifecycleState), Actor: ActorScheduler, Time: now,
		Details: map[string]string{"execution_id": e.ID, "summary": summary, "display_name": j.DisplayName}})
}
