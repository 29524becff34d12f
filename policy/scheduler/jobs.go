package scheduler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/schemas"
)

// Job defaults and bounds.
const (
	DefaultCutoffMinutes  = 240 // 4 hours to start every work request of an execution
	DefaultTimeoutMinutes = 120 // 2 hours for a dispatched work request's result
	maxCutoffMinutes      = 7 * 24 * 60
	maxTimeoutMinutes     = 7 * 24 * 60
	maxTargets            = 10000
	maxDescriptionLen     = 2000
)

// JobInput creates a scheduled job.
type JobInput struct {
	DisplayName   string       `json:"display_name"`
	Description   string       `json:"description,omitempty"`
	CompartmentID string       `json:"compartment_id"`
	ScheduleType  ScheduleType `json:"schedule_type"`
	// TimeZone is an IANA zone name (Europe/Berlin). Default UTC.
	TimeZone      string       `json:"time_zone,omitempty"`
	IntervalType  IntervalType `json:"interval_type,omitempty"`
	IntervalValue int          `json:"interval_value,omitempty"`
	// TimeNextExecution is the first execution; it anchors a recurring
	// schedule (its wall-clock time in TimeZone, its day of month).
	TimeNextExecution time.Time `json:"time_next_execution"`

	OperationType string `json:"operation_type"`
	// UpdateType goes with UPDATEALL (default ALL).
	UpdateType            string   `json:"update_type,omitempty"`
	PackageNames          []string `json:"package_names,omitempty"`
	ManagedInstances      []string `json:"managed_instances,omitempty"`
	ManagedInstanceGroups []string `json:"managed_instance_groups,omitempty"`

	// MaxConcurrency and MaxErrors: counts or percentages (see rate.go).
	// Defaults DefaultMaxConcurrency and DefaultMaxErrors.
	MaxConcurrency string `json:"max_concurrency,omitempty"`
	MaxErrors      string `json:"max_errors,omitempty"`
	// CutoffMinutes default DefaultCutoffMinutes, TimeoutMinutes
	// DefaultTimeoutMinutes; each at most 7 days.
	CutoffMinutes  int `json:"cutoff_minutes,omitempty"`
	TimeoutMinutes int `json:"timeout_minutes,omitempty"`
}

// schedule returns the job's schedule (its zone loaded).
func (j *Job) schedule() (Schedule, error) {
	loc, err := time.LoadLocation(j.TimeZone)
	if err != nil {
		return Schedule{}, fmt.Errorf("job %s: time zone %q: %w", j.ID, j.TimeZone, err)
	}
	return Schedule{Type: j.ScheduleType, First: j.TimeFirstExecution, Location: loc, IntervalType: j.IntervalType, IntervalValue: j.IntervalValue}, nil
}

