package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/backoff"
	"github.com/auditpipe/auditpipe/internal/deadletter"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

// Why a report was not applied: the label of
// auditpipe_policy_agent_reports_total besides "applied", and the dead
// letter's reason (agent_report_<reason>).
const (
	ReportApplied      = "applied"
	ReportMalformed    = "malformed"     // not a valid schemas.AgentReport
	ReportUnknownLogin = "unknown_login" // no grant has that login user
	ReportMismatch     = "mismatch"      // the login's request is not req_auth_id
	ReportForbidden    = "forbidden"     // a host the grant does not name
	ReportRefused      = "refused"       // the request's state has no such report (deployed after the grant ended)
	ReportInvalid      = "invalid"
	// ReportWorkProgress counts the scheduler's messages on the topic
	// (schemas.WorkProgress), passed over: the scheduler's consumer
	// applies or refuses them.
	ReportWorkProgress = "work_progress"
	// ReportInventory counts the agents' inventories (schemas.Inventory),
	// passed over: the indexer stores or refuses them.
	ReportInventory = "inventory"
)

// The consumers of applied_seqs (Store.AdmitSeq).
const (
	SeqConsumerAgentReports = "agent_reports"
	SeqConsumerWorkProgress = "work_progress"
)

// AgentReports consumes the host agents' reports (schemas.AgentReport,
// decoded strictly; the work progress reports on the same topic are the
// scheduler's, told apart by schemas.AgentMessageKind and passed over) and moves the requests through the service
// (ReportDeployment): DEPLOYED once every host of the
// grant has the user, DEPLOYFAILED, UNDEPLOYED. A report that cannot be
// applied is counted, logged and dead-lettered, and its offset committed;
// one that failed because the store is away is retried with backoff and
// nothing after it is committed until it is applied. Every policy process
// runs one, in one consumer group: each report is applied once (at least
// once across a crash, and a report applied twice records the same
// state).
type AgentReports struct {
	svc   *Service
	kafka kafka.Config
	cfg   AgentReportsConfig
	hosts *sign.KeyDir // the enrolled host keys (cfg.HostKeysDir)
	log   *slog.Logger
	m     *prometheus.CounterVec
}

// NewAgentReports returns the consumer of cfg.Topic; reg registers
// auditpipe_policy_agent_reports_total (nil: a registry of its own).
func NewAgentReports(svc *Service, kc kafka.Config, cfg AgentReportsConfig, log *slog.Logger, reg prometheus.Registerer) (*AgentReports, error) {
	if svc == nil {
		return nil, errors.New("policy: NewAgentReports needs a service")
	}
	if cfg.Topic == "" || cfg.Group == "" || cfg.DeadLetterTopic == "" {
		return nil, errors.New("policy: agent reports need a topic, a group and a dead-letter topic")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditpipe_policy_agent_reports_total",
		Help: "Host agents' deployment reports read from opctl.agent.v1, by result (applied; work_progress, inventory: the scheduler's and the indexer's, passed over; or why it was dead-lettered: unsigned, unknown_host, unknown_key, bad_signature, … for a report not signed by the key enrolled for its host)."}, []string{"result"})
	for _, r := range append([]string{ReportApplied, ReportWorkProgress, ReportInventory, ReportMalformed, ReportUnknownLogin, ReportMismatch, ReportForbidden, ReportRefused, ReportInvalid}, grants.AgentReasons()...) {
		m.WithLabelValues(r)
	}
	reg.MustRegister(m)
	return &AgentReports{svc: svc, kafka: kc, cfg: cfg, hosts: sign.NewKeyDir(cfg.HostKeysDir), log: log, m: m}, nil
}

// Run consumes until ctx ends; it returns nil then, or the consumer
// group's permanent failure (not authorized).
func (a *AgentReports) Run(ctx context.Context) error {
	return RecordConsumer{Name: "agent reports", Component: "policy", Group: a.cfg.Group, Topic: a.cfg.Topic,
		DeadLetterTopic: a.cfg.DeadLetterTopic, Outage: "applying agent reports to the policy store", Log: a.log, Apply: a.apply}.Run(ctx, a.kafka)
}

