package forwarder

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/siemtest"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/internal/testlog"
	"github.com/auditpipe/auditpipe/schemas"
)

// Regression (issue 10): the forwarder took every record of
// opctl.assignments.v1 as it came, so anyone who could produce to the
// broker pointed a resource's events — operators' commands and keystrokes —
// to a syslog server of their own with one unsigned message, or stopped
// their forwarding with a bare tombstone. Now every record is verified
// against forwarder.assignment_keys: each forgery below, published after
// the resource's valid signed assignment, is refused — counted by reason,
// logged, dead-lettered with its raw value — and changes nothing: the
// attacker's syslog receives no event, the owner's SIEM every one. A valid
// signed assignment published after the forgeries applies, and the signed
// removal ends the resource's forwarding.
func TestForgedAssignmentsSendNothingElsewhere(t *testing.T) {
	owner := startSIEM(t, siemtest.RsyslogOptions{})
	evil := startSIEM(t, siemtest.RsyslogOptions{})
	kcfg, _ := kafkatest.Start(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	policy, pub := assignmentKey(t, t.TempDir())
	attacker, _ := assignmentKey(t, t.TempDir())

	valid := assignmentTo(t, "r-a", owner, "host0")
	forged := assignmentTo(t, "r-a", evil, "host0")
	resealed := func(r kafka.Record, edit func(*sign.Envelope)) kafka.Record {
		e, err := sign.Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		edit(&e)
		if r.Value, err = e.Marshal(); err != nil {
			t.Fatal(err)
		}
		return r
	}
	plain, _ := json.Marshal(forged)
	removalOfOther, err := grants.AssignmentRemoval(policy, "r-other", 1)
	if err != nil {
		t.Fatal(err)
	}
	removalOfOther.Key = []byte("r-a")
	forgeries := []struct {
		name   string
		rec    kafka.Record
		reason string
	}{
		{"unsigned assignment to the attacker's syslog", kafka.Record{Key: []byte("r-a"), Value: plain}, grants.ReasonUnsigned},
		{"bare tombstone", kafka.Record{Key: []byte("r-a")}, grants.ReasonUnsigned},
		{"signed by an unknown key", sealed(t, attacker, forged), grants.ReasonUnknownKey},
		{"key id of the trusted key, signed by another", resealed(sealed(t, attacker, forged), func(e *sign.Envelope) { e.KeyID = policy.KeyID() }), grants.ReasonBadSignature},
		{"the valid record's address changed", resealed(sealed(t, policy, valid), func(e *sign.Envelope) {
			e.Payload = []byte(strings.Replace(string(e.Payload), `"remote_syslog_server_port":`+portOf(t, owner), `"remote_syslog_server_port":`+portOf(t, evil), 1))
		}), grants.ReasonBadSignature},
		{"bad signature", resealed(sealed(t, policy, forged), func(e *sign.Envelope) { e.Sig[10] ^= 1 }), grants.ReasonBadSignature},
		{"signed, payload not an assignment", resealed(sealed(t, policy, valid), func(e *sign.Envelope) {
			*e = policy.Sign([]byte(`{"resource_id":"r-a","is_log_forwarded":true,"surprise":1}`))
		}), grants.ReasonInvalidPayload},
		{"signed assignment of another resource under this key", func() kafka.Record {
			o := forged
			o.ResourceID = "r-other"
			r := sealed(t, policy, o)
			r.Key = []byte("r-a")
			return r
		}(), grants.ReasonKeyMismatch},
		{"signed removal of another resource under this key", removalOfOther, grants.ReasonKeyMismatch},
		{"not an envelope", kafka.Record{Key: []byte("r-a"), Value: []byte(`{"key_id":"x","sig":5}`)}, grants.ReasonMalformed},
	}
	recs := []kafka.Record{sealed(t, policy, valid)}
	want := map[string]float64{}
	for _, f := range forgeries {
		recs = append(recs, f.rec)
		want[f.reason]++
	}
	// After the forgeries, from the trusted key: another resource's
	// assignment, to the owner's SIEM too.
	recs = append(recs, sealed(t, policy, assignmentTo(t, "r-b", owner, "host1")))
	w, err := kcfg.NewWriter(kafka.TopicAssignments)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Write(ctx, recs...); err != nil {
		t.Fatal(err)
	}

	evs := testEvents(0, 60) // hosts host0, host1, host2 in turn
	produce(t, ctx, kcfg, evs)
	cfg := followingConfig(kcfg, owner.destination(), pub)
	reg := prometheus.NewRegistry()
	logs := &testlog.Buffer{}
	src, err := NewAssignmentSource(cfg, slog.New(slog.NewTextHandler(logs, nil)), reg)
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

	var host01 []*schemas.Event
	for _, e := range evs {
		if e.Host == "host0" || e.Host == "host1" {
			host01 = append(host01, e)
		}
	}
	owner.rs.WaitMessages(t, len(host01), 30*time.Second)
	waitFor(t, 10*time.Second, func() bool { return len(f.Groups()) == 2 })
	requireExactly(t, "owner", owner.rs.Messages(t), host01)
	src.mu.Lock()
	got := src.current["r-a"]
	src.mu.Unlock()
	if got.RemoteSyslogServerAddress != valid.RemoteSyslogServerAddress || got.RemoteSyslogServerPort != valid.RemoteSyslogServerPort {
		t.Errorf("r-a forwards to %s, want the signed assignment's %s", got.SyslogAddress(), valid.SyslogAddress())
	}
	for reason, n := range want {
		if got := metricValue(t, reg, "auditpipe_forwarder_assignments_refused_total", "reason", reason); got != n {
			t.Errorf("assignments refused, reason %s: %v, want %v", reason, got, n)
		}
	}
	if n := logs.Count("assignment record refused"); n != len(forgeries) {
		t.Errorf("%d refusals logged, want %d", n, len(forgeries))
	}
	dead := kafkatest.Read(t, kcfg, schemas.TopicDeadLetter, len(forgeries), 30*time.Second)
	for i, m := range dead {
		var d schemas.DeadLetter
		if err := json.Unmarshal(m.Value, &d); err != nil {
			t.Fatal(err)
		}
		f := forgeries[i]
		if d.Reason != "assignment_"+f.reason || d.Component != "forwarder" || d.Raw != string(f.rec.Value) ||
			!strings.HasPrefix(d.Source, kafka.TopicAssignments+"/0/") || !strings.Contains(d.Error, `"r-a"`) {
			t.Errorf("%s: dead letter %+v", f.name, d)
		}
	}

	// The signed removal of r-a ends its forwarding; r-b's goes on.
	rm, err := grants.AssignmentRemoval(policy, "r-a", testSeqs.Next())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, rm); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { return len(f.Groups()) == 1 })
	// Regression (issue 9): r-a's signed assignment, written again after
	// its removal, was applied again (its forwarding restarted). It is
	// refused as replayed (a publish_seq below the removal's): host0's
	// events below still go nowhere.
	if err := w.Write(ctx, recs[0]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool {
		return metricValue(t, reg, "auditpipe_forwarder_assignments_refused_total", "reason", grants.ReasonReplayed) == 1
	})
	if n := len(f.Groups()); n != 1 {
		t.Errorf("%d destinations after the replayed assignment, want 1", n)
	}
	more := testEvents(60, 30)
	produce(t, ctx, kcfg, more)
	var host1 []*schemas.Event
	for _, e := range more {
		if e.Host == "host1" {
			host1 = append(host1, e)
		}
	}
	owner.rs.WaitMessages(t, len(host01)+len(host1), 30*time.Second)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	requireExactly(t, "owner", owner.rs.Messages(t), append(host01, host1...))
	if msgs := evil.rs.Messages(t); len(msgs) != 0 {
		t.Errorf("the attacker's syslog received %d messages, want none", len(msgs))
	}
	if got := metricSum(t, reg, "auditpipe_forwarder_assignments_refused_total"); got != float64(len(forgeries)+1) {
		t.Errorf("%v records refused, want %d (the forgeries and the replay; the removal is not one)", got, len(forgeries)+1)
	}
}