// CreateJob creates a scheduled job, ACTIVE, its first execution at
// in.TimeNextExecution (not in the past).
func (s *Service) CreateJob(ctx context.Context, who auth.Identity, in JobInput) (Job, error) {
	now := s.clock()
	j := Job{
		ID: policy.NewID("scheduledjob"), DisplayName: in.DisplayName, Description: in.Description, CompartmentID: in.CompartmentID,
		ScheduleType: in.ScheduleType, TimeZone: in.TimeZone, IntervalType: in.IntervalType, IntervalValue: in.IntervalValue,
		TimeFirstExecution: in.TimeNextExecution.UTC().Truncate(time.Millisecond),
		OperationType:      in.OperationType, UpdateType: in.UpdateType, PackageNames: slices.Clone(in.PackageNames),
		ManagedInstances: slices.Clone(in.ManagedInstances), ManagedInstanceGroups: slices.Clone(in.ManagedInstanceGroups),
		MaxConcurrency: in.MaxConcurrency, MaxErrors: in.MaxErrors, CutoffMinutes: in.CutoffMinutes, TimeoutMinutes: in.TimeoutMinutes,
		LifecycleState: JobActive, CreatedBy: who.Name, TimeCreated: now, TimeUpdated: now,
	}
	j.TimeNextExecution = j.TimeFirstExecution
	if j.TimeZone == "" {
		j.TimeZone = "UTC"
	}
	if j.OperationType == schemas.OperationUpdateAll && j.UpdateType == "" {
		j.UpdateType = schemas.UpdateAll
	}
	if j.MaxConcurrency == "" {
		j.MaxConcurrency = DefaultMaxConcurrency
	}
	if j.MaxErrors == "" {
		j.MaxErrors = DefaultMaxErrors
	}
	if j.CutoffMinutes == 0 {
		j.CutoffMinutes = DefaultCutoffMinutes
	}
	if j.TimeoutMinutes == 0 {
		j.TimeoutMinutes = DefaultTimeoutMinutes
	}
	if err := validateJob(&j, now); err != nil {
		return Job{}, err
	}
	err := s.store.Tx(ctx, func(tx *policy.Tx) error {
		if err := needCompartment(tx, ObjectJob, j.CompartmentID); err != nil {
			return err
		}
		p := problems{object: ObjectJob}
		for n, id := range j.ManagedInstances {
			if _, err := policy.GetDoc[Instance](tx, "managed_instances", ObjectInstance, id, false); errors.Is(err, policy.ErrNotFound) {
				p.add(fmt.Sprintf("managed_instances[%d]", n), "no managed instance %q", id)
			} else if err != nil {
				return err
			}
		}
		for n, id := range j.ManagedInstanceGroups {
			if _, err := policy.GetDoc[Group](tx, "instance_groups", ObjectGroup, id, false); errors.Is(err, policy.ErrNotFound) {
				p.add(fmt.Sprintf("managed_instance_groups[%d]", n), "no managed instance group %q", id)
			} else if err != nil {
				return err
			}
		}
		if err := p.err(); err != nil {
			return err
		}
		if err := saveJob(tx, &j, 0); err != nil {
			return err
		}
		for _, t := range j.targets() {
			if _, err := tx.Exec("INSERT INTO job_targets (job_id, kind, target_id) VALUES (?, ?, ?)", j.ID, t.kind, t.id); err != nil {
				return fmt.Errorf("scheduler store: job targets: %w", err)
			}
		}
		return s.jobChanged(tx, &j, who.Name, "", "created", "", now, nil)
	})
	if err != nil {
		return Job{}, err
	}
	return j, nil
}

type target struct{ kind, id string }

func (j *Job) targets() []target {
	var out []target
	for _, id := range j.ManagedInstances {
		out = append(out, target{"instance", id})
	}
	for _, id := range j.ManagedInstanceGroups {
		out = append(out, target{"group", id})
	}
	return out
}

