package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/policy/api"
	"github.com/auditpipe/auditpipe/policy/scheduler"
)

// The scheduler's operations (served by targets scheduler and all).

// CreateJob creates a scheduled job.
func (c *Client) CreateJob(ctx context.Context, in scheduler.JobInput) (scheduler.Job, error) {
	return send[scheduler.Job](ctx, c, http.MethodPost, "/v1/scheduledJobs", 0, in)
}

// ListJobs lists scheduled jobs (filters compartmentId,
// compartmentIdInSubtree, lifecycleState).
func (c *Client) ListJobs(ctx context.Context, o ListOptions) (Page[scheduler.Job], error) {
	return list[scheduler.Job](ctx, c, "/v1/scheduledJobs", o)
}

// GetJob returns a scheduled job.
func (c *Client) GetJob(ctx context.Context, id string) (scheduler.Job, error) {
	return get[scheduler.Job](ctx, c, "/v1/scheduledJobs/"+esc(id), nil)
}

// DeleteJob deletes a job (it stays, DELETED) and returns it.
func (c *Client) DeleteJob(ctx context.Context, id string, ifMatch int64) (scheduler.Job, error) {
	return send[scheduler.Job](ctx, c, http.MethodDelete, "/v1/scheduledJobs/"+esc(id), ifMatch, nil)
}

// RunJobNow starts an execution of the job at once.
func (c *Client) RunJobNow(ctx context.Context, id string, ifMatch int64) (scheduler.Execution, error) {
	return send[scheduler.Execution](ctx, c, http.MethodPost, "/v1/scheduledJobs/"+esc(id)+"/actions/runNow", ifMatch, nil)
}

// SkipNext skips a recurring job's next execution.
func (c *Client) SkipNext(ctx context.Context, id string, ifMatch int64) (scheduler.Job, error) {
	return send[scheduler.Job](ctx, c, http.MethodPost, "/v1/scheduledJobs/"+esc(id)+"/actions/skipNextExecution", ifMatch, nil)
}

