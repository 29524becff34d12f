package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/policy/client"
	"github.com/auditpipe/auditpipe/policy/scheduler"
)

// The scheduler's CLI: `auditpipe job|workrequest|instance|instancegroup
// SUBCOMMAND`, on policy/client, in the style of `auditpipe request …`.

func jobTable(o *output, v any, js ...scheduler.Job) error {
	rows := make([][]string, len(js))
	for i, j := range js {
		every := string(j.ScheduleType)
		if j.ScheduleType == scheduler.Recurring {
			every = fmt.Sprintf("every %d %s", j.IntervalValue, j.IntervalType)
		}
		op := j.OperationType
		if j.UpdateType != "" {
			op += " " + j.UpdateType
		}
		targets := join(j.ManagedInstances)
		if len(j.ManagedInstanceGroups) > 0 {
			targets = "groups:" + join(j.ManagedInstanceGroups)
		}
		rows[i] = []string{j.ID, j.DisplayName, string(j.LifecycleState), every, op, when(j.TimeNextExecution), targets, strconv.FormatInt(j.Version, 10)}
	}
	return o.table(v, []string{"ID", "NAME", "STATE", "SCHEDULE", "OPERATION", "NEXT", "TARGETS", "ETAG"}, rows)
}

func workRequestTable(o *output, v any, ws ...scheduler.WorkRequest) error {
	rows := make([][]string, len(ws))
	for i, w := range ws {
		rows[i] = []string{w.ID, w.Host, string(w.Status), strconv.Itoa(w.PercentComplete) + "%", when(w.TimeAccepted), when(w.TimeFinished), w.Message}
	}
	return o.table(v, []string{"ID", "HOST", "STATUS", "DONE", "ACCEPTED", "FINISHED", "MESSAGE"}, rows)
}

func logTable(o *output, v any, ls ...scheduler.LogEntry) error {
	rows := make([][]string, len(ls))
	for i, l := range ls {
		rows[i] = []string{l.Time.UTC().Format(time.RFC3339Nano), l.Code, l.Message}
	}
	return o.table(v, []string{"TIME", "CODE", "MESSAGE"}, rows)
}

func upcomingTable(o *output, v any, us ...scheduler.Upcoming) error {
	rows := make([][]string, len(us))
	for i, u := range us {
		rows[i] = []string{u.Time.UTC().Format(time.RFC3339), u.JobID, u.DisplayName}
	}
	return o.table(v, []string{"TIME", "JOB", "NAME"}, rows)
}

