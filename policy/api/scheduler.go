package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/policy/scheduler"
)

// The scheduler's routes (OCI OS Management's names): scheduled jobs,
// their executions, work requests, managed instances and groups. They are
// served when Options.Scheduler is set (targets scheduler and all); a
// process without it answers them 501 NotImplemented.
var (
	// Jobs, executions, work requests, instances and groups are read by
	// admins, auditors and approvers (who decide the access requests of
	// governed patch runs and may see the work they are for).
	rolesReadSchedule = []string{auth.RoleAdmin, auth.RoleAuditor, auth.RoleApprover}
	// Creating, running, skipping, deleting jobs, canceling work and
	// managing instances and groups: admins.
	rolesManageSchedule = []string{auth.RoleAdmin}
)

// Path parameters of the scheduler's routes.
const (
	pJob         = "scheduledJobId"
	pExecution   = "jobExecutionId"
	pWorkRequest = "workRequestId"
	pInstance    = "managedInstanceId"
	pGroup       = "managedInstanceGroupId"
)

// DefaultUpcoming and MaxUpcoming bound a job's upcoming preview (count).
const (
	DefaultUpcoming = 10
	MaxUpcoming     = 1000
)

func (a *API) schedulerTable(r func(method, pattern, op string, roles []string, h func(http.ResponseWriter, *http.Request, auth.Identity) error) Route) []Route {
	get, post, put, del := http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete
	const (
		jobs      = "/v1/scheduledJobs"
		job       = jobs + "/{" + pJob + "}"
		execs     = "/v1/jobExecutions"
		exec      = execs + "/{" + pExecution + "}"
		wrs       = "/v1/workRequests"
		wr        = wrs + "/{" + pWorkRequest + "}"
		instances = "/v1/managedInstances"
		instance  = instances + "/{" + pInstance + "}"
		groups    = "/v1/managedInstanceGroups"
		group     = groups + "/{" + pGroup + "}"
	)
	s := func(h func(http.ResponseWriter, *http.Request, auth.Identity, *scheduler.Service) error) func(http.ResponseWriter, *http.Request, auth.Identity) error {
		return func(w http.ResponseWriter, req *http.Request, who auth.Identity) error {
			if a.opts.Scheduler == nil {
				return &Error{Status: http.StatusNotImplemented, Code: CodeNotImplemented,
					Message: "this process does not run the scheduler (auditpipe run --target scheduler, or the all-in-one)"}
			}
			return h(w, req, who, a.opts.Scheduler)
		}
	}
	return []Route{
		r(post, jobs, "CreateScheduledJob", rolesManageSchedule, s(a.createJob)),
		r(get, jobs, "ListScheduledJobs", rolesReadSchedule, s(a.listJobs)),
		r(get, jobs+"/upcomingSchedules", "ListUpcomingScheduledJobs", rolesReadSchedule, s(a.listUpcoming)),
		r(get, job, "GetScheduledJob", rolesReadSchedule, s(a.getJob)),
		r(del, job, "DeleteScheduledJob", rolesManageSchedule, s(a.deleteJob)),
		r(post, job+"/actions/runNow", "RunScheduledJobNow", rolesManageSchedule, s(a.runJobNow)),
		r(post, job+"/actions/skipNextExecution", "SkipNextScheduledJobExecution", rolesManageSchedule, s(a.skipNext)),
		r(get, job+"/upcomingSchedules", "GetScheduledJobUpcomingSchedules", rolesReadSchedule, s(a.jobUpcoming)),
		r(get, job+"/history", "ListScheduledJobHistories", rolesReadSchedule, s(a.jobHistory)),

		r(get, execs, "ListJobExecutions", rolesReadSchedule, s(a.listExecutions)),
		r(get, exec, "GetJobExecution", rolesReadSchedule, s(a.getExecution)),

		r(get, wrs, "ListWorkRequests", rolesReadSchedule, s(a.listWorkRequests)),
		r(get, wr, "GetWorkRequest", rolesReadSchedule, s(a.getWorkRequest)),
		r(get, wr+"/logs", "ListWorkRequestLogs", rolesReadSchedule, s(a.workRequestLogs)),
		r(get, wr+"/errors", "ListWorkRequestErrors", rolesReadSchedule, s(a.workRequestErrors)),
		r(get, wr+"/history", "ListWorkRequestHistories", rolesReadSchedule, s(a.workRequestHistory)),
		r(post, wr+"/actions/cancel", "CancelWorkRequest", rolesManageSchedule, s(a.cancelWorkRequest)),

		r(post, instances, "CreateManagedInstance", rolesManageSchedule, s(a.createInstance)),
		r(get, instances, "ListManagedInstances", rolesReadSchedule, s(a.listInstances)),
		r(get, instance, "GetManagedInstance", rolesReadSchedule, s(a.getInstance)),
		r(del, instance, "DeleteManagedInstance", rolesManageSchedule, s(a.deleteInstance)),

		r(post, groups, "CreateManagedInstanceGroup", rolesManageSchedule, s(a.createGroup)),
		r(get, groups, "ListManagedInstanceGroups", rolesReadSchedule, s(a.listGroups)),
		r(get, group, "GetManagedInstanceGroup", rolesReadSchedule, s(a.getGroup)),
		r(put, group+"/managedInstances", "SetManagedInstanceGroupMembers", rolesManageSchedule, s(a.setGroupMembers)),
		r(del, group, "DeleteManagedInstanceGroup", rolesManageSchedule, s(a.deleteGroup)),
	}
}

