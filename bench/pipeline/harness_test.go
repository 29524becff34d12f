package pipeline_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/auditgen"
	"github.com/auditpipe/auditpipe/internal/proctest"
)

// settings are the harness's knobs, from the environment (see
// scripts/bench.d/pipeline.sh and bench/README.md).
type settings struct {
	rate     float64       // contract events/s offered; 0: drain a pre-written log
	duration time.Duration // of the offered load
	events   int           // contract events of the pre-written log (drain)
	flush    time.Duration // the collector's flush interval
	siem     bool          // a forwarder to rsyslog
	perf     bool          // perf record the pipeline for a while
	gen      auditgen.Config
	maxBytes int64 // audit log rotation (auditd's max_log_file)
	numLogs  int
	out      string // summary file
	config   string // a configuration file for the all-in-one (--config), or ""
}

func loadSettings() settings {
	s := settings{
		rate:     envFloat("AUDITPIPE_BENCH_RATE", 50000),
		duration: envDuration("AUDITPIPE_BENCH_DURATION", 60*time.Second),
		events:   int(envFloat("AUDITPIPE_BENCH_EVENTS", 330000)),
		flush:    envDuration("AUDITPIPE_BENCH_FLUSH", 2*time.Second),
		siem:     os.Getenv("AUDITPIPE_BENCH_SIEM") != "none",
		perf:     os.Getenv("AUDITPIPE_BENCH_PERF") == "1",
		maxBytes: int64(envFloat("AUDITPIPE_BENCH_LOG_MB", 64)) << 20,
		numLogs:  int(envFloat("AUDITPIPE_BENCH_NUM_LOGS", 5)),
		out:      os.Getenv("AUDITPIPE_BENCH_OUT"),
		config:   os.Getenv("AUDITPIPE_BENCH_CONFIG"),
		// The all-in-one's grants are static (--grant): no audit type,
		// so every grant audits keystrokes.
		gen: auditgen.Config{Seed: 1, CommandAuditEvery: -1, Enriched: os.Getenv("AUDITPIPE_BENCH_ENRICHED") == "1",
			Nodes: strings.Fields(os.Getenv("AUDITPIPE_BENCH_NODES"))},
	}
	return s
}

func envFloat(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil && v >= 0 {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// expectedShare is the share of audit events the collector turns into
// contract events for cfg, measured on the generator itself.
func expectedShare(cfg auditgen.Config) float64 {
	g := auditgen.New(cfg)
	var buf []byte
	now := time.Now()
	for range 100000 {
		buf, _ = g.Append(buf[:0], now)
	}
	st := g.Stats()
	return float64(st.Expected) / float64(st.Events)
}

// buildAuditpipe builds the binary under test once per run.
func buildAuditpipe(b *testing.B) string {
	b.Helper()
	if p := os.Getenv("AUDITPIPE_BIN"); p != "" {
		return p
	}
	return proctest.Build(b, "github.com/auditpipe/auditpipe/cmd/auditpipe")
}

// expectedIDs are the event ids the pipeline must deliver, as the first 8
// bytes of each (little endian, as ClickHouse's
// reinterpretAsUInt64(unhex(…)) reads them), and their sum.
type expectedIDs struct {
	mu  sync.Mutex
	ids []uint64
	sum uint64
}

func idKey(id string) (uint64, bool) {
	var b [8]byte
	if len(id) < 16 {
		return 0, false
	}
	if _, err := hex.Decode(b[:], []byte(id[:16])); err != nil {
		return 0, false
	}
	return binary.LittleEndian.Uint64(b[:]), true
}

func (e *expectedIDs) add(id string) {
	k, _ := idKey(id)
	e.mu.Lock()
	e.ids = append(e.ids, k)
	e.sum += k
	e.mu.Unlock()
}

// querier asks the all-in-one's query endpoint.
type querier struct {
	base, token string
	client      *http.Client
}

func (q *querier) query(ctx context.Context, sql string, settings ...string) (string, error) {
	u := q.base + "?query=" + url.QueryEscape(sql)
	for i := 0; i+1 < len(settings); i += 2 {
		u += "&" + settings[i] + "=" + url.QueryEscape(settings[i+1])
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+q.token)
	resp, err := q.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("query %q: %s: %s", sql, resp.Status, bytes.TrimSpace(body))
	}
	return strings.TrimSpace(string(body)), nil
}

// fields splits one TSV row.
func fields(s string) []string { return strings.Split(strings.TrimSpace(s), "\t") }

// procSample is a process's CPU and memory from /proc.
type procSample struct {
	cpu    time.Duration // user + system
	rss    int64         // VmRSS, bytes
	hwm    int64         // VmHWM (peak RSS), bytes
	thread map[string]time.Duration
}

const clockTicks = 100 // USER_HZ on Linux

func readProc(pid int, threads bool) (procSample, error) {
	var s procSample
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	s.cpu = statCPU(stat)
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		for _, k := range []struct {
			name string
			dst  *int64
		}{{"VmRSS:", &s.rss}, {"VmHWM:", &s.hwm}} {
			if rest, ok := strings.CutPrefix(line, k.name); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				*k.dst = kb << 10
			}
		}
	}
	if threads {
		s.thread = map[string]time.Duration{}
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		for _, t := range tasks {
			b, err := os.ReadFile(t)
			if err != nil {
				continue
			}
			name := "?"
			if i, j := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')'); i >= 0 && j > i {
				name = threadGroup(string(b[i+1 : j]))
			}
			s.thread[name] += statCPU(b)
		}
	}
	return s, nil
}

// threadGroup folds numbered thread names (ClickHouse's "QueryPipelineEx",
// "BgSchPool", …) into one group each.
func threadGroup(name string) string {
	return strings.TrimRight(name, "0123456789-_ ")
}

// statCPU reads utime + stime from a /proc/…/stat line.
func statCPU(stat []byte) time.Duration {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTicks
}

// selfCPU is this process's CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadavg is /proc/loadavg's first three fields.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// percentiles of durations (nearest rank).
func percentiles(d []time.Duration, ps ...float64) []time.Duration {
	if len(d) == 0 {
		return make([]time.Duration, len(ps))
	}
	d = slices.Clone(d)
	slices.Sort(d)
	out := make([]time.Duration, len(ps))
	for i, p := range ps {
		k := int(p*float64(len(d))+0.5) - 1
		out[i] = d[min(max(k, 0), len(d)-1)]
	}
	return out
}

// report collects the summary lines.
type report struct {
	b     *testing.B
	lines []string
}

func (r *report) printf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	r.lines = append(r.lines, line)
	r.b.Log(line)
}

func (r *report) write(path string) {
	if path == "" {
		return
	}
	if err := os.WriteFile(path, []byte(strings.Join(r.lines, "\n")+"\n"), 0o644); err != nil {
		r.b.Error(err)
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
