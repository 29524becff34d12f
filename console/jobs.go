package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/policy/api"
	"github.com/auditpipe/auditpipe/policy/scheduler"
)

// upcomingShown is how many next executions the Jobs page shows per job.
const upcomingShown = 3

// jobRow is one scheduled job as the Jobs page shows it.
type jobRow struct {
	scheduler.Job
	Upcoming []scheduler.Upcoming
	// UpcomingError says why the upcoming executions are missing.
	UpcomingError string
}

// Recurring reports whether the job has more than one execution (skip
// next applies to those only).
func (j jobRow) Recurring() bool { return j.ScheduleType == scheduler.Recurring }

// jobActions are the job forms' actions and the API operation of each.
var jobActions = map[string]string{
	"run": "RunScheduledJobNow", "skip": "SkipNextScheduledJobExecution", "delete": "DeleteScheduledJob",
}

// scheduled returns the scheduler when who may read the jobs (the
// API's ListScheduledJobs roles), else a 404: a visitor who may not read
// them, or a process without the scheduler, has no Jobs pages.
func (c *Console) scheduled(s *session, r *http.Request) (*scheduler.Service, error) {
	if c.deps.Scheduler == nil || !c.deps.API.Allowed("ListScheduledJobs", s.who) {
		return nil, &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: "no such page: " + r.URL.Path}
	}
	return c.deps.Scheduler, nil
}

