package indexer

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/testenv"
	"github.com/auditpipe/auditpipe/internal/testlog"
	"github.com/auditpipe/auditpipe/schemas"
)

// Regression: a full chDB directory was taken for rows the store refused
// (any chDB exception was a row error). Each retry bisected the batch down
// to single-row inserts (2n-1 inserts, each under a token of its own);
// rows refused while a smaller insert still fitted would have been
// dead-lettered as insert_rejected, out of ClickHouse for good (read from
// the code, not observed); and nothing said the indexer was paused. Now the indexer pauses on
// NOT_ENOUGH_SPACE: it holds the batch, commits nothing, logs once, raises
// auditpipe_indexer_paused{reason="store_disk_full"}, and inserts the same
// batch with the same token once the disk has room.
func TestStoreDiskFullPausesThenResumes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "chdb")
	testenv.MountTmpfs(t, dir, 32<<20)
	eng := clickhousetest.OpenEmbedded(t, dir)
	kc, _ := kafkatest.Start(t, 3)

	logs := &testlog.Buffer{}
	cfg := testConfig(kc, "diskfull")
	ix, err := New(cfg, Deps{Engine: eng, Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ix.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(stop)
	running := func(when string) {
		t.Helper()
		select {
		case err := <-done:
			stopped = true
			t.Fatalf("the indexer exited %s: %v\n%s", when, err, logs)
		default:
		}
	}
	const all = "SELECT count() FROM audit_events SETTINGS final = 0" // each copy counts
	lag := func() int64 {
		n, err := kc.Lag(context.Background(), cfg.Group, schemas.TopicAudit)
		if err != nil {
			return -1
		}
		return n
	}

	base := time.Date(2020, 10, 29, 3, 20, 22, 418e6, time.UTC)
	evs := clickhousetest.ManyEvents(3000, base)
	first, rest := evs[:500], evs[500:]
	produce(t, kc, schemas.TopicAudit, eventMessages(first))
	waitFor(t, "the first events indexed", 30*time.Second, func() bool { return countOr(eng, all) == len(first) })
	waitFor(t, "the first events committed", 30*time.Second, func() bool { return lag() == 0 })

	// The disk fills up; the next events cannot be inserted.
	filler := filepath.Join(dir, "filler")
	testenv.FillDisk(t, filler)
	produce(t, kc, schemas.TopicAudit, eventMessages(rest))
	paused := ix.m.paused.WithLabelValues(pauseStoreDiskFull)
	waitFor(t, "the pause", 30*time.Second, func() bool { return testutil.ToFloat64(paused) == 1 })
	// Paused: nothing more inserted, nothing committed, still running.
	waitFor(t, "several failed attempts", 30*time.Second, func() bool { return testutil.ToFloat64(ix.m.insertErrors) >= 3 })
	running("while the disk was full")
	if n := countOr(eng, all); n != len(first) {
		t.Errorf("%d rows while the disk was full, want %d", n, len(first))
	}
	if n := lag(); n != int64(len(rest)) {
		t.Errorf("lag %d while paused, want %d: nothing committed", n, len(rest))
	}

	// Room again: the held batch goes in, the rest follows, each once.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every event indexed", 60*time.Second, func() bool { return countOr(eng, all) >= len(evs) })
	waitFor(t, "every event committed", 30*time.Second, func() bool { return lag() == 0 })
	running("after the disk had room again")
	stop()
	if n, d := countOr(eng, all), countOr(eng, "SELECT uniqExact(event_id) FROM audit_events SETTINGS final = 0"); n != len(evs) || d != len(evs) {
		t.Errorf("%d rows, %d distinct events without FINAL, want %d of each", n, d, len(evs))
	}
	if got := testutil.ToFloat64(paused); got != 0 {
		t.Errorf("paused gauge %v after the recovery, want 0", got)
	}
	for _, r := range Reasons {
		if n := testutil.ToFloat64(ix.m.deadLetters.WithLabelValues(r)); n != 0 {
			t.Errorf("%v dead letters (%s), want none", n, r)
		}
	}
	pauseLine := regexp.MustCompile(`(?m)^.*level=WARN.*store disk full.*failed; retrying with backoff.*reason=store_disk_full.*NOT_ENOUGH_SPACE.*$`)
	recoveryLine := regexp.MustCompile(`(?m)^.*level=INFO.*store disk full.* recovered.*reason=store_disk_full.*$`)
	if p, r := countLines(logs, pauseLine), countLines(logs, recoveryLine); p != 1 || r != 1 {
		t.Errorf("%d pause and %d recovery lines, want one of each:\n%s", p, r, logs)
	}
	if n := countLines(logs, regexp.MustCompile(`(?m)^.*level=(WARN|ERROR).*$`)); n != 1 {
		t.Errorf("%d warning or error lines, want only the pause:\n%s", n, logs)
	}
}

// countLines returns how many matches of re the log holds.
func countLines(logs *testlog.Buffer, re *regexp.Regexp) int {
	return len(re.FindAllStringIndex(logs.String(), -1))
}
