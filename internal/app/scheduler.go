package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/leader"
	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/policy/scheduler"
)

// schedulerLockName names the advisory lock the scheduler processes of
// one database elect their leader with: its own, apart from the policy
// duties', so that the two may lead in different processes.
const schedulerLockName = "auditpipe scheduler ticks"

// initScheduler returns the scheduler module: its Tick loop on the leader
// (every process on SQLite, one at a time on PostgreSQL) and, in every
// process, the consumer of the agents' work progress reports. The service
// itself was made by the policy module (its API serves the scheduler's
// routes); its access requests for governed runs are made as
// auth.RoleScheduler (scheduler.Options' default identity).
func initScheduler(_ context.Context, a *App) (Service, error) {
	svc := a.shared.scheduler
	if svc == nil {
		return nil, errors.New("scheduler: the policy module made no scheduler service")
	}
	rc := a.resolvedConfig()
	cfg := rc.Scheduler
	log := a.Log.With("component", "scheduler")
	duties, err := scheduler.NewDuties(svc, cfg.TickInterval, log, a.http.registry)
	if err != nil {
		return nil, err
	}
	ldeps := leader.Deps{Log: log.With("part", "leader"), Registry: a.http.registry, Component: "scheduler"}
	var elector leader.Elector
	if rc.Policy.Store.Driver == policy.DriverPostgres {
		if elector, err = leader.NewPostgres(rc.Policy.Store.DSN.Reveal(), leader.KeyFor(schedulerLockName), cfg.Leader, ldeps); err != nil {
			return nil, fmt.Errorf("scheduler.leader: %w", err)
		}
	} else {
		elector = leader.NewAlways(ldeps)
	}
	progress, err := scheduler.NewProgress(svc, a.kafkaFor(kafka.RoleScheduler), cfg.Progress, log.With("part", "progress"), a.http.registry)
	if err != nil {
		return nil, err
	}
	return &schedulerModule{elector: elector, duties: duties, progress: progress}, nil
}

// schedulerModule runs the ticks under the election and the progress
// consumer beside them.
type schedulerModule struct {
	elector  leader.Elector
	duties   *scheduler.Duties
	progress *scheduler.Progress
}

// Run implements Service: it returns when ctx ends, or with the first
// part that failed for good (the other stopped first).
func (m *schedulerModule) Run(ctx context.Context) error {
	return runParts(ctx, map[string]func(context.Context) error{
		"ticks":         func(ctx context.Context) error { return m.elector.Run(ctx, m.duties.Run) },
		"work progress": m.progress.Run,
	})
}
