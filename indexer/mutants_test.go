package indexer

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/chdb"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/schemas"
)

// Mutants (issue 15) of indexer.go that no test told apart:
//   - 200:50 b.bytes > MaxBytes instead of >=: a batch of exactly max_bytes
//     waited for max_wait (here 10 minutes) instead of being flushed;
//   - 258:95 and 258:107 (+ for either - of HighWaterMark-last.Offset-1):
//     the lag gauge was wrong once every record is read (it must be 0);
//   - 520:10, 530:64 and 674:11 (err == nil for err != nil): the insert
//     and commit error counters counted every successful lookup, conflict
//     insert and offset commit as a failure.
//
// One partition, one batch of every record (MaxRows far above it, MaxWait
// far longer than the test), cut by MaxBytes = the bytes of its values.
// The batch holds a conflicting copy of an event, so its conflict insert
// runs. Nothing fails: every error counter must stay 0.
func TestCleanBatchOfExactlyMaxBytes(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	kc, _ := kafkatest.Start(t, 1)
	evs := clickhousetest.ManyEvents(20, time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC))
	forged := evs[0]
	forged.Title = "a different copy"
	msgs := eventMessages(append(evs, forged))
	size := 0
	for _, m := range msgs {
		size += len(m.Value)
	}
	produce(t, kc, schemas.TopicAudit, msgs)

	cfg := testConfig(kc, "exact-bytes")
	cfg.Topics = []string{schemas.TopicAudit}
	cfg.Batch.MaxRows = 10 * len(msgs)
	cfg.Batch.MaxBytes = size
	cfg.Batch.MaxWait = 10 * time.Minute
	ix, err := New(cfg, Deps{Engine: eng})
	if err != nil {
		t.Fatal(err)
	}
	stop := startIndexer(t, ix)
	// Committed before the stop: the stop flushes whatever is left.
	waitFor(t, "the batch of exactly max_bytes committed", 30*time.Second, func() bool {
		lag, err := kc.Lag(context.Background(), cfg.Group, schemas.TopicAudit)
		return err == nil && lag == 0
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := clickhousetest.QueryInt(t, eng, "SELECT count() FROM audit_events"); got != len(evs) {
		t.Errorf("%d events stored, want %d", got, len(evs))
	}
	for _, c := range []struct {
		what string
		got  float64
		want float64
	}{
		{"batches ok", testutil.ToFloat64(ix.m.batches.WithLabelValues("ok")), 1},
		{"conflicts", testutil.ToFloat64(ix.m.conflicts), 1},
		{"insert errors", testutil.ToFloat64(ix.m.insertErrors), 0},
		{"commit errors", testutil.ToFloat64(ix.m.commitErrors), 0},
		{"consumer lag", testutil.ToFloat64(ix.m.lag.WithLabelValues(schemas.TopicAudit, "0")), 0},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}

// refusingFirstEngine refuses, as ClickHouse refuses rows it cannot parse,
// the first refusals inserts of events (every insert when refusals < 0).
type refusingFirstEngine struct {
	clickhouse.Engine
	refusals int64
	calls    atomic.Int64
}

func (e *refusingFirstEngine) InsertEvents(ctx context.Context, token string, rows []clickhouse.EventRow) error {
	if n := e.calls.Add(1); e.refusals < 0 || n <= e.refusals {
		return &chdb.Error{Message: "Code: 27. DB::Exception: Cannot parse input (CANNOT_PARSE_INPUT_ASSERTION_FAILED)"}
	}
	return e.Engine.InsertEvents(ctx, token, rows)
}

// Mutants (issue 15) 560:35 (len(rejected) <= len(rows)) and 560:60
// (len(rows) != 1) in insertEvents: when the store refuses every row of
// an insert of several, the store is at fault, and the insert is retried;
// the mutants dead-lettered every row instead. 560:60 also retried a lone
// refused row for ever instead of dead-lettering it.
func TestInsertEventsEveryRowRefused(t *testing.T) {
	for _, tc := range []struct {
		name      string
		rows      int
		refusals  int64 // the first inserts refused; < 0: all
		wantDead  int
		wantRows  int
		wantCalls int64
	}{
		// The pair, then each row alone: 3 refusals, then the retry passes.
		{"every row of two refused once, then retried", 2, 3, 0, 2, 4},
		{"a lone row refused for good", 1, -1, 1, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng := clickhousetest.OpenEmbedded(t, "")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, err := clickhouse.Migrate(ctx, eng, 0, nil); err != nil {
				t.Fatal(err)
			}
			refusing := &refusingFirstEngine{Engine: eng, refusals: tc.refusals}
			ix, err := New(testConfig(kafka.Config{Brokers: []string{"127.0.0.1:9"}}, "x"), Deps{Engine: refusing})
			if err != nil {
				t.Fatal(err)
			}
			evs := clickhousetest.ManyEvents(tc.rows, time.Date(2024, 7, 2, 0, 0, 0, 0, time.UTC))
			rows := make([]clickhouse.EventRow, len(evs))
			for i := range evs {
				if rows[i], err = DecodeEvent(evs[i].AppendJSON(nil), 0); err != nil {
					t.Fatal(err)
				}
				rows[i].Partition, rows[i].Offset = 0, int64(i)
			}
			dead, err := ix.insertEvents(ctx, rows)
			if err != nil {
				t.Fatalf("insertEvents: %v", err)
			}
			if len(dead) != tc.wantDead {
				t.Errorf("%d dead letters, want %d", len(dead), tc.wantDead)
			}
			if got := clickhousetest.QueryInt(t, eng, "SELECT count() FROM audit_events"); got != tc.wantRows {
				t.Errorf("%d rows stored, want %d", got, tc.wantRows)
			}
			if got := refusing.calls.Load(); got != tc.wantCalls {
				t.Errorf("%d inserts, want %d", got, tc.wantCalls)
			}
		})
	}
}

// countingLifecycleEngine counts the inserts of lifecycle events.
type countingLifecycleEngine struct {
	clickhouse.Engine
	inserts atomic.Int64
}

func (e *countingLifecycleEngine) InsertLifecycle(ctx context.Context, token string, rows []clickhouse.LifecycleRow) error {
	e.inserts.Add(1)
	return e.Engine.InsertLifecycle(ctx, token, rows)
}

// Mutants (issue 15) of flush's lifecycle step:
//   - 431:11 (insertLifecycle's err == nil ends flush): flush returned
//     after inserting the lifecycle rows, before the rest of the batch
//     and the commit (no batch counted ok);
//   - 429:17 (len(fresh) >= 0): a batch of lifecycle events all stored
//     already sent the store an insert of no rows, which it refuses (No
//     data to insert), retried until ctx ended: flush failed;
//   - 621:10 (err != nil in insertEach): every successful insert was
//     retried as a failure until ctx ended (a hang in the tests whose ctx
//     does not end, such as TestLifecycleSameBatchTwice).
func TestFlushLifecycleInsertsOnlyNewRows(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := clickhouse.Migrate(ctx, eng, 0, nil); err != nil {
		t.Fatal(err)
	}
	counting := &countingLifecycleEngine{Engine: eng}
	ix, err := New(testConfig(kafka.Config{Brokers: []string{"127.0.0.1:9"}}, "x"), Deps{Engine: counting})
	if err != nil {
		t.Fatal(err)
	}
	rows := lifecycleRows(t, 5, time.Date(2026, 4, 3, 0, 0, 0, 0, time.UTC))
	for i, want := range []struct {
		inserts int64
		ok      float64
	}{
		{1, 1}, // new rows: one insert
		{1, 2}, // the same rows again: all stored, no insert
	} {
		// No dead letter and no offset (b.last empty): no writer needed.
		b := batch{lifecycle: append([]clickhouse.LifecycleRow(nil), rows...), n: len(rows)}
		if err := ix.flush(ctx, nil, &b); err != nil {
			t.Fatalf("flush %d: %v", i+1, err)
		}
		if got := counting.inserts.Load(); got != want.inserts {
			t.Errorf("after flush %d: %d lifecycle inserts, want %d", i+1, got, want.inserts)
		}
		if got := testutil.ToFloat64(ix.m.batches.WithLabelValues("ok")); got != want.ok {
			t.Errorf("after flush %d: %v batches ok, want %v", i+1, got, want.ok)
		}
	}
	if got := clickhousetest.QueryInt(t, eng, "SELECT count() FROM lifecycle_events"); got != len(rows) {
		t.Errorf("%d lifecycle rows stored, want %d", got, len(rows))
	}
}

// Mutants (issue 15) of New, which timed out under gremlins (a panic in a
// test holding an embedded chDB did not end the test binary): 89:32
// (cfg.Validate's err == nil) returned no Indexer and no error for a
// valid configuration and took an invalid one; 96:9 (log != nil) left an
// indexer without a logger, which panics at New's first log line. This
// test opens no store: a panic ends the binary at once.
func TestNewChecksConfig(t *testing.T) {
	noStore := struct{ clickhouse.Engine }{} // New connects to nothing
	valid := testConfig(kafka.Config{Brokers: []string{"127.0.0.1:9"}}, "x")
	noBytes := valid
	noBytes.Batch.MaxBytes = 0
	for _, tc := range []struct {
		name    string
		cfg     Config
		eng     clickhouse.Engine
		wantErr bool
	}{
		{"valid, no logger given", valid, noStore, false},
		{"max_bytes 0", noBytes, noStore, true},
		{"no engine", valid, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ix, err := New(tc.cfg, Deps{Engine: tc.eng})
			if tc.wantErr {
				if err == nil {
					t.Fatal("New took it")
				}
				return
			}
			if err != nil || ix == nil {
				t.Fatalf("New: %v, %v", ix, err)
			}
			if ix.log == nil {
				t.Error("no logger: want a discarding one")
			}
		})
	}
}

