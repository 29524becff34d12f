package deploy

import (
	"bytes"
	"go/scanner"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/auditpipe/auditpipe/internal/testenv"
)

// promtool returns the promtool that scripts/deps.d/65-prometheus.sh
// unpacked (or one on PATH), or skips the test.
func promtool(t *testing.T) string {
	t.Helper()
	return cachedTool(t, testenv.Prometheus, "prometheus/usr/bin/promtool", "scripts/deps.d/65-prometheus.sh")
}

// cachedTool returns the tool an installer of scripts/deps.d put at rel
// under $AUDITPIPE_CACHE (default ~/.cache/auditpipe), or the one of its
// name on PATH; else the test skips (fails under AUDITPIPE_REQUIRE).
func cachedTool(t *testing.T, dep testenv.Dep, rel, installer string) string {
	t.Helper()
	cache := os.Getenv("AUDITPIPE_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "auditpipe")
	}
	p := filepath.Join(cache, rel)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if p, err := exec.LookPath(filepath.Base(rel)); err == nil {
		return p
	}
	testenv.SkipOrFail(t, dep, "%s not at %s nor on PATH (%s): run `make deps`", filepath.Base(rel), p, installer)
	return ""
}

// promDir copies deploy/prometheus into a temporary directory with the
// files the scrape configuration names (/etc/prometheus/…) made there.
func promDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	etc := filepath.Join(dir, "etc")
	if err := os.MkdirAll(filepath.Join(etc, "auditpipe-hosts"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "auditpipe-metrics.token"), []byte("token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("prometheus/*.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("deploy/prometheus: %v %v", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte("/etc/prometheus/"), []byte(etc+"/"))
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runTool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("nice", append([]string{"-n", "10"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestPrometheusFiles: promtool accepts the scrape configuration (with its
// rule files) and the rules, and the rules pass their unit tests.
func TestPrometheusFiles(t *testing.T) {
	pt := promtool(t)
	dir := promDir(t)
	runTool(t, dir, pt, "check", "config", "prometheus.yml")
	runTool(t, dir, pt, "check", "rules", "auditpipe-rules.yml")
	out := runTool(t, dir, pt, "test", "rules", "auditpipe-rules.test.yml")
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules:\n%s", out)
	}
}

// TestPromtoolTestFailsOnWrongExpectation: promtool test rules fails when
// an expectation is wrong (the test above would catch a rule that no
// longer fires).
func TestPromtoolTestFailsOnWrongExpectation(t *testing.T) {
	pt := promtool(t)
	dir := promDir(t)
	path := filepath.Join(dir, "auditpipe-rules.test.yml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Replace(b, []byte("eval_time: 6m\n    alertname: AuditpipeTargetDown"), []byte("eval_time: 3m\n    alertname: AuditpipeTargetDown"), 1)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(pt, "test", "rules", "auditpipe-rules.test.yml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("promtool test rules passed an alert expected before its for: duration:\n%s", out)
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert string `yaml:"alert"`
			Expr  string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type ruleTests struct {
	Tests []struct {
		Series []struct {
			Series string `yaml:"series"`
		} `yaml:"input_series"`
		Alerts []struct {
			Alert string `yaml:"alertname"`
			Exp   []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

var metricRef = regexp.MustCompile(`\bauditpipe_[a-z0-9_]+`)

// TestRulesUseExportedMetrics: every auditpipe_ metric an alert or its
// test names is one the code registers, and every alert has a test in
// which it fires.
func TestRulesUseExportedMetrics(t *testing.T) {
	known := exportedMetrics(t)
	var rf ruleFile
	readYAML(t, "prometheus/auditpipe-rules.yml", &rf)
	var tf ruleTests
	readYAML(t, "prometheus/auditpipe-rules.test.yml", &tf)

	fires := map[string]bool{}
	for _, tc := range tf.Tests {
		for _, s := range tc.Series {
			for _, m := range metricRef.FindAllString(s.Series, -1) {
				if !known.has(m) {
					t.Errorf("test series %s: metric %s is not exported by the code", s.Series, m)
				}
			}
		}
		for _, a := range tc.Alerts {
			if len(a.Exp) > 0 {
				fires[a.Alert] = true
			}
		}
	}
	n := 0
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			n++
			refs := metricRef.FindAllString(r.Expr, -1)
			if len(refs) == 0 && !strings.Contains(r.Expr, "up{") {
				t.Errorf("alert %s names no metric: %s", r.Alert, r.Expr)
			}
			for _, m := range refs {
				if !known.has(m) {
					t.Errorf("alert %s: metric %s is not exported by the code", r.Alert, m)
				}
			}
			if !fires[r.Alert] {
				t.Errorf("alert %s has no test in which it fires", r.Alert)
			}
		}
	}
	if n == 0 {
		t.Fatal("no alerting rules read")
	}
}

// TestExportedMetrics: the source scan finds the names as registered
// (plain, built from a component, or from Namespace and Subsystem) and
// nothing misspelt.
func TestExportedMetrics(t *testing.T) {
	known := exportedMetrics(t)
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"auditpipe_collector_spool_bytes", true},
		{"auditpipe_forwarder_oldest_unsent_age_seconds", true},     // Namespace + Subsystem + Name
		{"auditpipe_forwarder_write_duration_seconds_bucket", true}, // a histogram's series
		{"auditpipe_policy_leader", true},                           // "auditpipe_" + component + "_leader"
		{"auditpipe_agent_grants_refused_total", true},
		{"auditpipe_collector_spool_byte", false},
		{"auditpipe_collector_spool_bytes_bucket", false}, // a gauge has no buckets
		{"auditpipe_forwarder_destination", false},
	} {
		if got := known.has(tc.name); got != tc.want {
			t.Errorf("%s: known %v, want %v", tc.name, got, tc.want)
		}
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	decodeYAMLFile(t, path, v, false)
}

// readYAMLStrict decodes a YAML file refusing keys v does not have.
func readYAMLStrict(t *testing.T, path string, v any) {
	t.Helper()
	decodeYAMLFile(t, path, v, true)
}

func decodeYAMLFile(t *testing.T, path string, v any, strict bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(strict)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// metricNames are the metric families the code registers; histograms
// also have _bucket, _sum and _count series.
type metricNames struct {
	names      map[string]bool
	histograms map[string]bool
}

func (m metricNames) has(name string) bool {
	if m.names[name] {
		return true
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suf); ok && m.histograms[base] {
			return true
		}
	}
	return false
}

var metricSuffix = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)+$`)

// exportedMetrics scans the repository's Go source (not tests) for the
// metric names it registers: string literals "auditpipe_…"; names built
// as "auditpipe_" + component + "_…" (for every component that has
// metrics); and, in files that declare `const ns, sub = "auditpipe", "X"`
// for prometheus' Namespace and Subsystem, their snake_case literals as
// auditpipe_X_…. A name is a histogram's when the last prometheus
// …Opts type before its literal is HistogramOpts.
func exportedMetrics(t *testing.T) metricNames {
	t.Helper()
	m := metricNames{names: map[string]bool{}, histograms: map[string]bool{}}
	var suffixes []string
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fset := token.NewFileSet()
		var s scanner.Scanner
		s.Init(fset.AddFile(path, -1, len(src)), src, nil, 0)
		type tok struct {
			t   token.Token
			lit string
		}
		var toks []tok
		for {
			_, tk, lit := s.Scan()
			if tk == token.EOF {
				break
			}
			if tk == token.STRING {
				if u, err := strconv.Unquote(lit); err == nil {
					lit = u
				}
			}
			toks = append(toks, tok{tk, lit})
		}
		sub := ""
		for i := 0; i+5 < len(toks); i++ {
			// const ns, sub = "auditpipe", "X"
			if toks[i].t == token.CONST && toks[i+4].t == token.ASSIGN && toks[i+5].lit == "auditpipe" && i+7 < len(toks) && toks[i+7].t == token.STRING {
				sub = toks[i+7].lit
			}
		}
		histo := false // the last …Opts before this token is HistogramOpts
		for i, tk := range toks {
			if tk.t == token.IDENT && strings.HasSuffix(tk.lit, "Opts") {
				histo = tk.lit == "HistogramOpts"
			}
			if tk.t != token.STRING {
				continue
			}
			add := func(name string) {
				m.names[name] = true
				if histo {
					m.histograms[name] = true
				}
			}
			switch {
			case tk.lit == "auditpipe_" && i+3 < len(toks) && toks[i+1].t == token.ADD && toks[i+3].t == token.ADD && i+4 < len(toks) && toks[i+4].t == token.STRING:
				suffixes = append(suffixes, toks[i+4].lit)
			case strings.HasPrefix(tk.lit, "auditpipe_") && metricSuffix.MatchString(tk.lit):
				add(tk.lit)
			case sub != "" && metricSuffix.MatchString(tk.lit) && strings.Contains(tk.lit, "_") && tk.lit != "auditpipe":
				add("auditpipe_" + sub + "_" + tk.lit)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	components := map[string]bool{}
	for n := range m.names {
		components[strings.SplitN(n, "_", 3)[1]] = true
	}
	for _, suf := range slices.Compact(slices.Sorted(slices.Values(suffixes))) {
		for c := range components {
			m.names["auditpipe_"+c+suf] = true
		}
	}
	if len(m.names) < 50 {
		t.Fatalf("found only %d metric names in the source: the scan is broken", len(m.names))
	}
	return m
}
