package indexer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/chdb"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/queryapi"
	"github.com/auditpipe/auditpipe/schemas"
)

// End to end: contract events produced onto opctl.audit.v1 (key = host)
// are indexed into chDB and answer the named queries.
func TestEndToEndKafkaToChDB(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	kc, _ := kafkatest.Start(t, 3)
	base := time.Date(2020, 10, 29, 3, 20, 22, 418e6, time.UTC)
	evs := clickhousetest.SampleEvents(base)
	bulk := clickhousetest.ManyEvents(2000, base.Add(time.Hour))
	produce(t, kc, schemas.TopicAudit, eventMessages(append(append([]schemas.Event(nil), evs...), bulk...)))
	lc, _ := golden(t)
	produce(t, kc, schemas.TopicLifecycle, []kafka.Record{{Key: []byte("exacc-main"), Value: lc}})

	reg := prometheus.NewRegistry()
	want := len(evs) + len(bulk)
	ix, err := New(testConfig(kc, "e2e"), Deps{Engine: eng, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	stop := startIndexer(t, ix)
	defer func() {
		if t.Failed() {
			r, _ := eng.Query(context.Background(), "SELECT kafka_partition, count(), min(kafka_offset), max(kafka_offset) FROM audit_events GROUP BY 1 ORDER BY 1")
			t.Logf("count %d by partition %v", countOr(eng, "SELECT count() FROM audit_events"), r.Rows)
			for _, rs := range Reasons {
				t.Logf("dead letters %s: %v", rs, testutil.ToFloat64(ix.m.deadLetters.WithLabelValues(rs)))
			}
			t.Logf("consumed %v batches %v pending %v insert errors %v commit errors %v", testutil.ToFloat64(ix.m.consumed.WithLabelValues(schemas.TopicAudit)),
				testutil.ToFloat64(ix.m.batches.WithLabelValues("ok")), testutil.ToFloat64(ix.m.pendingRows), testutil.ToFloat64(ix.m.insertErrors), testutil.ToFloat64(ix.m.commitErrors))
		}
	}()
	waitFor(t, "all events indexed", 20*time.Second, func() bool {
		return countOr(eng, "SELECT count() FROM audit_events") == want
	})
	waitFor(t, "lifecycle event indexed", 30*time.Second, func() bool {
		return countOr(eng, "SELECT count() FROM lifecycle_events WHERE kind = 'access_request.approved'") == 1
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := testutil.ToFloat64(ix.m.rowsInserted.WithLabelValues("audit_events")); got < float64(want) {
		t.Errorf("rows_inserted_total = %v, want >= %d", got, want)
	}

	ctx := context.Background()
	for _, tc := range []struct {
		name string
		args []string
		want []string // one cell of each row, in order
		col  string
	}{
		{"request-commands", []string{"ocid1.opctlaccessrequest.a"}, []string{"ls /", "sudo systemctl restart nginx", "systemctl restart nginx"}, "command"},
		{"open-sessions", nil, []string{"web01"}, "host"},
		{"su-sudo", nil, []string{"sudo systemctl restart nginx", "systemctl restart nginx", "su -", "cat /etc/shadow"}, "command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sql, ok, err := queryapi.Named(tc.name, tc.args)
			if !ok || err != nil {
				t.Fatalf("Named(%s): %v %v", tc.name, ok, err)
			}
			r, err := eng.Query(ctx, sql)
			if err != nil {
				t.Fatal(err)
			}
			col := -1
			for i, c := range r.Columns {
				if c == tc.col {
					col = i
				}
			}
			var got []string
			for _, row := range r.Rows {
				got = append(got, clickhouse.ValueString(row[col]))
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("%s: got %d rows %.10q, want %q", tc.name, len(got), got, tc.want)
			}
		})
	}
	r, err := eng.Query(ctx, "SELECT operators, commands FROM request_sessions WHERE req_auth_id = 'ocid1.opctlaccessrequest.a'")
	if err != nil || len(r.Rows) != 1 {
		t.Fatalf("request_sessions: %v %v", r, err)
	}
	if got := clickhouse.ValueString(r.Rows[0][1]); got != "3" {
		t.Errorf("request_sessions commands = %s, want 3", got)
	}
	var out strings.Builder
	if err := queryapi.PrintNamedQueries(ctx, eng, &out, clickhouse.OutputTable); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"== request-commands ocid1.opctlaccessrequest.a", "== open-sessions", "== su-sudo", "== operator-activity"} {
		if !strings.Contains(out.String(), h) {
			t.Errorf("PrintNamedQueries output lacks %q", h)
		}
	}
}

// Regression guard for the exactly-once promise: a batch inserted but not
// committed (the process died in between) is delivered again after the
// restart, and SELECT still shows every event exactly once. The last case
// runs against a real Apache Kafka broker.
func TestCrashAfterInsertBeforeCommit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		maxRows int
		n       int
		apache  bool
	}{
		{"one batch", 10000, 500, false},
		{"many batches", 100, 1000, false},
		{"many batches on Apache Kafka", 100, 1000, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			eng := clickhousetest.OpenEmbedded(t, dir)
			var kc kafka.Config
			ic := kc // the indexer's
			if tc.apache {
				// Over SASL_SSL, the indexer as its own principal
				// (its ACLs: read its topics, its groups).
				var broker *kafkatest.Apache
				kc, broker = kafkatest.StartApache(t, 3)
				ic = broker.Client(kafka.RoleIndexer)
			} else {
				kc, _ = kafkatest.Start(t, 3)
				ic = kc
			}
			evs := clickhousetest.ManyEvents(tc.n, time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC))
			produce(t, kc, schemas.TopicAudit, eventMessages(evs))

			cfg := testConfig(ic, "auditpipe-indexer-crash")
			cfg.Batch.MaxRows = tc.maxRows
			cfg.Batch.MaxWait = 2 * time.Second
			ix1, err := New(cfg, Deps{Engine: eng})
			if err != nil {
				t.Fatal(err)
			}
			var inserted atomic.Bool
			ix1.beforeCommit = func() error {
				inserted.Store(true)
				return errors.New("crash")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := ix1.Run(ctx); !errors.Is(err, errCrash) {
				t.Fatalf("first run: %v, want the simulated crash", err)
			}
			if !inserted.Load() {
				t.Fatal("crash hook never ran")
			}
			first := clickhousetest.QueryInt(t, eng, "SELECT count() FROM audit_events SETTINGS final = 0")
			if first == 0 {
				t.Fatal("nothing inserted before the crash")
			}
			// The store survives the indexer's crash; reopen it as a new
			// process would.
			if err := eng.Close(); err != nil {
				t.Fatal(err)
			}
			eng = clickhousetest.OpenEmbedded(t, dir)

			ix2, err := New(cfg, Deps{Engine: eng})
			if err != nil {
				t.Fatal(err)
			}
			stop := startIndexer(t, ix2)
			waitFor(t, "all events after restart", 60*time.Second, func() bool {
				return countOr(eng, "SELECT count() FROM audit_events") >= tc.n
			})
			// Let the redelivered batches settle, then stop cleanly.
			waitFor(t, "commits", 30*time.Second, func() bool {
				return testutil.ToFloat64(ix2.m.batches.WithLabelValues("ok")) > 0 && testutil.ToFloat64(ix2.m.pendingRows) == 0
			})
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if got := clickhousetest.QueryInt(t, eng, "SELECT count() FROM audit_events"); got != tc.n {
				t.Errorf("SELECT count() (final) = %d, want %d", got, tc.n)
			}
			if got := clickhousetest.QueryInt(t, eng, "SELECT uniqExact(event_id) FROM audit_events"); got != tc.n {
				t.Errorf("distinct event ids = %d, want %d", got, tc.n)
			}
			if got := clickhousetest.QueryInt(t, eng, "SELECT count() FROM (SELECT event_id FROM audit_events GROUP BY event_id HAVING count() > 1)"); got != 0 {
				t.Errorf("%d events show more than once", got)
			}
			raw := clickhousetest.QueryInt(t, eng, "SELECT count() FROM audit_events SETTINGS final = 0")
			t.Logf("rows before merge (no FINAL): %d for %d events (the first run inserted %d)", raw, tc.n, first)
		})
	}
}