// jobCommands are `auditpipe job …`.
func jobCommands() map[string]command {
	var (
		in          scheduler.JobInput
		first       string
		instances   namesFlag
		groups      namesFlag
		packages    namesFlag
		compartment string
		subtree     bool
		state       string
		lo          listOpts
		im          ifMatchFlag
		n           int
		until       time.Duration
	)
	version := func(ctx context.Context, c *client.Client, id string) (int64, error) {
		return im.version(func() (int64, error) { j, err := c.GetJob(ctx, id); return j.Version, err })
	}
	return map[string]command{
		"create": policyCommand("job create", "create a scheduled job", sub{synopsis: "--name NAME --compartment ID --first TIME (--instance ID… | --group ID…) [--every N --unit HOUR|DAY|WEEK|MONTH] [--operation UPDATEALL --update-type SECURITY | --operation INSTALL|UPDATE|REMOVE --package NAME…] [--time-zone ZONE] [--max-concurrency N|P%] [--max-errors N|P%] [--cutoff MIN] [--timeout MIN]",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&in.DisplayName, "name", "", "the job's `NAME`")
				fs.StringVar(&in.Description, "description", "", "`TEXT`")
				fs.StringVar(&in.CompartmentID, "compartment", "", "the compartment `ID`")
				fs.StringVar(&first, "first", "", "the first execution, RFC 3339 `TIME` (it anchors a recurring schedule)")
				fs.StringVar(&in.TimeZone, "time-zone", "", "IANA `ZONE` the schedule's wall clock is in (default UTC)")
				fs.IntVar(&in.IntervalValue, "every", 0, "recurring: every `N` units (without it: ONETIME)")
				fs.StringVar((*string)(&in.IntervalType), "unit", "DAY", "recurring: HOUR, DAY, WEEK or MONTH")
				fs.StringVar(&in.OperationType, "operation", "UPDATEALL", "INSTALL, UPDATE, REMOVE or UPDATEALL")
				fs.StringVar(&in.UpdateType, "update-type", "", "with UPDATEALL: SECURITY, BUGFIX, ENHANCEMENT, OTHER or ALL (default ALL)")
				fs.Var(&packages, "package", "a package `NAME` or NAME=VERSION (INSTALL, UPDATE, REMOVE; repeated or comma list)")
				fs.Var(&instances, "instance", "a managed instance `ID` (repeated or comma list)")
				fs.Var(&groups, "group", "a managed instance group `ID` (repeated or comma list; not with --instance)")
				fs.StringVar(&in.MaxConcurrency, "max-concurrency", "", "at most `N` (or P%) work requests at once (default 100%)")
				fs.StringVar(&in.MaxErrors, "max-errors", "", "stop after more than `N` (or P%) failures (default 100%)")
				fs.IntVar(&in.CutoffMinutes, "cutoff", 0, "nothing new starts `MIN` minutes after an execution starts (default 240)")
				fs.IntVar(&in.TimeoutMinutes, "timeout", 0, "a dispatched work request fails after `MIN` minutes without a result (default 120)")
			},
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				t, err := parseTime("first", first)
				if err != nil {
					return err
				}
				in.TimeNextExecution = t
				in.ScheduleType = scheduler.OneTime
				if in.IntervalValue > 0 {
					in.ScheduleType = scheduler.Recurring
				} else {
					in.IntervalType = ""
				}
				in.ManagedInstances, in.ManagedInstanceGroups, in.PackageNames = instances, groups, packages
				j, err := c.CreateJob(ctx, in)
				if err != nil {
					return err
				}
				return s.out.object(j)
			}}),
		"list": policyCommand("job list", "list scheduled jobs (newest first)", sub{synopsis: "[--compartment ID [--subtree]] [--state ACTIVE|DELETED] [--limit N] [--page TOKEN | --all]",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&compartment, "compartment", "", "jobs of this compartment `ID`")
				fs.BoolVar(&subtree, "subtree", false, "and of every compartment under it")
				fs.StringVar(&state, "state", "", "ACTIVE or DELETED")
				lo.register(fs)
			},
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				items, err := pages(ctx, &lo, s, map[string]string{"compartmentId": compartment, "compartmentIdInSubtree": boolParam(subtree), "lifecycleState": state}, c.ListJobs)
				if err != nil {
					return err
				}
				return jobTable(s.out, items, items...)
			}}),
		"show": policyCommand("job show", "show a scheduled job", sub{synopsis: "ID", args: 1,
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				j, err := c.GetJob(ctx, s.args[0])
				if err != nil {
					return err
				}
				return s.out.object(j)
			}}),
		"run-now": policyCommand("job run-now", "start an execution at once (a recurring job keeps its schedule)", sub{synopsis: "ID [--if-match ETAG]", args: 1,
			flags: im.register,
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				v, err := version(ctx, c, s.args[0])
				if err != nil {
					return err
				}
				e, err := c.RunJobNow(ctx, s.args[0], v)
				if err != nil {
					return err
				}
				return s.out.object(e)
			}}),
		"skip": policyCommand("job skip", "skip a recurring job's next execution", sub{synopsis: "ID [--if-match ETAG]", args: 1,
			flags: im.register,
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				v, err := version(ctx, c, s.args[0])
				if err != nil {
					return err
				}
				j, err := c.SkipNext(ctx, s.args[0], v)
				if err != nil {
					return err
				}
				return s.out.object(j)
			}}),
		"delete": policyCommand("job delete", "delete a job: no more executions; work not yet dispatched is canceled", sub{synopsis: "ID [--if-match ETAG]", args: 1,
			flags: im.register,
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				v, err := version(ctx, c, s.args[0])
				if err != nil {
					return err
				}
				j, err := c.DeleteJob(ctx, s.args[0], v)
				if err != nil {
					return err
				}
				return s.out.object(j)
			}}),
		"upcoming": policyCommand("job upcoming", "the next executions of a job, or of every active job (without ID) until --until", sub{synopsis: "[ID] [--count N] [--until DURATION] [--compartment ID [--subtree]]",
			flags: func(fs *flag.FlagSet) {
				fs.IntVar(&n, "count", 0, "at most `N` executions (default 10 for a job)")
				fs.DurationVar(&until, "until", 7*24*time.Hour, "without ID: executions from now until this `DURATION` from now")
				fs.StringVar(&compartment, "compartment", "", "without ID: the jobs of this compartment `ID`")
				fs.BoolVar(&subtree, "subtree", false, "and of every compartment under it")
			},
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				var (
					us  []scheduler.Upcoming
					err error
				)
				switch len(s.args) {
				case 0:
					us, err = c.Upcoming(ctx, compartment, subtree, time.Now().Add(until), n)
				case 1:
					us, err = c.JobUpcoming(ctx, s.args[0], n)
				default:
					return errUsage
				}
				if err != nil {
					return err
				}
				return upcomingTable(s.out, us, us...)
			}, args: -1}),
		"history": policyCommand("job history", "every change of a job: creation, firings, skips, deletion", sub{synopsis: "ID", args: 1,
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				h, err := c.JobHistory(ctx, s.args[0])
				if err != nil {
					return err
				}
				return historyTable(s.out, h, h...)
			}}),
	}
}

