package forwarder

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/siemtest"
	"github.com/auditpipe/auditpipe/schemas"
)

// TestDestinationsComeAndGo: a destination added while the forwarder runs
// starts its sender (and reads the topic from the start, as a new group
// does), one removed stops and commits, one whose set does not validate is
// not applied and the running ones go on; no restart of the forwarder.
func TestDestinationsComeAndGo(t *testing.T) {
	a := startSIEM(t, siemtest.RsyslogOptions{})
	b := startSIEM(t, siemtest.RsyslogOptions{})
	kcfg, _ := kafkatest.Start(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	da := a.destination()
	da.Name = "a"
	db := b.destination()
	db.Name = "b"
	evs := testEvents(0, 160)
	produce(t, ctx, kcfg, evs[:100])

	src := NewStaticSource([]Destination{da})
	f, err := New(Config{Kafka: kcfg}, Options{Registerer: prometheus.NewRegistry(), Source: src})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.Run(rctx) }()

	a.rs.WaitMessages(t, 100, 30*time.Second)
	src.Set([]Destination{da, db})
	b.rs.WaitMessages(t, 100, 30*time.Second)
	waitFor(t, 10*time.Second, func() bool { return len(f.Groups()) == 2 })

	src.Set([]Destination{db})
	waitFor(t, 10*time.Second, func() bool { return len(f.Groups()) == 1 })
	if lag, err := kcfg.Lag(ctx, da.WithDefaults().Group, schemas.TopicAudit); err != nil || lag != 0 {
		t.Fatalf("a removed: its group's lag = %d, %v; want 0 (committed on the way out)", lag, err)
	}
	produce(t, ctx, kcfg, evs[100:150])
	b.rs.WaitMessages(t, 150, 30*time.Second)

	dup := db
	src.Set([]Destination{db, dup}) // two destinations named b: refused
	produce(t, ctx, kcfg, evs[150:])
	b.rs.WaitMessages(t, 160, 30*time.Second)
	if g := f.Groups(); len(g) != 1 || g[0] != db.WithDefaults().Group {
		t.Fatalf("groups after a refused set: %v", g)
	}

	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	requireExactly(t, "a", a.rs.Messages(t), evs[:100])
	requireExactly(t, "b", b.rs.Messages(t), evs)
}
