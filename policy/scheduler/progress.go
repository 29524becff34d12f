package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/backoff"
	"github.com/auditpipe/auditpipe/internal/deadletter"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/schemas"
)

// Results of a work progress report: the label of
// auditpipe_scheduler_progress_reports_total, and besides "applied" and
// the kinds passed over ("agent_report", "inventory") the dead letter's
// reason (work_progress_<reason>).
const (
	ProgressApplied      = "applied"
	ProgressAgentReport  = schemas.AgentKindReport    // the policy service's grant report: passed over
	ProgressInventory    = schemas.AgentKindInventory // the indexer's: passed over
	ProgressMalformed    = "malformed"                // not a valid schemas.WorkProgress
	ProgressUnknown      = "unknown_work_request"
	ProgressForbidden    = "forbidden" // a host other than the work request's
	ProgressRefused      = "refused"   // the status has no such report (work never dispatched)
	ProgressInvalid      = "invalid"
	progressDeadLetterOf = "work_progress_"
)

// Progress consumes the agents' work progress reports on opctl.agent.v1
// and applies each through Service.ReportProgress as agent@HOST. The
// same topic carries the grant reports (schemas.AgentReport) that the
// policy service's consumer applies: each consumer has its own group,
// takes its own kind (schemas.AgentMessageKind) and passes over the
// other, so a process that runs the scheduler without the policy
// consumer, or the other way round, still sees every message of its
// kind. A report that cannot be applied is counted, logged and
// dead-lettered, and its offset committed; one that failed because the
// store is away is retried with backoff and nothing after it is committed
// until it is applied. A redelivered report is recognised by its seq.
type Progress struct {
	svc   *Service
	kafka kafka.Config
	cfg   ProgressConfig
	hosts *sign.KeyDir // the enrolled host keys (cfg.HostKeysDir)
	log   *slog.Logger
	m     *prometheus.CounterVec
}

// NewProgress returns the consumer of cfg.Topic; reg registers
// auditpipe_scheduler_progress_reports_total (nil: a registry of its own).
func NewProgress(svc *Service, kc kafka.Config, cfg ProgressConfig, log *slog.Logger, reg prometheus.Registerer) (*Progress, error) {
	if svc == nil {
		return nil, errors.New("scheduler: NewProgress needs a service")
	}
	if cfg.Topic == "" || cfg.Group == "" || cfg.DeadLetterTopic == "" {
		return nil, errors.New("scheduler: the progress consumer needs a topic, a group and a dead-letter topic")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditpipe_scheduler_progress_reports_total",
		Help: "Messages read from opctl.agent.v1 by the scheduler, by result (applied; agent_report, inventory: the policy service's and the indexer's, passed over; or why it was dead-lettered: unsigned, unknown_host, unknown_key, bad_signature, … for a report not signed by the key enrolled for its host)."}, []string{"result"})
	for _, r := range append([]string{ProgressApplied, ProgressAgentReport, ProgressInventory, ProgressMalformed, ProgressUnknown, ProgressForbidden, ProgressRefused, ProgressInvalid}, grants.AgentReasons()...) {
		m.WithLabelValues(r)
	}
	if err := reg.Register(m); err != nil {
		return nil, fmt.Errorf("scheduler: progress metrics: %w", err)
	}
	return &Progress{svc: svc, kafka: kc, cfg: cfg, hosts: sign.NewKeyDir(cfg.HostKeysDir), log: log, m: m}, nil
}

// Run consumes until ctx ends; it returns nil then, or the consumer
// group's permanent failure (not authorized).
func (p *Progress) Run(ctx context.Context) error {
	return policy.RecordConsumer{Name: "work progress", Component: "scheduler", Group: p.cfg.Group, Topic: p.cfg.Topic,
		DeadLetterTopic: p.cfg.DeadLetterTopic, Outage: "applying work progress reports to the policy store", Log: p.log, Apply: p.apply}.Run(ctx, p.kafka)
}

// apply applies one record, retrying while the store is away; it returns
// an error only when ctx ended or a dead letter could not be written.
func (p *Progress) apply(ctx context.Context, r *kafka.Record, dead *deadletter.Writer, outage *backoff.Outage) error {
	if kind := grants.AgentKind(r.Value); kind != schemas.AgentKindWorkProgress {
		p.m.WithLabelValues(kind).Inc()
		return nil
	}
	m, err := grants.DecodeAgent(r.Key, r.Value, p.hosts)
	if err != nil {
		// Not signed by the key enrolled for the host it names.
		return p.refuse(ctx, dead, r, string(r.Key), grants.Reason(err), err)
	}
	rep, err := schemas.DecodeWorkProgress(m.Payload)
	if err != nil {
		return p.refuse(ctx, dead, r, string(r.Key), ProgressMalformed, err)
	}
	who := auth.Identity{Name: "agent@" + rep.Host, Role: auth.RoleAgent}
	digest := grants.PayloadDigest(m.Payload)
	for attempt := 0; ; attempt++ {
		// An old report written again (publish_seq at or below the last
		// applied for the host, applied_seqs) is refused as replayed.
		err := p.svc.store.AdmitSeq(ctx, policy.SeqConsumerWorkProgress, m.Host, m.Seq, digest, p.svc.now().UnixMilli())
		if err == nil {
			_, err = p.svc.ReportProgress(ctx, who, rep)
		}
		reason := progressRefusal(err)
		switch {
		case err == nil:
			outage.OK()
			p.m.WithLabelValues(ProgressApplied).Inc()
			return nil
		case reason != "":
			outage.OK()
			return p.refuse(ctx, dead, r, rep.Host, reason, err)
		case ctx.Err() != nil:
			return ctx.Err()
		}
		outage.Fail(err)
		if !backoff.Sleep(ctx, backoff.Delay(attempt, 100*time.Millisecond, 5*time.Second)) {
			return ctx.Err()
		}
	}
}

// progressRefusal is the reason a report is refused for good, or "" for
// an error another attempt may get past (the store away, a conflict).
func progressRefusal(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.As(err, new(*grants.RefusedError)):
		return grants.Reason(err)
	case errors.Is(err, policy.ErrNotFound):
		return ProgressUnknown
	case errors.Is(err, policy.ErrForbidden):
		return ProgressForbidden
	case errors.Is(err, policy.ErrInvalidTransition):
		return ProgressRefused
	case errors.Is(err, policy.ErrInvalid):
		return ProgressInvalid
	}
	return ""
}

// refuse counts, logs and dead-letters a report that is not applied.
func (p *Progress) refuse(ctx context.Context, dead *deadletter.Writer, r *kafka.Record, host, reason string, err error) error {
	p.m.WithLabelValues(reason).Inc()
	source := r.Source()
	p.log.Warn("work progress report not applied: dead-lettered", "reason", reason, "err", err, "source", source)
	if werr := dead.Write(ctx, dead.Letter(progressDeadLetterOf+reason, err, r.Value, host, source)); werr != nil {
		return fmt.Errorf("work progress report at %s not dead-lettered: %w", source, werr)
	}
	return nil
}
