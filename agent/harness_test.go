package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/audittest"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

// testSeqs numbers the test's records by the clock in microseconds, as
// agents and grant publish do (a consumer refuses a number more than
// grants.MaxSeqAhead above its clock), strictly increasing.
var testSeqs grants.ClockSeq

// harness is an agent against the in-process broker: grants signed by a
// trusted key are published, the reports read back.
type harness struct {
	t       *testing.T
	kcfg    kafka.Config
	broker  *kafka.Embedded
	signer  *sign.Signer
	cfg     Config
	reports chan schemas.AgentReport
	seen    []schemas.AgentReport
	dead    chan kafka.Record
	// the other messages of the report topic: work progress and
	// inventories, in the order written.
	progress    chan schemas.WorkProgress
	inventories chan schemas.Inventory
	// kernel is the kernel's audit state, held by a live harness.
	kernel *audittest.Kernel
}

const testHost = "dbhost01"

func newHarness(t *testing.T) *harness {
	t.Helper()
	kcfg, broker := kafkatest.Start(t, 1)
	key, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := sign.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(t.TempDir(), "grants.pub")
	if err := sign.SavePublicKey(pub, s.PublicKey()); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Kafka = kcfg
	cfg.Host = testHost
	cfg.GrantKeys = []string{pub}
	cfg.Root = filepath.Join(t.TempDir(), "plan")
	// The host's key, made as the agent makes it at its first start, and
	// enrolled: every message of the topic must verify against it.
	cfg.KeyFile = filepath.Join(t.TempDir(), "agent.key")
	hostKey, _, err := sign.EnsureKeyPair(cfg.KeyFile, cfg.KeyFile+".pub")
	if err != nil {
		t.Fatal(err)
	}
	enrolled := t.TempDir()
	if _, err := sign.Enroll(enrolled, testHost, hostKey.PublicKey()); err != nil {
		t.Fatal(err)
	}
	hosts := sign.NewKeyDir(enrolled)
	h := &harness{t: t, kcfg: kcfg, broker: broker, signer: s, cfg: cfg,
		reports: make(chan schemas.AgentReport, 256), dead: make(chan kafka.Record, 256),
		progress: make(chan schemas.WorkProgress, 4096), inventories: make(chan schemas.Inventory, 256)}
	h.follow(schemas.TopicAgent, func(r kafka.Record) {
		// Every message of the topic is signed by the host's enrolled
		// key and decodes strictly as exactly one of its types.
		m, err := grants.DecodeAgent(r.Key, r.Value, hosts)
		if err != nil {
			t.Errorf("message on %s refused: %v: %s", schemas.TopicAgent, err, r.Value)
			return
		}
		r.Value = m.Payload
		rep, err := schemas.DecodeAgentReport(r.Value)
		if err == nil {
			if string(r.Key) != rep.Host {
				t.Errorf("report keyed %q, host %q", r.Key, rep.Host)
			}
			h.reports <- rep
			return
		}
		if p, perr := schemas.DecodeWorkProgress(r.Value); perr == nil {
			if string(r.Key) != p.Host {
				t.Errorf("work progress keyed %q, host %q", r.Key, p.Host)
			}
			h.progress <- p
			return
		}
		if v, ierr := schemas.DecodeInventory(r.Value); ierr == nil {
			if string(r.Key) != v.Host {
				t.Errorf("inventory keyed %q, host %q", r.Key, v.Host)
			}
			h.inventories <- v
			return
		}
		t.Errorf("message on %s is no report, work progress or inventory: %v: %s", schemas.TopicAgent, err, r.Value)
	})
	h.follow(schemas.TopicDeadLetter, func(r kafka.Record) { h.dead <- r })
	return h
}

func (h *harness) follow(topic string, fn func(kafka.Record)) {
	ctx, cancel := context.WithCancel(context.Background())
	f, err := h.kcfg.NewFollower(kafka.FollowerConfig{Topic: topic, MaxWait: 50 * time.Millisecond, Apply: func(r kafka.Record) error {
		fn(r)
		return nil
	}})
	if err != nil {
		h.t.Fatal(err)
	}
	var wg sync.WaitGroup
	h.t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() { _ = f.Run(ctx) })
}

