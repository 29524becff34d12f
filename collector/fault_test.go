package collector

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/collector/spool"
	"github.com/auditpipe/auditpipe/collector/tail"
	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/internal/testenv"
	"github.com/auditpipe/auditpipe/schemas"
)

// logRecorder is a slog handler that keeps every record's message (and
// writes it to the test log), so that tests can count log lines.
type logRecorder struct {
	slog.Handler
	mu   *sync.Mutex
	msgs *[]string
}

func newLogRecorder(t *testing.T) *logRecorder {
	return &logRecorder{Handler: slog.NewTextHandler(testWriter{t}, nil), mu: &sync.Mutex{}, msgs: &[]string{}}
}

func (h *logRecorder) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	*h.msgs = append(*h.msgs, r.Message)
	h.mu.Unlock()
	return h.Handler.Handle(ctx, r)
}

func (h *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{Handler: h.Handler.WithAttrs(as), mu: h.mu, msgs: h.msgs}
}

func (h *logRecorder) WithGroup(name string) slog.Handler {
	return &logRecorder{Handler: h.Handler.WithGroup(name), mu: h.mu, msgs: h.msgs}
}

// count returns how many messages so far contain s.
func (h *logRecorder) count(s string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range *h.msgs {
		if strings.Contains(m, s) {
			n++
		}
	}
	return n
}

// countExact returns how many messages so far are msg.
func (h *logRecorder) countExact(msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range *h.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

// metricValue returns the value of the gauge or counter name whose labels
// include labels (name, value pairs); 0 when absent.
func metricValue(t *testing.T, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
				}
				if !found {
					continue metrics
				}
			}
			return m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return 0
}

// running is a collector run by a test.
type running struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// runCollector runs a collector logging to log until stop.
func runCollector(t *testing.T, cfg Config, reg prometheus.Registerer, log *slog.Logger) *running {
	t.Helper()
	c, err := New(cfg, Deps{Registry: reg, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = c.Run(ctx)
	}()
	t.Cleanup(func() { _, _ = r.stop(time.Minute) })
	return r
}

// exited reports whether Run has returned.
func (r *running) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// stop cancels the run (as SIGTERM does) and waits at most within for Run
// to return; it returns Run's error and how long the stop took.
func (r *running) stop(within time.Duration) (time.Duration, error) {
	t0 := time.Now()
	r.cancel()
	select {
	case <-r.done:
		return time.Since(t0), r.err
	case <-time.After(within):
		return time.Since(t0), fmt.Errorf("collector did not stop within %v", within)
	}
}

// makeReadOnly makes dir read-only for new opens, as a file system that
// turns read-only does: a read-only bind mount of dir over itself (a
// remount of the tmpfs itself is refused while a file on it is open for
// writing). The returned function undoes it; it is also called at cleanup.
func makeReadOnly(t *testing.T, dir string) (undo func()) {
	t.Helper()
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount %s: %v", dir, err)
	}
	mounted := true
	undo = func() {
		if !mounted {
			return
		}
		mounted = false
		// Lazily: the collector may hold a file opened through it.
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount the read-only bind mount %s: %v", dir, err)
		}
	}
	t.Cleanup(undo)
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount %s read-only: %v", dir, err)
	}
	return undo
}

// restartableBroker is an embedded broker that a test stops and starts
// again on the same port and data directory.
type restartableBroker struct {
	t      *testing.T
	port   int
	dir    string
	broker *kafka.Embedded
	kcfg   kafka.Config
}

func startBroker(t *testing.T) *restartableBroker {
	b := &restartableBroker{t: t, dir: t.TempDir()}
	b.up()
	t.Cleanup(b.down)
	b.kcfg = kafka.Config{Brokers: b.broker.Brokers()}.WithDefaults()
	b.kcfg.DialTimeout = time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.kcfg.EnsureTopics(ctx, kafka.PipelineTopics(1)...); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *restartableBroker) up() {
	if b.broker != nil {
		return
	}
	var err error
	// Port 0 the first time; the same port after a restart.
	if b.broker, err = kafka.StartEmbedded(b.port, b.dir, 1); err != nil {
		b.t.Fatal(err)
	}
	b.port = b.broker.Port()
}

func (b *restartableBroker) down() {
	if b.broker != nil {
		b.broker.Close()
		b.broker = nil
	}
}

