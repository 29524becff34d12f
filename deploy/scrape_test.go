package deploy

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse/chdb"
	"github.com/auditpipe/auditpipe/internal/proctest"
	"github.com/auditpipe/auditpipe/internal/siemtest"
	"github.com/auditpipe/auditpipe/internal/testenv"
)

// scrapedModules are the metric components the test scrapes: the
// all-in-one on the sample with a SIEM (collector, indexer, forwarder,
// policy with the scheduler, query endpoint) and a host agent beside it.
var scrapedModules = []string{"collector", "indexer", "forwarder", "policy", "scheduler", "query", "agent"}

// notInAllInOne are metrics of those modules that exist only in a mode the
// all-in-one on the sample does not run, with the mode.
var notInAllInOne = map[string]string{
	"auditpipe_forwarder_assignments_refused_total": "forwarder.assignments.follow (destinations from signed assignments)",
}

// readyAt returns a check that addr's /-/ready answers 200.
func readyAt(addr string) func() error {
	return func() error {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/-/ready: %s", resp.Status)
		}
		return nil
	}
}

// promAPI GETs a Prometheus API path and decodes its data.
func promAPI(base, path string, v any) error {
	resp, err := http.Get(base + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("%s: %v: %s", path, err, b)
	}
	if env.Status != "success" {
		return fmt.Errorf("%s: %s", path, env.Error)
	}
	return json.Unmarshal(env.Data, v)
}

type promRules struct {
	Groups []struct {
		Rules []struct {
			Name           string `json:"name"`
			Health         string `json:"health"`
			LastError      string `json:"lastError"`
			LastEvaluation string `json:"lastEvaluation"`
		} `json:"rules"`
	} `json:"groups"`
}

