package collector

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/schemas"
)

// TestCollectorChild is not a test: it is the collector process that
// TestKillMidFile starts and kills. It runs only when the parent sets
// AUDITPIPE_TEST_CHILD to the configuration (JSON).
func TestCollectorChild(t *testing.T) {
	raw := os.Getenv("AUDITPIPE_TEST_CHILD")
	if raw == "" {
		t.Skip("helper process for TestKillMidFile, run by it")
	}
	var cfg Config
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatal(err)
	}
	c, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	// Runs until the parent kills it.
	if err := c.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestKillMidFile kills the collector process with SIGKILL in the middle of
// a file, twice, and restarts it: every event reaches Kafka (no loss), and
// the only repeats are events of a batch in flight at the kill (delivery
// is at least once across a crash; consumers dedup by event_id).
func TestKillMidFile(t *testing.T) {
	kcfg, _ := kafkatest.Start(t, 1)
	dir := t.TempDir()
	cfg := testConfig(t, kcfg, dir)
	cfg.Passwd, _ = filepath.Abs(cfg.Passwd)
	cfg.Group, _ = filepath.Abs(cfg.Group)
	cfg.BatchMaxEvents = 50
	const total = 3000
	appendFile(t, cfg.Input.Path, sessionLines(1, total))
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCollectorChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "AUDITPIPE_TEST_CHILD="+string(raw))
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	cons := newConsumer(t, kcfg, schemas.TopicAudit, 1)
	for i, at := range []int{400, 1500} {
		child := start()
		cons.waitFor(t, fmt.Sprintf("%d events before kill %d", at, i+1), 60*time.Second, atLeast(at))
		if err := child.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = child.Wait()
	}
	start()
	seen := map[string]int{}
	read := 0
	cons.waitFor(t, "every event", 60*time.Second, func(msgs []kafka.Record) bool {
		for _, e := range decodeAll(t, msgs[read:]) {
			seen[e.EventID]++
		}
		read = len(msgs)
		return len(seen) >= total
	})
	cons.drain(t)
	events := decodeAll(t, cons.msgs)
	seen = map[string]int{}
	for _, e := range events {
		seen[e.EventID]++
	}
	dups := len(events) - len(seen)
	if len(seen) != total {
		t.Fatalf("%d distinct events, want %d", len(seen), total)
	}
	// At most the batches in flight at the two kills come again.
	if dups > 2*cfg.BatchMaxEvents {
		t.Fatalf("%d repeated events, more than two batches of %d", dups, cfg.BatchMaxEvents)
	}
	t.Logf("%d events, %d distinct, %d repeated after two SIGKILLs", len(events), len(seen), dups)
}
