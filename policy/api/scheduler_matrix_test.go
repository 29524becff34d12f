package api

import (
	"net/http"
	"time"

	"github.com/auditpipe/auditpipe/policy/scheduler"
)

// schedulerMatrix is the scheduler's part of the authorization matrix:
// admins manage, admins, auditors and approvers read, no one else.
func schedulerMatrix() []matrixRow {
	const (
		read   = "200 200 200 403 403 403 403 403 403 403 401 200 403 403"
		manage = "200 403 403 403 403 403 403 403 403 403 401 403 403 403"
		gone   = "204 403 403 403 403 403 403 403 403 403 401 403 403 403"
	)
	get := func(path func(*fixture) string) func(*fixture) call {
		return func(f *fixture) call { return call{method: http.MethodGet, path: path(f)} }
	}
	fixed := func(p string) func(*fixture) string { return func(*fixture) string { return p } }
	instance := func(f *fixture) scheduler.Instance { return f.instance() }
	job := func(f *fixture) scheduler.Job { return f.job(instance(f).ID) }
	workRequest := func(f *fixture) scheduler.WorkRequest { return f.workRequest(job(f).ID) }
	group := func(f *fixture) scheduler.Group {
		var g scheduler.Group
		f.must(200, call{who: idAdmin, method: http.MethodPost, path: "/v1/managedInstanceGroups",
			body: scheduler.GroupInput{DisplayName: "g", CompartmentID: fxCompartment, ManagedInstances: []string{instance(f).ID}}}).decode(f.t, &g)
		return g
	}
	return []matrixRow{
		{"CreateScheduledJob", manage, func(f *fixture) call {
			return call{method: http.MethodPost, path: "/v1/scheduledJobs", body: f.jobInput(instance(f).ID)}
		}},
		{"ListScheduledJobs", read, get(fixed("/v1/scheduledJobs"))},
		{"ListUpcomingScheduledJobs", read, get(func(*fixture) string {
			return "/v1/scheduledJobs/upcomingSchedules?timeEnd=" + time.Now().Add(72*time.Hour).UTC().Format(time.RFC3339)
		})},
		{"GetScheduledJob", read, get(func(f *fixture) string { return "/v1/scheduledJobs/" + job(f).ID })},
		{"DeleteScheduledJob", manage, func(f *fixture) call { return call{method: http.MethodDelete, path: "/v1/scheduledJobs/" + job(f).ID} }},
		{"RunScheduledJobNow", manage, func(f *fixture) call {
			return call{method: http.MethodPost, path: "/v1/scheduledJobs/" + job(f).ID + "/actions/runNow"}
		}},
		{"SkipNextScheduledJobExecution", manage, func(f *fixture) call {
			return call{method: http.MethodPost, path: "/v1/scheduledJobs/" + job(f).ID + "/actions/skipNextExecution"}
		}},
		{"GetScheduledJobUpcomingSchedules", read, get(func(f *fixture) string { return "/v1/scheduledJobs/" + job(f).ID + "/upcomingSchedules?limit=3" })},
		{"ListScheduledJobHistories", read, get(func(f *fixture) string { return "/v1/scheduledJobs/" + job(f).ID + "/history" })},

		{"ListJobExecutions", read, get(fixed("/v1/jobExecutions"))},
		{"GetJobExecution", read, get(func(f *fixture) string { return "/v1/jobExecutions/" + workRequest(f).ExecutionID })},

		{"ListWorkRequests", read, get(fixed("/v1/workRequests?status=IN_PROGRESS"))},
		{"GetWorkRequest", read, get(func(f *fixture) string { return "/v1/workRequests/" + workRequest(f).ID })},
		{"ListWorkRequestLogs", read, get(func(f *fixture) string { return "/v1/workRequests/" + workRequest(f).ID + "/logs" })},
		{"ListWorkRequestErrors", read, get(func(f *fixture) string { return "/v1/workRequests/" + workRequest(f).ID + "/errors" })},
		{"ListWorkRequestHistories", read, get(func(f *fixture) string { return "/v1/workRequests/" + workRequest(f).ID + "/history" })},
		{"CancelWorkRequest", manage, func(f *fixture) call {
			return call{method: http.MethodPost, path: "/v1/workRequests/" + workRequest(f).ID + "/actions/cancel"}
		}},

		{"CreateManagedInstance", manage, func(f *fixture) call {
			id := f.next("mi")
			return call{method: http.MethodPost, path: "/v1/managedInstances", body: scheduler.InstanceInput{ID: id, DisplayName: id, Host: id + ".example.com", CompartmentID: fxCompartment}}
		}},
		{"ListManagedInstances", read, get(fixed("/v1/managedInstances"))},
		{"GetManagedInstance", read, get(func(f *fixture) string { return "/v1/managedInstances/" + instance(f).ID })},
		{"DeleteManagedInstance", gone, func(f *fixture) call {
			return call{method: http.MethodDelete, path: "/v1/managedInstances/" + instance(f).ID}
		}},

		{"CreateManagedInstanceGroup", manage, func(f *fixture) call {
			return call{method: http.MethodPost, path: "/v1/managedInstanceGroups", body: scheduler.GroupInput{DisplayName: "g", CompartmentID: fxCompartment}}
		}},
		{"ListManagedInstanceGroups", read, get(fixed("/v1/managedInstanceGroups"))},
		{"GetManagedInstanceGroup", read, get(func(f *fixture) string { return "/v1/managedInstanceGroups/" + group(f).ID })},
		{"SetManagedInstanceGroupMembers", manage, func(f *fixture) call {
			return call{method: http.MethodPut, path: "/v1/managedInstanceGroups/" + group(f).ID + "/managedInstances", body: GroupMembers{ManagedInstances: []string{instance(f).ID}}}
		}},
		{"DeleteManagedInstanceGroup", gone, func(f *fixture) call {
			return call{method: http.MethodDelete, path: "/v1/managedInstanceGroups/" + group(f).ID}
		}},
	}
}

