package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/internal/proctest"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/internal/testenv"
)

// helmBin returns the helm that scripts/deps.d/67-helm.sh built (or one on
// PATH), or skips the test.
func helmBin(t *testing.T) string {
	t.Helper()
	return cachedTool(t, testenv.Helm, "helm/bin/helm", "scripts/deps.d/67-helm.sh")
}

// kitcheckBinary is deploy/kitcheck (a module of its own: k8s.io/api and
// compose-go stay out of auditpipe's go.mod; scripts/deps.d/68-kitcheck.sh
// downloads its modules and warms the build cache), built once per test
// binary.
var kitcheckBinary = proctest.Binary{Pkg: ".", Dir: "kitcheck"}

// kitcheck builds deploy/kitcheck and returns its path.
func kitcheck(t *testing.T) string {
	t.Helper()
	return kitcheckBinary.Path(t)
}

// k8sObject is kitcheck's summary of a rendered object.
type k8sObject struct {
	Kind       string            `json:"kind"`
	Name       string            `json:"name"`
	Data       map[string]string `json:"data"`
	SecretKeys []string          `json:"secretKeys"`
	Containers []struct {
		Name      string            `json:"name"`
		Args      []string          `json:"args"`
		Liveness  string            `json:"liveness"`
		Readiness string            `json:"readiness"`
		Mounts    map[string]string `json:"mounts"`
		Env       []string          `json:"env"`
		ReadOnly  []string          `json:"readOnly"`
		Modes     map[string]int32  `json:"modes"`
	} `json:"containers"`
}