// refusingEngine refuses, like ClickHouse would, any insert that holds an
// event from host "refuse-me".
type refusingEngine struct{ clickhouse.Engine }

func (r refusingEngine) InsertEvents(ctx context.Context, token string, rows []clickhouse.EventRow) error {
	for _, row := range rows {
		if row.Event.Host == "refuse-me" {
			return &chdb.Error{Message: "Code: 27. DB::Exception: Cannot parse input (CANNOT_PARSE_INPUT_ASSERTION_FAILED)"}
		}
	}
	return r.Engine.InsertEvents(ctx, token, rows)
}

func TestBadRowsGoToDeadLetterTopic(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	kc, _ := kafkatest.Start(t, 1)
	good := clickhousetest.ManyEvents(50, time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC))
	refused := clickhousetest.ManyEvents(1, time.Date(2024, 6, 2, 0, 0, 0, 0, time.UTC))[0]
	refused.Host = "refuse-me"
	badTS := good[0]
	badTS.TS, badTS.EventID = "yesterday", strings.Repeat("a", 32)
	noID := good[1]
	noID.EventID = ""
	big := good[2]
	big.RawData, big.EventID = strings.Repeat("x", 100<<10), strings.Repeat("b", 32)

	bad := []struct {
		value  []byte
		reason string
	}{
		{[]byte(`{"layer":"HOST",`), ReasonInvalidJSON},
		{[]byte(`not json at all`), ReasonInvalidJSON},
		{[]byte(`{"layer":"HOST","surprise":1}`), ReasonSchemaMismatch},
		{[]byte(`{"layer":"HOST","seq":"seven"}`), ReasonSchemaMismatch},
		{badTS.AppendJSON(nil), ReasonInvalidEvent},
		{noID.AppendJSON(nil), ReasonInvalidEvent},
		{big.AppendJSON(nil), ReasonOversize},
		{refused.AppendJSON(nil), ReasonInsertRejected},
	}
	var msgs []kafka.Record
	// Interleave the bad among the good: they must not stop their batch.
	for i, g := range good {
		msgs = append(msgs, kafka.Record{Key: []byte(g.Host), Value: g.AppendJSON(nil)})
		if i < len(bad) {
			msgs = append(msgs, kafka.Record{Key: []byte("h"), Value: bad[i].value})
		}
	}
	produce(t, kc, schemas.TopicAudit, msgs)

	reg := prometheus.NewRegistry()
	cfg := testConfig(kc, "dl")
	cfg.MaxRowBytes = 64 << 10
	ix, err := New(cfg, Deps{Engine: refusingEngine{eng}, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	stop := startIndexer(t, ix)
	waitFor(t, "good events", 60*time.Second, func() bool {
		return countOr(eng, "SELECT count() FROM audit_events") == len(good)
	})
	waitFor(t, "dead letters counted", 30*time.Second, func() bool {
		var n float64
		for _, r := range Reasons {
			n += testutil.ToFloat64(ix.m.deadLetters.WithLabelValues(r))
		}
		return int(n) == len(bad)
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// The dead letters, read from the start without a group.
	recs := make(chan kafka.Record, len(bad)+16)
	f, err := kc.NewFollower(kafka.FollowerConfig{Topic: schemas.TopicDeadLetter, MaxWait: 100 * time.Millisecond, Apply: func(r kafka.Record) error {
		recs <- r
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	followed := make(chan error, 1)
	go func() { followed <- f.Run(ctx) }()
	defer func() { cancel(); <-followed }()
	got := map[string]int{}
	for range bad {
		var m kafka.Record
		select {
		case m = <-recs:
		case <-ctx.Done():
			t.Fatalf("read dead letters: %v (got %v)", ctx.Err(), got)
		}
		var d schemas.DeadLetter
		if err := json.Unmarshal(m.Value, &d); err != nil {
			t.Fatalf("dead letter %s: %v", m.Value, err)
		}
		if d.Component != "indexer" || string(m.Key) != "indexer" || d.Error == "" || (d.Raw == "" && d.RawB64 == "") || !strings.HasPrefix(d.Source, schemas.TopicAudit+"/") {
			t.Errorf("incomplete dead letter (key %q): %+v", m.Key, d)
		}
		got[d.Reason]++
	}
	want := map[string]int{}
	for _, b := range bad {
		want[b.reason]++
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("dead letters by reason = %v, want %v", got, want)
	}
}

// `auditpipe index` of the same input twice counts each event once; the
// second run inserts nothing (first write wins: every id is stored).
func TestLoadTwiceCountsOnce(t *testing.T) {
	eng := clickhousetest.OpenEmbedded(t, "")
	ctx := context.Background()
	if _, err := clickhouse.Migrate(ctx, eng, 0, nil); err != nil {
		t.Fatal(err)
	}
	evs := clickhousetest.ManyEvents(3000, time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC))
	var in strings.Builder
	for i := range evs {
		in.Write(evs[i].AppendJSON(nil))
		in.WriteByte('\n')
	}
	in.WriteString("garbage line\n")
	// A dead letter whose raw input is an event is replayed.
	extra := clickhousetest.ManyEvents(1, time.Date(2024, 7, 2, 0, 0, 0, 0, time.UTC))[0]
	extra.EventID = strings.Repeat("c", 32)
	dl, _ := json.Marshal(schemas.NewDeadLetter("indexer", ReasonInsertRejected, errors.New("x"), extra.AppendJSON(nil), time.Now()))
	in.Write(dl)
	in.WriteByte('\n')

	for _, tc := range []struct {
		name           string
		inserted, dups int
	}{{"first run", len(evs) + 1, 0}, {"second run", 0, len(evs) + 1}} {
		t.Run(tc.name, func(t *testing.T) {
			var rejects strings.Builder
			st, err := Load(ctx, eng, strings.NewReader(in.String()), LoadOptions{BatchRows: 1000, Rejects: &rejects})
			if err != nil {
				t.Fatal(err)
			}
			if st.Inserted != tc.inserted || st.Duplicates != tc.dups || st.Conflicts != 0 || st.Rejected != 1 {
				t.Errorf("stats %+v, want %d inserted, %d duplicates, 1 rejected", st, tc.inserted, tc.dups)
			}
			if !strings.Contains(rejects.String(), `"reason":"invalid_json"`) {
				t.Errorf("rejects = %s", rejects.String())
			}
			if got := clickhousetest.QueryInt(t, eng, "SELECT count() FROM audit_events"); got != len(evs)+1 {
				t.Errorf("count() = %d, want %d", got, len(evs)+1)
			}
			if got := clickhousetest.QueryInt(t, eng, "SELECT count() FROM audit_events SETTINGS final = 0"); got != len(evs)+1 {
				t.Errorf("count() without FINAL = %d, want %d (insert dedup token)", got, len(evs)+1)
			}
		})
	}
}