func validateJob(j *Job, now time.Time) error {
	p := problems{object: ObjectJob}
	p.name("display_name", j.DisplayName)
	if len(j.Description) > maxDescriptionLen {
		p.add("description", "is longer than %d bytes", maxDescriptionLen)
	}
	if j.CompartmentID == "" {
		p.add("compartment_id", "is required")
	}
	if _, err := time.LoadLocation(j.TimeZone); err != nil || j.TimeZone == "Local" {
		p.add("time_zone", "%q is not an IANA time zone name", j.TimeZone)
	}
	switch j.ScheduleType {
	case OneTime:
		if j.IntervalType != "" || j.IntervalValue != 0 {
			p.add("interval_type", "a ONETIME job takes no interval")
		}
	case Recurring:
		switch j.IntervalType {
		case Hour, Day, Week, Month:
		default:
			p.add("interval_type", "%q is not HOUR, DAY, WEEK or MONTH", j.IntervalType)
		}
		if j.IntervalValue < 1 || j.IntervalValue > maxIntervalValue {
			p.add("interval_value", "%d is not 1-%d", j.IntervalValue, maxIntervalValue)
		}
	default:
		p.add("schedule_type", "%q is not ONETIME or RECURRING", j.ScheduleType)
	}
	if j.TimeFirstExecution.IsZero() {
		p.add("time_next_execution", "is required")
	}
	if !j.TimeFirstExecution.IsZero() && j.TimeFirstExecution.Before(now) {
		p.add("time_next_execution", "%s is in the past", j.TimeFirstExecution.Format(time.RFC3339))
	}
	if err := schemas.CheckOperation(j.OperationType, j.UpdateType, j.PackageNames); err != nil {
		p.add("operation_type", "%s", err)
	}
	switch n := len(j.ManagedInstances) + len(j.ManagedInstanceGroups); {
	case len(j.ManagedInstances) > 0 && len(j.ManagedInstanceGroups) > 0:
		p.add("managed_instances", "a job targets managed instances or managed instance groups, not both")
	case n == 0:
		p.add("managed_instances", "name the managed instances or the managed instance groups to run on")
	case n > maxTargets:
		p.add("managed_instances", "at most %d targets", maxTargets)
	}
	for field, list := range map[string][]string{"managed_instances": j.ManagedInstances, "managed_instance_groups": j.ManagedInstanceGroups} {
		seen := map[string]bool{}
		for n, id := range list {
			if seen[id] {
				p.add(fmt.Sprintf("%s[%d]", field, n), "%q is listed twice", id)
			}
			seen[id] = true
		}
	}
	if r, err := parseRate(j.MaxConcurrency); err != nil {
		p.add("max_concurrency", "%s", err)
	} else if r.n == 0 {
		p.add("max_concurrency", "must be at least 1 (or 1%%)")
	}
	if _, err := parseRate(j.MaxErrors); err != nil {
		p.add("max_errors", "%s", err)
	}
	if j.CutoffMinutes < 1 || j.CutoffMinutes > maxCutoffMinutes {
		p.add("cutoff_minutes", "%d is not 1-%d", j.CutoffMinutes, maxCutoffMinutes)
	}
	if j.TimeoutMinutes < 1 || j.TimeoutMinutes > maxTimeoutMinutes {
		p.add("timeout_minutes", "%d is not 1-%d", j.TimeoutMinutes, maxTimeoutMinutes)
	}
	return p.err()
}

// jobChanged records a job's change: its history entry and its lifecycle
// event (scheduled_job.<kind>).
func (s *Service) jobChanged(tx *policy.Tx, j *Job, actor, from, kind, comment string, now time.Time, extra map[string]string) error {
	to := string(j.LifecycleState)
	if err := s.history(tx, ObjectJob, j.ID, actor, from, to, kind, comment, now); err != nil {
		return err
	}
	d := map[string]string{
		"display_name":   j.DisplayName,
		"schedule_type":  string(j.ScheduleType),
		"operation_type": j.OperationType,
		"update_type":    j.UpdateType,
		"package_names":  strings.Join(j.PackageNames, ","),
		"comment":        comment,
	}
	if j.ScheduleType == Recurring {
		d["interval"] = strconv.Itoa(j.IntervalValue) + " " + string(j.IntervalType)
	}
	if !j.TimeNextExecution.IsZero() {
		d["time_next_execution"] = j.TimeNextExecution.Format(time.RFC3339)
	}
	for k, v := range extra {
		d[k] = v
	}
	return tx.Lifecycle(schemas.Lifecycle{EventID: policy.RandomHex(), Kind: ObjectJob + "." + kind, ObjectType: ObjectJob, ObjectID: j.ID,
		CompartmentID: j.CompartmentID, StateFrom: from, StateTo: to, Actor: actor, Time: now, Details: compact(d)})
}

// compact drops the empty values of d (nil when none is left).
func compact(d map[string]string) map[string]string {
	for k, v := range d {
		if v == "" {
			delete(d, k)
		}
	}
	if len(d) == 0 {
		return nil
	}
	return d
}