// apply applies one record, retrying while the store is away; it returns
// an error only when ctx ended or a dead letter could not be written.
func (a *AgentReports) apply(ctx context.Context, r *kafka.Record, dead *deadletter.Writer, outage *backoff.Outage) error {
	switch grants.AgentKind(r.Value) {
	case schemas.AgentKindWorkProgress:
		a.m.WithLabelValues(ReportWorkProgress).Inc()
		return nil
	case schemas.AgentKindInventory:
		a.m.WithLabelValues(ReportInventory).Inc()
		return nil
	}
	m, err := grants.DecodeAgent(r.Key, r.Value, a.hosts)
	if err != nil {
		// Not signed by the key enrolled for the host it names: another
		// host's agent (or anyone with the agent credential) forging it.
		return a.refuse(ctx, dead, r, string(r.Key), grants.Reason(err), err)
	}
	rep, err := schemas.DecodeAgentReport(m.Payload)
	if err != nil {
		return a.refuse(ctx, dead, r, "", ReportMalformed, err)
	}
	digest := grants.PayloadDigest(m.Payload)
	for attempt := 0; ; attempt++ {
		// An old report written again (publish_seq at or below the last
		// applied for the host, applied_seqs) is refused as replayed.
		err := a.svc.store.AdmitSeq(ctx, SeqConsumerAgentReports, m.Host, m.Seq, digest, a.svc.clock().UnixMilli())
		if err == nil {
			err = a.report(ctx, rep)
		}
		reason := reportRefusal(err)
		switch {
		case err == nil:
			outage.OK()
			a.m.WithLabelValues(ReportApplied).Inc()
			return nil
		case reason != "":
			outage.OK()
			return a.refuse(ctx, dead, r, rep.Host, reason, err)
		case ctx.Err() != nil:
			return ctx.Err()
		}
		outage.Fail(err)
		if !backoff.Sleep(ctx, backoff.Delay(attempt, 100*time.Millisecond, 5*time.Second)) {
			return ctx.Err()
		}
	}
}

// report checks that the login is req_auth_id's (when the agent still
// knows it) and records the report as agent@HOST; the history's comment
// is the step and the reason.
func (a *AgentReports) report(ctx context.Context, rep schemas.AgentReport) error {
	g, err := a.svc.GetGrant(ctx, rep.LoginID)
	if err != nil {
		return err
	}
	if rep.ReqAuthID != "" && g.RequestID != rep.ReqAuthID {
		return &mismatchError{login: rep.LoginID, reported: rep.ReqAuthID, actual: g.RequestID}
	}
	msg := rep.Reason
	if rep.Step != "" {
		msg = strings.TrimSuffix(rep.Step+": "+rep.Reason, ": ")
	}
	who := auth.Identity{Name: "agent@" + rep.Host, Role: auth.RoleAgent}
	_, err = a.svc.ReportDeployment(ctx, who, DeploymentReport{LoginID: rep.LoginID, Host: rep.Host, State: RequestState(rep.State), Message: msg})
	return err
}

type mismatchError struct{ login, reported, actual string }

func (e *mismatchError) Error() string {
	return fmt.Sprintf("login %s is the grant of access request %s, not %s", e.login, e.actual, e.reported)
}

// reportRefusal is the reason a report is refused for good, or "" for an
// error that another attempt may get past (the store away, a conflict
// with another transaction).
func reportRefusal(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.As(err, new(*mismatchError)):
		return ReportMismatch
	case errors.As(err, new(*grants.RefusedError)):
		return grants.Reason(err)
	case errors.Is(err, ErrNotFound):
		return ReportUnknownLogin
	case errors.Is(err, ErrForbidden):
		return ReportForbidden
	case errors.Is(err, ErrInvalidTransition):
		return ReportRefused
	case errors.Is(err, ErrInvalid):
		return ReportInvalid
	}
	return ""
}

// refuse counts, logs and dead-letters a report that is not applied.
func (a *AgentReports) refuse(ctx context.Context, dead *deadletter.Writer, r *kafka.Record, host, reason string, err error) error {
	a.m.WithLabelValues(reason).Inc()
	source := r.Source()
	a.log.Warn("agent report not applied: dead-lettered", "reason", reason, "err", err, "source", source)
	if werr := dead.Write(ctx, dead.Letter("agent_report_"+reason, err, r.Value, host, source)); werr != nil {
		return fmt.Errorf("agent report at %s not dead-lettered: %w", source, werr)
	}
	return nil
}
