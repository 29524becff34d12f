package app

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/agent"
	"github.com/auditpipe/auditpipe/agent/pkgmgr"
	"github.com/auditpipe/auditpipe/agent/pkgmgr/pkgmgrtest"
	"github.com/auditpipe/auditpipe/clickhouse/chdb"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/testenv"
	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/policy/client"
	"github.com/auditpipe/auditpipe/policy/scheduler"
	"github.com/auditpipe/auditpipe/queryapi"
	"github.com/auditpipe/auditpipe/report/compliance"
	"github.com/auditpipe/auditpipe/schemas"
)

// TestSchedulerJobOnAgent closes the loop on the all-in-one: a host agent
// (as the agent role on the embedded broker, its instance cell01 with an
// outstanding security update in its private package root) reports its
// inventory, and the compliance report shows cell01 missing the update;
// a security-update job created over the API fires, the agent runs the
// signed dispatch with real apt-get and dpkg and reports its progress,
// the scheduler's work request ends SUCCEEDED with the agent's log
// lines, and the compliance report then has none missing.
func TestSchedulerJobOnAgent(t *testing.T) {
	pkgmgrtest.RequireApt(t)
	if _, err := chdb.FindLibrary(""); err != nil {
		testenv.SkipOrFail(t, testenv.CHDB, "needs libchdb.so (run 'make deps'): %v", err)
	}
	dir := t.TempDir()
	cfg := sampleConfig(dir, filepath.Join(dir, "audit.log"))
	appendTo(t, cfg.Collector.Input.Path, "")
	cfg.Scheduler.TickInterval = 100 * time.Millisecond
	r := start(t, cfg)
	ctx := context.Background()
	c := &client.Client{BaseURL: r.url, Token: r.token}
	if _, err := c.CreateCompartment(ctx, policy.CompartmentInput{ID: "tenancy", Name: "tenancy"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateInstance(ctx, scheduler.InstanceInput{ID: "cell01", DisplayName: "cell01", Host: "cell01", CompartmentID: "tenancy"}); err != nil {
		t.Fatal(err)
	}

	// cell01's packages: openssl 3.0.14-1 installed, 3.0.15-1 fixing a CVE
	// available.
	repo := pkgmgrtest.BuildRepo(t, []pkgmgrtest.Package{{Name: "openssl", Version: "3.0.14-1"}, {Name: "openssl", Version: "3.0.15-1"}})
	root := filepath.Join(dir, "pkgroot")
	if err := pkgmgr.PrepareRoot(root, "deb [trusted=yes] file:"+repo+" ./\n"); err != nil {
		t.Fatal(err)
	}
	apt, err := pkgmgr.NewApt(pkgmgr.AptConfig{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := apt.Inventory(ctx); err != nil {
		t.Fatal(err)
	}
	if res, err := apt.Install(ctx, []string{"openssl=3.0.14-1"}); err != nil || res.Status != pkgmgr.Succeeded {
		t.Fatalf("preparing the root: %v %+v", err, res)
	}
	tracker := filepath.Join(dir, "tracker.json")
	if err := os.WriteFile(tracker, []byte(`{"openssl": {"CVE-2024-9143": {"releases": {"bookworm": {"status": "resolved", "fixed_version": "3.0.15-1"}}}}}`), 0o644); err != nil {
		t.Fatal(err)
	}

	ac := agent.DefaultConfig()
	ac.Kafka = r.app.kafkaFor(kafka.RoleAgent)
	ac.Host = "cell01"
	ac.Root = filepath.Join(dir, "plan")
	ac.GrantKeys = []string{filepath.Join(cfg.Embedded.DataDir, GrantsPublicKeyName)}
	ac.Instance = agent.InstanceConfig{ID: "cell01", CompartmentPath: []string{"tenancy"}}
	ac.Work.StateDir = filepath.Join(dir, "work")
	ac.Work.PackageRoot = root
	ac.Work.Release = "bookworm"
	ac.Work.SecurityTracker = tracker
	ac.Work.ProgressInterval = 100 * time.Millisecond
	// The all-in-one's agent key, made and enrolled for its host
	// (cell01) at its first start, as make run's agent uses it.
	ac.KeyFile = r.app.resolvedConfig().Agent.KeyFile
	ag, err := agent.New(ac, agent.Deps{Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	actx, stopAgent := context.WithCancel(ctx)
	agentDone := make(chan error, 1)
	go func() { agentDone <- ag.Run(actx) }()
	t.Cleanup(func() {
		stopAgent()
		if err := <-agentDone; err != nil {
			t.Errorf("agent: %v", err)
		}
	})

	q := &queryapi.HTTPClient{URL: r.url, Token: r.token}
	report := func() string {
		rep, err := compliance.Read(ctx, q, compliance.Scope{Compartment: "tenancy", Recursive: true})
		if err != nil {
			return err.Error()
		}
		var b strings.Builder
		_ = compliance.WriteText(&b, rep, true)
		return b.String()
	}
	until(t, "cell01 missing the openssl update in the compliance report", 60*time.Second, func() bool {
		return strings.Contains(report(), "Detected out of 1 managed instance, 1 is missing security patches!") &&
			strings.Contains(report(), " openssl 3.0.15-1\n CVEs: CVE-2024-9143\n")
	})

	job, err := c.CreateJob(ctx, scheduler.JobInput{DisplayName: "security updates", CompartmentID: "tenancy", ScheduleType: scheduler.OneTime,
		TimeNextExecution: time.Now().Add(time.Second).UTC().Truncate(time.Millisecond), OperationType: schemas.OperationUpdateAll,
		UpdateType: schemas.UpdateSecurity, ManagedInstances: []string{"cell01"}})
	if err != nil {
		t.Fatal(err)
	}
	var wr scheduler.WorkRequest
	until(t, "the job's work request SUCCEEDED on the agent", 90*time.Second, func() bool {
		page, err := c.ListWorkRequests(ctx, client.ListOptions{Filters: url.Values{"scheduledJobId": {job.ID}}})
		if err != nil || len(page.Items) != 1 {
			return false
		}
		wr = page.Items[0]
		return wr.Status == scheduler.Succeeded || wr.Status == scheduler.Failed
	})
	if wr.Status != scheduler.Succeeded || wr.PercentComplete != 100 {
		t.Fatalf("work request %+v", wr)
	}
	logs, err := c.WorkRequestLogs(ctx, wr.ID)
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for _, l := range logs {
		text.WriteString(l.Message + "\n")
	}
	for _, want := range []string{"UPDATEALL SECURITY on instance cell01", "Unpacking openssl (3.0.15-1) over (3.0.14-1)", "Setting up openssl (3.0.15-1)"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("the work request's logs lack %q:\n%s", want, text.String())
		}
	}
	until(t, "none missing in the compliance report after the run", 60*time.Second, func() bool {
		return strings.Contains(report(), "Detected out of 1 managed instance, None is missing security patches!")
	})
}
