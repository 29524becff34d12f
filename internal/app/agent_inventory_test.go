package app

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/agent"
	"github.com/auditpipe/auditpipe/agent/pkgmgr"
	"github.com/auditpipe/auditpipe/agent/pkgmgr/pkgmgrtest"
	"github.com/auditpipe/auditpipe/clickhouse/chdb"
	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/internal/testenv"
	"github.com/auditpipe/auditpipe/queryapi"
	"github.com/auditpipe/auditpipe/report/compliance"
	"github.com/auditpipe/auditpipe/schemas"
)

// TestAgentInventoryCompliance: target agent with an instance runs a
// signed INSTALL in its private package root (real apt-get and dpkg) and
// reports its inventory; target indexer stores it in instance_inventory
// (embedded chDB); the compliance report, read through the indexer's
// query endpoint as `auditpipe report compliance --server` reads it,
// prints the instance with its outstanding security update and CVEs.
func TestAgentInventoryCompliance(t *testing.T) {
	pkgmgrtest.RequireApt(t)
	if _, err := chdb.FindLibrary(""); err != nil {
		testenv.SkipOrFail(t, testenv.CHDB, "needs libchdb.so (run 'make deps'): %v", err)
	}
	kcfg, _ := kafkatest.Start(t, 1)
	dir := t.TempDir()
	key, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := sign.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(dir, "grants.pub")
	if err := sign.SavePublicKey(pub, s.PublicKey()); err != nil {
		t.Fatal(err)
	}
	repo := pkgmgrtest.BuildRepo(t, []pkgmgrtest.Package{
		{Name: "openssl", Version: "3.0.14-1"}, {Name: "openssl", Version: "3.0.15-1"}, {Name: "tzdata", Version: "2025a-1"},
	})
	root := filepath.Join(dir, "pkgroot")
	if err := pkgmgr.PrepareRoot(root, "deb [trusted=yes] file:"+repo+" ./\n"); err != nil {
		t.Fatal(err)
	}
	tracker := filepath.Join(dir, "tracker.json")
	feed := `{"openssl": {
  "CVE-2024-9143": {"releases": {"bookworm": {"status": "resolved", "fixed_version": "3.0.15-1"}}},
  "CVE-2024-5535": {"releases": {"bookworm": {"status": "resolved", "fixed_version": "3.0.15-1"}}}}}`
	if err := os.WriteFile(tracker, []byte(feed), 0o644); err != nil {
		t.Fatal(err)
	}

	ag := DefaultConfig()
	ag.Target = TargetAgent
	ag.Server.HTTPAddr = "off"
	ag.Kafka.Brokers = kcfg.Brokers
	ag.Agent.Host = "db01"
	ag.Agent.Root = filepath.Join(dir, "plan")
	ag.Agent.GrantKeys = []string{pub}
	ag.Agent.Instance = agentInstance()
	ag.Agent.Work.StateDir = filepath.Join(dir, "work")
	ag.Agent.Work.PackageRoot = root
	ag.Agent.Work.Release = "bookworm"
	ag.Agent.Work.SecurityTracker = tracker
	// The agent's key, made at its first start, enrolled by an
	// administrator (auditpipe agent enroll) in the indexer's
	// host_keys.dir; made here first, so that its first inventory is
	// already accepted.
	ag.Agent.KeyFile = filepath.Join(dir, "agent", "agent.key")
	if err := os.MkdirAll(filepath.Dir(ag.Agent.KeyFile), 0o700); err != nil {
		t.Fatal(err)
	}
	hostKey, _, err := sign.EnsureKeyPair(ag.Agent.KeyFile, ag.Agent.KeyFile+".pub")
	if err != nil {
		t.Fatal(err)
	}
	hostKeys := filepath.Join(dir, "host-keys")
	if _, err := sign.Enroll(hostKeys, ag.Agent.Host, hostKey.PublicKey()); err != nil {
		t.Fatal(err)
	}
	startTarget(t, ag)

	tokens, tok := writeTokens(t, dir, auth.RoleAuditor)
	ix := DefaultConfig()
	ix.Target = TargetIndexer
	ix.Server.HTTPAddr = "127.0.0.1:0"
	ix.Server.Auth.TokensFile = tokens
	ix.Kafka.Brokers = kcfg.Brokers
	ix.ClickHouse.Embedded.Dir = filepath.Join(dir, "chdb")
	ix.Indexer.Batch.MaxWait = 100 * time.Millisecond
	ix.HostKeys.Dir = hostKeys
	r := startTarget(t, ix)

	now := time.Now().UTC().Truncate(time.Millisecond)
	rec, err := grants.DispatchRecord(s, schemas.Dispatch{WorkRequestID: "wr-1", Action: schemas.DispatchRun, JobID: "job-1", ExecutionID: "ex-1",
		InstanceID: "ocid1.instance.db01", Host: "db01", OperationType: schemas.OperationInstall, PackageNames: []string{"openssl=3.0.14-1", "tzdata"},
		NotAfter: now.Add(time.Hour), Deadline: now.Add(time.Hour), Time: now, PublishSeq: 1})
	if err != nil {
		t.Fatal(err)
	}
	w, err := kcfg.NewWriter(schemas.TopicDispatch)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.Write(ctx, rec); err != nil {
		t.Fatal(err)
	}
	w.Close()

	q := &queryapi.HTTPClient{URL: r.url, Token: config.Secret(tok[auth.RoleAuditor])}
	const want = `
 Patch Compliance Report Sample
 ==============================


Detected out of 1 managed instance, 1 is missing security patches!

Managed Instance db01 (ocid1.instance.db01)
 has the following outstanding security patches:
 openssl 3.0.15-1
 CVEs: CVE-2024-5535,    CVE-2024-9143

`
	var got string
	deadline := time.Now().Add(120 * time.Second)
	for {
		rep, err := compliance.Read(ctx, q, compliance.Scope{Compartment: "ocid1.compartment.root", Recursive: true})
		if err == nil {
			var b strings.Builder
			if err := compliance.WriteText(&b, rep, true); err != nil {
				t.Fatal(err)
			}
			if got = b.String(); got == want {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("compliance report after the run (err %v):\n%s\nwant:\n%s", err, got, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The group and the compartment itself select it too; another
	// compartment does not.
	for _, tc := range []struct {
		scope compliance.Scope
		want  int
	}{
		{compliance.Scope{Group: "ocid1.instancegroup.dbs"}, 1},
		{compliance.Scope{Compartment: "ocid1.compartment.prod"}, 1},
		{compliance.Scope{Compartment: "ocid1.compartment.other"}, 0},
	} {
		rep, err := compliance.Read(ctx, q, tc.scope)
		if err != nil {
			t.Fatal(err)
		}
		if rep.TotalInstances != tc.want {
			t.Errorf("scope %+v: %d instances, want %d", tc.scope, rep.TotalInstances, tc.want)
		}
	}
}

func agentInstance() agent.InstanceConfig {
	return agent.InstanceConfig{ID: "ocid1.instance.db01", Name: "db01",
		CompartmentPath: []string{"ocid1.compartment.root", "ocid1.compartment.prod"}, GroupIDs: []string{"ocid1.instancegroup.dbs"}}
}