// GetJob returns a scheduled job.
func (s *Service) GetJob(ctx context.Context, id string) (Job, error) {
	return getJob(s.store.Read(ctx), id, false)
}

// JobFilter selects scheduled jobs.
type JobFilter struct {
	CompartmentID string
	Recursive     bool
	State         JobState
	Page          policy.Page
}

// ListJobs lists scheduled jobs, newest first, and the next page's
// cursor.
func (s *Service) ListJobs(ctx context.Context, f JobFilter) ([]Job, string, error) {
	var (
		conds []string
		args  []any
	)
	if err := s.compartmentConds(ctx, &conds, &args, f.CompartmentID, f.Recursive); err != nil {
		return nil, "", err
	}
	if f.State != "" {
		conds, args = append(conds, "lifecycle_state = ?"), append(args, string(f.State))
	}
	return policy.List[Job](ctx, s.store, "scheduled_jobs", conds, args, f.Page)
}

// onJob reads an active job for change, checks ifMatch, lets fn change
// it and saves it.
func (s *Service) onJob(ctx context.Context, id string, ifMatch int64, fn func(tx *policy.Tx, j *Job) error) (Job, error) {
	var j Job
	err := s.store.Tx(ctx, func(tx *policy.Tx) error {
		var err error
		if j, err = getJob(tx, id, true); err != nil {
			return err
		}
		if err := checkVersion(ObjectJob, id, ifMatch, j.Version); err != nil {
			return err
		}
		if j.LifecycleState == JobDeleted {
			return &policy.ConflictError{Object: ObjectJob, ID: id, Reason: "is deleted"}
		}
		prev := j.Version
		if err := fn(tx, &j); err != nil {
			return err
		}
		return saveJob(tx, &j, prev)
	})
	return j, err
}

// SkipNext skips a recurring job's next execution: time_next_execution
// moves to the one after (OCI's skipNextExecution).
func (s *Service) SkipNext(ctx context.Context, who auth.Identity, id string, ifMatch int64) (Job, error) {
	now := s.clock()
	j, err := s.onJob(ctx, id, ifMatch, func(tx *policy.Tx, j *Job) error {
		if j.ScheduleType != Recurring {
			return &policy.ConflictError{Object: ObjectJob, ID: j.ID, Reason: "skip is for recurring jobs: delete a one-time job instead"}
		}
		if j.TimeNextExecution.IsZero() {
			return &policy.ConflictError{Object: ObjectJob, ID: j.ID, Reason: "has no next execution"}
		}
		sch, err := j.schedule()
		if err != nil {
			return err
		}
		skipped := j.TimeNextExecution
		next, _ := sch.Next(skipped)
		j.TimeNextExecution, j.TimeUpdated = next, now
		return s.jobChanged(tx, j, who.Name, string(j.LifecycleState), "skipped", "", now, map[string]string{"time_skipped": skipped.Format(time.RFC3339)})
	})
	if err == nil {
		s.m.skipped.WithLabelValues("skip_next").Inc()
	}
	return j, err
}