// jobsPage lists the scheduled jobs with their next executions and, for
// who may, the forms to run, skip and delete them.
func (c *Console) jobsPage(w http.ResponseWriter, r *http.Request, s *session) error {
	sch, err := c.scheduled(s, r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	// ?all=1 lists the deleted jobs too (OCI keeps them, DELETED).
	all := r.URL.Query().Get("all") == "1"
	f := scheduler.JobFilter{Page: policy.Page{Limit: 1000}, State: scheduler.JobActive}
	if all {
		f.State = ""
	}
	jobs, _, err := sch.ListJobs(ctx, f)
	if err != nil {
		return err
	}
	rows := make([]jobRow, 0, len(jobs))
	for _, j := range jobs {
		row := jobRow{Job: j}
		if j.LifecycleState != scheduler.JobActive {
			rows = append(rows, row)
			continue
		}
		if up, err := sch.Upcoming(ctx, j.ID, upcomingShown); err != nil {
			row.UpcomingError = c.deps.API.ErrorOf(err, r).Message
		} else {
			row.Upcoming = up
		}
		rows = append(rows, row)
	}
	c.render(w, r, s, http.StatusOK, "jobs", map[string]any{"Jobs": rows, "All": all, "Can": c.jobPermissions(s)})
	return nil
}

// jobPermissions are the job actions who may take, by form action.
func (c *Console) jobPermissions(s *session) map[string]bool {
	can := map[string]bool{"cancel": c.deps.API.Allowed("CancelWorkRequest", s.who)}
	for a, op := range jobActions {
		can[a] = c.deps.API.Allowed(op, s.who)
	}
	return can
}

// jobPage is one job: its facts, next executions, executions and their
// work requests.
func (c *Console) jobPage(w http.ResponseWriter, r *http.Request, s *session) error {
	sch, err := c.scheduled(s, r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	j, err := sch.GetJob(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	row := jobRow{Job: j}
	if j.LifecycleState == scheduler.JobActive {
		if up, err := sch.Upcoming(ctx, j.ID, 10); err != nil {
			row.UpcomingError = c.deps.API.ErrorOf(err, r).Message
		} else {
			row.Upcoming = up
		}
	}
	execs, _, err := sch.ListExecutions(ctx, j.ID, policy.Page{Limit: pageSize})
	if err != nil {
		return err
	}
	wrs, _, err := sch.ListWorkRequests(ctx, scheduler.WorkRequestFilter{Page: policy.Page{Limit: 1000}, JobID: j.ID})
	if err != nil {
		return err
	}
	byExec := map[string][]scheduler.WorkRequest{}
	for _, wr := range wrs {
		byExec[wr.ExecutionID] = append(byExec[wr.ExecutionID], wr)
	}
	type execRow struct {
		scheduler.Execution
		Work []scheduler.WorkRequest
	}
	rows := make([]execRow, 0, len(execs))
	for _, e := range execs {
		rows = append(rows, execRow{Execution: e, Work: byExec[e.ID]})
	}
	c.render(w, r, s, http.StatusOK, "job", map[string]any{"J": row, "Executions": rows, "Can": c.jobPermissions(s),
		"Active": j.LifecycleState == scheduler.JobActive})
	return nil
}

// workRequestPage is one work request: its status, log and errors, and
// the cancel form while it can be canceled.
func (c *Console) workRequestPage(w http.ResponseWriter, r *http.Request, s *session) error {
	sch, err := c.scheduled(s, r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	wr, err := sch.GetWorkRequest(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	logs, err := sch.WorkRequestLogs(ctx, wr.ID)
	if err != nil {
		return err
	}
	errs, err := sch.WorkRequestErrors(ctx, wr.ID)
	if err != nil {
		return err
	}
	_, cancelErr := scheduler.Next(wr.ID, wr.Status, scheduler.ActCancel)
	c.render(w, r, s, http.StatusOK, "workrequest", map[string]any{"W": wr, "Logs": logs, "Errors": errs,
		"CanCancel": cancelErr == nil && c.deps.API.Allowed("CancelWorkRequest", s.who)})
	return nil
}

// allowedTo refuses who an operation the API's roles do not give them.
func (c *Console) allowedTo(s *session, op, what string) error {
	if !c.deps.API.Allowed(op, s.who) {
		return &api.Error{Status: http.StatusForbidden, Code: api.CodeNotAuthorized, Message: s.who.Name + " (role " + s.who.Role + ") may not " + what}
	}
	return nil
}

// jobAction runs, skips or deletes a job, as the API's routes do: the
// role's check, then the service's call on the version the page showed
// (a stale one is refused by the service).
func (c *Console) jobAction(w http.ResponseWriter, r *http.Request, s *session) error {
	sch, err := c.scheduled(s, r)
	if err != nil {
		return err
	}
	action, id := r.PathValue("action"), r.PathValue("id")
	op, ok := jobActions[action]
	if !ok {
		return &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: "no such action: " + action}
	}
	if err := c.allowedTo(s, op, action+" scheduled jobs"); err != nil {
		return err
	}
	version, err := formInt(r, "version")
	if err != nil {
		return err
	}
	if version == 0 {
		return &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidParameter, Message: "version: the form carries no job version: reload the page"}
	}
	v := int64(version)
	ctx := r.Context()
	back := Prefix + "/jobs/" + url.PathEscape(id)
	switch action {
	case "run":
		if _, err := sch.RunNow(ctx, s.who, id, v); err != nil {
			return stale(err)
		}
	case "skip":
		if _, err := sch.SkipNext(ctx, s.who, id, v); err != nil {
			return stale(err)
		}
	case "delete":
		if r.PostFormValue("confirm") != "yes" {
			return &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidParameter, Message: "confirm: tick the box to confirm deleting the job"}
		}
		if _, err := sch.DeleteJob(ctx, s.who, id, v); err != nil {
			return stale(err)
		}
		back = Prefix + "/jobs"
	}
	if r.PostFormValue("back") == "jobs" {
		back = Prefix + "/jobs"
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
	return nil
}

// cancelWorkRequest cancels a work request through the service, as the
// API's CancelWorkRequest does.
func (c *Console) cancelWorkRequest(w http.ResponseWriter, r *http.Request, s *session) error {
	sch, err := c.scheduled(s, r)
	if err != nil {
		return err
	}
	if err := c.allowedTo(s, "CancelWorkRequest", "cancel work requests"); err != nil {
		return err
	}
	id := r.PathValue("id")
	if _, err := sch.CancelWorkRequest(r.Context(), s.who, id); err != nil {
		return err
	}
	http.Redirect(w, r, Prefix+"/workrequests/"+url.PathEscape(id), http.StatusSeeOther)
	return nil
}

// stale turns the service's version conflict into what the visitor
// should do about it: the job changed since the page showed it.
func stale(err error) error {
	var ve *policy.VersionError
	if errors.As(err, &ve) {
		return &api.Error{Status: http.StatusPreconditionFailed, Code: api.CodePreconditionFailed,
			Message: fmt.Sprintf("the job changed since this page showed it (version %d, now %d): nothing was done; open the job again and check it before acting", ve.Expected, ve.Actual)}
	}
	return err
}
