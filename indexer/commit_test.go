package indexer

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/schemas"
)

// migrateHoldingMerges applies the migrations and stops the background
// merges of audit_events, which would otherwise collapse duplicate rows
// of a ReplacingMergeTree and hide them from a count without FINAL. The
// setting lives in the process: call it again after reopening the store.
func migrateHoldingMerges(t *testing.T, eng clickhouse.Engine) {
	t.Helper()
	ctx := context.Background()
	if _, err := clickhouse.Migrate(ctx, eng, 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := eng.Exec(ctx, "SYSTEM STOP MERGES audit_events"); err != nil {
		t.Fatal(err)
	}
}

// waitCommitted waits until group has committed every record of topic.
func waitCommitted(t *testing.T, kc kafka.Config, group, topic string) {
	t.Helper()
	waitFor(t, "every offset committed", 60*time.Second, func() bool {
		lag, err := kc.Lag(context.Background(), group, topic)
		return err == nil && lag == 0
	})
}

// Mutant (issue 15): a random insert_deduplication_token per batch (in
// insertSplit, or in clickhouse.EventsToken) passed the crash test, whose
// counts go through the session's `SET final = 1`: the ReplacingMergeTree
// hid the batch inserted twice, which stayed in the table as duplicate
// rows ("1000 rows for 500 events"). Here every count is also taken
// without FINAL, with the merges stopped: the batch inserted before the
// crash and inserted again after the restart must be there once, as rows.
//
// One partition and batches cut by MaxRows alone (MaxWait far longer than
// the test) make the replayed batches the same rows as the first run's,
// so their tokens are the same. With several partitions a replayed batch
// may mix the partitions differently, get another token, and be stored
// twice as rows; FINAL and the event_id key hide that (the multi-partition
// cases of TestCrashAfterInsertBeforeCommit).
func TestCrashReplayStoresEachEventOnce(t *testing.T) {
	const batch, n = 100, 300
	for _, tc := range []struct {
		name    string
		crashAt int // the batch whose commit the crash prevents, from 1
	}{
		{"crash after the first insert", 1},
		{"crash after the last insert", n / batch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			eng := clickhousetest.OpenEmbedded(t, dir)
			migrateHoldingMerges(t, eng)
			kc, _ := kafkatest.Start(t, 1)
			evs := clickhousetest.ManyEvents(n, time.Date(2024, 5, 2, 0, 0, 0, 0, time.UTC))
			produce(t, kc, schemas.TopicAudit, eventMessages(evs))

			cfg := testConfig(kc, "replay")
			cfg.Topics = []string{schemas.TopicAudit}
			cfg.Batch.MaxRows = batch
			cfg.Batch.MaxWait = 10 * time.Minute
			ix1, err := New(cfg, Deps{Engine: eng})
			if err != nil {
				t.Fatal(err)
			}
			flushed := 0
			ix1.beforeCommit = func() error {
				flushed++
				if flushed == tc.crashAt {
					return errors.New("crash")
				}
				return nil
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := ix1.Run(ctx); !errors.Is(err, errCrash) {
				t.Fatalf("first run: %v, want the simulated crash", err)
			}
			if got := clickhousetest.QueryInt(t, eng, "SELECT count() FROM audit_events SETTINGS final = 0"); got != tc.crashAt*batch {
				t.Fatalf("%d rows before the restart, want %d (batches inserted up to the crash)", got, tc.crashAt*batch)
			}
			if err := eng.Close(); err != nil {
				t.Fatal(err)
			}
			eng = clickhousetest.OpenEmbedded(t, dir)
			migrateHoldingMerges(t, eng)

			ix2, err := New(cfg, Deps{Engine: eng})
			if err != nil {
				t.Fatal(err)
			}
			stop := startIndexer(t, ix2)
			waitCommitted(t, kc, cfg.Group, schemas.TopicAudit)
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			for _, q := range []struct{ what, sql string }{
				{"rows without FINAL", "SELECT count() FROM audit_events SETTINGS final = 0"},
				{"distinct event ids", "SELECT uniqExact(event_id) FROM audit_events SETTINGS final = 0"},
				{"rows with FINAL", "SELECT count() FROM audit_events"},
			} {
				if got := clickhousetest.QueryInt(t, eng, q.sql); got != n {
					t.Errorf("%s = %d, want %d", q.what, got, n)
				}
			}
		})
	}
}

// storeDownEngine fails every insert of events as a store that cannot be
// reached would (not a refusal of the rows), and closes tried at the
// first attempt.
type storeDownEngine struct {
	clickhouse.Engine
	once  sync.Once
	tried chan struct{}
}

func (e *storeDownEngine) InsertEvents(context.Context, string, []clickhouse.EventRow) error {
	e.once.Do(func() { close(e.tried) })
	return errors.New("dial tcp 127.0.0.1:9000: connect: connection refused")
}

// Mutants (issue 15): the offsets committed before the insert (flush
// calling commit first), or after a failed insert (its error ignored),
// passed every test: the crash test's hook runs after the insert, so the
// events it committed early were already stored. Here the store is down
// from the start and the indexer is stopped while it retries: nothing may
// be committed, and an indexer on a working store then indexes every
// event.
func TestInsertFailureCommitsNothing(t *testing.T) {
	const n = 300
	dir := t.TempDir()
	eng := clickhousetest.OpenEmbedded(t, dir)
	kc, _ := kafkatest.Start(t, 1)
	evs := clickhousetest.ManyEvents(n, time.Date(2024, 5, 3, 0, 0, 0, 0, time.UTC))
	produce(t, kc, schemas.TopicAudit, eventMessages(evs))

	cfg := testConfig(kc, "store-down")
	cfg.Topics = []string{schemas.TopicAudit}
	cfg.Batch.MaxRows = 100
	cfg.ShutdownTimeout = 200 * time.Millisecond
	down := &storeDownEngine{Engine: eng, tried: make(chan struct{})}
	ix1, err := New(cfg, Deps{Engine: down})
	if err != nil {
		t.Fatal(err)
	}
	stop := startIndexer(t, ix1)
	select {
	case <-down.tried:
	case <-time.After(60 * time.Second):
		t.Fatal("no insert attempted")
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := testutil.ToFloat64(ix1.m.batches.WithLabelValues("ok")); got != 0 {
		t.Fatalf("%v batches ok with the store down", got)
	}
	lag, err := kc.Lag(context.Background(), cfg.Group, schemas.TopicAudit)
	if err != nil {
		t.Fatal(err)
	}
	if lag != n {
		t.Fatalf("group lag %d after inserts that all failed, want %d (nothing committed)", lag, n)
	}

	ix2, err := New(cfg, Deps{Engine: eng})
	if err != nil {
		t.Fatal(err)
	}
	stop = startIndexer(t, ix2)
	waitCommitted(t, kc, cfg.Group, schemas.TopicAudit)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := clickhousetest.QueryInt(t, eng, "SELECT count() FROM audit_events"); got != n {
		t.Errorf("%d events indexed after the store came back, want %d", got, n)
	}
}