func (a *API) createJob(w http.ResponseWriter, r *http.Request, who auth.Identity, s *scheduler.Service) error {
	var in scheduler.JobInput
	if err := a.decode(w, r, &in, false); err != nil {
		return err
	}
	j, err := s.CreateJob(r.Context(), who, in)
	if err != nil {
		return err
	}
	return writeObject(w, r, j.Version, j)
}

func (a *API) listJobs(w http.ResponseWriter, r *http.Request, _ auth.Identity, s *scheduler.Service) error {
	q := newListQuery(r, "compartmentId", "compartmentIdInSubtree", "lifecycleState")
	f := scheduler.JobFilter{Page: q.page(), CompartmentID: q.str("compartmentId"), Recursive: q.boolean("compartmentIdInSubtree"),
		State: scheduler.JobState(q.oneOf("lifecycleState", stateNames([]scheduler.JobState{scheduler.JobActive, scheduler.JobDeleted})))}
	if err := q.err(); err != nil {
		return err
	}
	items, next, err := s.ListJobs(r.Context(), f)
	if err != nil {
		return err
	}
	return writeList(w, r, items, next)
}

// listUpcoming is OCI's listUpcomingScheduledJobs: every active job's
// executions until timeEnd (required, RFC 3339), soonest first.
func (a *API) listUpcoming(w http.ResponseWriter, r *http.Request, _ auth.Identity, s *scheduler.Service) error {
	q := newQuery(r, "compartmentId", "compartmentIdInSubtree", "timeEnd", "limit")
	comp, rec := q.str("compartmentId"), q.boolean("compartmentIdInSubtree")
	end := q.str("timeEnd")
	limit := q.count("limit", DefaultUpcoming*10, MaxUpcoming)
	if err := q.err(); err != nil {
		return err
	}
	until, err := time.Parse(time.RFC3339, end)
	if err != nil {
		return invalidParam("timeEnd", fmt.Sprintf("%q: required, an RFC 3339 time", end))
	}
	items, err := s.UpcomingUntil(r.Context(), comp, rec, until, limit)
	if err != nil {
		return err
	}
	return writeList(w, r, items, "")
}

func (a *API) getJob(w http.ResponseWriter, r *http.Request, _ auth.Identity, s *scheduler.Service) error {
	j, err := s.GetJob(r.Context(), r.PathValue(pJob))
	if err != nil {
		return err
	}
	return writeObject(w, r, j.Version, j)
}

func (a *API) deleteJob(w http.ResponseWriter, r *http.Request, who auth.Identity, s *scheduler.Service) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	j, err := s.DeleteJob(r.Context(), who, r.PathValue(pJob), v)
	if err != nil {
		return err
	}
	return writeObject(w, r, j.Version, j)
}

func (a *API) runJobNow(w http.ResponseWriter, r *http.Request, who auth.Identity, s *scheduler.Service) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	e, err := s.RunNow(r.Context(), who, r.PathValue(pJob), v)
	if err != nil {
		return err
	}
	return writeObject(w, r, e.Version, e)
}

func (a *API) skipNext(w http.ResponseWriter, r *http.Request, who auth.Identity, s *scheduler.Service) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	j, err := s.SkipNext(r.Context(), who, r.PathValue(pJob), v)
	if err != nil {
		return err
	}
	return writeObject(w, r, j.Version, j)
}

