package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
)

const topic = "opctl.audit.v1"

// broker starts a broker for a test and returns its configuration and a
// function that takes it away and brings it back with its data.
type broker struct {
	name  string
	start func(t *testing.T, partitions int) (kafka.Config, func(*testing.T))
}

// brokers are the group reader's test brokers: the embedded one (kfake)
// and a real Apache Kafka (skipped, saying why, where it is not installed).
var brokers = []broker{
	{"kfake", func(t *testing.T, partitions int) (kafka.Config, func(*testing.T)) {
		dir := t.TempDir()
		e, err := kafka.StartEmbedded(0, dir, partitions)
		if err != nil {
			t.Fatal(err)
		}
		port := e.Port()
		addr := e.Brokers()[0]
		t.Cleanup(func() { e.Close() })
		cfg := kafka.Config{Brokers: e.Brokers(), DialTimeout: time.Second}.WithDefaults()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cfg.EnsureTopics(ctx, kafka.PipelineTopics(partitions)...); err != nil {
			t.Fatal(err)
		}
		return cfg, func(t *testing.T) {
			e.Close()
			// Away: its port refuses connections (as after the Apache
			// broker's kill), then it comes back on the same port.
			waitFor(t, "the closed broker's port to refuse connections", func() bool {
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err == nil {
					c.Close()
				}
				return err != nil
			})
			if e, err = kafka.StartEmbedded(port, dir, partitions); err != nil {
				t.Fatal(err)
			}
		}
	}},
	{"apache", func(t *testing.T, partitions int) (kafka.Config, func(*testing.T)) {
		cfg, a := kafkatest.StartApache(t, partitions)
		return cfg, func(t *testing.T) {
			a.Kill(t)
			a.Start(t)
		}
	}},
}

// forBrokers runs test against each broker.
func forBrokers(t *testing.T, partitions int, test func(t *testing.T, cfg kafka.Config, restart func(*testing.T))) {
	for _, b := range brokers {
		t.Run(b.name, func(t *testing.T) {
			cfg, restart := b.start(t, partitions)
			test(t, cfg, restart)
		})
	}
}