// Mutant (issue 15) 162:20 (shutdownTimer == nil), which timed out under
// gremlins: when Run ends without its ctx being cancelled (here the
// simulated crash), no shutdown timer was started, and the mutant's
// Stop of the nil timer dereferenced a nil pointer. With the embedded
// store loaded, that fault used to hang the test binary: libchdb had
// replaced Go's SIGSEGV handler with ClickHouse's. Since chdb.Open keeps
// Go's fault handlers (TestGoKeepsFaultSignals) the mutant panics and this
// test fails in under a second (checked by hand, 2026-12-03).
func TestRunEndedByACrashReturnsIt(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	kc, _ := kafkatest.Start(t, 1)
	produce(t, kc, schemas.TopicAudit, eventMessages(clickhousetest.ManyEvents(3, time.Date(2024, 7, 3, 0, 0, 0, 0, time.UTC))))
	cfg := testConfig(kc, "crash")
	cfg.Topics = []string{schemas.TopicAudit}
	ix, err := New(cfg, Deps{Engine: eng})
	if err != nil {
		t.Fatal(err)
	}
	ix.beforeCommit = func() error { return errors.New("crash") }
	// Run in a goroutine of its own, its ctx cancelled only after it
	// returned: the mutant's panic needs a Run that ends uncancelled.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ix.Run(ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, errCrash) {
			t.Fatalf("Run: %v, want the simulated crash", err)
		}
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		t.Fatal("Run did not end at the simulated crash")
	}
}
