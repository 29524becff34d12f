package agent

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/schemas"
)

// Steps of a deployment, as DEPLOYFAILED reports and the metrics name
// them.
const (
	StepUser       = "user"
	StepSSHKeys    = "ssh_keys"
	StepSudoers    = "sudoers"
	StepAuditRules = "audit_rules"
	StepTTYAudit   = "tty_audit"
)

// Why a grant was taken off the host (UNDEPLOYED's step).
const (
	WhyRevoked    = "revoked"
	WhyExpired    = "expired"
	WhyNotForHost = "not_for_host"
	WhyReconcile  = "reconcile"
)

func steps() []string {
	return []string{StepUser, StepSSHKeys, StepSudoers, StepAuditRules, StepTTYAudit}
}

type metrics struct {
	refused        *prometheus.CounterVec
	deadLetters    prometheus.Counter
	grants         prometheus.Gauge
	deploys        prometheus.Counter
	deployFailures *prometheus.CounterVec
	undeploys      *prometheus.CounterVec
	undeployErrors prometheus.Counter
	applySeconds   prometheus.Histogram
	removeSeconds  prometheus.Histogram
	sessionsEnded  prometheus.Counter
	reconciles     prometheus.Counter
	orphans        *prometheus.CounterVec
	reports        *prometheus.CounterVec
	reportQueue    prometheus.Gauge
	reportErrors   prometheus.Counter
	reportsDropped prometheus.Counter

	dispatchRefused   *prometheus.CounterVec
	dispatches        *prometheus.CounterVec
	workRuns          *prometheus.CounterVec
	workRunning       prometheus.Gauge
	inventories       *prometheus.CounterVec
	inventoryErrors   prometheus.Counter
	inventorySeconds  prometheus.Histogram
	inventoryPackages prometheus.Gauge
	securityUpdates   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		refused: grants.NewRefusedCounter("agent"),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditpipe_agent_dead_letters_total",
			Help: "Dead letters written (refused grant records)."}),
		grants: prometheus.NewGauge(prometheus.GaugeOpts{Name: "auditpipe_agent_grants",
			Help: "Grants deployed on this host."}),
		deploys: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditpipe_agent_deploys_total",
			Help: "Grants deployed (user, keys, sudoers, audit rules, tty audit), first time or changed."}),
		deployFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditpipe_agent_deploy_failures_total",
			Help: "Deployments that failed and were rolled back, by failed step."}, []string{"step"}),
		undeploys: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditpipe_agent_undeploys_total",
			Help: "Grants taken off the host (sessions ended, user deleted), by reason."}, []string{"reason"}),
		undeployErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditpipe_agent_undeploy_errors_total",
			Help: "Removals that failed a step; retried."}),
		applySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "auditpipe_agent_deploy_duration_seconds",
			Help: "Time to deploy one grant.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 10)}),
		removeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "auditpipe_agent_undeploy_duration_seconds",
			Help: "Time from a revocation read (or an expiry due) to its removal done, sessions ended.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 10)}),
		sessionsEnded: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditpipe_agent_session_processes_ended_total",
			Help: "Processes of login users' sessions signalled on removal."}),
		reconciles: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditpipe_agent_reconciles_total",
			Help: "Comparisons of the host with the live grants."}),
		orphans: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditpipe_agent_orphans_removed_total",
			Help: "Users, sudoers fragments, audit rule keys and tty audit entries of the agent that no live grant explained, removed, by kind."}, []string{"kind"}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditpipe_agent_reports_total",
			Help: "Reports written to opctl.agent.v1, by state."}, []string{"state"}),
		reportQueue: prometheus.NewGauge(prometheus.GaugeOpts{Name: "auditpipe_agent_report_queue",
			Help: "Reports waiting to be written."}),
		reportErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditpipe_agent_report_errors_total",
			Help: "Failed writes of reports (retried)."}),
		reportsDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditpipe_agent_reports_dropped_total",
			Help: "Reports dropped, oldest first, while the queue was full (Kafka away for long); logged."}),
		dispatchRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditpipe_agent_dispatches_refused_total",
			Help: "Records of the dispatch topic keyed by this instance that were refused (unsigned, unknown key, bad signature, other host, …) and dead-lettered, by reason; none ran."}, []string{"reason"}),
		dispatches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditpipe_agent_dispatches_total",
			Help: "Verified dispatches for this instance, by result (run: queued; redelivered: known already, not run again; cancel; too_old)."}, []string{"result"}),
		workRuns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditpipe_agent_work_requests_total",
			Help: "Work requests ended on this instance, by final status."}, []string{"status"}),
		workRunning: prometheus.NewGauge(prometheus.GaugeOpts{Name: "auditpipe_agent_work_running",
			Help: "1 while a package run is under way (one at a time)."}),
		inventories: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditpipe_agent_inventories_total",
			Help: "Inventories reported, by trigger (SCHEDULED, WORK_REQUEST)."}, []string{"trigger"}),
		inventoryErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditpipe_agent_inventory_errors_total",
			Help: "Inventories that failed (apt-get update, dpkg-query, the security feed)."}),
		inventorySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "auditpipe_agent_inventory_duration_seconds",
			Help: "Time to take an inventory.", Buckets: prometheus.ExponentialBuckets(0.1, 2, 10)}),
		inventoryPackages: prometheus.NewGauge(prometheus.GaugeOpts{Name: "auditpipe_agent_inventory_packages",
			Help: "Installed packages in the last inventory."}),
		securityUpdates: prometheus.NewGauge(prometheus.GaugeOpts{Name: "auditpipe_agent_security_updates",
			Help: "Security updates outstanding in the last inventory."}),
	}
	for _, r := range append(grants.Reasons(), ReasonOtherHost) {
		m.dispatchRefused.WithLabelValues(r)
	}
	for _, r := range []string{"run", "redelivered", "cancel", "too_old"} {
		m.dispatches.WithLabelValues(r)
	}
	for _, s := range []string{schemas.WorkSucceeded, schemas.WorkFailed, schemas.WorkCanceled} {
		m.workRuns.WithLabelValues(s)
		m.reports.WithLabelValues("work_" + s)
	}
	m.reports.WithLabelValues("work_" + schemas.WorkInProgress)
	m.reports.WithLabelValues("inventory")
	for _, t := range []string{schemas.InventoryScheduled, schemas.InventoryWorkRequest} {
		m.inventories.WithLabelValues(t)
	}
	for _, s := range steps() {
		m.deployFailures.WithLabelValues(s)
	}
	for _, r := range []string{WhyRevoked, WhyExpired, WhyNotForHost, WhyReconcile} {
		m.undeploys.WithLabelValues(r)
	}
	for _, k := range []string{"user", "sudoers", "audit_rules", "tty_audit"} {
		m.orphans.WithLabelValues(k)
	}
	for _, s := range []string{schemas.AgentDeployed, schemas.AgentDeployFailed, schemas.AgentUndeployed} {
		m.reports.WithLabelValues(s)
	}
	if reg != nil {
		reg.MustRegister(m.refused, m.deadLetters, m.grants, m.deploys, m.deployFailures, m.undeploys, m.undeployErrors,
			m.applySeconds, m.removeSeconds, m.sessionsEnded, m.reconciles, m.orphans, m.reports, m.reportQueue,
			m.reportErrors, m.reportsDropped, m.dispatchRefused, m.dispatches, m.workRuns, m.workRunning, m.inventories,
			m.inventoryErrors, m.inventorySeconds, m.inventoryPackages, m.securityUpdates)
	}
	return m
}
