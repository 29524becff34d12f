package agent

import (
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/internal/sign/signtest"
	"github.com/auditpipe/auditpipe/schemas"
)

// TestReporterNumbersItsHostsMessages: issue 9 (replay protection). The
// agent's messages on opctl.agent.v1 carried no number, so a recorded one
// written again was taken as new. Every message is numbered: grant
// reports, work progress and inventories together, each above the last,
// and a restarted agent (a new reporter, nothing kept) numbers above the
// last one's, so its consumers take its messages and refuse the old.
func TestReporterNumbersItsHostsMessages(t *testing.T) {
	dir := t.TempDir()
	s := signtest.EnrolledHost(t, dir, "db01", 1)
	hosts := sign.NewKeyDir(dir)
	at := time.Date(2026, 3, 8, 8, 0, 0, 0, time.UTC)
	messages := []any{
		schemas.AgentReport{Host: "db01", LoginID: "op", State: schemas.AgentDeployed, Time: at},
		schemas.WorkProgress{WorkRequestID: "wr1", Host: "db01", Seq: 1, Status: schemas.WorkInProgress, Time: at},
		schemas.Inventory{Inventory: schemas.InventoryScheduled, Host: "db01", InstanceID: "i1", OSFamily: "debian", Packages: []schemas.InventoryPackage{}, Time: at},
	}
	seen := grants.NewSeqs("host")
	var last int64
	for run := range 2 { // the second: the agent restarted
		r := newReporter(nil, s, newMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
		for _, v := range messages {
			r.addMessage("db01", "test", "test", v)
		}
		for i, q := range r.queue {
			m, err := grants.DecodeAgent(q.key, q.value, hosts)
			if err != nil {
				t.Fatalf("run %d message %d: %v", run, i, err)
			}
			if m.Seq <= last {
				t.Errorf("run %d message %d: publish_seq %d, not above the last %d", run, i, m.Seq, last)
			}
			if err := seen.Admit(m.Host, m.Seq, m.Payload); err != nil {
				t.Errorf("run %d message %d: %v", run, i, err)
			}
			last = m.Seq
		}
	}
}
