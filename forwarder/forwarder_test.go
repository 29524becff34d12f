package forwarder

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/siemtest"
	"github.com/auditpipe/auditpipe/schemas"
)

func produce(t testing.TB, ctx context.Context, cfg kafka.Config, evs []*schemas.Event) {
	t.Helper()
	w, err := cfg.NewWriter(schemas.TopicAudit)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	msgs := make([]kafka.Record, len(evs))
	for i, ev := range evs {
		msgs[i] = kafka.Record{Key: []byte(ev.Host), Value: ev.AppendJSON(nil)}
	}
	for len(msgs) > 0 { // batches the broker accepts
		n := min(len(msgs), 2000)
		if err := w.Write(ctx, msgs[:n]...); err != nil {
			t.Fatal(err)
		}
		msgs = msgs[n:]
	}
}

// eventIDs counts the event_ids among received messages.
func eventIDs(t *testing.T, msgs []string) map[string]int {
	t.Helper()
	ids := map[string]int{}
	for _, m := range msgs {
		sm := parse(t, []byte(m))
		ids[(*sm.StructuredData)["opctl@32473"]["event_id"]]++
	}
	return ids
}

// waitArrived waits until every event of all has reached s, or timeout,
// and returns how many times each event_id arrived.
func waitArrived(t *testing.T, s *siem, all []*schemas.Event, timeout time.Duration) map[string]int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ids := eventIDs(t, s.rs.Messages(t))
		missing := 0
		for _, ev := range all {
			if ids[ev.EventID] == 0 {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			return ids
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func runForwarder(t *testing.T, ctx context.Context, cfg Config, reg prometheus.Registerer) (stop func() error) {
	t.Helper()
	f, err := New(cfg, Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		err := f.Run(ctx)
		// Run ending before ctx did is a failure the test may otherwise
		// only see as messages that never arrive, after its wait's timeout:
		// reported at once (and siemtest's waits stop once the test failed).
		if ctx.Err() == nil {
			t.Errorf("forwarder: Run returned before the test stopped it: %v", err)
		}
		done <- err
	}()
	return func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("forwarder did not stop within 30s")
			return nil
		}
	}
}

