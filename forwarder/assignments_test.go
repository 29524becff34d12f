package forwarder

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/siemtest"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

// testSeqs numbers the test's records by the clock in microseconds, as
// agents and grant publish do (a consumer refuses a number more than
// grants.MaxSeqAhead above its clock), strictly increasing.
var testSeqs grants.ClockSeq

// assignmentKey makes a signing key and writes its public half in dir.
func assignmentKey(t *testing.T, dir string) (*sign.Signer, string) {
	t.Helper()
	key, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := sign.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "assignments-"+s.KeyID()+".pub")
	if err := sign.SavePublicKey(path, s.PublicKey()); err != nil {
		t.Fatal(err)
	}
	return s, path
}

// assignmentTo is resource's assignment forwarding its hosts to s.
func assignmentTo(t *testing.T, resource string, s *siem, hosts ...string) schemas.Assignment {
	t.Helper()
	host, port, _ := net.SplitHostPort(s.rs.Addr)
	p, _ := strconv.Atoi(port)
	ca, err := os.ReadFile(s.ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	return schemas.Assignment{ResourceID: resource, IsEnforcedAlways: true, IsLogForwarded: true,
		RemoteSyslogServerAddress: host, RemoteSyslogServerPort: p, RemoteSyslogServerCACert: string(ca), Hosts: hosts, LifecycleState: "APPLIED"}
}

// sealed is a as signed by s; unnumbered, it is numbered by the clock
// (later calls, higher numbers).
func sealed(t *testing.T, s *sign.Signer, a schemas.Assignment) kafka.Record {
	t.Helper()
	if a.PublishSeq == 0 {
		a.PublishSeq = testSeqs.Next()
	}
	r, err := grants.AssignmentRecord(s, a)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// followingConfig is a forwarder's configuration following the
// assignments, trusting the key file pub, with the tests' timeouts.
func followingConfig(kcfg kafka.Config, tmpl Destination, pub string) Config {
	return Config{Kafka: kcfg, Assignments: AssignmentsConfig{Follow: true, Template: tmpl}, AssignmentKeys: []string{pub}}
}

// TestAssignmentSource: the forwarder follows opctl.assignments.v1: a
// resource whose signed assignment forwards logs gets a destination (its
// SIEM, its CA, its hosts), a second one starts while running, and the
// signed removal stops the first; no restart.
func TestAssignmentSource(t *testing.T) {
	a := startSIEM(t, siemtest.RsyslogOptions{})
	b := startSIEM(t, siemtest.RsyslogOptions{})
	kcfg, _ := kafkatest.Start(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	policy, pub := assignmentKey(t, t.TempDir())
	w, err := kcfg.NewWriter(kafka.TopicAssignments)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	write := func(r kafka.Record) {
		t.Helper()
		if err := w.Write(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	write(sealed(t, policy, assignmentTo(t, "r-a", a, "host0")))

	evs := testEvents(0, 90) // hosts host0, host1, host2 in turn
	produce(t, ctx, kcfg, evs[:60])
	tmpl := a.destination() // timeouts and backoff of the tests
	cfg := followingConfig(kcfg, tmpl, pub)
	reg := prometheus.NewRegistry()
	src, err := NewAssignmentSource(cfg, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	f, err := New(cfg, Options{Registerer: reg, Source: src})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.Run(rctx) }()

	byHost := func(host string, evs []*schemas.Event) []*schemas.Event {
		var out []*schemas.Event
		for _, e := range evs {
			if e.Host == host {
				out = append(out, e)
			}
		}
		return out
	}
	// Each wait fails the test at once when it times out: the checks at
	// the end would otherwise fail only after every wait's timeout (90 s).
	wait := func(name string, r *siemtest.Rsyslog, n int) {
		t.Helper()
		if got := r.WaitMessages(t, n, 30*time.Second); len(got) < n {
			t.Fatalf("SIEM %s received %d messages, want %d", name, len(got), n)
		}
	}
	wait("a", a.rs, 20)
	write(sealed(t, policy, assignmentTo(t, "r-b", b, "host1")))
	wait("b", b.rs, 20)

	t.Logf("groups %v", f.Groups())
	waitFor(t, 10*time.Second, func() bool { return len(f.Groups()) == 2 })
	if got := metricSum(t, reg, "auditpipe_forwarder_assignments"); got != 2 {
		t.Errorf("auditpipe_forwarder_assignments = %v, want 2", got)
	}

	// r-a is removed (the signed removal record): its sender stops; what
	// comes later for host0 goes nowhere, host1's still to b.
	rm, err := grants.AssignmentRemoval(policy, "r-a", testSeqs.Next())
	if err != nil {
		t.Fatal(err)
	}
	write(rm)
	waitFor(t, 10*time.Second, func() bool { return len(f.Groups()) == 1 })
	produce(t, ctx, kcfg, evs[60:])
	wait("b", b.rs, 30)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	requireExactly(t, "a", a.rs.Messages(t), byHost("host0", evs[:60]))
	requireExactly(t, "b", b.rs.Messages(t), byHost("host1", evs))
	if got := metricSum(t, reg, "auditpipe_forwarder_assignments_refused_total"); got != 0 {
		t.Errorf("%v records refused, want none", got)
	}
}

// Regression: the CA certificate file of a resource was written again,
// truncated first, at every change of the set of destinations, and a
// destination starting at that moment read it empty and failed, which
// stopped the forwarder (TestAssignmentSource failed about one run in
// four). The file is written once, whole: a reader beside a thousand
// updates never sees it otherwise.
func TestAssignmentCAFileStable(t *testing.T) {
	src := &AssignmentSource{caDir: t.TempDir(), current: map[string]schemas.Assignment{}, changed: make(chan struct{}, 1), m: newAssignmentMetrics(nil)}
	ca := "-----BEGIN CERTIFICATE-----\n" + strings.Repeat("MIIB", 400) + "\n-----END CERTIFICATE-----\n"
	a := schemas.Assignment{ResourceID: "r-a", IsEnforcedAlways: true, IsLogForwarded: true, RemoteSyslogServerAddress: "siem",
		RemoteSyslogServerPort: 6514, RemoteSyslogServerCACert: ca, Hosts: []string{"h"}}
	src.set("r-a", &a)
	ds, err := src.destinations()
	if err != nil {
		t.Fatal(err)
	}
	path := ds[0].TLS.CAFile
	stop := make(chan struct{})
	bad := make(chan string, 1)
	go func() {
		defer close(bad)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if b, err := os.ReadFile(path); err != nil || string(b) != ca {
				bad <- fmt.Sprintf("read %d bytes, %v", len(b), err)
				return
			}
		}
	}()
	for range 1000 {
		if _, err := src.destinations(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if msg, ok := <-bad; ok {
		t.Fatalf("the CA file changed under a reader: %s", msg)
	}
}