// instance registers a managed instance, ungoverned.
func (f *fixture) instance() scheduler.Instance {
	id := f.next("mi")
	var i scheduler.Instance
	f.must(200, call{who: idAdmin, method: http.MethodPost, path: "/v1/managedInstances",
		body: scheduler.InstanceInput{ID: id, DisplayName: id, Host: id + ".example.com", CompartmentID: fxCompartment}}).decode(f.t, &i)
	return i
}

// jobInput is a daily security update of the instances, from tomorrow.
func (f *fixture) jobInput(instances ...string) scheduler.JobInput {
	return scheduler.JobInput{DisplayName: "nightly security updates", CompartmentID: fxCompartment, ScheduleType: scheduler.Recurring,
		IntervalType: scheduler.Day, IntervalValue: 1, TimeZone: "Europe/Berlin", TimeNextExecution: time.Now().Add(24 * time.Hour).UTC().Truncate(time.Minute),
		OperationType: "UPDATEALL", UpdateType: "SECURITY", ManagedInstances: instances}
}

func (f *fixture) job(instances ...string) scheduler.Job {
	var j scheduler.Job
	f.must(200, call{who: idAdmin, method: http.MethodPost, path: "/v1/scheduledJobs", body: f.jobInput(instances...)}).decode(f.t, &j)
	return j
}

// workRequest runs the job now and returns its work request (dispatched:
// IN_PROGRESS).
func (f *fixture) workRequest(jobID string) scheduler.WorkRequest {
	var e scheduler.Execution
	f.must(200, call{who: idAdmin, method: http.MethodPost, path: "/v1/scheduledJobs/" + jobID + "/actions/runNow"}).decode(f.t, &e)
	var list collection[scheduler.WorkRequest]
	f.must(200, call{who: idAdmin, method: http.MethodGet, path: "/v1/workRequests?jobExecutionId=" + e.ID}).decode(f.t, &list)
	if len(list.Items) != 1 {
		f.t.Fatalf("execution %s has %d work requests, want 1", e.ID, len(list.Items))
	}
	return list.Items[0]
}
