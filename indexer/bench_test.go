package indexer

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/schemas"
)

// TestThroughputIndexerVsChDB compares, in one run, rows/s through the
// indexer (kfake → consumer group → decode → insert into chDB → commit)
// with chDB's own INSERT … FORMAT JSONEachRow of the same rows in batches
// of the same size. It runs when AUDITPIPE_BENCH=1 (scripts/bench.d/indexer.sh);
// AUDITPIPE_BENCH_ROWS sets the row count (default 200000);
// AUDITPIPE_BENCH_KAFKA=secure reads from a broker secured as the
// all-in-one's is (TLS, SASL/SCRAM-SHA-512, ACLs), as the indexer's
// principal.
func TestThroughputIndexerVsChDB(t *testing.T) {
	if os.Getenv("AUDITPIPE_BENCH") != "1" {
		t.Skip("skipping: a benchmark; set AUDITPIPE_BENCH=1 (make bench)")
	}
	n := 200000
	if v, err := strconv.Atoi(os.Getenv("AUDITPIPE_BENCH_ROWS")); err == nil && v > 0 {
		n = v
	}
	const batchRows = 10000
	eng := clickhousetest.OpenEmbedded(t, "")
	ctx := context.Background()
	if _, err := clickhouse.Migrate(ctx, eng, 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := eng.Exec(ctx, "CREATE TABLE baseline AS audit_events"); err != nil {
		t.Fatal(err)
	}
	evs := clickhousetest.ManyEvents(n, time.Now().Add(-time.Hour))
	msgs := eventMessages(evs)
	var bytes int
	for _, m := range msgs {
		bytes += len(m.Value)
	}

	// chDB alone: the same JSON rows, the same batch size.
	cpu0 := cpuTime()
	start := time.Now()
	for i := 0; i < n; i += batchRows {
		b := []byte("INSERT INTO baseline FORMAT JSONEachRow\n")
		for _, m := range msgs[i:min(i+batchRows, n)] {
			b = append(b, m.Value...)
			b = append(b, '\n')
		}
		if err := eng.Exec(ctx, string(b)); err != nil {
			t.Fatal(err)
		}
	}
	base := time.Since(start)
	baseCPU := cpuTime() - cpu0

	// The indexer: every row already in Kafka; the clock runs from Run
	// (consumer-group join included) to the last row indexed.
	kc, _ := kafkatest.Start(t, 3)
	ic, kafkaMode := kc, "plaintext"
	if os.Getenv("AUDITPIPE_BENCH_KAFKA") == "secure" {
		e := kafkatest.StartSecure(t, 3)
		kc, ic, kafkaMode = e.Admin(), e.Client(kafka.RoleIndexer), "TLS+SCRAM-SHA-512+ACLs"
	}
	produce(t, kc, schemas.TopicAudit, msgs)
	cfg := testConfig(ic, "auditpipe-indexer-bench")
	cfg.Batch.MaxRows = batchRows
	cfg.Batch.MaxWait = time.Second
	ix, err := New(cfg, Deps{Engine: eng})
	if err != nil {
		t.Fatal(err)
	}
	cpu0 = cpuTime()
	start = time.Now()
	stop := startIndexer(t, ix)
	waitFor(t, "all rows indexed", 10*time.Minute, func() bool {
		return countOr(eng, "SELECT count() FROM audit_events SETTINGS final = 0") >= n
	})
	idx := time.Since(start)
	idxCPU := cpuTime() - cpu0
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	baseRate := float64(n) / base.Seconds()
	idxRate := float64(n) / idx.Seconds()
	// CPU time of the process (the broker, the indexer and chDB are all
	// in it) says what the work cost when other processes share the
	// machine and wall-clock rates swing.
	report := fmt.Sprintf("rows=%d avg_row_bytes=%d batch_rows=%d kafka=%s\nchdb_insert_jsoneachrow: %.0f rows/s (%.2fs, %.2fs CPU)\nindexer_kafka_to_chdb:   %.0f rows/s (%.2fs, %.2fs CPU)\nratio: %.0f%% (target >= 70%%); CPU ratio %.0f%%\n",
		n, bytes/n, batchRows, kafkaMode, baseRate, base.Seconds(), baseCPU.Seconds(), idxRate, idx.Seconds(), idxCPU.Seconds(), 100*idxRate/baseRate, 100*baseCPU.Seconds()/idxCPU.Seconds())
	t.Log("\n" + report)
	if out := os.Getenv("AUDITPIPE_BENCH_OUT"); out != "" {
		_ = os.WriteFile(out, []byte(report), 0o644)
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
