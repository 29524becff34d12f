package indexer

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/schemas"
)

// Issue 9, the attack: anyone who could produce to the broker sent a copy
// of a real event with the same event_id, and it replaced the stored row
// ("cat /etc/shadow", failed, became "ls", success, in every FINAL query);
// with another req_auth_id or ts it even landed as a second row. Now the
// first stored copy wins: the row stays as it was (without FINAL: one
// row), the forged copies go to event_conflicts, counted; an identical
// copy is a harmless duplicate. Each case arrives in a batch of its own,
// and once more inside one batch (the first occurrence wins).
func TestConflictingCopyLeavesStoredRow(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	kc, _ := kafkatest.Start(t, 1)
	base := time.Date(2020, 10, 29, 3, 20, 22, 418e6, time.UTC)
	evs := clickhousetest.SampleEvents(base)
	var real schemas.Event
	for _, e := range evs {
		if e.Title == "cat\x00/etc/shadow" {
			real = e
		}
	}
	if real.EventID == "" {
		t.Fatal("sample events lack cat /etc/shadow")
	}
	real.Res = "failed"
	forged := real
	forged.Title, forged.Args, forged.Res = "ls", []string{"ls"}, "success"
	moved := real // another sorting key: a second row before the fix
	moved.ReqAuthID, moved.TS = "ocid1.other", base.Add(time.Hour).Format(schemas.TSLayout)
	other := clickhousetest.ManyEvents(3, base.Add(2*time.Hour))
	twin := other[0]
	twin.Title = "rm\x00-rf\x00/"

	reg := prometheus.NewRegistry()
	cfg := testConfig(kc, "conflicts")
	ix, err := New(cfg, Deps{Engine: eng, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	stop := startIndexer(t, ix)
	defer func() { _ = stop() }()

	produce(t, kc, schemas.TopicAudit, eventMessages([]schemas.Event{real}))
	waitFor(t, "the real event stored", 20*time.Second, func() bool {
		return countOr(eng, "SELECT count() FROM audit_events WHERE event_id = '"+real.EventID+"' SETTINGS final = 0") == 1
	})
	for _, e := range []schemas.Event{forged, moved, real} {
		produce(t, kc, schemas.TopicAudit, eventMessages([]schemas.Event{e}))
		time.Sleep(2 * cfg.Batch.MaxWait) // a batch each
	}
	// One batch: other[0], then its differing twin, then other[0] again.
	produce(t, kc, schemas.TopicAudit, append(eventMessages(other), eventMessages([]schemas.Event{twin, other[0]})...))
	waitFor(t, "every message handled", 20*time.Second, func() bool {
		return testutil.ToFloat64(ix.m.conflicts)+testutil.ToFloat64(ix.m.duplicates) >= 5
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	q := func(sql string) int { return countOr(eng, sql) }
	if n := q("SELECT count() FROM audit_events WHERE event_id = '" + real.EventID + "' SETTINGS final = 0"); n != 1 {
		t.Errorf("%d rows of the attacked event without FINAL, want 1", n)
	}
	if n := q("SELECT count() FROM audit_events WHERE event_id = '" + real.EventID + "' AND title = 'cat\\0/etc/shadow' AND res = 'failed' AND req_auth_id = " + "'" + real.ReqAuthID + "'"); n != 1 {
		t.Errorf("the stored row changed: %d rows as stored first (FINAL)", n)
	}
	if n := q("SELECT count() FROM audit_events WHERE event_id = '" + twin.EventID + "' AND title = 'ls\\0-l\\0/var/log' SETTINGS final = 0"); n != 1 {
		t.Errorf("within a batch the first copy must win: %d rows of it", n)
	}
	if n := q("SELECT count() FROM audit_events SETTINGS final = 0"); n != 4 {
		t.Errorf("%d rows, want 4 (the real event and three others)", n)
	}
	if n := q("SELECT count() FROM event_conflicts WHERE event_id = '" + real.EventID + "' AND first_hash = '" + real.Hash() + "'"); n != 2 {
		t.Errorf("%d conflicts of the attacked event recorded with its hash, want 2 (forged, moved)", n)
	}
	if n := q("SELECT count() FROM event_conflicts WHERE event_id = '" + twin.EventID + "' AND conflict_hash = '" + twin.Hash() + "' AND kafka_offset >= 0"); n != 1 {
		t.Errorf("%d conflicts of the twin, want 1", n)
	}
	if c, d := testutil.ToFloat64(ix.m.conflicts), testutil.ToFloat64(ix.m.duplicates); c != 3 || d != 2 {
		t.Errorf("conflicts_total %v duplicates_total %v, want 3 and 2", c, d)
	}
}