// write produces values from..to-1 ("v<i>"), keyed over 6 hosts.
func write(t *testing.T, cfg kafka.Config, from, to int) {
	t.Helper()
	w, err := cfg.NewWriter(topic)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var msgs []kafka.Record
	for i := from; i < to; i++ {
		msgs = append(msgs, kafka.Record{Key: []byte(fmt.Sprintf("host%d", i%6)), Value: []byte(fmt.Sprintf("v%d", i))})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.Write(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}

// member is a running GroupReader that records what it read and commits
// every batch it was handed.
type member struct {
	r    *kafka.GroupReader
	stop context.CancelFunc
	done chan error

	mu        sync.Mutex
	seen      map[string]int
	last      map[int]int64 // partition -> last offset handed
	gens      []*kafka.Generation
	commitErr error
	orderErr  error
}

func join(t *testing.T, cfg kafka.Config, group string) *member {
	t.Helper()
	r, err := cfg.NewGroupReader(kafka.GroupReaderConfig{Group: group, Topics: []string{topic}, MaxWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{r: r, stop: cancel, done: make(chan error, 1), seen: map[string]int{}, last: map[int]int64{}}
	go func() {
		m.done <- r.Run(ctx, func(_ context.Context, b kafka.Batch) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			if len(m.gens) == 0 || m.gens[len(m.gens)-1] != b.Generation {
				// A new assignment starts each partition at its
				// committed offset.
				m.gens = append(m.gens, b.Generation)
				clear(m.last)
			}
			for _, msg := range b.Records {
				if last, ok := m.last[b.Partition]; ok && msg.Offset != last+1 && m.orderErr == nil {
					m.orderErr = fmt.Errorf("partition %d: offset %d after %d", b.Partition, msg.Offset, last)
				}
				m.last[b.Partition] = msg.Offset
				m.seen[string(msg.Value)]++
			}
			last := b.Records[len(b.Records)-1]
			if err := b.Generation.Commit(map[string]map[int]int64{b.Topic: {b.Partition: last.Offset + 1}}); err != nil && !b.Generation.Ended() {
				m.commitErr = err
			}
			return nil
		})
	}()
	return m
}

// hasAll reports whether the member read every value from..to-1.
func (m *member) hasAll(from, to int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := from; i < to; i++ {
		if m.seen[fmt.Sprintf("v%d", i)] == 0 {
			return false
		}
	}
	return true
}

func (m *member) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.seen)
}

// leave stops reading and leaves the group; it fails the test on any
// error the member met.
func (m *member) leave(t *testing.T) {
	t.Helper()
	m.stop()
	if err := <-m.done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if err := m.r.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.commitErr != nil {
		t.Errorf("commit in a live generation: %v", m.commitErr)
	}
	if m.orderErr != nil {
		t.Errorf("order: %v", m.orderErr)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestGroupReaderCommitsAndResumes: every message is handed once, in
// offset order per partition; a later member of the group resumes after
// what was committed.
func TestGroupReaderCommitsAndResumes(t *testing.T) {
	forBrokers(t, 3, testCommitsAndResumes)
}

func testCommitsAndResumes(t *testing.T, cfg kafka.Config, _ func(*testing.T)) {
	write(t, cfg, 0, 3000)
	a := join(t, cfg, "g")
	waitFor(t, "3000 values", func() bool { return a.count() == 3000 })
	a.leave(t)
	for v, n := range a.seen {
		if n != 1 {
			t.Fatalf("%s handed %d times", v, n)
		}
	}

	write(t, cfg, 3000, 3010)
	b := join(t, cfg, "g")
	waitFor(t, "the 10 new values", func() bool { return b.count() >= 10 })
	// The group's lag is 0 once the member committed everything up to the
	// end of every partition: a member that did not resume would have read
	// (and counted) the first 3000 again by then.
	waitFor(t, "the second member to commit up to the end", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		lag, err := cfg.Lag(ctx, "g", topic)
		return err == nil && lag == 0
	})
	b.leave(t)
	if len(b.seen) != 10 {
		t.Fatalf("the second member read %d values, want only the 10 written after the first one committed", len(b.seen))
	}
	for i := 3000; i < 3010; i++ {
		if b.seen[fmt.Sprintf("v%d", i)] != 1 {
			t.Fatalf("v%d not read once by the second member: %v", i, b.seen)
		}
	}
}

// TestGroupReaderRebalance: a second member takes partitions over; the
// first member's generation ends (its commits are refused) and it goes on
// with what it keeps; between them every message is read; when the second
// leaves, the first gets everything back.
func TestGroupReaderRebalance(t *testing.T) {
	forBrokers(t, 3, testRebalance)
}

func testRebalance(t *testing.T, cfg kafka.Config, _ func(*testing.T)) {
	write(t, cfg, 0, 300)
	a := join(t, cfg, "g")
	waitFor(t, "the first member's 300 values", func() bool { return a.count() == 300 })
	a.mu.Lock()
	first := a.gens[0]
	a.mu.Unlock()

	b := join(t, cfg, "g")
	waitFor(t, "the first generation to end", first.Ended)
	if err := first.Commit(map[string]map[int]int64{topic: {0: 1}}); err == nil {
		t.Fatal("a commit through an ended generation was accepted")
	}
	write(t, cfg, 300, 600)
	union := func() int {
		a.mu.Lock()
		b.mu.Lock()
		defer a.mu.Unlock()
		defer b.mu.Unlock()
		n := 0
		for i := range 600 {
			v := fmt.Sprintf("v%d", i)
			if a.seen[v] > 0 || b.seen[v] > 0 {
				n++
			}
		}
		return n
	}
	waitFor(t, "all 600 values between the two members", func() bool { return union() == 600 })
	if b.count() == 0 {
		t.Fatal("the second member was given nothing")
	}
	b.leave(t)

	write(t, cfg, 600, 700)
	waitFor(t, "the first member to read on alone", func() bool { return a.hasAll(600, 700) })
	a.leave(t)
}

// TestGroupReaderBrokerRestart: the broker goes away and comes back (same
// port, same data): reading goes on.
func TestGroupReaderBrokerRestart(t *testing.T) {
	forBrokers(t, 2, testBrokerRestart)
}

func testBrokerRestart(t *testing.T, cfg kafka.Config, restart func(*testing.T)) {
	write(t, cfg, 0, 100)
	a := join(t, cfg, "g")
	waitFor(t, "100 values", func() bool { return a.count() == 100 })

	restart(t)
	write(t, cfg, 100, 200)
	waitFor(t, "the 100 values written after the restart", func() bool { return a.hasAll(100, 200) })
	a.stop()
	if err := <-a.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := a.r.Close(); err != nil {
		t.Logf("Close after a broker restart: %v", err)
	}
}

// TestGroupReaderHandlerError: Run stops and returns what the handler
// returned.
func TestGroupReaderHandlerError(t *testing.T) {
	cfg, _ := kafkatest.Start(t, 2)
	write(t, cfg, 0, 10)
	r, err := cfg.NewGroupReader(kafka.GroupReaderConfig{Group: "g", Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	boom := errors.New("boom")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = r.Run(ctx, func(context.Context, kafka.Batch) error { return boom })
	var he *kafka.HandlerError
	if !errors.Is(err, boom) || !errors.As(err, &he) {
		t.Fatalf("Run = %v, want the handler's error", err)
	}
}

// TestGroupReaderLag: the lag is what the partitions hold beyond what was
// fetched, and 0 once everything was.
func TestGroupReaderLag(t *testing.T) {
	cfg, _ := kafkatest.Start(t, 1)
	for i := 0; i < 1000; i += 10 {
		write(t, cfg, i, i+10) // record batches of 10
	}
	r, err := cfg.NewGroupReader(kafka.GroupReaderConfig{Group: "g", Topics: []string{topic}, MaxBytes: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first := make(chan int, 1)
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- r.Run(ctx, func(ctx context.Context, b kafka.Batch) error {
			select {
			case first <- len(b.Records):
				select { // hold the first batch
				case <-release:
				case <-ctx.Done():
				}
			default:
			}
			return nil
		})
	}()
	n := <-first
	if n >= 1000 {
		t.Fatalf("the first fetch of at most 1 KiB held %d messages", n)
	}
	if lag := r.Lag(); lag != int64(1000-n) {
		t.Fatalf("lag after a first fetch of %d = %d, want %d", n, lag, 1000-n)
	}
	close(release)
	waitFor(t, "lag 0", func() bool { return r.Lag() == 0 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestGroupReaderKeepsTheHandledBatch: the batch a handler works on is
// never the buffer the fetch ahead fills, also after an empty fetch (the
// reader then fetched into its spare buffer and kept it as the spare:
// the next fetch ahead overwrote the records being handled; found by
// the race detector in the forwarder's TestRestartMidStream).
func TestGroupReaderKeepsTheHandledBatch(t *testing.T) {
	cfg, _ := kafkatest.Start(t, 1)
	write(t, cfg, 0, 10)
	r, err := cfg.NewGroupReader(kafka.GroupReaderConfig{Group: "g", Topics: []string{topic}, MaxWait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	seen := 0
	var bad []string
	err = r.Run(ctx, func(_ context.Context, b kafka.Batch) error {
		before := make([]string, len(b.Records))
		for i, rec := range b.Records {
			before[i] = string(rec.Value)
		}
		seen += len(b.Records)
		switch {
		case seen == 10:
			// Past the first batch: let empty fetches happen, then the
			// second batch arrives.
			go func() {
				time.Sleep(300 * time.Millisecond)
				write(t, cfg, 10, 20)
			}()
		case before[0] == "v10":
			// While the second batch is handled, a third arrives for the
			// fetch ahead.
			write(t, cfg, 20, 30)
			time.Sleep(300 * time.Millisecond)
		}
		for i, rec := range b.Records {
			if string(rec.Value) != before[i] {
				bad = append(bad, fmt.Sprintf("record %d became %q while handled (was %q)", i, rec.Value, before[i]))
			}
		}
		if seen >= 30 {
			cancel()
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Fatalf("the fetch ahead overwrote a batch being handled: %v", bad)
	}
	if seen < 30 {
		t.Fatalf("%d records handled, want 30", seen)
	}
}