// workRequestCommands are `auditpipe workrequest …`.
func workRequestCommands() map[string]command {
	var (
		job, execution, instance, compartment, status string
		subtree                                       bool
		lo                                            listOpts
	)
	return map[string]command{
		"list": policyCommand("workrequest list", "list work requests (newest first)", sub{synopsis: "[--job ID] [--execution ID] [--instance ID] [--compartment ID [--subtree]] [--status STATUS] [--limit N] [--page TOKEN | --all]",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&job, "job", "", "the work of this scheduled job `ID`")
				fs.StringVar(&execution, "execution", "", "the work of this execution `ID`")
				fs.StringVar(&instance, "instance", "", "the work on this managed instance `ID`")
				fs.StringVar(&compartment, "compartment", "", "compartment `ID`")
				fs.BoolVar(&subtree, "subtree", false, "and every compartment under it")
				fs.StringVar(&status, "status", "", "ACCEPTED, IN_PROGRESS, SUCCEEDED, FAILED, CANCELING or CANCELED")
				lo.register(fs)
			},
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				items, err := pages(ctx, &lo, s, map[string]string{"scheduledJobId": job, "jobExecutionId": execution, "managedInstanceId": instance,
					"compartmentId": compartment, "compartmentIdInSubtree": boolParam(subtree), "status": status}, c.ListWorkRequests)
				if err != nil {
					return err
				}
				return workRequestTable(s.out, items, items...)
			}}),
		"show": policyCommand("workrequest show", "show a work request", sub{synopsis: "ID", args: 1,
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				w, err := c.GetWorkRequest(ctx, s.args[0])
				if err != nil {
					return err
				}
				return s.out.object(w)
			}}),
		"logs": policyCommand("workrequest logs", "a work request's log lines, oldest first", sub{synopsis: "ID", args: 1,
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				ls, err := c.WorkRequestLogs(ctx, s.args[0])
				if err != nil {
					return err
				}
				return logTable(s.out, ls, ls...)
			}}),
		"errors": policyCommand("workrequest errors", "a work request's errors, oldest first", sub{synopsis: "ID", args: 1,
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				ls, err := c.WorkRequestErrors(ctx, s.args[0])
				if err != nil {
					return err
				}
				return logTable(s.out, ls, ls...)
			}}),
		"cancel": policyCommand("workrequest cancel", "cancel a work request (CANCELED at once if not dispatched, else CANCELING)", sub{synopsis: "ID", args: 1,
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				w, err := c.CancelWorkRequest(ctx, s.args[0])
				if err != nil {
					return err
				}
				return s.out.object(w)
			}}),
	}
}