// TestPrometheusScrapesAllInOne runs real Prometheus (Debian's 2.42) with
// the rules of deploy/prometheus against the all-in-one on the sample,
// forwarding to an rsyslog, and a host agent beside it (agent.live off, as
// make run starts one), scraping the all-in-one's /metrics with a token
// from a file as the scrape configuration does: both targets are up, every
// rule is evaluated without error, each metric the rules name for a module
// scraped is among the series Prometheus holds, every vector selector of
// every alert expression returns series, and so does every query of every
// Grafana dashboard in deploy/grafana.
func TestPrometheusScrapesAllInOne(t *testing.T) {
	pt := promtool(t) // skips or fails without the unpacked package
	promBin := filepath.Join(filepath.Dir(pt), "prometheus")
	if _, err := os.Stat(promBin); err != nil {
		testenv.SkipOrFail(t, testenv.Prometheus, "prometheus not beside promtool: %v", err)
	}
	if _, err := chdb.FindLibrary(""); err != nil {
		testenv.SkipOrFail(t, testenv.CHDB, "the all-in-one needs libchdb: %v", err)
	}
	bin := auditpipeBinary(t)
	dir := t.TempDir()
	ca := siemtest.NewCA(t, dir, "siem-ca")
	cert, key := ca.Issue(t, dir, "siem", siemtest.CertOptions{})
	siem := siemtest.StartRsyslog(t, siemtest.RsyslogOptions{CA: ca, CertFile: cert, KeyFile: key})
	ports := proctest.FreePorts(t, 4)
	httpAddr := "127.0.0.1:" + strconv.Itoa(ports[0])
	data := filepath.Join(dir, "data")
	auditLog := filepath.Join(dir, "audit.log")
	sample, err := os.ReadFile("sample/audit.log")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(auditLog, sample, 0o600); err != nil {
		t.Fatal(err)
	}
	apLog := filepath.Join(dir, "all-in-one.log")
	apOut := proctest.LogFile(t, apLog, "all-in-one")
	ap := exec.Command("nice", "-n", "10", bin, "all-in-one", "--data", data, "--audit-log", auditLog,
		"--flush-interval", "1s", "--layer", "CELL", "--host", "cell01.example.com",
		"--passwd", "sample/passwd", "--group", "sample/group", "--policy-seed", "sample/policy.yaml",
		"--retention-days", "0", "--http", httpAddr, "--siem", siem.Addr, "--siem-ca", ca.CertPEM, "--kafka-listen", "127.0.0.1:"+strconv.Itoa(ports[1]))
	ap.Stdout, ap.Stderr = apOut, apOut
	proctest.Start(t, "all-in-one", ap, readyAt(httpAddr), 120*time.Second, apLog)

	// A host agent on the embedded broker as the agent principal, as
	// scripts/run.sh starts one; its metrics open (no token) on its port.
	agentAddr := "127.0.0.1:" + strconv.Itoa(ports[3])
	agentCfg := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(agentCfg, []byte(fmt.Sprintf(`target: agent
server:
  http_addr: %s
  auth: {open_metrics: true}
kafka:
  brokers: [127.0.0.1:%d]
  tls: {enabled: true, ca_file: %q}
  sasl: {mechanism: SCRAM-SHA-512, username: agent, password_file: %q}
  topics: {create: false}
agent:
  live: false
  host: cell01.example.com
  root: %q
  grant_keys: [%q]
`, agentAddr, ports[1], filepath.Join(data, "kafka-tls", "ca.crt"), filepath.Join(data, "kafka-credentials", "agent.password"),
		filepath.Join(dir, "agent-plan"), filepath.Join(data, "grants.pub"))), 0o600); err != nil {
		t.Fatal(err)
	}
	agLog := filepath.Join(dir, "agent.log")
	agOut := proctest.LogFile(t, agLog, "agent")
	ag := exec.Command("nice", "-n", "10", bin, "agent", "--config", agentCfg)
	ag.Stdout, ag.Stderr = agOut, agOut
	proctest.Start(t, "agent", ag, readyAt(agentAddr), 60*time.Second, agLog)

	// The scrape configuration's job, pointed at the all-in-one with its
	// admin token (the file the all-in-one made), and the rules as shipped.
	rules, err := filepath.Abs("prometheus/auditpipe-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - job_name: auditpipe-all
    authorization: {credentials_file: %q}
    static_configs: [{targets: [%q]}]
  - job_name: auditpipe-agent
    static_configs: [{targets: [%q]}]
`, rules, filepath.Join(data, "admin.token"), httpAddr, agentAddr)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	runTool(t, dir, pt, "check", "config", cfgPath)
	promAddr := "127.0.0.1:" + strconv.Itoa(ports[2])
	promLog := filepath.Join(dir, "prometheus.log")
	pOut := proctest.LogFile(t, promLog, "prometheus")
	prom := exec.Command("nice", "-n", "10", promBin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+promAddr)
	prom.Stdout, prom.Stderr = pOut, pOut
	proctest.Start(t, "prometheus", prom, proctest.Dials(promAddr), 60*time.Second, promLog)
	base := "http://" + promAddr

	// Wait until both targets are up and every rule was evaluated twice over
	// (a rule's first evaluation may precede the first scrape).
	deadline := time.Now().Add(90 * time.Second)
	var last string
	for {
		var targets struct {
			Active []struct {
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"activeTargets"`
		}
		var pr promRules
		ok := false
		if err := promAPI(base, "/api/v1/targets", &targets); err != nil {
			last = err.Error()
		} else if len(targets.Active) != 2 || targets.Active[0].Health != "up" || targets.Active[1].Health != "up" {
			last = fmt.Sprintf("targets: %+v", targets.Active)
		} else if err := promAPI(base, "/api/v1/rules", &pr); err != nil {
			last = err.Error()
		} else {
			ok = true
			n := 0
			for _, g := range pr.Groups {
				for _, r := range g.Rules {
					n++
					if r.Health != "ok" {
						ok = false
						last = fmt.Sprintf("rule %s: health %q %s", r.Name, r.Health, r.LastError)
					}
				}
			}
			if n == 0 {
				ok, last = false, "no rules loaded"
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 90 s: %s", last)
		}
		time.Sleep(200 * time.Millisecond)
	}

	var names []string
	if err := promAPI(base, "/api/v1/label/__name__/values", &names); err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	readYAML(t, "prometheus/auditpipe-rules.yml", &rf)
	var missing, checked []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			for _, m := range metricRef.FindAllString(r.Expr, -1) {
				comp := strings.SplitN(m, "_", 3)[1]
				if !slices.Contains(scrapedModules, comp) || notInAllInOne[m] != "" {
					continue
				}
				if slices.Contains(checked, m) {
					continue
				}
				checked = append(checked, m)
				if !slices.Contains(names, m) {
					missing = append(missing, m)
				}
			}
		}
	}
	if len(checked) < 10 {
		t.Fatalf("only %d metrics of the all-in-one's modules checked: %v", len(checked), checked)
	}
	if len(missing) > 0 {
		t.Errorf("metrics the rules name that the all-in-one does not export (no series): %v", missing)
	}
	n := 0
	for _, g := range rf.Groups {
		n += len(g.Rules)
	}
	t.Logf("%d rules evaluated without error; %d metrics of the scraped modules in Prometheus: %v", n, len(checked), checked)

	// Every vector selector of every alert expression returns series
	// (the expression as a whole returns none while nothing is wrong).
	var exprs []panelExpr
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			for _, sel := range vectorSelector.FindAllString(r.Expr, -1) {
				if notInAllInOne[metricRef.FindString(sel)] != "" {
					continue
				}
				exprs = append(exprs, panelExpr{where: "alert " + r.Alert + " selector", expr: sel})
			}
		}
	}
	nAlert := len(exprs)
	// Every query of every dashboard returns series as it is. Rates need
	// two scrapes of a counter: the loop waits for them.
	ds, err := readDashboards(t)
	if err != nil {
		t.Fatal(err)
	}
	// And so does each selector in them: a query with a fallback
	// (`or vector(0)`) returns series whatever its metric.
	for _, q := range dashboardExprs(ds) {
		exprs = append(exprs, q)
		for _, sel := range vectorSelector.FindAllString(q.expr, -1) {
			exprs = append(exprs, panelExpr{where: q.where + " selector", expr: sel})
		}
	}
	empty := evalUntilSeries(t, base, exprs, 60*time.Second)
	for _, e := range empty {
		t.Errorf("%s returns no series: %s", e.where, e.expr)
	}
	t.Logf("%d alert selectors and %d dashboard queries and selectors evaluated by Prometheus; %d returned no series", nAlert, len(exprs)-nAlert, len(empty))

	// The check can fail: a misspelt metric returns nothing.
	control := []panelExpr{{where: "control", expr: `sum(rate(auditpipe_collector_records_red_total[5m]))`}}
	if got := evalUntilSeries(t, base, control, 2*time.Second); len(got) != 1 {
		t.Errorf("a query of a metric nobody exports returned series")
	}
}

// vectorSelector finds a metric's selector with its label matchers in a
// PromQL expression (`auditpipe_x_total{state="FAILED"}`, `up{job=~"a"}`).
var vectorSelector = regexp.MustCompile(`\b(auditpipe_[a-z0-9_]+|up)(\{[^}]*\})?`)

// evalUntilSeries runs each expression as an instant query until every one
// has returned series at least once, or until the timeout; it returns those
// that never did. A query that Prometheus refuses fails the test at once.
func evalUntilSeries(t *testing.T, base string, exprs []panelExpr, timeout time.Duration) []panelExpr {
	t.Helper()
	pending := exprs
	deadline := time.Now().Add(timeout)
	for {
		var still []panelExpr
		for _, e := range pending {
			var res struct {
				Result []json.RawMessage `json:"result"`
			}
			if err := promAPI(base, "/api/v1/query?query="+url.QueryEscape(e.expr), &res); err != nil {
				t.Fatalf("%s: %v", e.where, err)
			}
			if len(res.Result) == 0 {
				still = append(still, e)
			}
		}
		pending = still
		if len(pending) == 0 || time.Now().After(deadline) {
			return pending
		}
		time.Sleep(time.Second)
	}
}
