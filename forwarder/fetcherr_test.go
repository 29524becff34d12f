package forwarder

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/siemtest"
)

// TestReaderRefusedEndsRun: a forwarder whose Kafka principal may not read
// the audit topic (here the collector's, which may only produce) stops
// with an error naming its destination and the refusal, instead of going
// on without that destination. Bug (issue 15, a mutant that lived): the
// reader's error dropped when the sender had none, the destination
// stopped silently and Run went on forwarding nothing.
func TestReaderRefusedEndsRun(t *testing.T) {
	broker := kafkatest.StartSecure(t, 1)
	s := startSIEM(t, siemtest.RsyslogOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d := s.destination()
	f, err := New(Config{Kafka: broker.Client(kafka.RoleCollector), Destinations: []Destination{d}}, Options{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "destination "+d.Name) {
			t.Fatalf("Run: %v; want the destination's reader error", err)
		}
		t.Logf("Run: %v", err)
	case <-ctx.Done():
		t.Fatal("Run went on with a destination whose reader was refused")
	}
}
