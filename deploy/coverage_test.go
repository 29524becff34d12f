package deploy

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// checkedBy names, for each file pattern under deploy/, the test that
// reads it with the tool that uses it.
var checkedBy = map[string]string{
	"systemd/*.service":      "TestSystemdVerify, TestUnitsMatchTargets",
	"audit/plugins.d/*.conf": "TestAuditdPlugin",
	"config/*.yaml":          "internal/app TestExampleConfigsValidate, TestReferenceIsCurrent",
	"siem/rsyslog-*.conf":    "TestRsyslogReceiver",
	"siem/syslog-ng-*.conf":  "TestSyslogNGReceiver",
	"prometheus/*.yml":       "TestPrometheusFiles, TestRulesUseExportedMetrics, TestPrometheusScrapesAllInOne",
	"deb/*":                  "TestDebInstallsIntoPrivateRoot",
	"sample/*":               "TestPrometheusScrapesAllInOne, internal/app TestAllInOnePolicySample, make run",
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
