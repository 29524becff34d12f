package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/policy/api"
	"github.com/auditpipe/auditpipe/policy/scheduler"
	"github.com/auditpipe/auditpipe/schemas"
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
	can := map[string]bool{"cancel": c.deps.API.Allowed("CancelWorkRequest", s.who), "create": c.deps.API.Allowed("CreateScheduledJob", s.who)}
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
		return notAuthorized(s.who.Name + " (role " + s.who.Role + ") may not " + what)
	}
	return nil
}

// notAuthorized is the API's 403 error with msg: what the signed-in
// visitor may not do.
func notAuthorized(msg string) *api.Error {
	return &api.Error{Status: http.StatusForbidden, Code: api.CodeNotAuthorized, Message: msg}
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
			return stale(err, "job")
		}
	case "skip":
		if _, err := sch.SkipNext(ctx, s.who, id, v); err != nil {
			return stale(err, "job")
		}
	case "delete":
		if r.PostFormValue("confirm") != "yes" {
			return &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidParameter, Message: "confirm: tick the box to confirm deleting the job"}
		}
		if _, err := sch.DeleteJob(ctx, s.who, id, v); err != nil {
			return stale(err, "job")
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
// should do about it: the object (a job, a control…) changed since the
// page showed it.
func stale(err error, object string) error {
	var ve *policy.VersionError
	if errors.As(err, &ve) {
		return &api.Error{Status: http.StatusPreconditionFailed, Code: api.CodePreconditionFailed,
			Message: fmt.Sprintf("the %s changed since this page showed it (version %d, now %d): nothing was done; open the %s again and check it before acting", object, ve.Expected, ve.Actual, object)}
	}
	return err
}

// jobForm is what the new job's form shows: the fields as sent (empty
// at first), the instances and groups to target, and a refusal.
type jobForm struct {
	In        scheduler.JobInput
	First     string // the first execution as typed (datetime-local, in In.TimeZone)
	Packages  string
	Instances []scheduler.Instance
	Groups    []scheduler.Group
	Error     string
	// The choices of the selects.
	Intervals  []scheduler.IntervalType
	Operations []string
	Updates    []string
}

func (f jobForm) Targets(id string) bool {
	return slices.Contains(f.In.ManagedInstances, id) || slices.Contains(f.In.ManagedInstanceGroups, id)
}

// newJobPage is the form that creates a scheduled job (who may:
// CreateScheduledJob's roles).
func (c *Console) newJobPage(w http.ResponseWriter, r *http.Request, s *session) error {
	if _, err := c.scheduled(s, r); err != nil {
		return err
	}
	if err := c.allowedTo(s, "CreateScheduledJob", "create scheduled jobs"); err != nil {
		return err
	}
	in := scheduler.JobInput{ScheduleType: scheduler.Recurring, IntervalType: scheduler.Day, IntervalValue: 1, TimeZone: "UTC",
		OperationType: schemas.OperationUpdateAll, UpdateType: schemas.UpdateSecurity, CompartmentID: r.URL.Query().Get("compartment")}
	return c.renderJobForm(w, r, s, http.StatusOK, jobForm{In: in})
}

func (c *Console) renderJobForm(w http.ResponseWriter, r *http.Request, s *session, status int, f jobForm) error {
	ctx := r.Context()
	var err error
	if f.Instances, _, err = c.deps.Scheduler.ListInstances(ctx, scheduler.InstanceFilter{Page: policy.Page{Limit: 1000}}); err != nil {
		return err
	}
	if f.Groups, _, err = c.deps.Scheduler.ListGroups(ctx, scheduler.GroupFilter{Page: policy.Page{Limit: 1000}}); err != nil {
		return err
	}
	f.Intervals = []scheduler.IntervalType{scheduler.Hour, scheduler.Day, scheduler.Week, scheduler.Month}
	f.Operations, f.Updates = schemas.Operations(), schemas.UpdateTypes()
	c.render(w, r, s, status, "newjob", f)
	return nil
}

// createJob creates the form's job through the scheduler service, as the
// API's CreateScheduledJob does. The first execution is read in the
// job's time zone, as its schedule is.
func (c *Console) createJob(w http.ResponseWriter, r *http.Request, s *session) error {
	sch, err := c.scheduled(s, r)
	if err != nil {
		return err
	}
	if err := c.allowedTo(s, "CreateScheduledJob", "create scheduled jobs"); err != nil {
		return err
	}
	f := jobForm{First: strings.TrimSpace(r.PostFormValue("first")), Packages: r.PostFormValue("packages")}
	in := scheduler.JobInput{DisplayName: strings.TrimSpace(r.PostFormValue("name")), Description: strings.TrimSpace(r.PostFormValue("description")),
		CompartmentID: strings.TrimSpace(r.PostFormValue("compartment")), ScheduleType: scheduler.ScheduleType(r.PostFormValue("schedule")),
		TimeZone: strings.TrimSpace(r.PostFormValue("time_zone")), OperationType: r.PostFormValue("operation"),
		MaxConcurrency: strings.TrimSpace(r.PostFormValue("max_concurrency")), MaxErrors: strings.TrimSpace(r.PostFormValue("max_errors"))}
	if in.TimeZone == "" {
		in.TimeZone = "UTC"
	}
	if in.ScheduleType == scheduler.Recurring {
		in.IntervalType = scheduler.IntervalType(r.PostFormValue("interval_type"))
		if in.IntervalValue, err = formInt(r, "interval_value"); err != nil {
			return err
		}
	}
	if in.OperationType == schemas.OperationUpdateAll {
		in.UpdateType = r.PostFormValue("update_type")
	} else {
		in.PackageNames = splitList(f.Packages)
	}
	for _, t := range r.PostForm["target"] {
		kind, id, _ := strings.Cut(t, ":")
		switch kind {
		case "instance":
			in.ManagedInstances = append(in.ManagedInstances, id)
		case "group":
			in.ManagedInstanceGroups = append(in.ManagedInstanceGroups, id)
		}
	}
	for name, dst := range map[string]*int{"cutoff_minutes": &in.CutoffMinutes, "timeout_minutes": &in.TimeoutMinutes} {
		if *dst, err = formInt(r, name); err != nil {
			return err
		}
	}
	f.In = in
	loc, lerr := time.LoadLocation(in.TimeZone)
	var first time.Time
	switch {
	case lerr != nil:
		f.Error = "time zone: " + in.TimeZone + " is not an IANA time zone (Europe/Berlin, UTC)"
	case f.First == "":
		f.Error = "first execution: required"
	default:
		if first, err = time.ParseInLocation(formTimeLayout, f.First, loc); err != nil {
			f.Error = "first execution: not a date and time: " + f.First
		}
	}
	if f.Error != "" {
		return c.renderJobForm(w, r, s, http.StatusBadRequest, f)
	}
	in.TimeNextExecution = first
	j, err := sch.CreateJob(r.Context(), s.who, in)
	if err != nil {
		e := c.deps.API.ErrorOf(err, r)
		if e.Status != http.StatusBadRequest && e.Status != http.StatusConflict {
			return err
		}
		f.Error = e.Message
		return c.renderJobForm(w, r, s, e.Status, f)
	}
	http.Redirect(w, r, Prefix+"/jobs/"+url.PathEscape(j.ID), http.StatusSeeOther)
	return nil
}