// TestStateDirFaults runs the collector with its state directory (spool
// and checkpoint) on a 256 KiB tmpfs and makes that directory fail while
// audit records keep coming: full (a filler file takes the rest of the
// disk), or made read-only. Kafka is down where the batches must go to
// the spool. The collector pauses input, logs the pause once, shows it in
// auditpipe_collector_paused and retries; when the fault clears (the
// filler is removed, the directory writable again, or Kafka back to take
// the spool's backlog off the full disk), every event reaches Kafka
// exactly once and the collector never exited.
func TestStateDirFaults(t *testing.T) {
	const size = 256 << 10
	var undoReadOnly func()
	tests := []struct {
		name      string
		kafkaDown bool // while the fault lasts: batches go to the spool
		reason    string
		fault     func(t *testing.T, state string)
		clear     func(t *testing.T, state string)
	}{
		{
			name: "spool disk full", kafkaDown: true, reason: "spool_disk_full",
			fault: func(t *testing.T, state string) { testenv.FillDisk(t, filepath.Join(state, "filler")) },
			clear: func(t *testing.T, state string) {
				if err := os.Remove(filepath.Join(state, "filler")); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			// Regression: the spool could not record a delivered batch
			// on a full disk (the head file needs a block) and kept
			// the space it held: stuck although Kafka was back.
			name: "spool fills the disk, Kafka takes the backlog", kafkaDown: true, reason: "spool_disk_full",
			fault: func(t *testing.T, state string) { testenv.FillDisk(t, filepath.Join(state, "filler")) },
			clear: func(t *testing.T, state string) {},
		},
		{
			name: "checkpoint disk full", reason: "checkpoint_disk_full",
			fault: func(t *testing.T, state string) { testenv.FillDisk(t, filepath.Join(state, "filler")) },
			clear: func(t *testing.T, state string) {
				if err := os.Remove(filepath.Join(state, "filler")); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			// The spool goes on in the segment it holds open; the
			// checkpoint, a new file each time, cannot be saved.
			name: "state dir read-only", kafkaDown: true, reason: "checkpoint_read_only",
			fault: func(t *testing.T, state string) { undoReadOnly = makeReadOnly(t, state) },
			clear: func(t *testing.T, state string) { undoReadOnly() },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			broker := startBroker(t)
			dir := t.TempDir()
			cfg := testConfig(t, broker.kcfg, dir)
			cfg.BatchMaxEvents = 20
			testenv.MountTmpfs(t, cfg.StateDir, size)
			reg := prometheus.NewRegistry()
			logs := newLogRecorder(t)
			metric := func(name string, labels ...string) float64 { return metricValue(t, reg, name, labels...) }
			if tt.kafkaDown {
				broker.down()
			}

			// Before the fault: the first batches are made durable
			// and the checkpoint saved.
			appendFile(t, cfg.Input.Path, sessionLines(1, 40))
			run := runCollector(t, cfg, reg, slog.New(logs))
			durable := "auditpipe_collector_produced_messages_total"
			if tt.kafkaDown {
				durable = "auditpipe_collector_spool_entries"
			}
			waitUntil(t, "the first batches durable", 20*time.Second, func() bool { return metric(durable) >= 2 })
			waitUntil(t, "the first checkpoint", 20*time.Second, func() bool {
				_, err := os.Stat(filepath.Join(cfg.StateDir, "checkpoint.json"))
				return err == nil
			})

			// The fault, while records keep coming: input pauses and
			// the collector retries.
			tt.fault(t, cfg.StateDir)
			appendFile(t, cfg.Input.Path, sessionLines(41, 100))
			waitUntil(t, "the pause", 20*time.Second, func() bool { return metric("auditpipe_collector_paused", "reason", tt.reason) == 1 })
			waitUntil(t, "three failed attempts", 20*time.Second, func() bool {
				return metric("auditpipe_collector_fault_errors_total", "reason", tt.reason) >= 3
			})
			appendFile(t, cfg.Input.Path, sessionLines(141, 60))
			if run.exited() {
				t.Fatalf("the collector exited during the fault: %v", run.err)
			}

			// The fault clears, then Kafka is back.
			tt.clear(t, cfg.StateDir)
			broker.up()
			waitUntil(t, "the recovery", 30*time.Second, func() bool { return metric("auditpipe_collector_paused", "reason", tt.reason) == 0 })
			cons := newConsumer(t, broker.kcfg, schemas.TopicAudit, 1)
			cons.waitFor(t, "every event", 30*time.Second, atLeast(200))
			waitUntil(t, "the spool drained", 20*time.Second, func() bool { return metric("auditpipe_collector_spool_entries") == 0 })
			cons.drain(t)
			if run.exited() {
				t.Fatalf("the collector exited: %v", run.err)
			}
			if _, err := run.stop(30 * time.Second); err != nil {
				t.Fatal(err)
			}
			checkExactlyOnce(t, decodeAll(t, cons.msgs), 200)
			op, _, _ := strings.Cut(tt.reason, "_")
			if n, m := logs.count("pausing input"), logs.count(op+": "+faultSays(strings.TrimPrefix(tt.reason, op+"_"))+", pausing input"); n != 1 || m != 1 {
				t.Errorf("%d pause log lines, %d of them for %s, want 1 and 1", n, m, tt.reason)
			}
			if n := logs.count("recovered, input resumed"); n != 1 {
				t.Errorf("%d recovery log lines, want 1", n)
			}
			// Bug (mutant): "spool drained" was logged while batches were
			// left, and not once the spool was empty.
			drained := 0
			if tt.kafkaDown {
				drained = 1
			}
			if n := logs.count("spool drained"); n != drained {
				t.Errorf("%d log lines \"spool drained\", want %d", n, drained)
			}
			// Bug (mutant): every pause but the spool's own bound counted
			// as the spool being full. A full disk is not that bound.
			if n := metric("auditpipe_collector_spool_full_total"); n != 0 {
				t.Errorf("auditpipe_collector_spool_full_total = %v after a %s pause, want 0", n, tt.reason)
			}
		})
	}
}

// Regression: a FIFO at the audit log path hung the collector in open(2),
// SIGTERM included, and a directory there stopped it with "is a
// directory". Both are now refused (logged once, retried with backoff)
// while the rest of the collector runs: the spool drains, the grants are
// followed. A stop is prompt, and once the operator puts a regular file
// at the path its events are read, each once.
func TestAuditLogPathNotRegular(t *testing.T) {
	tests := []struct {
		name string
		make func(path string) error
	}{
		{"fifo", func(path string) error { return syscall.Mkfifo(path, 0o600) }},
		{"directory", func(path string) error { return os.Mkdir(path, 0o700) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kcfg, _ := kafkatest.Start(t, 1)
			dir := t.TempDir()
			policy, pub := grantKey(t, dir)
			publishGrant(t, kcfg, policy, schemas.Grant{LoginID: "USERNAME", ReqAuthID: "ocid1.req.42", AuditType: schemas.AuditCommand})
			cfg := testConfig(t, kcfg, dir)
			cfg.Grants = nil
			yes := true
			cfg.FollowGrants = &yes
			cfg.GrantKeys = []string{pub}
			if err := tt.make(cfg.Input.Path); err != nil {
				t.Fatal(err)
			}
			spoolBatch(t, cfg.StateDir, schemas.Event{EventID: "spooled-before-start", Host: cfg.Host})
			cons := newConsumer(t, kcfg, schemas.TopicAudit, 1)
			const refused = "input: the audit log path is not a regular file"

			// Refused, and stopped while refused.
			reg := prometheus.NewRegistry()
			logs := newLogRecorder(t)
			run := runCollector(t, cfg, reg, slog.New(logs))
			waitRefused(t, reg)
			took, err := run.stop(5 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if took > 2*time.Second {
				t.Errorf("the stop took %v", took)
			}
			if n := logs.count(refused); n != 1 {
				t.Errorf("%d log lines %q, want 1", n, refused)
			}

			// Refused while the rest runs, then fixed by the operator.
			reg = prometheus.NewRegistry()
			logs = newLogRecorder(t)
			run = runCollector(t, cfg, reg, slog.New(logs))
			waitRefused(t, reg)
			cons.waitFor(t, "the spooled batch, drained while the path is refused", 20*time.Second, atLeast(1))
			waitUntil(t, "the followed grant", 20*time.Second, func() bool { return metricValue(t, reg, "auditpipe_collector_grants") == 1 })
			if err := os.Remove(cfg.Input.Path); err != nil {
				t.Fatal(err)
			}
			appendFile(t, cfg.Input.Path, sessionLines(1, 30))
			cons.waitFor(t, "the events of the regular file", 30*time.Second, atLeast(31))
			if v := metricValue(t, reg, "auditpipe_collector_paused", "reason", "input_not_regular"); v != 0 {
				t.Errorf("auditpipe_collector_paused{reason=input_not_regular} = %v after the recovery", v)
			}
			cons.drain(t)
			if _, err := run.stop(5 * time.Second); err != nil {
				t.Fatal(err)
			}
			events := decodeAll(t, cons.msgs)
			if events[0].EventID != "spooled-before-start" {
				t.Fatalf("first message %s, want the spooled batch", events[0].EventID)
			}
			checkExactlyOnce(t, events[1:], 30)
			for _, e := range events[1:] {
				if e.ReqAuthID != "ocid1.req.42" {
					t.Fatalf("event %s: req_auth_id %q, want the followed grant's", e.RecID, e.ReqAuthID)
				}
			}
			if n, m := logs.count(refused), logs.count("input: recovered"); n != 1 || m != 1 {
				t.Errorf("%d refusal and %d recovery log lines, want 1 and 1", n, m)
			}
		})
	}
}

// waitRefused waits until the collector has refused the audit log path
// three times.
func waitRefused(t *testing.T, reg prometheus.Gatherer) {
	t.Helper()
	waitUntil(t, "the path refused three times", 20*time.Second, func() bool {
		return metricValue(t, reg, "auditpipe_collector_paused", "reason", "input_not_regular") == 1 &&
			metricValue(t, reg, "auditpipe_collector_fault_errors_total", "reason", "input_not_regular") >= 3
	})
}

// spoolBatch leaves a batch of one event in the collector's spool, as a
// collector stopped while Kafka was away does.
func spoolBatch(t *testing.T, stateDir string, e schemas.Event) {
	t.Helper()
	sp, err := spool.Open(filepath.Join(stateDir, "spool"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	val, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Append(spool.Entry{Messages: []spool.Message{{Key: []byte(e.Host), Value: val}}, Meta: []byte(`{"dead_letters":0}`)}); err != nil {
		t.Fatal(err)
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
}

// publishGrant writes g, signed by s, to the grants topic; unnumbered, it
// is numbered by the clock (as `auditpipe grant publish` does).
func publishGrant(t *testing.T, kcfg kafka.Config, s *sign.Signer, g schemas.Grant) {
	t.Helper()
	if g.PublishSeq == 0 {
		g.PublishSeq = time.Now().UnixMicro()
	}
	rec, err := grants.Record(s, g)
	if err != nil {
		t.Fatal(err)
	}
	publishRecords(t, kcfg, rec)
}

// publishRecords writes recs to the grants topic as they are.
func publishRecords(t *testing.T, kcfg kafka.Config, recs ...kafka.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := grants.Publish(ctx, kcfg, recs...); err != nil {
		t.Fatal(err)
	}
}

// grantKey makes a signing key and writes its public half under dir, as
// collector.grant_keys names it.
func grantKey(t *testing.T, dir string) (*sign.Signer, string) {
	t.Helper()
	key, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := sign.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "grants-"+s.KeyID()+".pub")
	if err := sign.SavePublicKey(path, s.PublicKey()); err != nil {
		t.Fatal(err)
	}
	return s, path
}

// TestFaultClass: the reason a paused operation is labelled with.
func TestFaultClass(t *testing.T) {
	perm := &fs.PathError{Op: "open", Path: "audit.log.1", Err: syscall.EACCES}
	tests := []struct {
		op   string
		err  error
		want string
	}{
		{opSpool, fmt.Errorf("collector: %w", spool.ErrFull), "full"},
		{opSpool, fmt.Errorf("collector: %w", spool.ErrTooLarge), "full"},
		{opSpool, &fs.PathError{Op: "write", Path: "x.seg", Err: syscall.ENOSPC}, "disk_full"},
		{opCheckpoint, &fs.PathError{Op: "write", Path: "c", Err: syscall.EDQUOT}, "disk_full"},
		{opCheckpoint, &fs.PathError{Op: "open", Path: "c", Err: syscall.EROFS}, "read_only"},
		{opCheckpoint, perm, "read_only"},
		{opSpool, &fs.PathError{Op: "write", Path: "x.seg", Err: syscall.EIO}, "io_error"},
		{opInput, fmt.Errorf("tail: %w", &tail.NotRegularError{Path: "audit.log", Mode: fs.ModeNamedPipe}), "not_regular"},
		{opInput, fmt.Errorf("tail: rotated file cannot be opened: %w", perm), "unreadable"},
		{opInput, &fs.PathError{Op: "read", Path: "audit.log", Err: syscall.EIO}, "io_error"},
	}
	reasons := map[string]bool{}
	for _, r := range faultReasons() {
		reasons[r] = true
	}
	for _, tt := range tests {
		got := faultClass(tt.op, tt.err)
		if got != tt.want {
			t.Errorf("faultClass(%s, %v) = %s, want %s", tt.op, tt.err, got, tt.want)
		}
		if !reasons[tt.op+"_"+got] {
			t.Errorf("reason %s_%s is not among faultReasons", tt.op, got)
		}
	}
}
