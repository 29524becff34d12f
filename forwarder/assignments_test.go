package forwarder

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/siemtest"
	"github.com/auditpipe/auditpipe/schemas"
)

// TestAssignmentSource: the forwarder follows opctl.assignments.v1: a
// resource whose assignment forwards logs gets a destination (its SIEM,
// its CA, its hosts), a second one starts while running, and a tombstone
// stops the first; no restart.
func TestAssignmentSource(t *testing.T) {
	a := startSIEM(t, siemtest.RsyslogOptions{})
	b := startSIEM(t, siemtest.RsyslogOptions{})
	kcfg, _ := kafkatest.Start(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w, err := kcfg.NewWriter(kafka.TopicAssignments)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	assign := func(resource string, s *siem, hosts ...string) {
		t.Helper()
		host, port, _ := net.SplitHostPort(s.rs.Addr)
		p, _ := strconv.Atoi(port)
		ca, err := os.ReadFile(s.ca.CertPEM)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := json.Marshal(schemas.Assignment{ResourceID: resource, IsEnforcedAlways: true, IsLogForwarded: true,
			RemoteSyslogServerAddress: host, RemoteSyslogServerPort: p, RemoteSyslogServerCACert: string(ca), Hosts: hosts})
		if err := w.Write(ctx, kafka.Record{Key: []byte(resource), Value: v}); err != nil {
			t.Fatal(err)
		}
	}
	assign("r-a", a, "host0")

	evs := testEvents(0, 90) // hosts host0, host1, host2 in turn
	produce(t, ctx, kcfg, evs[:60])
	tmpl := a.destination() // timeouts and backoff of the tests
	src := NewAssignmentSource(kcfg, "", tmpl, nil)
	f, err := New(Config{Kafka: kcfg}, Options{Registerer: prometheus.NewRegistry(), Source: src})
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
	a.rs.WaitMessages(t, 20, 30*time.Second)
	assign("r-b", b, "host1")
	b.rs.WaitMessages(t, 20, 30*time.Second)
	waitFor(t, 10*time.Second, func() bool { return len(f.Groups()) == 2 })

	// r-a is unassigned: its sender stops; what comes later for host0
	// goes nowhere, host1's still to b.
	if err := w.Write(ctx, kafka.Record{Key: []byte("r-a")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { return len(f.Groups()) == 1 })
	produce(t, ctx, kcfg, evs[60:])
	b.rs.WaitMessages(t, 30, 30*time.Second)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	requireExactly(t, "a", a.rs.Messages(t), byHost("host0", evs[:60]))
	requireExactly(t, "b", b.rs.Messages(t), byHost("host1", evs))
}
