package deploy

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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

// allInOneModules are the metric components the all-in-one runs on the
// sample with a SIEM (the agent and the scheduler are not in it).
var allInOneModules = []string{"collector", "indexer", "forwarder", "policy", "query"}

// notInAllInOne are metrics of those modules that exist only in a mode the
// all-in-one on the sample does not run, with the mode.
var notInAllInOne = map[string]string{
	"auditpipe_forwarder_assignments_refused_total": "forwarder.assignments.follow (destinations from signed assignments)",
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
// forwarding to an rsyslog,
// scraping /metrics with a token from a file as the scrape configuration
// does: the target is up, every rule is evaluated without error, and each
// metric the rules name for a module the all-in-one runs is among the
// series Prometheus holds.
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
	ports := proctest.FreePorts(t, 3)
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
	proctest.Start(t, "all-in-one", ap, func() error {
		resp, err := http.Get("http://" + httpAddr + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/-/ready: %s", resp.Status)
		}
		return nil
	}, 120*time.Second, apLog)

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
`, rules, filepath.Join(data, "admin.token"), httpAddr)
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

	// Wait until the target is up and every rule was evaluated twice over
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
		} else if len(targets.Active) != 1 || targets.Active[0].Health != "up" {
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
				if !slices.Contains(allInOneModules, comp) || notInAllInOne[m] != "" {
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
	t.Logf("%d rules evaluated without error; %d metrics of the all-in-one's modules in Prometheus: %v", n, len(checked), checked)
}
