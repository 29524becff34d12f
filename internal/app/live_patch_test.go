package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/agent"
	"github.com/auditpipe/auditpipe/agent/pkgmgr"
	"github.com/auditpipe/auditpipe/agent/pkgmgr/pkgmgrtest"
	"github.com/auditpipe/auditpipe/collector/netlinksrc"
	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/audittest"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/internal/testenv"
	"github.com/auditpipe/auditpipe/schemas"
)

// TestLiveGovernedPatchRun: a governed patch run on this host is in the
// audit trail tied to its access request, like an operator's session.
// The all-in-one (broker, store, indexer, collector on netlink, agent
// live with an instance and a private package root) follows a signed
// grant for a fresh login, then a signed dispatch naming the grant's
// request and login; the agent runs apt-get with the login's loginuid,
// and ClickHouse then holds apt-get's, dpkg's and the maintainer
// script's commands with the grant's req_auth_id, and the instance's
// inventory after the run. Root only, under the kernel audit lock.
func TestLiveGovernedPatchRun(t *testing.T) {
	pkgmgrtest.RequireApt(t)
	k := audittest.Take(t)
	for _, tool := range []string{"/usr/sbin/visudo", "/usr/bin/sudo", "/usr/sbin/auditctl"} {
		if _, err := os.Stat(tool); err != nil {
			testenv.SkipOrFail(t, testenv.HostTools, "%s missing (scripts/deps.d/50-host-agent.sh)", tool)
		}
	}
	probe, err := netlinksrc.Open(netlinksrc.Options{})
	if err != nil {
		testenv.SkipOrFail(t, testenv.KernelAudit, "audit netlink multicast socket: %v", err)
	}
	probe.Close()
	k.Enable(t)

	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	signer, _, err := sign.EnsureKeyPair(filepath.Join(data, GrantsKeyName), filepath.Join(data, GrantsPublicKeyName))
	if err != nil {
		t.Fatal(err)
	}
	login := newPatchLogin(t)
	t.Cleanup(func() { removeUser(t, login) })
	repo := pkgmgrtest.BuildRepo(t, []pkgmgrtest.Package{{Name: "patchme", Version: "1.0", Postinst: `echo "patchme configured"`}})
	root := filepath.Join(dir, "pkgroot")
	if err := pkgmgr.PrepareRoot(root, "deb [trusted=yes] file:"+repo+" ./\n"); err != nil {
		t.Fatal(err)
	}

	const host = "livehost"
	cfg := DefaultConfig()
	cfg.Target = TargetAll
	cfg.Embedded.DataDir = data
	cfg.Embedded.KafkaListen = "127.0.0.1:0"
	cfg.Server.HTTPAddr = "127.0.0.1:0"
	cfg.Collector.Input.Type = "netlink"
	cfg.Collector.Host = host
	cfg.Collector.Grants = nil
	cfg.Collector.FlushInterval = 200 * time.Millisecond
	cfg.Agent.Live = true
	cfg.Agent.Host = host
	cfg.Agent.GrantKeys = []string{filepath.Join(data, GrantsPublicKeyName)}
	cfg.Agent.PAMFile = filepath.Join(dir, "auditpipe-tty-audit")
	cfg.Agent.Instance = agent.InstanceConfig{ID: "ocid1.instance.livehost", CompartmentPath: []string{"ocid1.compartment.root"}}
	cfg.Agent.Work.StateDir = filepath.Join(dir, "work")
	cfg.Agent.Work.PackageRoot = root
	cfg.Agent.Work.Release = "bookworm"
	r := startLive(t, cfg)

	now := time.Now().UTC().Truncate(time.Millisecond)
	g := schemas.Grant{
		LoginID: login, ReqAuthID: "ocid1.accessrequest.patch" + login[:8], Resource: "exacc-main",
		Actions: []string{"INFRA_UPDATE_RESTART"}, AuditType: schemas.AuditCommand,
		Hosts: []string{host}, Start: now.Add(-time.Minute), Expires: now.Add(time.Hour),
		Privileges: &schemas.Privileges{Layers: []string{"HOST"}}, PublishSeq: 1,
	}
	rec, err := grants.Record(signer, g)
	if err != nil {
		t.Fatal(err)
	}
	publishGrants(t, r.app.kafkaFor(kafka.RolePolicy), rec)
	waitMetric(t, r.app.Registry(), "the grant deployed", "auditpipe_agent_grants", 1)
	waitMetric(t, r.app.Registry(), "the collector has the grant", "auditpipe_collector_grants", 1)

	d, err := grants.DispatchRecord(signer, schemas.Dispatch{WorkRequestID: "ocid1.workrequest.live1", Action: schemas.DispatchRun,
		JobID: "ocid1.job.live", ExecutionID: "ex-1", InstanceID: "ocid1.instance.livehost", Host: host,
		OperationType: schemas.OperationInstall, PackageNames: []string{"patchme"}, ReqAuthID: g.ReqAuthID, LoginID: login,
		NotAfter: now.Add(time.Hour), Deadline: now.Add(time.Hour), Time: now, PublishSeq: 1})
	if err != nil {
		t.Fatal(err)
	}
	w, err := r.app.kafkaFor(kafka.RolePolicy).NewWriter(schemas.TopicDispatch)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.Write(ctx, d); err != nil {
		t.Fatal(err)
	}
	w.Close()
	waitMetric(t, r.app.Registry(), "the run succeeded", `auditpipe_agent_work_requests_total{status="SUCCEEDED"}`, 1)

	q := func(where string) string {
		return fmt.Sprintf("SELECT count() FROM audit_events WHERE loginid = '%s' AND req_auth_id = '%s' AND event = 'command' AND %s", login, g.ReqAuthID, where)
	}
	for _, c := range []struct{ what, where string }{
		{"apt-get", "args[1] = 'apt-get' AND has(args, 'patchme')"},
		{"dpkg", "args[1] LIKE '%dpkg' AND position(arrayStringConcat(args, ' '), '--root=" + root + "') > 0"},
		{"the maintainer script", "position(arrayStringConcat(args, ' '), 'patchme.postinst') > 0"},
	} {
		if !eventually(30*time.Second, func() bool { return count(t, r, q(c.where)) != "0" }) {
			t.Errorf("%s: no command event with the request (%s); the login's events: %s", c.what, c.where,
				count(t, r, fmt.Sprintf("SELECT groupArray(tuple(req_auth_id, args)) FROM audit_events WHERE loginid = '%s'", login)))
		}
	}
	if got := count(t, r, fmt.Sprintf("SELECT count() FROM audit_events WHERE loginid = '%s' AND req_auth_id != '%s'", login, g.ReqAuthID)); got != "0" {
		t.Errorf("%s events of the login without the grant's req_auth_id", got)
	}
	if !eventually(30*time.Second, func() bool {
		return count(t, r, "SELECT count() FROM instance_inventory FINAL WHERE instance_id = 'ocid1.instance.livehost' AND package = 'patchme' AND version = '1.0'") == "1"
	}) {
		t.Errorf("no inventory with the package after the run")
	}
	t.Logf("commands of the run: %s", count(t, r, fmt.Sprintf("SELECT groupArray(args[1]) FROM audit_events WHERE req_auth_id = '%s' AND event = 'command'", g.ReqAuthID)))

	rev, err := grants.Revocation(signer, login, 2)
	if err != nil {
		t.Fatal(err)
	}
	publishGrants(t, r.app.kafkaFor(kafka.RolePolicy), rev)
	waitMetric(t, r.app.Registry(), "the grant undeployed", "auditpipe_agent_grants", 0)
	deadline := time.Now().Add(10 * time.Second)
	for exec.Command("getent", "passwd", login).Run() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the user still exists 10s after the revocation")
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.stop(t)
}

// newPatchLogin is a fresh login as the policy service makes them (32
// lowercase hex digits).
func newPatchLogin(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// publishGrants publishes signed grant records as the policy service
// would.
func publishGrants(t *testing.T, kc kafka.Config, recs ...kafka.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := grants.Publish(ctx, kc, recs...); err != nil {
		t.Fatal(err)
	}
}
