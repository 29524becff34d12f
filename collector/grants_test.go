package collector

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/internal/testlog"
	"github.com/auditpipe/auditpipe/schemas"
)

// TestGrantsTopicMissing: against a broker that does not create topics on
// demand and has no grants topic (no policy service yet), the collector
// does not wait for it: static grants apply.
func TestGrantsTopicMissing(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	kcfg := kafka.Config{Brokers: c.ListenAddrs()}.WithDefaults()
	var logs testlog.Buffer
	col := &Collector{
		cfg:    DefaultConfig(),
		m:      newMetrics(nil),
		log:    slog.New(slog.NewTextHandler(&logs, nil)),
		grants: NewGrantTable(map[string]schemas.Grant{"op": {LoginID: "op", ReqAuthID: "1"}}),
		keys:   sign.NewKeyring(),
		ready:  make(chan struct{}),
	}
	table := col.grants
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- col.followGrants(ctx, kcfg, schemas.TopicGrants)
	}()
	select {
	case <-col.ready:
	case <-time.After(20 * time.Second):
		t.Fatal("not ready without a grants topic")
	}
	if g, ok := table.Lookup("op"); !ok || g.ReqAuthID != "1" {
		t.Fatalf("static grant lost: %+v %v", g, ok)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "the topic does not exist yet") {
		t.Fatalf("ready for another reason than the missing topic; log: %s", logs.String())
	}
}

// TestGrantTableReload: a reload (SIGHUP) replaces the static grants; the
// grants followed on the topic stay, and win over a static one for the
// same login.
func TestGrantTableReload(t *testing.T) {
	tab := NewGrantTable(staticGrants(map[string]string{"a": "req-a", "b": "req-b"}))
	tab.apply(grants.Message{Grant: schemas.Grant{LoginID: "b", ReqAuthID: "req-b-topic", AuditType: schemas.AuditCommand, Resource: "r"}})
	tab.SetStatic(staticGrants(map[string]string{"b": "req-b2", "c": "req-c"}))
	for login, want := range map[string]string{"a": "", "b": "req-b-topic", "c": "req-c"} {
		g, ok := tab.Lookup(login)
		if got := g.ReqAuthID; ok != (want != "") || got != want {
			t.Errorf("%s: %q %v, want %q", login, got, ok, want)
		}
	}
	if n := tab.Len(); n != 2 {
		t.Errorf("Len = %d, want 2 (b followed, c static)", n)
	}
}