// JobUpcoming previews a job's next n executions (0: the server's
// default, 10).
func (c *Client) JobUpcoming(ctx context.Context, id string, n int) ([]scheduler.Upcoming, error) {
	q := url.Values{}
	if n > 0 {
		q.Set("limit", strconv.Itoa(n))
	}
	var col struct {
		Items []scheduler.Upcoming `json:"items"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/scheduledJobs/"+esc(id)+"/upcomingSchedules", q, 0, nil, &col)
	return col.Items, err
}

// Upcoming lists every active job's executions until end, soonest first
// (compartment "" for all).
func (c *Client) Upcoming(ctx context.Context, compartment string, recursive bool, end time.Time, limit int) ([]scheduler.Upcoming, error) {
	q := url.Values{"timeEnd": {end.UTC().Format(time.RFC3339)}}
	if compartment != "" {
		q.Set("compartmentId", compartment)
		if recursive {
			q.Set("compartmentIdInSubtree", "true")
		}
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var col struct {
		Items []scheduler.Upcoming `json:"items"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/scheduledJobs/upcomingSchedules", q, 0, nil, &col)
	return col.Items, err
}

// JobHistory returns every change of a job, oldest first.
func (c *Client) JobHistory(ctx context.Context, id string) ([]policy.HistoryEntry, error) {
	p, err := list[policy.HistoryEntry](ctx, c, "/v1/scheduledJobs/"+esc(id)+"/history", ListOptions{})
	return p.Items, err
}

// ListExecutions lists executions (filter scheduledJobId).
func (c *Client) ListExecutions(ctx context.Context, o ListOptions) (Page[scheduler.Execution], error) {
	return list[scheduler.Execution](ctx, c, "/v1/jobExecutions", o)
}

// GetExecution returns an execution.
func (c *Client) GetExecution(ctx context.Context, id string) (scheduler.Execution, error) {
	return get[scheduler.Execution](ctx, c, "/v1/jobExecutions/"+esc(id), nil)
}

// ListWorkRequests lists work requests (filters scheduledJobId,
// jobExecutionId, managedInstanceId, compartmentId, status).
func (c *Client) ListWorkRequests(ctx context.Context, o ListOptions) (Page[scheduler.WorkRequest], error) {
	return list[scheduler.WorkRequest](ctx, c, "/v1/workRequests", o)
}

// GetWorkRequest returns a work request.
func (c *Client) GetWorkRequest(ctx context.Context, id string) (scheduler.WorkRequest, error) {
	return get[scheduler.WorkRequest](ctx, c, "/v1/workRequests/"+esc(id), nil)
}

// WorkRequestLogs returns a work request's log lines, oldest first.
func (c *Client) WorkRequestLogs(ctx context.Context, id string) ([]scheduler.LogEntry, error) {
	p, err := list[scheduler.LogEntry](ctx, c, "/v1/workRequests/"+esc(id)+"/logs", ListOptions{})
	return p.Items, err
}

// WorkRequestErrors returns a work request's errors, oldest first.
func (c *Client) WorkRequestErrors(ctx context.Context, id string) ([]scheduler.LogEntry, error) {
	p, err := list[scheduler.LogEntry](ctx, c, "/v1/workRequests/"+esc(id)+"/errors", ListOptions{})
	return p.Items, err
}

// CancelWorkRequest cancels a work request.
func (c *Client) CancelWorkRequest(ctx context.Context, id string) (scheduler.WorkRequest, error) {
	return send[scheduler.WorkRequest](ctx, c, http.MethodPost, "/v1/workRequests/"+esc(id)+"/actions/cancel", 0, nil)
}

// CreateInstance registers a managed instance.
func (c *Client) CreateInstance(ctx context.Context, in scheduler.InstanceInput) (scheduler.Instance, error) {
	return send[scheduler.Instance](ctx, c, http.MethodPost, "/v1/managedInstances", 0, in)
}

// ListInstances lists managed instances (filters compartmentId,
// compartmentIdInSubtree, resourceId).
func (c *Client) ListInstances(ctx context.Context, o ListOptions) (Page[scheduler.Instance], error) {
	return list[scheduler.Instance](ctx, c, "/v1/managedInstances", o)
}

// GetInstance returns a managed instance.
func (c *Client) GetInstance(ctx context.Context, id string) (scheduler.Instance, error) {
	return get[scheduler.Instance](ctx, c, "/v1/managedInstances/"+esc(id), nil)
}

// DeleteInstance deletes a managed instance.
func (c *Client) DeleteInstance(ctx context.Context, id string, ifMatch int64) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/managedInstances/"+esc(id), nil, ifMatch, nil, nil)
	return err
}

// CreateGroup creates a managed instance group.
func (c *Client) CreateGroup(ctx context.Context, in scheduler.GroupInput) (scheduler.Group, error) {
	return send[scheduler.Group](ctx, c, http.MethodPost, "/v1/managedInstanceGroups", 0, in)
}

// ListGroups lists managed instance groups.
func (c *Client) ListGroups(ctx context.Context, o ListOptions) (Page[scheduler.Group], error) {
	return list[scheduler.Group](ctx, c, "/v1/managedInstanceGroups", o)
}

// GetGroup returns a managed instance group.
func (c *Client) GetGroup(ctx context.Context, id string) (scheduler.Group, error) {
	return get[scheduler.Group](ctx, c, "/v1/managedInstanceGroups/"+esc(id), nil)
}

// SetGroupMembers replaces a group's instances.
func (c *Client) SetGroupMembers(ctx context.Context, id string, ifMatch int64, members []string) (scheduler.Group, error) {
	return send[scheduler.Group](ctx, c, http.MethodPut, "/v1/managedInstanceGroups/"+esc(id)+"/managedInstances", ifMatch, api.GroupMembers{ManagedInstances: members})
}

// DeleteGroup deletes a managed instance group.
func (c *Client) DeleteGroup(ctx context.Context, id string, ifMatch int64) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/managedInstanceGroups/"+esc(id), nil, ifMatch, nil, nil)
	return err
}
