package collector

import (
	"context"
	"encoding/json"
	"fmt"
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
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

// ttyLine is a keystroke record of user 1001 (USERNAME), serial serial.
func ttyLine(serial int) string {
	return fmt.Sprintf("type=TTY msg=audit(1700000%03d.700:%d): tty pid=4001 uid=0 auid=1001 ses=7 major=136 minor=0 comm=\"bash\" data=6C73202D6C0D\n", serial%1000, serial)
}

// Regression (issue 9): anyone who could produce to the broker forged one
// unsigned message on opctl.grants.v1 and re-attributed an operator's
// session to another request and switched keystroke capture off,
// silently. Now every grant record is verified against collector.grant_keys:
// each forgery below, published after the operator's valid signed grant,
// is refused — counted by reason, dead-lettered with its raw value — and
// the operator's events keep the valid grant's req_auth_id and audit type
// (keystrokes still recorded). A valid signed grant and a signed
// revocation published after the forgeries apply.
func TestForgedGrantsChangeNoAttribution(t *testing.T) {
	kcfg, _ := kafkatest.Start(t, 1)
	dir := t.TempDir()
	policy, pub := grantKey(t, dir)
	attacker, _ := grantKey(t, t.TempDir())
	valid := schemas.Grant{LoginID: "USERNAME", ReqAuthID: "ocid1.req.42", AuditType: schemas.AuditCommandKeystroke, PublishSeq: 1}
	forged := schemas.Grant{LoginID: "USERNAME", ReqAuthID: "ocid1.req.evil", AuditType: schemas.AuditCommand, PublishSeq: 2}
	sealed := func(s *sign.Signer, g schemas.Grant) kafka.Record {
		r, err := grants.Record(s, g)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
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
	forgeries := []struct {
		name   string
		rec    kafka.Record
		reason string
	}{
		{"unsigned grant", kafka.Record{Key: []byte("USERNAME"), Value: plain}, grants.ReasonUnsigned},
		{"bare tombstone", kafka.Record{Key: []byte("USERNAME")}, grants.ReasonUnsigned},
		{"signed by an unknown key", sealed(attacker, forged), grants.ReasonUnknownKey},
		{"key id of the trusted key, signed by another", resealed(sealed(attacker, forged), func(e *sign.Envelope) { e.KeyID = policy.KeyID() }), grants.ReasonBadSignature},
		{"tampered payload", resealed(sealed(policy, valid), func(e *sign.Envelope) {
			e.Payload = []byte(strings.Replace(string(e.Payload), "ocid1.req.42", "ocid1.req.evil", 1))
		}), grants.ReasonBadSignature},
		{"bad signature", resealed(sealed(policy, forged), func(e *sign.Envelope) { e.Sig[10] ^= 1 }), grants.ReasonBadSignature},
		{"signed, payload not a grant", resealed(sealed(policy, valid), func(e *sign.Envelope) {
			*e = policy.Sign([]byte(`{"loginid":"USERNAME","req_auth_id":"ocid1.req.evil","audit_type":"NONE"}`))
		}), grants.ReasonInvalidPayload},
		{"signed grant of another login under this key", func() kafka.Record {
			r := sealed(policy, schemas.Grant{LoginID: "celladmin", ReqAuthID: "ocid1.req.evil", AuditType: schemas.AuditCommand, PublishSeq: 1})
			r.Key = []byte("USERNAME")
			return r
		}(), grants.ReasonKeyMismatch},
		{"not an envelope", kafka.Record{Key: []byte("USERNAME"), Value: []byte(`{"key_id":"x","sig":5}`)}, grants.ReasonMalformed},
	}
	recs := []kafka.Record{sealed(policy, valid)}
	want := map[string]float64{}
	for _, f := range forgeries {
		recs = append(recs, f.rec)
		want[f.reason]++
	}
	// After the forgeries, from the trusted key: a grant of another login.
	other := schemas.Grant{LoginID: "celladmin", ReqAuthID: "ocid1.req.7", AuditType: schemas.AuditCommand, PublishSeq: 1}
	recs = append(recs, sealed(policy, other))
	publishRecords(t, kcfg, recs...)

	cfg := testConfig(t, kcfg, dir)
	cfg.Grants = nil
	yes := true
	cfg.FollowGrants = &yes
	cfg.GrantKeys = []string{pub}
	// Keystrokes between commands: once the last command is in Kafka (one
	// partition, in order), the keystroke event is there too, unless
	// keystroke capture was switched off.
	appendFile(t, cfg.Input.Path, sessionLines(1, 2)+ttyLine(900)+sessionLines(3, 1))
	events := newConsumer(t, kcfg, schemas.TopicAudit, 1)
	dead := newConsumer(t, kcfg, schemas.TopicDeadLetter, 1)
	reg := prometheus.NewRegistry()
	c, stop := startCollectorWith(t, cfg, reg)
	events.waitFor(t, "the last command", 20*time.Second, hasRecID("3"))
	dead.waitFor(t, "a dead letter per forgery", 20*time.Second, atLeast(len(forgeries)))

	for _, e := range decodeAll(t, events.msgs) {
		if e.ReqAuthID != valid.ReqAuthID {
			t.Errorf("%s event %s: req_auth_id %q, want the signed grant's %q", e.Event, e.RecID, e.ReqAuthID, valid.ReqAuthID)
		}
	}
	if n := countKind(t, events.msgs, schemas.KindKeys); n != 1 {
		t.Errorf("%d keystroke events, want 1: keystroke capture was switched off", n)
	}
	for reason, n := range want {
		if got := metricValue(t, reg, "auditpipe_collector_grants_refused_total", "reason", reason); got != n {
			t.Errorf("grants refused, reason %s: %v, want %v", reason, got, n)
		}
	}
	byReason := map[string]int{}
	for i, m := range dead.msgs[:len(forgeries)] {
		var d schemas.DeadLetter
		if err := json.Unmarshal(m.Value, &d); err != nil {
			t.Fatal(err)
		}
		f := forgeries[i]
		if d.Reason != "grant_"+f.reason || d.Component != "collector" || d.Raw != string(f.rec.Value) || !strings.HasPrefix(d.Source, schemas.TopicGrants+"/0/") || !strings.Contains(d.Error, `"USERNAME"`) {
			t.Errorf("%s: dead letter %+v", f.name, d)
		}
		byReason[d.Reason]++
	}
	if g, ok := c.Grants().Lookup("USERNAME"); !ok || g.ReqAuthID != valid.ReqAuthID || g.AuditType != valid.AuditType {
		t.Errorf("USERNAME's grant is %+v (%v), want %+v", g, ok, valid)
	}
	if g, ok := c.Grants().Lookup("celladmin"); !ok || g.ReqAuthID != other.ReqAuthID {
		t.Errorf("the valid grant after the forgeries did not apply: %+v %v", g, ok)
	}
	if c.Grants().Revoked("USERNAME") {
		t.Error("the bare tombstone revoked the grant")
	}

	// A signed revocation applies: the grant is revoked, stays known for
	// attribution, and nothing is refused.
	refused := metricSum(t, reg, "auditpipe_collector_grants_refused_total")
	rev, err := grants.Revocation(policy, "USERNAME", 2)
	if err != nil {
		t.Fatal(err)
	}
	publishRecords(t, kcfg, rev)
	waitUntil(t, "the signed revocation", 20*time.Second, func() bool { return c.Grants().Revoked("USERNAME") })
	if g, ok := c.Grants().Lookup("USERNAME"); !ok || g.ReqAuthID != valid.ReqAuthID {
		t.Errorf("revoked grant not kept for attribution: %+v %v", g, ok)
	}
	if got := metricSum(t, reg, "auditpipe_collector_grants_refused_total"); got != refused {
		t.Errorf("refused %v after the signed revocation, %v before", got, refused)
	}

	// Regression (issue 9): the operator's own signed grant, written again
	// after its revocation, was accepted and un-revoked the login. A
	// revocation is final (logins are never reused): the replay is refused
	// as replayed, dead-lettered, and the login stays revoked.
	deadBefore := len(dead.msgs)
	publishRecords(t, kcfg, recs[0])
	waitUntil(t, "the replay refused", 20*time.Second, func() bool {
		return metricValue(t, reg, "auditpipe_collector_grants_refused_total", "reason", grants.ReasonReplayed) == 1
	})
	if !c.Grants().Revoked("USERNAME") {
		t.Error("a replayed signed grant un-revoked USERNAME")
	}
	if g, ok := c.Grants().Lookup("USERNAME"); !ok || g.ReqAuthID != valid.ReqAuthID || g.AuditType != valid.AuditType {
		t.Errorf("USERNAME's attribution after the replay: %+v %v, want %+v", g, ok, valid)
	}
	dead.waitFor(t, "the replay's dead letter", 20*time.Second, atLeast(deadBefore+1))
	var d schemas.DeadLetter
	if err := json.Unmarshal(dead.msgs[deadBefore].Value, &d); err != nil || d.Reason != "grant_"+grants.ReasonReplayed {
		t.Errorf("replay's dead letter: %+v %v", d, err)
	}

	// Regression (issue 9): an older signed grant of a login written after
	// a newer one (publish_seq 1 after 2: what the policy replaced) was
	// applied; it is refused as replayed and the newer grant stays.
	newer := schemas.Grant{LoginID: "celladmin", ReqAuthID: "ocid1.req.8", AuditType: schemas.AuditCommandKeystroke, PublishSeq: 2}
	publishRecords(t, kcfg, sealed(policy, newer), sealed(policy, other))
	waitUntil(t, "the older grant refused", 20*time.Second, func() bool {
		return metricValue(t, reg, "auditpipe_collector_grants_refused_total", "reason", grants.ReasonReplayed) == 2
	})
	if g, ok := c.Grants().Lookup("celladmin"); !ok || g.ReqAuthID != newer.ReqAuthID || g.AuditType != newer.AuditType {
		t.Errorf("celladmin's grant after the replay of its older one: %+v %v, want %+v", g, ok, newer)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// A restarted collector reads the topic from its start: the current
	// record of each login is accepted again (the last one applied, read
	// again, is no replay), the replays are refused again.
	reg = prometheus.NewRegistry()
	c, stop = startCollectorWith(t, cfg, reg)
	waitUntil(t, "the restarted collector caught up", 20*time.Second, func() bool {
		return metricValue(t, reg, "auditpipe_collector_grants_refused_total", "reason", grants.ReasonReplayed) == 2
	})
	if !c.Grants().Revoked("USERNAME") {
		t.Error("after a restart: USERNAME not revoked")
	}
	if g, ok := c.Grants().Lookup("celladmin"); !ok || g.ReqAuthID != newer.ReqAuthID {
		t.Errorf("after a restart: celladmin's grant %+v %v, want %+v", g, ok, newer)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestGrantKeysRequired: a collector that follows grants must be told
// whose signatures to trust; a key file that is not a public key is named.
func TestGrantKeysRequired(t *testing.T) {
	dir := t.TempDir()
	_, pub := grantKey(t, dir)
	yes, no := true, false
	tests := []struct {
		name string
		edit func(*Config)
		want string // "" valid
	}{
		{"following without keys", func(c *Config) { c.FollowGrants = &yes }, "collector.grant_keys: required"},
		{"following by default without keys", func(c *Config) { c.FollowGrants = nil }, "collector.grant_keys: required"},
		{"following with a key", func(c *Config) { c.FollowGrants = &yes; c.GrantKeys = []string{pub} }, ""},
		{"the all-in-one's own key", func(c *Config) { c.FollowGrants = &yes; c.OwnGrantKey = pub }, ""},
		{"static grants only", func(c *Config) { c.FollowGrants = &no }, ""},
		{"a key file missing", func(c *Config) { c.GrantKeys = []string{pub, dir + "/none.pub"} }, "collector.grant_keys[1]"},
		{"not a key", func(c *Config) { c.GrantKeys = []string{"testdata/seed/passwd"} }, "collector.grant_keys[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, kafka.Config{Brokers: []string{"127.0.0.1:9"}}, dir)
			tt.edit(&cfg)
			err := cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if _, err := New(cfg, Deps{}); err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if _, err := New(cfg, Deps{}); err == nil {
				t.Fatal("New accepted what Validate refuses")
			}
		})
	}
}

// startCollectorWith is startCollector returning the collector too.
func startCollectorWith(t *testing.T, cfg Config, reg prometheus.Registerer) (*Collector, func() error) {
	t.Helper()
	c, err := New(cfg, Deps{Registry: reg, Log: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-errc:
			case <-time.After(30 * time.Second):
				runErr = fmt.Errorf("collector did not stop")
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return c, stop
}

func countKind(t *testing.T, msgs []kafka.Record, k schemas.Kind) int {
	t.Helper()
	n := 0
	for _, e := range decodeAll(t, msgs) {
		if e.Event == k {
			n++
		}
	}
	return n
}

// metricSum is the sum of a metric's series.
func metricSum(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestReplayAfterCompactionRefused: issue 9, replay protection that
// survives compaction. The collector's memory of the grants it applied
// (grants.Seqs) lived in memory only: an old, validly signed record of a
// login written again after the login's current record, left by
// compaction as the login's only record, was the first record of the
// login a restarted collector saw, and it was accepted: the operator's
// events went to the old request again (or, after a revocation, to the
// revoked one). The memory is now kept in the state directory
// (GrantsStateFile): the restarted collector refuses the replay as
// replayed — counted, dead-lettered — and applies nothing for the login.
func TestReplayAfterCompactionRefused(t *testing.T) {
	tests := []struct {
		name    string
		current func(policy *sign.Signer) kafka.Record // published after the old grant
	}{
		{"an older grant after a newer one", func(policy *sign.Signer) kafka.Record {
			r, err := grants.Record(policy, schemas.Grant{LoginID: "USERNAME", ReqAuthID: "ocid1.req.43", AuditType: schemas.AuditCommandKeystroke, PublishSeq: 2})
			if err != nil {
				t.Fatal(err)
			}
			return r
		}},
		{"a grant after its revocation", func(policy *sign.Signer) kafka.Record {
			r, err := grants.Revocation(policy, "USERNAME", 2)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kcfg, broker := kafkatest.Start(t, 1)
			dir := t.TempDir()
			policy, pub := grantKey(t, dir)
			old, err := grants.Record(policy, schemas.Grant{LoginID: "USERNAME", ReqAuthID: "ocid1.req.42", AuditType: schemas.AuditCommand, PublishSeq: 1})
			if err != nil {
				t.Fatal(err)
			}
			current := tt.current(policy)
			// One record a batch: compaction keeps a partition's last
			// batch whole.
			publishRecords(t, kcfg, old)
			publishRecords(t, kcfg, current)

			cfg := testConfig(t, kcfg, dir)
			cfg.Grants = nil
			yes := true
			cfg.FollowGrants = &yes
			cfg.GrantKeys = []string{pub}
			reg := prometheus.NewRegistry()
			c, stop := startCollectorWith(t, cfg, reg)
			waitUntil(t, "the current record applied", 20*time.Second, func() bool {
				g, ok := c.Grants().Lookup("USERNAME")
				return c.Grants().Revoked("USERNAME") || ok && g.ReqAuthID == "ocid1.req.43"
			})
			if err := stop(); err != nil {
				t.Fatal(err)
			}

			// While the collector is stopped: the old grant written again,
			// then another login's grant, and the topic compacted.
			other, err := grants.Record(policy, schemas.Grant{LoginID: "celladmin", ReqAuthID: "ocid1.req.7", AuditType: schemas.AuditCommand, PublishSeq: 1})
			if err != nil {
				t.Fatal(err)
			}
			publishRecords(t, kcfg, old)
			publishRecords(t, kcfg, other)
			broker.Compact()
			left := kafkatest.ReadAll(t, kcfg, schemas.TopicGrants, 20*time.Second)
			if len(left) != 2 || string(left[0].Value) != string(old.Value) {
				t.Fatalf("after compaction %d records, want the replay and the other login's grant", len(left))
			}

			dead := newConsumer(t, kcfg, schemas.TopicDeadLetter, 1)
			reg = prometheus.NewRegistry()
			c, stop = startCollectorWith(t, cfg, reg)
			waitUntil(t, "the other login's grant", 20*time.Second, func() bool {
				_, ok := c.Grants().Lookup("celladmin")
				return ok
			})
			if got := metricValue(t, reg, "auditpipe_collector_grants_refused_total", "reason", grants.ReasonReplayed); got != 1 {
				t.Errorf("refused as replayed after the restart: %v, want 1", got)
			}
			if g, ok := c.Grants().Lookup("USERNAME"); ok {
				t.Errorf("the replay applied after the restart: USERNAME's grant is %+v", g)
			}
			dead.waitFor(t, "the replay's dead letter", 20*time.Second, atLeast(1))
			var d schemas.DeadLetter
			if err := json.Unmarshal(dead.msgs[0].Value, &d); err != nil || d.Reason != "grant_"+grants.ReasonReplayed || d.Raw != string(old.Value) {
				t.Errorf("dead letter %+v %v, want the replay as grant_%s", d, err, grants.ReasonReplayed)
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestDamagedGrantsMemoryRefusesStart: a replay memory that cannot be
// read stops the collector at start, naming the file, instead of being
// forgotten (which would accept the replays it exists to refuse).
func TestDamagedGrantsMemoryRefusesStart(t *testing.T) {
	dir := t.TempDir()
	_, pub := grantKey(t, dir)
	cfg := testConfig(t, kafka.Config{Brokers: []string{"127.0.0.1:9"}}, dir)
	cfg.Grants = nil
	yes := true
	cfg.FollowGrants = &yes
	cfg.GrantKeys = []string{pub}
	path := filepath.Join(cfg.StateDir, GrantsStateFile)
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(`{"version":1,"what":"login","keys":{"USERNAME":{"seq":`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := New(cfg, Deps{Log: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Run(ctx); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Run: %v, want an error naming %s", err, path)
	}
}