// start runs the agent until the returned stop is called (or the test
// ends); host nil: the one the configuration chooses.
func (h *harness) start(host Host) (stop func()) {
	h.t.Helper()
	stop, _ = h.startAgent(host)
	return stop
}

// startAgent is start, returning the agent too (its metrics, on a
// registry of its own).
func (h *harness) startAgent(host Host) (stop func(), a *Agent) {
	h.t.Helper()
	a, err := New(h.cfg, Deps{Registry: prometheus.NewRegistry(), Host: host})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				h.t.Errorf("agent Run: %v", err)
			}
		})
	}
	h.t.Cleanup(stop)
	return stop, a
}

func (h *harness) publish(recs ...kafka.Record) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := grants.Publish(ctx, h.kcfg, recs...); err != nil {
		h.t.Fatal(err)
	}
}

// grant publishes g signed by the policy's key; unnumbered, it is
// numbered by the clock (later calls, higher numbers).
func (h *harness) grant(g schemas.Grant) {
	h.t.Helper()
	if g.PublishSeq == 0 {
		g.PublishSeq = testSeqs.Next()
	}
	r, err := grants.Record(h.signer, g)
	if err != nil {
		h.t.Fatal(err)
	}
	h.publish(r)
}

func (h *harness) revoke(login string) time.Time {
	h.t.Helper()
	r, err := grants.Revocation(h.signer, login, testSeqs.Next())
	if err != nil {
		h.t.Fatal(err)
	}
	at := time.Now()
	h.publish(r)
	return at
}

// waitReport waits for a report on login in state, and returns it.
func (h *harness) waitReport(login, state string) schemas.AgentReport {
	h.t.Helper()
	for _, r := range h.seen {
		if r.LoginID == login && r.State == state {
			return r
		}
	}
	deadline := time.After(30 * time.Second)
	for {
		select {
		case r := <-h.reports:
			h.seen = append(h.seen, r)
			if r.LoginID == login && r.State == state {
				return r
			}
		case <-deadline:
			h.t.Fatalf("no %s report on %s within 30s; reports: %+v", state, login, h.seen)
		}
	}
}

// waitReports waits until n reports of login in state were seen (by
// every agent the harness started), failing the test after 30 s.
func (h *harness) waitReports(login, state string, n int) {
	h.t.Helper()
	count := func() int {
		c := 0
		for _, r := range h.seen {
			if r.LoginID == login && r.State == state {
				c++
			}
		}
		return c
	}
	deadline := time.After(30 * time.Second)
	for count() < n {
		select {
		case r := <-h.reports:
			h.seen = append(h.seen, r)
		case <-deadline:
			h.t.Fatalf("%d %s reports on %s within 30s, want %d; reports: %+v", count(), state, login, n, h.seen)
		}
	}
}

// newLogin is a fresh login as the policy service makes them.
func newLogin(t testing.TB) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// diagGrant is an INFRA_DIAG-like grant of login on the test host.
func diagGrant(login string) schemas.Grant {
	now := time.Now().UTC().Truncate(time.Millisecond)
	return schemas.Grant{
		LoginID: login, ReqAuthID: "ocid1.accessrequest.t" + login[:min(8, len(login))], Resource: "exacc-main",
		Actions: []string{"INFRA_DIAG"}, AuditType: schemas.AuditCommandKeystroke,
		Hosts: []string{"cps01", testHost}, Start: now.Add(-time.Minute), Expires: now.Add(4 * time.Hour),
		SSHAuthorizedKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHf0kLQ1Jt3uY9w9f7lJ0o7yxg3oRk1Qm8b2f3gTq0aZ operator@vendor"},
		Privileges: &schemas.Privileges{
			Layers: []string{"CPS", "HOST"}, Chroot: true, SuUsers: []string{"daemon"},
			SudoCommands:   []string{"/usr/bin/systemctl restart dbcs-*", "/usr/bin/id"},
			Commands:       []string{"cat", "ls"},
			DeniedCommands: []string{"/usr/sbin/auditctl", "rm"},
			ReadablePaths:  []string{"/var/log"},
		},
	}
}