func instanceTable(o *output, v any, is ...scheduler.Instance) error {
	rows := make([][]string, len(is))
	for i, x := range is {
		rows[i] = []string{x.ID, x.DisplayName, x.Host, x.CompartmentID, x.ResourceID, strconv.FormatInt(x.Version, 10)}
	}
	return o.table(v, []string{"ID", "NAME", "HOST", "COMPARTMENT", "RESOURCE", "ETAG"}, rows)
}

// instanceCommands are `auditpipe instance …`.
func instanceCommands() map[string]command {
	var (
		in          scheduler.InstanceInput
		compartment string
		resource    string
		subtree     bool
		lo          listOpts
		im          ifMatchFlag
	)
	return map[string]command{
		"create": policyCommand("instance create", "register a managed instance (a host whose agent runs work requests)", sub{synopsis: "--host HOST --compartment ID [--id ID] [--name NAME] [--resource ID]",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&in.ID, "id", "", "the instance's `ID` (default: generated)")
				fs.StringVar(&in.DisplayName, "name", "", "display `NAME` (default: the host)")
				fs.StringVar(&in.Host, "host", "", "the `HOST` name its agent reports as")
				fs.StringVar(&in.CompartmentID, "compartment", "", "the compartment `ID`")
				fs.StringVar(&in.ResourceID, "resource", "", "the policy resource `ID` the host belongs to: its runs are then governed")
			},
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				if in.DisplayName == "" {
					in.DisplayName = in.Host
				}
				i, err := c.CreateInstance(ctx, in)
				if err != nil {
					return err
				}
				return s.out.object(i)
			}}),
		"list": policyCommand("instance list", "list managed instances (newest first)", sub{synopsis: "[--compartment ID [--subtree]] [--resource ID] [--limit N] [--page TOKEN | --all]",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&compartment, "compartment", "", "compartment `ID`")
				fs.BoolVar(&subtree, "subtree", false, "and every compartment under it")
				fs.StringVar(&resource, "resource", "", "the instances of this policy resource `ID`")
				lo.register(fs)
			},
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				items, err := pages(ctx, &lo, s, map[string]string{"compartmentId": compartment, "compartmentIdInSubtree": boolParam(subtree), "resourceId": resource}, c.ListInstances)
				if err != nil {
					return err
				}
				return instanceTable(s.out, items, items...)
			}}),
		"show": policyCommand("instance show", "show a managed instance", sub{synopsis: "ID", args: 1,
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				i, err := c.GetInstance(ctx, s.args[0])
				if err != nil {
					return err
				}
				return s.out.object(i)
			}}),
		"delete": policyCommand("instance delete", "delete a managed instance no group or active job names", sub{synopsis: "ID [--if-match ETAG]", args: 1,
			flags: im.register,
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				v, err := im.version(func() (int64, error) { i, err := c.GetInstance(ctx, s.args[0]); return i.Version, err })
				if err != nil {
					return err
				}
				if err := c.DeleteInstance(ctx, s.args[0], v); err != nil {
					return err
				}
				fmt.Fprintf(s.out.w, "deleted managed instance %s\n", s.args[0])
				return nil
			}}),
	}
}