func (a *API) jobUpcoming(w http.ResponseWriter, r *http.Request, _ auth.Identity, s *scheduler.Service) error {
	q := newQuery(r, "limit")
	n := q.count("limit", DefaultUpcoming, MaxUpcoming)
	if err := q.err(); err != nil {
		return err
	}
	items, err := s.Upcoming(r.Context(), r.PathValue(pJob), n)
	if err != nil {
		return err
	}
	return writeList(w, r, items, "")
}

func (a *API) jobHistory(w http.ResponseWriter, r *http.Request, _ auth.Identity, s *scheduler.Service) error {
	return a.history(w, r, s, scheduler.ObjectJob, r.PathValue(pJob), func() error { _, err := s.GetJob(r.Context(), r.PathValue(pJob)); return err })
}

func (a *API) history(w http.ResponseWriter, r *http.Request, s *scheduler.Service, object, id string, exists func() error) error {
	if err := exists(); err != nil {
		return err
	}
	items, err := s.History(r.Context(), object, id)
	if err != nil {
		return err
	}
	return writeList(w, r, items, "")
}

func (a *API) listExecutions(w http.ResponseWriter, r *http.Request, _ auth.Identity, s *scheduler.Service) error {
	q := newListQuery(r, "scheduledJobId")
	p, job := q.page(), q.str("scheduledJobId")
	if err := q.err(); err != nil {
		return err
	}
	items, next, err := s.ListExecutions(r.Context(), job, p)
	if err != nil {
		return err
	}
	return writeList(w, r, items, next)
}

func (a *API) getExecution(w http.ResponseWriter, r *http.Request, _ auth.Identity, s *scheduler.Service) error {
	e, err := s.GetExecution(r.Context(), r.PathValue(pExecution))
	if err != nil {
		return err
	}
	return writeObject(w, r, e.Version, e)
}

func (a *API) listWorkRequests(w http.ResponseWriter, r *http.Request, _ auth.Identity, s *scheduler.Service) error {
	q := newListQuery(r, "scheduledJobId", "jobExecutionId", "managedInstanceId", "compartmentId", "compartmentIdInSubtree", "status")
	f := scheduler.WorkRequestFilter{Page: q.page(), JobID: q.str("scheduledJobId"), ExecutionID: q.str("jobExecutionId"),
		InstanceID: q.str("managedInstanceId"), CompartmentID: q.str("compartmentId"), Recursive: q.boolean("compartmentIdInSubtree"),
		Status: scheduler.Status(q.oneOf("status", stateNames(scheduler.Statuses())))}
	if err := q.err(); err != nil {
		return err
	}
	items, next, err := s.ListWorkRequests(r.Context(), f)
	if err != nil {
		return err
	}
	return writeList(w, r, items, next)
}

func (a *API) getWorkRequest(w http.ResponseWriter, r *http.Request, _ auth.Identity, s *scheduler.Service) error {
	wr, err := s.GetWorkRequest(r.Context(), r.PathValue(pWorkRequest))
	if err != nil {
		return err
	}
	return writeObject(w, r, wr.Version, wr)
}

func (a *API) workRequestLogs(w http.ResponseWriter, r *http.Request, _ auth.Identity, s *scheduler.Service) error {
	return a.workRequestLines(w, r, s, s.WorkRequestLogs)
}

func (a *API) workRequestErrors(w http.ResponseWriter, r *http.Request, _ auth.Identity, s *scheduler.Service) error {
	return a.workRequestLines(w, r, s, s.WorkRequestErrors)
}

func (a *API) workRequestLines(w http.ResponseWriter, r *http.Request, s *scheduler.Service, lines func(ctx context.Context, id string) ([]scheduler.LogEntry, error)) error {
	id := r.PathValue(pWorkRequest)
	if _, err := s.GetWorkRequest(r.Context(), id); err != nil {
		return err
	}
	items, err := lines(r.Context(), id)
	if err != nil {
		return err
	}
	return writeList(w, r, items, "")
}

func (a *API) workRequestHistory(w http.ResponseWriter, r *http.Request, _ auth.Identity, s *scheduler.Service) error {
	id := r.PathValue(pWorkRequest)
	return a.history(w, r, s, scheduler.ObjectWorkRequest, id, func() error { _, err := s.GetWorkRequest(r.Context(), id); return err })
}