// DeleteJob deletes a job (OCI: cancels it): no execution follows, and
// the work requests of its executions not yet dispatched are canceled;
// those running finish. Its history, executions and work requests stay.
func (s *Service) DeleteJob(ctx context.Context, who auth.Identity, id string, ifMatch int64) (Job, error) {
	now := s.clock()
	var fx effects
	j, err := s.onJob(ctx, id, ifMatch, func(tx *policy.Tx, j *Job) error {
		fx = effects{}
		from := string(j.LifecycleState)
		j.LifecycleState, j.TimeNextExecution, j.TimeUpdated = JobDeleted, time.Time{}, now
		if err := s.jobChanged(tx, j, who.Name, from, "deleted", "", now, nil); err != nil {
			return err
		}
		rows, err := tx.Query("SELECT id FROM job_executions WHERE job_id = ? AND state = ?", j.ID, string(ExecutionInProgress))
		if err != nil {
			return fmt.Errorf("scheduler store: executions of %s: %w", j.ID, err)
		}
		execs, err := scanIDs(rows)
		if err != nil {
			return err
		}
		for _, e := range execs {
			if err := s.onExecution(tx, e, now, &fx, func(e *Execution, ws []WorkRequest) error {
				for i := range ws {
					if ws[i].Status == Accepted {
						if err := s.end(tx, e, &ws[i], ActCancel, "", "its job was deleted by "+who.Name, now); err != nil {
							return err
						}
					}
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		s.m.apply(fx)
	}
	return j, err
}

// RunNow starts an execution of the job at once, overriding the
// schedule (OCI's runNow): a recurring job keeps its next execution; a
// one-time job's scheduled run is this one (it has no next after).
func (s *Service) RunNow(ctx context.Context, who auth.Identity, id string, ifMatch int64) (Execution, error) {
	now := s.clock()
	var (
		e  Execution
		fx effects
	)
	_, err := s.onJob(ctx, id, ifMatch, func(tx *policy.Tx, j *Job) error {
		fx = effects{}
		if j.ScheduleType == OneTime {
			j.TimeNextExecution = time.Time{}
		}
		var err error
		e, err = s.fire(tx, j, TriggerRunNow, now, now, who.Name, &fx)
		return err
	})
	if err != nil {
		return Execution{}, err
	}
	s.m.apply(fx)
	return e, nil
}

// maxUpcoming bounds a preview.
const maxUpcoming = 1000

// Upcoming previews the next n executions of a job (OCI's
// upcomingSchedules), from its time_next_execution on.
func (s *Service) Upcoming(ctx context.Context, id string, n int) ([]Upcoming, error) {
	j, err := s.GetJob(ctx, id)
	if err != nil {
		return nil, err
	}
	return j.upcoming(n, time.Time{})
}

// upcoming lists up to n executions from time_next_execution, before
// until when it is set.
func (j *Job) upcoming(n int, until time.Time) ([]Upcoming, error) {
	n = min(max(n, 0), maxUpcoming)
	if j.LifecycleState != JobActive || j.TimeNextExecution.IsZero() || n == 0 {
		return nil, nil
	}
	sch, err := j.schedule()
	if err != nil {
		return nil, err
	}
	times := append([]time.Time{j.TimeNextExecution}, sch.Upcoming(j.TimeNextExecution, n-1)...)
	var out []Upcoming
	for _, t := range times {
		if !until.IsZero() && t.After(until) {
			break
		}
		out = append(out, Upcoming{JobID: j.ID, DisplayName: j.DisplayName, Time: t.UTC()})
	}
	return out, nil
}

// UpcomingUntil lists the executions of every active job of a
// compartment (all when empty) from now until until, soonest first, at
// most limit (OCI's listUpcomingScheduledJobs with its time_end).
func (s *Service) UpcomingUntil(ctx context.Context, compartmentID string, recursive bool, until time.Time, limit int) ([]Upcoming, error) {
	limit = min(max(limit, 1), maxUpcoming)
	conds := []string{"lifecycle_state = ?", "next_ms IS NOT NULL", "next_ms <= ?"}
	args := []any{string(JobActive), until.UnixMilli()}
	if err := s.compartmentConds(ctx, &conds, &args, compartmentID, recursive); err != nil {
		return nil, err
	}
	jobs, err := policy.Docs[Job](s.store.Read(ctx), "SELECT doc FROM scheduled_jobs WHERE "+strings.Join(conds, " AND ")+" ORDER BY next_ms LIMIT ?", append(args, maxUpcoming)...)
	if err != nil {
		return nil, err
	}
	var out []Upcoming
	for _, j := range jobs {
		u, err := j.upcoming(limit, until)
		if err != nil {
			return nil, err
		}
		out = append(out, u...)
	}
	slices.SortStableFunc(out, func(a, b Upcoming) int { return a.Time.Compare(b.Time) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