func groupTable(o *output, v any, gs ...scheduler.Group) error {
	rows := make([][]string, len(gs))
	for i, g := range gs {
		rows[i] = []string{g.ID, g.DisplayName, g.CompartmentID, join(g.ManagedInstances), strconv.FormatInt(g.Version, 10)}
	}
	return o.table(v, []string{"ID", "NAME", "COMPARTMENT", "INSTANCES", "ETAG"}, rows)
}

// instanceGroupCommands are `auditpipe instancegroup …`.
func instanceGroupCommands() map[string]command {
	var (
		in          scheduler.GroupInput
		members     namesFlag
		compartment string
		subtree     bool
		lo          listOpts
		im          ifMatchFlag
	)
	version := func(ctx context.Context, c *client.Client, id string) (int64, error) {
		return im.version(func() (int64, error) { g, err := c.GetGroup(ctx, id); return g.Version, err })
	}
	return map[string]command{
		"create": policyCommand("instancegroup create", "create a managed instance group", sub{synopsis: "--name NAME --compartment ID [--id ID] [--instance ID…] [--description TEXT]",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&in.ID, "id", "", "the group's `ID` (default: generated)")
				fs.StringVar(&in.DisplayName, "name", "", "`NAME`")
				fs.StringVar(&in.Description, "description", "", "`TEXT`")
				fs.StringVar(&in.CompartmentID, "compartment", "", "the compartment `ID`")
				fs.Var(&members, "instance", "a member instance `ID`, in dispatch order (repeated or comma list)")
			},
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				in.ManagedInstances = members
				g, err := c.CreateGroup(ctx, in)
				if err != nil {
					return err
				}
				return s.out.object(g)
			}}),
		"list": policyCommand("instancegroup list", "list managed instance groups (newest first)", sub{synopsis: "[--compartment ID [--subtree]] [--limit N] [--page TOKEN | --all]",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&compartment, "compartment", "", "compartment `ID`")
				fs.BoolVar(&subtree, "subtree", false, "and every compartment under it")
				lo.register(fs)
			},
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				items, err := pages(ctx, &lo, s, map[string]string{"compartmentId": compartment, "compartmentIdInSubtree": boolParam(subtree)}, c.ListGroups)
				if err != nil {
					return err
				}
				return groupTable(s.out, items, items...)
			}}),
		"show": policyCommand("instancegroup show", "show a managed instance group", sub{synopsis: "ID", args: 1,
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				g, err := c.GetGroup(ctx, s.args[0])
				if err != nil {
					return err
				}
				return s.out.object(g)
			}}),
		"members": policyCommand("instancegroup members", "replace a group's instances (in dispatch order)", sub{synopsis: "ID --instance ID… [--if-match ETAG]", args: 1,
			flags: func(fs *flag.FlagSet) {
				fs.Var(&members, "instance", "a member instance `ID`, in dispatch order (repeated or comma list)")
				im.register(fs)
			},
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				v, err := version(ctx, c, s.args[0])
				if err != nil {
					return err
				}
				g, err := c.SetGroupMembers(ctx, s.args[0], v, members)
				if err != nil {
					return err
				}
				return s.out.object(g)
			}}),
		"delete": policyCommand("instancegroup delete", "delete a group no active job names", sub{synopsis: "ID [--if-match ETAG]", args: 1,
			flags: im.register,
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				v, err := version(ctx, c, s.args[0])
				if err != nil {
					return err
				}
				if err := c.DeleteGroup(ctx, s.args[0], v); err != nil {
					return err
				}
				fmt.Fprintf(s.out.w, "deleted managed instance group %s\n", s.args[0])
				return nil
			}}),
	}
}

// historyTable writes history entries, oldest first.
func historyTable(o *output, v any, h ...policy.HistoryEntry) error {
	rows := make([][]string, len(h))
	for i, e := range h {
		rows[i] = []string{e.Time.UTC().Format("2006-01-02 15:04:05Z"), e.Actor, e.Action, e.From, e.To, e.Comment}
	}
	return o.table(v, []string{"TIME", "ACTOR", "ACTION", "FROM", "TO", "COMMENT"}, rows)
}