// portOf is s's port as the assignment's JSON has it.
func portOf(t *testing.T, s *siem) string {
	t.Helper()
	a := assignmentTo(t, "x", s)
	b, _ := json.Marshal(a.RemoteSyslogServerPort)
	return string(b)
}

// metricValue is the value of the series of name whose label has value.
func metricValue(t testing.TB, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}

// TestAssignmentKeysRequired: a forwarder that follows the assignments
// must be told whose signatures to trust; a key file that is not a
// public key is named.
func TestAssignmentKeysRequired(t *testing.T) {
	dir := t.TempDir()
	_, pub := assignmentKey(t, dir)
	tests := []struct {
		name string
		edit func(*Config)
		want string // "" valid
	}{
		{"following without keys", func(c *Config) {}, "forwarder.assignment_keys: required"},
		{"following with a key", func(c *Config) { c.AssignmentKeys = []string{pub} }, ""},
		{"the all-in-one's own key", func(c *Config) { c.OwnAssignmentKey = pub }, ""},
		{"a key file missing", func(c *Config) { c.AssignmentKeys = []string{pub, dir + "/none.pub"} }, "forwarder.assignment_keys[1]"},
		{"not a key", func(c *Config) { c.AssignmentKeys = []string{"doc.go"} }, "forwarder.assignment_keys[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Kafka: kafka.Config{Brokers: []string{"127.0.0.1:9"}}, Assignments: AssignmentsConfig{Follow: true}}
			tt.edit(&cfg)
			err := cfg.WithDefaults().Validate()
			_, nerr := NewAssignmentSource(cfg, nil, nil)
			if tt.want == "" {
				if err != nil || nerr != nil {
					t.Fatalf("unexpected errors: %v; NewAssignmentSource: %v", err, nerr)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if nerr == nil {
				t.Fatal("NewAssignmentSource accepted what Validate refuses")
			}
		})
	}
}

// TestAssignmentReplayAfterCompactionRefused: issue 9, replay protection
// that survives compaction. The forwarder's memory of the assignments it
// applied (grants.Seqs) lived in memory only: a resource's old, validly
// signed assignment written again after its current record — after its
// removal, or after an assignment to another SIEM — and left by
// compaction as the resource's only record was the first record of the
// resource a restarted forwarder saw, and it was applied: the resource's
// commands and keystrokes went to the old SIEM again. The memory is now
// kept in forwarder.assignments.state_dir: the restarted source refuses
// the replay as replayed — counted, dead-lettered — and names no
// destination for the resource.
func TestAssignmentReplayAfterCompactionRefused(t *testing.T) {
	old := schemas.Assignment{ResourceID: "r-a", IsEnforcedAlways: true, IsLogForwarded: true, LifecycleState: "APPLIED",
		RemoteSyslogServerAddress: "old-siem.example", RemoteSyslogServerPort: 6514, Hosts: []string{"host0"}, PublishSeq: 1}
	tests := []struct {
		name    string
		current func(*sign.Signer) kafka.Record
		want    []string // the destinations' addresses before the restart
	}{
		{"the assignment after its removal", func(s *sign.Signer) kafka.Record {
			r, err := grants.AssignmentRemoval(s, "r-a", 2)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}, nil},
		{"an older assignment after one to another SIEM", func(s *sign.Signer) kafka.Record {
			a := old
			a.RemoteSyslogServerAddress, a.PublishSeq = "new-siem.example", 2
			return sealed(t, s, a)
		}, []string{"new-siem.example:6514"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kcfg, broker := kafkatest.Start(t, 1)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			policy, pub := assignmentKey(t, t.TempDir())
			w, err := kcfg.NewWriter(kafka.TopicAssignments)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			write := func(r kafka.Record) {
				t.Helper()
				// One record a batch: compaction keeps a partition's last
				// batch whole.
				if err := w.Write(ctx, r); err != nil {
					t.Fatal(err)
				}
			}
			replay := sealed(t, policy, old)
			write(replay)
			write(tt.current(policy))
			cfg := followingConfig(kcfg, Destination{}, pub)
			cfg.Assignments.StateDir = filepath.Join(t.TempDir(), "forwarder")
			// first runs a source until its first set of destinations,
			// and returns their addresses.
			first := func(reg *prometheus.Registry) []string {
				t.Helper()
				src, err := NewAssignmentSource(cfg, slog.New(slog.NewTextHandler(t.Output(), nil)), reg)
				if err != nil {
					t.Fatal(err)
				}
				rctx, stop := context.WithCancel(ctx)
				updates := make(chan []Destination, 1)
				done := make(chan error, 1)
				go func() { done <- src.Run(rctx, updates) }()
				var ds []Destination
				select {
				case ds = <-updates:
				case <-ctx.Done():
					t.Fatal("no destinations")
				}
				stop()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				var addrs []string
				for _, d := range ds {
					addrs = append(addrs, d.Address)
				}
				return addrs
			}
			if got := first(prometheus.NewRegistry()); !slices.Equal(got, tt.want) {
				t.Fatalf("before the restart: destinations %q, want %q", got, tt.want)
			}

			// While the forwarder is stopped: the old assignment written
			// again, then another resource's, and the topic compacted.
			other := old
			other.ResourceID, other.RemoteSyslogServerAddress, other.Hosts = "r-b", "b-siem.example", []string{"host1"}
			write(replay)
			write(sealed(t, policy, other))
			broker.Compact()
			left := kafkatest.ReadAll(t, kcfg, kafka.TopicAssignments, 20*time.Second)
			if len(left) != 2 || string(left[0].Value) != string(replay.Value) {
				t.Fatalf("after compaction %d records, want the replay and the other resource's assignment", len(left))
			}

			reg := prometheus.NewRegistry()
			if got, want := first(reg), []string{"b-siem.example:6514"}; !slices.Equal(got, want) {
				t.Errorf("after the restart: destinations %q, want %q (the replay applied)", got, want)
			}
			if got := metricValue(t, reg, "auditpipe_forwarder_assignments_refused_total", "reason", grants.ReasonReplayed); got != 1 {
				t.Errorf("refused as replayed after the restart: %v, want 1", got)
			}
			dead := kafkatest.Read(t, kcfg, schemas.TopicDeadLetter, 1, 20*time.Second)
			var d schemas.DeadLetter
			if err := json.Unmarshal(dead[0].Value, &d); err != nil || d.Reason != "assignment_"+grants.ReasonReplayed || d.Raw != string(replay.Value) {
				t.Errorf("dead letter %+v %v, want the replay as assignment_%s", d, err, grants.ReasonReplayed)
			}
		})
	}
}

// TestDamagedAssignmentsMemoryRefusesStart: a replay memory that cannot be
// read stops the assignments' source at start, naming the file.
func TestDamagedAssignmentsMemoryRefusesStart(t *testing.T) {
	_, pub := assignmentKey(t, t.TempDir())
	cfg := followingConfig(kafka.Config{Brokers: []string{"127.0.0.1:9"}}, Destination{}, pub)
	cfg.Assignments.StateDir = t.TempDir()
	path := filepath.Join(cfg.Assignments.StateDir, AssignmentsStateFile)
	if err := os.WriteFile(path, []byte("not a memory"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewAssignmentSource(cfg, nil, nil); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("NewAssignmentSource: %v, want an error naming %s", err, path)
	}
}
