package pipeline_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/collector/stockpath"
	"github.com/auditpipe/auditpipe/internal/auditgen"
)

// lineCounter counts the lines written to it (a child's stdout).
type lineCounter struct{ n int }

func (c *lineCounter) Write(p []byte) (int, error) {
	c.n += bytes.Count(p, []byte{'\n'})
	return len(p), nil
}

// BenchmarkCollectorProcess compares the collector's decoding path as a
// whole process (`auditpipe parse` on a file: read, parse, assemble,
// build, encode JSON, write) with go-libaudit's stock path in this process
// (auparse.ParseLogLine, its Reassembler, aucoalesce.CoalesceMessages,
// json.Marshal) on the same generated corpus, in alternating rounds:
// records per CPU second of each (the child's rusage; this process's
// getrusage around the stock pass), the median of the rounds' ratios, and
// the child's peak RSS. The corpus is auditgen's operator traffic without
// node= prefixes, ENRICHED parts or split arguments, which the stock path
// cannot read (DESIGN.md). `parse` must emit exactly the events the
// generator counted. AUDITPIPE_BENCH_EVENTS sets the audit events (default
// 100000), AUDITPIPE_BENCH_ROUNDS the rounds (default 5).
func BenchmarkCollectorProcess(b *testing.B) {
	events := int(envFloat("AUDITPIPE_BENCH_CORPUS", 100000))
	rounds := int(envFloat("AUDITPIPE_BENCH_ROUNDS", 5))
	out := os.Getenv("AUDITPIPE_BENCH_OUT")
	timeBin, err := exec.LookPath("time")
	if err != nil {
		timeBin = "/usr/bin/time"
	}
	if _, err := os.Stat(timeBin); err != nil {
		b.Fatalf("GNU time (Debian's time package) is needed for the child's peak RSS: %v", err)
	}
	for b.Loop() {
		rep := &report{b: b}
		bin := buildAuditpipe(b)
		dir := b.TempDir()
		g := auditgen.New(auditgen.Config{Seed: 1, CommandAuditEvery: -1, SplitEvery: -1})
		var buf []byte
		now := time.Now()
		for range events {
			buf, _ = g.Append(buf, now)
		}
		st := g.Stats()
		corpus := filepath.Join(dir, "audit.log")
		pw, gr := filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
		for p, data := range map[string][]byte{corpus: buf, pw: g.Passwd(), gr: g.Group()} {
			if err := os.WriteFile(p, data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		args := []string{"parse", "--layer", "CELL", "--host", "loadgen", "--passwd", pw, "--group", gr}
		for _, gt := range g.Grants() {
			args = append(args, "--grant", gt.LoginID+"="+gt.ReqAuthID)
		}
		args = append(args, corpus)
		var lines []string
		sc := bufio.NewScanner(bytes.NewReader(buf))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		buf = nil
		load0 := loadavg()
		var ratios, ours, stock []float64
		var peak int64
		for round := range rounds {
			c0 := selfCPU()
			n := stockPass(b, lines)
			sCPU := selfCPU() - c0
			s := float64(st.Records) / sCPU.Seconds()

			// Through GNU time: the rusage wait4 gives a child that Go
			// started carries the high-water RSS of the harness it was
			// forked from (Linux keeps the old mm's peak across exec, and
			// Go forks with CLONE_VM), so the peak comes from time's %M.
			cmd := exec.Command(timeBin, append([]string{"-f", "maxrss_kb=%M", bin}, args...)...)
			cnt := &lineCounter{}
			var stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = cnt, &stderr
			if err := cmd.Run(); err != nil {
				b.Fatalf("auditpipe parse: %v\n%s", err, stderr.Bytes())
			}
			if cnt.n != int(st.Expected) {
				b.Fatalf("round %d: auditpipe parse emitted %d events, the generator counted %d (stderr: %.500s)", round+1, cnt.n, st.Expected, stderr.Bytes())
			}
			ru := cmd.ProcessState.SysUsage().(*syscall.Rusage) // time's and its waited child's
			pCPU := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			o := float64(st.Records) / pCPU.Seconds()
			rss := maxRSS(b, stderr.String())
			peak = max(peak, rss)
			b.Logf("round %d: parse %.0f records/CPU-s (%v, %.1f MiB peak), stock %.0f (%v, %d events): %.1f×",
				round+1, o, pCPU.Round(time.Millisecond), mib(rss), s, sCPU.Round(time.Millisecond), n, o/s)
			ours, stock, ratios = append(ours, o), append(stock, s), append(ratios, o/s)
		}
		rep.printf("machine: load average %s at the start, %s at the end", load0, loadavg())
		rep.printf("corpus: %d audit events, %d records (%.0f MB), %d contract events for parse", st.Events, st.Records, float64(sizeOf(corpus))/1e6, st.Expected)
		rep.printf("collector process (auditpipe parse): median %.0f records/CPU-s (rounds %s), peak RSS %.1f MiB", median(ours), joinF(ours, "%.0f"), mib(peak))
		rep.printf("go-libaudit stock path (in process): median %.0f records/CPU-s (rounds %s)", median(stock), joinF(stock, "%.0f"))
		rep.printf("ratio: median %.1f× (rounds %s)", median(ratios), joinF(ratios, "%.1f"))
		target(rep, "collector process ≥ 15× the stock path", median(ratios) >= 15, "%.1f×", median(ratios))
		target(rep, "collector process ≤ 64 MiB RSS", mib(peak) <= 64, "%.1f MiB", mib(peak))
		b.ReportMetric(median(ratios), "parse_x_stock")
		b.ReportMetric(mib(peak), "parse-peak-RSS-MiB")
		rep.write(out)
	}
}

// maxRSS reads GNU time's "maxrss_kb=N" line from a child's stderr.
func maxRSS(b *testing.B, stderr string) int64 {
	i := strings.LastIndex(stderr, "maxrss_kb=")
	if i < 0 {
		b.Fatalf("no maxrss_kb from time in %.300s", stderr)
	}
	kb, err := strconv.ParseInt(strings.TrimSpace(stderr[i+len("maxrss_kb="):]), 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return kb << 10
}

func sizeOf(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// stockPass runs go-libaudit's stock path over lines and returns the
// events it emitted.
func stockPass(b *testing.B, lines []string) int {
	n, err := stockpath.Pass(lines)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Sorted(slices.Values(v))
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func joinF(v []float64, format string) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf(format, x)
	}
	return strings.Join(parts, ", ")
}

// target prints a target line: MET or MISSED with the figure.
func target(rep *report, name string, met bool, format string, v float64) {
	verdict := "MISSED"
	if met {
		verdict = "met"
	}
	rep.printf("target: %s: "+format+" %s", name, v, verdict)
}