// TestRestartMidStream: rsyslog is restarted while events flow; every
// event_id still arrives (duplicates allowed and counted, none lost).
// Bug (issue 15): the duplicates were only logged. They are bounded: each
// one is a counted re-send, and a reconnect re-sends at most the unsettled
// window (MaxInFlight).
func TestRestartMidStream(t *testing.T) {
	s := startSIEM(t, siemtest.RsyslogOptions{})
	kcfg, _ := kafkatest.Start(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	reg := prometheus.NewRegistry()
	d := s.destination()
	d.MaxInFlight = 300
	stop := runForwarder(t, ctx, Config{Kafka: kcfg, Destinations: []Destination{d}}, reg)

	const batches, perBatch = 20, 100
	var all []*schemas.Event
	sent := func() float64 { return metricSum(t, reg, "auditpipe_forwarder_messages_sent_total") }
	for b := range batches {
		evs := testEvents(b*perBatch, perBatch)
		if b == batches/2 {
			// Events keep coming while the SIEM is down: this batch is
			// produced, and the forwarder has failed to reconnect, before
			// rsyslog is back.
			s.rs.Stop(t)
			errs := metricSum(t, reg, "auditpipe_forwarder_connect_errors_total")
			produce(t, ctx, kcfg, evs)
			all = append(all, evs...)
			waitFor(t, 20*time.Second, func() bool { return metricSum(t, reg, "auditpipe_forwarder_connect_errors_total") > errs })
			s.rs.Start(t)
			continue
		}
		produce(t, ctx, kcfg, evs)
		all = append(all, evs...)
		// The next batch once the forwarder wrote this one (re-sends
		// count too): events flow in many fetches, the restart amid them.
		waitFor(t, 20*time.Second, func() bool { return sent() >= float64(len(all)) })
	}
	ids := waitArrived(t, s, all, 60*time.Second)
	dups := 0
	for _, ev := range all {
		switch n := ids[ev.EventID]; {
		case n == 0:
			t.Errorf("event %s (seq %d) never arrived", ev.EventID, ev.Seq)
		case n > 1:
			dups += n - 1
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events, %d duplicates after the restart; reconnects %v, resent %v", len(all), dups,
		metricSum(t, reg, "auditpipe_forwarder_reconnects_total"), metricSum(t, reg, "auditpipe_forwarder_messages_resent_total"))
	reconnects, resent := metricSum(t, reg, "auditpipe_forwarder_reconnects_total"), metricSum(t, reg, "auditpipe_forwarder_messages_resent_total")
	if reconnects < 1 {
		t.Errorf("no reconnect counted")
	}
	if float64(dups) > resent {
		t.Errorf("%d duplicates at the SIEM, but only %v messages counted as re-sent", dups, resent)
	}
	if resent > reconnects*float64(d.MaxInFlight) {
		t.Errorf("%v messages re-sent over %v reconnects: more than the unsettled window (%d) each", resent, reconnects, d.MaxInFlight)
	}
}

// TestTwoForwardersShareAGroup: a second forwarder joins the first one's
// group mid-stream and the first one leaves: the partitions move between
// them, every event_id arrives, and once the survivor has sent everything
// and stopped, the group has nothing left (its commits went through the
// generation they were read in).
// It runs against the embedded broker here, and against a real Apache
// Kafka in TestTwoForwardersShareAGroupApache.
func TestTwoForwardersShareAGroup(t *testing.T) {
	t.Run("kfake", func(t *testing.T) {
		kcfg, _ := kafkatest.Start(t, 3)
		testTwoForwardersShareAGroup(t, kcfg, kcfg)
	})
}

// TestTwoForwardersShareAGroupApache is TestTwoForwardersShareAGroup
// against a real Apache Kafka, over SASL_SSL, the forwarders as the
// forwarder's principal (its ACLs: read the audit topic, its groups): a
// test of its own so that make mutate's per-mutant runs can leave it out
// by name.
func TestTwoForwardersShareAGroupApache(t *testing.T) {
	kcfg, broker := kafkatest.StartApache(t, 3)
	testTwoForwardersShareAGroup(t, kcfg, broker.Client(kafka.RoleForwarder))
}

// testTwoForwardersShareAGroup: kcfg produces and checks the lag, fcfg is
// the forwarders'.
func testTwoForwardersShareAGroup(t *testing.T, kcfg, fcfg kafka.Config) {
	s := startSIEM(t, siemtest.RsyslogOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := s.destination()
	d.Group = "auditpipe-forwarder-shared"
	cfg := Config{Kafka: fcfg, Destinations: []Destination{d}}

	const batches, perBatch = 12, 100
	var all []*schemas.Event
	var stopA func() error
	stopB := func() error { return nil }
	for b := range batches {
		evs := testEvents(b*perBatch, perBatch)
		produce(t, ctx, kcfg, evs)
		all = append(all, evs...)
		switch b {
		case 0:
			stopA = runForwarder(t, ctx, cfg, prometheus.NewRegistry())
		case 4:
			stopB = runForwarder(t, ctx, cfg, prometheus.NewRegistry())
		case 8:
			// The second member holds partitions when the first leaves.
			waitFor(t, 30*time.Second, func() bool {
				n, err := kcfg.AssignedMembers(ctx, d.Group)
				return err == nil && n == 2
			})
			if err := stopA(); err != nil {
				t.Fatal(err)
			}
		}
		// The next batch once this one arrived (instead of a pause): the
		// members change amid a flowing stream.
		waitArrived(t, s, all, 30*time.Second)
	}
	ids := waitArrived(t, s, all, 60*time.Second)
	for _, ev := range all {
		if ids[ev.EventID] == 0 {
			t.Fatalf("event %s (seq %d) never arrived", ev.EventID, ev.Seq)
		}
	}
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	if lag, err := kcfg.Lag(ctx, d.Group, schemas.TopicAudit); err != nil || lag != 0 {
		t.Fatalf("group lag after both stopped = %d, %v; want 0", lag, err)
	}
}

// TestKafkaBrokerKilledMidStreamApache: a real Apache Kafka broker is killed
// (SIGKILL) while the forwarder reads and comes back with its data: every
// event_id reaches the SIEM, and once the forwarder has stopped, its group
// has nothing left to read.
func TestKafkaBrokerKilledMidStreamApache(t *testing.T) {
	kcfg, broker := kafkatest.StartApache(t, 3)
	s := startSIEM(t, siemtest.RsyslogOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The forwarder as its own principal (SASL_SSL, its ACLs).
	stop := runForwarder(t, ctx, Config{Kafka: broker.Client(kafka.RoleForwarder), Destinations: []Destination{s.destination()}}, prometheus.NewRegistry())

	var all []*schemas.Event
	for b := range 6 {
		evs := testEvents(b*100, 100)
		produce(t, ctx, kcfg, evs)
		all = append(all, evs...)
		if b == 2 {
			broker.Kill(t)
			// Not a synchronisation: how long the broker stays away
			// (Kill waited for its exit, Start waits until it serves).
			time.Sleep(time.Second)
			broker.Start(t)
		}
	}
	ids := waitArrived(t, s, all, 2*time.Minute)
	for _, ev := range all {
		if ids[ev.EventID] == 0 {
			t.Fatalf("event %s (seq %d) never arrived", ev.EventID, ev.Seq)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if lag, err := kcfg.Lag(ctx, s.destination().WithDefaults().Group, schemas.TopicAudit); err != nil || lag != 0 {
		t.Fatalf("group lag after the stop = %d, %v; want 0", lag, err)
	}
}

// TestDestinationsFiltersAndCommits: two destinations with their own
// filters and groups; a second forwarder in the same groups finds nothing
// left to send (offsets were committed), and undecodable input goes to the
// dead-letter topic.
// Bug (issue 15): every event was a command of layer HOST, so a filter on
// hosts alone passed; and after the restart only destination a was
// checked for re-sends. The stream now mixes every kind and two layers,
// each destination must receive exactly its events, and after the restart
// neither may receive any of them again.
func TestDestinationsFiltersAndCommits(t *testing.T) {
	a := startSIEM(t, siemtest.RsyslogOptions{})
	b := startSIEM(t, siemtest.RsyslogOptions{})
	kcfg, _ := kafkatest.Start(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	da := a.destination()
	da.Name, da.Filter = "a", Filter{Hosts: []string{"host0"}, Layers: []string{"HOST"}}
	db := b.destination()
	db.Name, db.Filter = "b", Filter{Hosts: []string{"host1", "host2"}, Events: []string{"command", "keys"}}
	cfg := Config{Kafka: kcfg, Destinations: []Destination{da, db}}

	// Event i: host i%3, kind i%4, layer (i/4)%2: every combination.
	evs := testEvents(0, 300)
	for i, ev := range evs {
		ev.Event = schemas.Kinds[i%4]
		ev.Layer = []string{"HOST", "CPS"}[(i/4)%2]
	}
	var wantA, wantB []*schemas.Event
	for _, ev := range evs {
		if ev.Host == "host0" && ev.Layer == "HOST" {
			wantA = append(wantA, ev)
		}
		if ev.Host != "host0" && (ev.Event == schemas.KindCommand || ev.Event == schemas.KindKeys) {
			wantB = append(wantB, ev)
		}
	}
	produce(t, ctx, kcfg, evs)
	w, err := kcfg.NewWriter(schemas.TopicAudit)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, kafka.Record{Key: []byte("x"), Value: []byte(`{"not":"an event"}`)}); err != nil {
		t.Fatal(err)
	}
	w.Close()

	reg := prometheus.NewRegistry()
	stop := runForwarder(t, ctx, cfg, reg)
	a.rs.WaitMessages(t, len(wantA), 30*time.Second)
	b.rs.WaitMessages(t, len(wantB), 30*time.Second)
	waitFor(t, 10*time.Second, func() bool {
		return metricSum(t, reg, "auditpipe_forwarder_events_dead_lettered_total") == 2 // once per destination
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	requireExactly(t, "a", a.rs.Messages(t), wantA)
	requireExactly(t, "b", b.rs.Messages(t), wantB)
	// Everything was committed on the graceful stop.
	for _, d := range cfg.Destinations {
		if lag, err := kcfg.Lag(ctx, d.WithDefaults().Group, schemas.TopicAudit); err != nil || lag != 0 {
			t.Fatalf("%s: group lag after the graceful stop = %d, %v; want 0", d.Name, lag, err)
		}
	}

	// A restart sends nothing again, to either destination. Each
	// destination's events come from the partitions of its hosts (the key is
	// the host), read in order: once a marker event produced after the
	// restart, one for each of those hosts, has arrived, anything re-sent
	// would have arrived before it.
	markers := testEvents(300, 3) // host0, host1, host2
	for _, ev := range markers {
		ev.Event, ev.Layer = schemas.KindCommand, "HOST"
	}
	stop = runForwarder(t, ctx, cfg, prometheus.NewRegistry())
	produce(t, ctx, kcfg, markers)
	a.rs.WaitMessages(t, len(wantA)+1, 30*time.Second)
	b.rs.WaitMessages(t, len(wantB)+2, 30*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	requireExactly(t, "a after the restart", a.rs.Messages(t), append(wantA, markers[0]))
	requireExactly(t, "b after the restart", b.rs.Messages(t), append(wantB, markers[1:]...))

	m := kafkatest.Read(t, kcfg, schemas.TopicDeadLetter, 1, 30*time.Second)[0]
	if !strings.Contains(string(m.Value), `"reason":"decode"`) || !strings.Contains(string(m.Value), "not") {
		t.Fatalf("dead letter %s", m.Value)
	}
}

// requireExactly fails unless the SIEM's messages are want's events, each
// exactly once: none missing, none outside the filter, none twice.
func requireExactly(t *testing.T, who string, msgs []string, want []*schemas.Event) {
	t.Helper()
	got := eventIDs(t, msgs)
	for _, ev := range want {
		if got[ev.EventID] != 1 {
			t.Errorf("%s: event %s (%s %s %s) arrived %d times, want once", who, ev.EventID, ev.Event, ev.Layer, ev.Host, got[ev.EventID])
		}
	}
	if len(msgs) != len(want) {
		t.Fatalf("%s: received %d messages, want %d", who, len(msgs), len(want))
	}
}

// metricSum sums every series of the named metric in reg.
func metricSum(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	ca := siemtest.NewCA(t, dir, "ca")
	good := func() Config {
		return Config{Kafka: kafka.Config{Brokers: []string{"127.0.0.1:9092"}},
			Destinations: []Destination{{Address: "siem.example:6514", TLS: TLS{CAFile: ca.CertPEM}}}}
	}
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{name: "good"},
		{name: "no destinations", edit: func(c *Config) { c.Destinations = nil }, wantErr: "destinations: at least one"},
		{name: "no address", edit: func(c *Config) { c.Destinations[0].Address = "" }, wantErr: "destinations[0].address"},
		{name: "address without port", edit: func(c *Config) { c.Destinations[0].Address = "siem" }, wantErr: "destinations[0].address"},
		{name: "CA with a wrong extension", edit: func(c *Config) { c.Destinations[0].TLS.CAFile = "/etc/hosts" }, wantErr: "destinations[0].tls.ca_file"},
		{name: "cert without key", edit: func(c *Config) { c.Destinations[0].TLS.CertFile = ca.CertPEM }, wantErr: "cert_file and key_file"},
		{name: "plain and TLS", edit: func(c *Config) { c.Destinations[0].PlainTCP = true }, wantErr: "destinations[0].plain_tcp"},
		{name: "plain alone", edit: func(c *Config) { c.Destinations[0].PlainTCP = true; c.Destinations[0].TLS = TLS{} }},
		{name: "two unnamed", edit: func(c *Config) { c.Destinations = append(c.Destinations, c.Destinations[0]) }, wantErr: "destinations[1].name"},
		{name: "same group", edit: func(c *Config) {
			c.Destinations = append(c.Destinations, c.Destinations[0])
			c.Destinations[0].Name, c.Destinations[1].Name = "a", "b"
			c.Destinations[0].Group, c.Destinations[1].Group = "g", "g"
		}, wantErr: "destinations[1].group"},
		{name: "bad event kind", edit: func(c *Config) { c.Destinations[0].Filter.Events = []string{"logon"} }, wantErr: "destinations[0].filter.events"},
		{name: "bad app name", edit: func(c *Config) { c.Destinations[0].AppName = "op ctl" }, wantErr: "app_name"},
		{name: "small max size", edit: func(c *Config) { c.Destinations[0].MaxMessageSize = 100 }, wantErr: "max_message_size"},
		{name: "negative settle", edit: func(c *Config) { c.Destinations[0].Settle = -time.Second }, wantErr: "destinations[0].settle"},
		{name: "backoff inverted", edit: func(c *Config) {
			c.Destinations[0].BackoffMin, c.Destinations[0].BackoffMax = time.Minute, time.Second
		}, wantErr: "destinations[0].backoff_max"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			if tc.edit != nil {
				tc.edit(&c)
			}
			err := c.WithDefaults().Validate()
			if tc.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want one naming %s", err, tc.wantErr)
			}
		})
	}
	c := good().WithDefaults()
	d := c.Destinations[0]
	if d.Name != "siem" || d.Group != "auditpipe-forwarder-siem" || d.AppName != "opctl" || *d.Facility != 10 || d.MaxMessageSize != 8192 {
		t.Errorf("defaults: %+v", d)
	}
}

func TestExplain(t *testing.T) {
	if got := Explain(errors.New("boom")); got != "boom" {
		t.Errorf("plain error: %q", got)
	}
	if got := Explain(ErrRejected); !strings.Contains(got, "client certificate") {
		t.Errorf("rejected: %q", got)
	}
}
