package deploy

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// checkedBy names, for each file pattern under deploy/, the test that
// reads it with the tool that uses it.
var checkedBy = map[string]string{
	"systemd/*.service":      "TestSystemdVerify, TestUnitsMatchTargets",
	"audit/plugins.d/*.conf": "TestAuditdPlugin",
	"config/*.yaml":          "internal/app TestExampleConfigsValidate, internal/app TestReferenceIsCurrent",
	"siem/rsyslog-*.conf":    "TestRsyslogReceiver",
	"siem/syslog-ng-*.conf":  "TestSyslogNGReceiver",
	"prometheus/*.yml":       "TestPrometheusFiles, TestRulesUseExportedMetrics, TestPrometheusScrapesAllInOne",
	"deb/*":                  "TestDebInstallsIntoPrivateRoot",
	"sample/*":               "TestSampleIsGenerated (gen.py writes the others), TestPrometheusScrapesAllInOne, internal/app TestAllInOnePolicySample, make run",
	"grafana/*.json":         "TestGrafanaDashboards, TestPrometheusScrapesAllInOne (every query returns series)",
	"helm/auditpipe/*":       "TestHelmChart (helm lint, helm template, kitcheck k8s, auditpipe config validate)",
	"helm/auditpipe/*/*":     "TestHelmChart, TestHelmChartVariants",
	"compose/*.yaml":         "TestComposeFile (compose-go), TestComposeCheckRefuses, TestComposeSecretsPerService, TestComposeMetricsTokenReadable",
	"compose/prometheus.yml": "TestComposeFile (promtool check config)",
	"compose/auditpipe/*":    "TestComposeFile (init.sh run, auditpipe config validate), TestComposeMetricsTokenReadable (init.sh's token owner)",
	"compose/grafana/*/*":    "TestComposeFile (decoded strictly)",
	"kitcheck/*":             "built and run by TestHelmChart, TestComposeFile; refusals in TestHelmChartVariants, TestComposeCheckRefuses",
	"*.go":                   "the tests themselves",
}

// TestEveryFileIsChecked: a file added to deploy/ must be listed above
// with the test that checks it (issue 16: every file in deploy/ is
// checked by a test).
func TestEveryFileIsChecked(t *testing.T) {
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		for pat := range checkedBy {
			if ok, _ := filepath.Match(pat, path); ok {
				return nil
			}
		}
		if strings.HasPrefix(filepath.Base(path), ".") {
			return nil
		}
		t.Errorf("deploy/%s: no test checks it (add it to checkedBy with its test)", path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testNameRe finds the tests checkedBy names, with the package they are
// in when it is not this one ("internal/app TestX").
var testNameRe = regexp.MustCompile(`(?:(internal/\w+) )?(Test\w+)`)

// TestCheckedByNamesRealTests: every test checkedBy names exists (a
// renamed or removed test would leave the list claiming a check nobody
// runs).
func TestCheckedByNamesRealTests(t *testing.T) {
	sources := map[string]string{} // package dir -> its tests' source
	source := func(dir string) string {
		if s, ok := sources[dir]; ok {
			return s
		}
		files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no tests in %s: %v", dir, err)
		}
		var b strings.Builder
		for _, f := range files {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(src)
		}
		sources[dir] = b.String()
		return sources[dir]
	}
	for pat, by := range checkedBy {
		for _, m := range testNameRe.FindAllStringSubmatch(by, -1) {
			dir := "."
			if m[1] != "" {
				dir = filepath.Join("..", m[1])
			}
			if !strings.Contains(source(dir), "func "+m[2]+"(t *testing.T)") {
				t.Errorf("checkedBy[%q] names %s, which is not a test in %s", pat, m[2], dir)
			}
		}
	}
}