// chartSecrets are values for every credential the chart asks for.
func chartSecrets(t *testing.T, dir string) []string {
	t.Helper()
	vals := filepath.Join(dir, "secrets.yaml")
	if err := os.WriteFile(vals, []byte(`secrets:
  kafkaCA: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
  kafkaPasswords: {indexer: pw-indexer, forwarder: pw-forwarder, policy: pw-policy}
  tokens: "tokens: []\n"
  clickhousePassword: pw-clickhouse
  policyDBPassword: pw-db
  policyKey: "-----BEGIN PRIVATE KEY-----\nMC4C\n-----END PRIVATE KEY-----\n"
  siemCA: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"-f", vals}
}

// helmTemplate renders the chart with the arguments and checks the result
// with kitcheck; it returns kitcheck's summary, or kitcheck's error output
// when wantFail.
func helmTemplate(t *testing.T, helm, kc, dir string, wantFail bool, args ...string) ([]k8sObject, string) {
	t.Helper()
	out := runTool(t, dir, append([]string{helm, "template", "ap", chartDir(t)}, args...)...)
	rendered := filepath.Join(dir, "rendered.yaml")
	if err := os.WriteFile(rendered, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(kc, "k8s", rendered)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if wantFail {
		if err == nil {
			t.Fatalf("kitcheck accepted the render:\n%s", out)
		}
		return nil, stderr.String()
	}
	if err != nil {
		t.Fatalf("kitcheck k8s: %v\n%s\nrendered:\n%s", err, stderr.String(), out)
	}
	var objs []k8sObject
	if err := json.Unmarshal(b, &objs); err != nil {
		t.Fatal(err)
	}
	return objs, ""
}

func chartDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.Abs("helm/auditpipe")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestHelmChart: `helm lint --strict` passes; `helm template` renders
// objects that decode strictly into the Kubernetes API types and
// cross-check (kitcheck); one Deployment per target with probes on
// /-/healthy and /-/ready, and each target's ConfigMap is a configuration
// auditpipe accepts (config validate) with the mounted secrets in place.
// An enrolled host key (hostKeys) is mounted read-only at host_keys.dir in
// the indexer, policy and scheduler pods, with a mode KeyDir trusts: the
// ConfigMap's files, written with that mode, give the key back.
func TestHelmChart(t *testing.T) {
	helm := helmBin(t)
	kc := kitcheck(t)
	bin := auditpipeBinary(t)
	dir := t.TempDir()
	// An agent's key pair, as agent.key_file and its .pub.
	agentKey := filepath.Join(dir, "agent.key")
	runTool(t, dir, bin, "grant", "keygen", "--key", agentKey, "--pub", agentKey+".pub")
	agentPub, err := sign.LoadPublicKey(agentKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	args := append(chartSecrets(t, dir), "--set-file", "hostKeys.dbhost01="+agentKey+".pub")
	runTool(t, dir, append([]string{helm, "lint", "--strict", chartDir(t)}, args...)...)
	objs, _ := helmTemplate(t, helm, kc, dir, false, args...)

	// The mounted secrets, as files auditpipe's validation opens: a real
	// signing key and CA, since it parses them.
	secrets := filepath.Join(dir, "secrets")
	if err := os.MkdirAll(secrets, 0o755); err != nil {
		t.Fatal(err)
	}
	runTool(t, dir, bin, "grant", "keygen", "--key", filepath.Join(secrets, "policy.key"), "--pub", filepath.Join(secrets, "grants.pub"))
	for name, content := range map[string]string{
		"tokens.yaml": "tokens: []\n", "kafka-indexer.password": "pw\n", "kafka-forwarder.password": "pw\n",
		"kafka-policy.password": "pw\n", "kafka-ca.pem": "", "siem-ca.pem": "",
	} {
		if err := os.WriteFile(filepath.Join(secrets, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	targets := map[string]bool{}
	configs := map[string]string{}
	var secretKeys []string
	var hostKeys map[string]string
	for _, o := range objs {
		switch {
		case o.Kind == "ConfigMap" && o.Name == "ap-auditpipe-host-keys":
			hostKeys = o.Data
		case o.Kind == "ConfigMap":
			configs[o.Name] = o.Data["auditpipe.yaml"]
		case o.Kind == "Secret":
			secretKeys = o.SecretKeys
		}
	}
	if len(hostKeys) != 1 || hostKeys["dbhost01.pub"] == "" {
		t.Fatalf("host keys ConfigMap data %v, want dbhost01.pub", hostKeys)
	}
	for _, o := range objs {
		if o.Kind != "Deployment" {
			continue
		}
		if len(o.Containers) != 1 {
			t.Fatalf("%s: %d containers", o.Name, len(o.Containers))
		}
		c := o.Containers[0]
		targets[c.Name] = true
		if c.Liveness != "/-/healthy" || c.Readiness != "/-/ready" {
			t.Errorf("%s: probes %q %q, want /-/healthy and /-/ready", o.Name, c.Liveness, c.Readiness)
		}
		want := []string{"run", "--target", c.Name, "--config", "/etc/auditpipe/config/auditpipe.yaml"}
		if !slices.Equal(c.Args, want) {
			t.Errorf("%s: args %q, want %q", o.Name, c.Args, want)
		}
		if c.Mounts["/etc/auditpipe/config"] != "configMap/"+o.Name || c.Mounts["/etc/auditpipe/secrets"] != "secret/ap-auditpipe" {
			t.Errorf("%s: mounts %v", o.Name, c.Mounts)
		}
		cfg, ok := configs[o.Name]
		if !ok {
			t.Fatalf("%s: no ConfigMap of its name", o.Name)
		}
		if !strings.Contains(cfg, "target: "+c.Name+"\n") {
			t.Errorf("%s: its configuration is not for target %s:\n%s", o.Name, c.Name, cfg)
		}
		const hostKeysDir = "/etc/auditpipe/host-keys"
		hk := filepath.Join(dir, c.Name+"-host-keys")
		if verifiesHosts := c.Name != "forwarder"; verifiesHosts {
			if !strings.Contains(cfg, "host_keys:\n  dir: "+hostKeysDir+"\n") {
				t.Errorf("%s: host_keys.dir is not %s:\n%s", o.Name, hostKeysDir, cfg)
			}
			mode, ok := c.Modes[hostKeysDir]
			if c.Mounts[hostKeysDir] != "configMap/ap-auditpipe-host-keys" || !ok || !slices.Contains(c.ReadOnly, hostKeysDir) {
				t.Fatalf("%s: the host keys are not mounted read-only at %s: mounts %v, read-only %v", o.Name, hostKeysDir, c.Mounts, c.ReadOnly)
			}
			// The pod's view: the ConfigMap's files with the volume's
			// mode (the kubelet's are root's; here this process's, which
			// KeyDir trusts alike), and the key they give back.
			writeFiles(t, hk, hostKeys, os.FileMode(mode))
			got, err := sign.NewKeyDir(hk).Key("dbhost01")
			if err != nil {
				t.Errorf("%s: the mounted host keys (mode %#o): %v", o.Name, mode, err)
			} else if !got.Equal(agentPub) {
				t.Errorf("%s: host dbhost01's key %s, want %s", o.Name, sign.KeyID(got), sign.KeyID(agentPub))
			}
		} else if _, ok := c.Mounts[hostKeysDir]; ok || strings.Contains(cfg, "host_keys") {
			t.Errorf("%s: mounts or configures host keys it does not verify with", o.Name)
		}
		// auditpipe's own validation of the ConfigMap's file, with the
		// Secret's files where the pod mounts them and its environment.
		path := filepath.Join(dir, c.Name+".yaml")
		if err := os.WriteFile(path, []byte(strings.NewReplacer("/etc/auditpipe/secrets/", secrets+"/", "/run/auditpipe/", secrets+"/", hostKeysDir, hk).Replace(cfg)), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "config", "validate", path)
		cmd.Env = append(os.Environ(), "CLICKHOUSE_PASSWORD=x", "POLICY_DB_PASSWORD=x")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: auditpipe config validate refused the ConfigMap's file: %v\n%s\n%s", o.Name, err, out, cfg)
		}
	}
	var pdbs []string
	for _, o := range objs {
		if o.Kind == "PodDisruptionBudget" {
			pdbs = append(pdbs, o.Name)
		}
	}
	slices.Sort(pdbs)
	if want := []string{"ap-auditpipe-forwarder", "ap-auditpipe-indexer", "ap-auditpipe-policy"}; !slices.Equal(pdbs, want) {
		t.Errorf("PodDisruptionBudgets %v, want %v (the components of more than one replica)", pdbs, want)
	}
	for _, want := range []string{"indexer", "forwarder", "policy", "scheduler"} {
		if !targets[want] {
			t.Errorf("no Deployment for target %s (got %v)", want, targets)
		}
	}
	for _, k := range []string{"tokens.yaml", "kafka-indexer.password", "clickhouse-password", "policy.key", "siem-ca.pem"} {
		if !slices.Contains(secretKeys, k) {
			t.Errorf("Secret has no key %s: %v", k, secretKeys)
		}
	}
	t.Logf("%d objects rendered and checked; targets %v", len(objs), slices.Sorted(func(yield func(string) bool) {
		for k := range targets {
			if !yield(k) {
				return
			}
		}
	}))
}

// writeFiles writes files into dir (made 0755) with mode.
func writeFiles(t *testing.T, dir string, files map[string]string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
}

// TestHelmChartVariants: an existing Secret instead of one from values,
// and components switched off, render and check too; a missing credential
// and a drain_timeout not in seconds are refused by helm with the value's
// name; and kitcheck refuses a
// manifest with a field the Kubernetes API does not have (a check that
// cannot fail checks nothing).
func TestHelmChartVariants(t *testing.T) {
	helm := helmBin(t)
	kc := kitcheck(t)
	dir := t.TempDir()
	objs, _ := helmTemplate(t, helm, kc, dir, false, "--set", "secrets.create=false", "--set", "secrets.existingSecret=ops-auditpipe",
		"--set", "components.scheduler.enabled=false", "--set", "components.forwarder.enabled=false",
		"--set", "components.indexer.config.host_keys.dir=/srv/host-keys")
	var deployments []string
	for _, o := range objs {
		if o.Kind == "Secret" {
			t.Errorf("a Secret rendered with secrets.create=false")
		}
		if o.Kind == "Deployment" {
			deployments = append(deployments, o.Containers[0].Name)
			if o.Containers[0].Mounts["/etc/auditpipe/secrets"] != "secret/ops-auditpipe" {
				t.Errorf("%s: secrets from %v, want ops-auditpipe", o.Name, o.Containers[0].Mounts)
			}
			// A component's own host_keys.dir is where its keys are mounted.
			want := map[string]string{"indexer": "/srv/host-keys", "policy": "/etc/auditpipe/host-keys"}[o.Containers[0].Name]
			if o.Containers[0].Mounts[want] != "configMap/ap-auditpipe-host-keys" {
				t.Errorf("%s: host keys not mounted at %s: %v", o.Name, want, o.Containers[0].Mounts)
			}
		}
	}
	slices.Sort(deployments)
	if !slices.Equal(deployments, []string{"indexer", "policy"}) {
		t.Errorf("deployments %v, want indexer and policy", deployments)
	}

	cmd := exec.Command(helm, "template", "ap", chartDir(t), "--set", "secrets.tokens=x")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "secrets.kafkaCA is required") {
		t.Errorf("helm template without the credentials: %v\n%s", err, out)
	}

	for _, tc := range []struct {
		set  []string
		want string
	}{
		{[]string{"--set", "common.drain_timeout=1m"}, "common.drain_timeout"},
		{[]string{"--set", "hostKeys._x=MCowBQYDK2VwAyEAupv+EtLkm/uaq2vz9pX9B7b1f+FUZdJ1dQScTb8vnPM="}, "is not a host name"},
		{[]string{"--set", "hostKeys.dbhost01=/home/me/agent.key.pub"}, "hostKeys.dbhost01: not a public key"},
		{[]string{"--set", "components.policy.config.host_keys.dir=keys"}, "components.policy.config.host_keys.dir"},
	} {
		cmd = exec.Command(helm, append(append([]string{"template", "ap", chartDir(t)}, tc.set...), chartSecrets(t, dir)...)...)
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("helm template %q: %v\n%s", tc.set, err, out)
		}
	}

	bad := filepath.Join(dir, "bad.yaml")
	for _, tc := range []struct{ doc, want string }{
		{"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndatas: {a: b}\n", `unknown field "datas"`},
		{"apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {selector: {app: x}, ports: [{port: 80}]}\n", "matches no Deployment"},
		{"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Not_A_Name}\n", "name:"},
		{"apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: a}\nspec: {maxUnavailable: 1, selector: {matchLabels: {app: x}}}\n", "matches no Deployment"},
		{"apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: a}\n", "not one the chart may render"},
	} {
		if err := os.WriteFile(bad, []byte(tc.doc), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(kc, "k8s", bad).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("kitcheck on %q: %v %s, want an error with %q", tc.doc, err, out, tc.want)
		}
	}
}
