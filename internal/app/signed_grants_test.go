package app

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

// Regression (issue 9): on the all-in-one anyone who reached the embedded
// broker forged one message on opctl.grants.v1 and re-attributed an
// operator's session to another request, silently. Now the all-in-one
// creates its grant signing key on first start (DATA/grants.key, 0600;
// kept on later starts) and its collector trusts it without
// collector.grant_keys: a grant signed with it attributes the operator's
// events; an unsigned grant for the other operator is refused, and that
// operator's events, having no trusted grant, are not emitted.
func TestAllInOneTrustsItsOwnGrantKey(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "audit.log")
	cfg := sampleConfig(dir, logPath)
	cfg.Collector.Grants = nil
	cfg.Collector.FlushInterval = 200 * time.Millisecond
	if err := cfg.Validate(); err != nil {
		t.Fatalf("target all without collector.grant_keys: %v", err)
	}
	data := cfg.Embedded.DataDir
	keyPath := filepath.Join(data, GrantsKeyName)

	a, stop := startModules(t, cfg)
	for _, p := range []string{keyPath, filepath.Join(data, GrantsPublicKeyName)} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("created on first start: %v", err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
	key, err := sign.LoadPrivateKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := sign.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	const op1, op2 = "830916abb78e4157b9e45b641e34fcf6", "5f1c0e9d2a7b4c3e8d6f0a1b2c3d4e5f"
	signed, err := grants.Record(signer, schemas.Grant{LoginID: op1, ReqAuthID: "req-signed", AuditType: schemas.AuditCommandKeystroke, PublishSeq: 1})
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := json.Marshal(schemas.Grant{LoginID: op2, ReqAuthID: "req-forged", AuditType: schemas.AuditCommand})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := grants.Publish(ctx, a.kafkaFor(kafka.RolePolicy), signed, kafka.Record{Key: []byte(op2), Value: plain}); err != nil {
		t.Fatal(err)
	}
	reg := a.Registry()
	waitMetric(t, reg, "the forged grant refused", `auditpipe_collector_grants_refused_total{reason="unsigned"}`, 1)
	waitMetric(t, reg, "the signed grant applied", "auditpipe_collector_grants", 1)

	first, second := sampleHalves(t)
	appendTo(t, logPath, first+second)
	// op1's 13 events (login, 10 commands, keystrokes, logout), none of op2.
	events := readEvents(t, a.kafkaFor(kafka.RoleIndexer), 13, 3*time.Second)
	for _, e := range events {
		if e.LoginID != op1 || e.ReqAuthID != "req-signed" {
			t.Errorf("event %s of %s: req_auth_id %q; want only %s's, attributed to req-signed", e.RecID, e.LoginID, e.ReqAuthID, op1)
		}
	}
	stop()

	// A second start keeps the key: what it signed stays trusted.
	before, _ := os.ReadFile(keyPath)
	_, stop = startModules(t, cfg)
	stop()
	if after, _ := os.ReadFile(keyPath); string(after) != string(before) {
		t.Fatal("the second start replaced the signing key")
	}
}

// startModules runs cfg's target all with the modules the grants need
// (server, broker, collector: no store), or mods, until the returned stop.
func startModules(t *testing.T, cfg Config, mods ...string) (*App, func()) {
	t.Helper()
	if len(mods) == 0 {
		mods = []string{"server", "broker", "collector"}
	}
	return startWith(t, cfg, mods...)
}

// startWith runs cfg's target with only the modules named (and their
// dependencies) until the returned stop.
func startWith(t *testing.T, cfg Config, mods ...string) (*App, func()) {
	t.Helper()
	a, err := newApp(cfg, Deps{Log: slog.New(slog.NewTextHandler(testLog{t}, nil))}, modules(), map[string][]string{cfg.Target: mods})
	if err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	a.deps.Ready = func(s string) { addr <- s }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	select {
	case <-addr: // every module initialised
	case err := <-done:
		cancel()
		t.Fatalf("did not start: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("did not start in 60s")
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("stopped with: %v", err)
				}
			case <-time.After(60 * time.Second):
				t.Error("did not stop in 60s")
			}
		})
	}
	t.Cleanup(stop)
	return a, stop
}

// waitMetric waits until the series (name, or name{labels} as the text
// exposition writes it) has the value want.
func waitMetric(t *testing.T, reg prometheus.Gatherer, what, series string, want float64) {
	t.Helper()
	name, labels, _ := strings.Cut(strings.TrimSuffix(series, "}"), "{")
	deadline := time.Now().Add(20 * time.Second)
	for {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				var ls []string
				for _, lp := range m.GetLabel() {
					ls = append(ls, lp.GetName()+`="`+lp.GetValue()+`"`)
				}
				if strings.Join(ls, ",") == labels && m.GetCounter().GetValue()+m.GetGauge().GetValue() == want {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (%s = %v)", what, series, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readEvents reads the audit topic until it holds want audited events
// (chain checkpoints left out) and then quiet more passed without another
// one; it returns them all.
func readEvents(t *testing.T, kc kafka.Config, want int, quiet time.Duration) []schemas.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	var out []schemas.Event
	last := time.Now()
	f, err := kc.NewFollower(kafka.FollowerConfig{Topic: schemas.TopicAudit, MaxWait: 100 * time.Millisecond, Apply: func(r kafka.Record) error {
		var e schemas.Event
		if err := json.Unmarshal(r.Value, &e); err != nil {
			t.Errorf("bad event: %v", err)
		}
		if e.Event == schemas.KindChain {
			return nil // the collector's chain checkpoints: not audited events
		}
		mu.Lock()
		out, last = append(out, e), time.Now()
		mu.Unlock()
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for ctx.Err() == nil {
			time.Sleep(50 * time.Millisecond)
			mu.Lock()
			enough := len(out) >= want && time.Since(last) > quiet
			mu.Unlock()
			if enough {
				cancel()
			}
		}
	}()
	if err := f.Run(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(out) < want {
		t.Fatalf("%d events in Kafka, want %d", len(out), want)
	}
	return out
}

// grantKeyFile writes the public key of a new signing key under dir and
// returns its path, for collector.grant_keys.
func grantKeyFile(t *testing.T, dir string) string {
	t.Helper()
	key, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := sign.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "grants-"+s.KeyID()+".pub")
	if err := sign.SavePublicKey(path, s.PublicKey()); err != nil {
		t.Fatal(err)
	}
	return path
}