func (a *API) cancelWorkRequest(w http.ResponseWriter, r *http.Request, who auth.Identity, s *scheduler.Service) error {
	wr, err := s.CancelWorkRequest(r.Context(), who, r.PathValue(pWorkRequest))
	if err != nil {
		return err
	}
	return writeObject(w, r, wr.Version, wr)
}

func (a *API) createInstance(w http.ResponseWriter, r *http.Request, who auth.Identity, s *scheduler.Service) error {
	var in scheduler.InstanceInput
	if err := a.decode(w, r, &in, false); err != nil {
		return err
	}
	i, err := s.CreateInstance(r.Context(), who, in)
	if err != nil {
		return err
	}
	return writeObject(w, r, i.Version, i)
}

func (a *API) listInstances(w http.ResponseWriter, r *http.Request, _ auth.Identity, s *scheduler.Service) error {
	q := newListQuery(r, "compartmentId", "compartmentIdInSubtree", "resourceId")
	f := scheduler.InstanceFilter{Page: q.page(), CompartmentID: q.str("compartmentId"), Recursive: q.boolean("compartmentIdInSubtree"), ResourceID: q.str("resourceId")}
	if err := q.err(); err != nil {
		return err
	}
	items, next, err := s.ListInstances(r.Context(), f)
	if err != nil {
		return err
	}
	return writeList(w, r, items, next)
}

func (a *API) getInstance(w http.ResponseWriter, r *http.Request, _ auth.Identity, s *scheduler.Service) error {
	i, err := s.GetInstance(r.Context(), r.PathValue(pInstance))
	if err != nil {
		return err
	}
	return writeObject(w, r, i.Version, i)
}

func (a *API) deleteInstance(w http.ResponseWriter, r *http.Request, who auth.Identity, s *scheduler.Service) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	if err := s.DeleteInstance(r.Context(), who, r.PathValue(pInstance), v); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) createGroup(w http.ResponseWriter, r *http.Request, who auth.Identity, s *scheduler.Service) error {
	var in scheduler.GroupInput
	if err := a.decode(w, r, &in, false); err != nil {
		return err
	}
	g, err := s.CreateGroup(r.Context(), who, in)
	if err != nil {
		return err
	}
	return writeObject(w, r, g.Version, g)
}

func (a *API) listGroups(w http.ResponseWriter, r *http.Request, _ auth.Identity, s *scheduler.Service) error {
	q := newListQuery(r, "compartmentId", "compartmentIdInSubtree")
	f := scheduler.GroupFilter{Page: q.page(), CompartmentID: q.str("compartmentId"), Recursive: q.boolean("compartmentIdInSubtree")}
	if err := q.err(); err != nil {
		return err
	}
	items, next, err := s.ListGroups(r.Context(), f)
	if err != nil {
		return err
	}
	return writeList(w, r, items, next)
}

func (a *API) getGroup(w http.ResponseWriter, r *http.Request, _ auth.Identity, s *scheduler.Service) error {
	g, err := s.GetGroup(r.Context(), r.PathValue(pGroup))
	if err != nil {
		return err
	}
	return writeObject(w, r, g.Version, g)
}

// GroupMembers is the body of SetManagedInstanceGroupMembers: the group's
// instances, in dispatch order, replacing those it had.
type GroupMembers struct {
	ManagedInstances []string `json:"managed_instances"`
}

func (a *API) setGroupMembers(w http.ResponseWriter, r *http.Request, who auth.Identity, s *scheduler.Service) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	var in GroupMembers
	if err := a.decode(w, r, &in, false); err != nil {
		return err
	}
	g, err := s.SetGroupMembers(r.Context(), who, r.PathValue(pGroup), v, in.ManagedInstances)
	if err != nil {
		return err
	}
	return writeObject(w, r, g.Version, g)
}

func (a *API) deleteGroup(w http.ResponseWriter, r *http.Request, who auth.Identity, s *scheduler.Service) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	if err := s.DeleteGroup(r.Context(), who, r.PathValue(pGroup), v); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// count reads a positive integer parameter, def when absent, at most max.
func (q *query) count(name string, def, maxN int) int {
	v := q.str(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxN {
		q.errs = append(q.errs, invalidParam(name, fmt.Sprintf("%q is not between 1 and %d", v, maxN)))
		return def
	}
	return n
}
