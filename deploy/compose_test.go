package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/auditpipe/auditpipe/internal/testenv"
)

// composeService is kitcheck's summary of a compose service.
type composeService struct {
	Name        string            `json:"name"`
	Image       string            `json:"image"`
	Command     []string          `json:"command"`
	Binds       map[string]string `json:"binds"`
	Volumes     map[string]string `json:"volumes"`
	DependsOn   []string          `json:"dependsOn"`
	Healthcheck []string          `json:"healthcheck"`
	User        string            `json:"user"`
	Environment map[string]string `json:"environment"`
}

func loadCompose(t *testing.T, kc, file string) ([]composeService, error) {
	t.Helper()
	cmd := exec.Command(kc, "compose", file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return nil, &toolError{err: err, out: stderr.String()}
	}
	var svcs []composeService
	if err := json.Unmarshal(b, &svcs); err != nil {
		t.Fatal(err)
	}
	return svcs, nil
}

type toolError struct {
	err error
	out string
}

func (e *toolError) Error() string { return e.err.Error() + ": " + e.out }

// TestComposeFile: `docker compose config` cannot run here (the docker
// CLI on these machines has no compose plugin, and no engine runs), so
// compose-go, the loader of docker compose, loads deploy/compose/compose.yaml
// with schema validation, interpolation and consistency checks. The file has
// Kafka, ClickHouse >= 25.8, Prometheus, Grafana and auditpipe; every file
// it mounts from the repository exists; the tokens and key come from
// auditpipe-init's script, which the test runs; each auditpipe service's
// mounted configuration is accepted by `auditpipe config validate` with
// those secrets; Prometheus' file passes `promtool check config`; Grafana's
// provisioning files name the dashboards' directory and a Prometheus.
func TestComposeFile(t *testing.T) {
	kc := kitcheck(t)
	bin := auditpipeBinary(t)
	svcs, err := loadCompose(t, kc, "compose/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]composeService{}
	for _, s := range svcs {
		byName[s.Name] = s
	}
	for name, image := range map[string]string{"kafka": "apache/kafka:4", "clickhouse": "clickhouse/clickhouse-server:25.8",
		"prometheus": "prom/prometheus:", "grafana": "grafana/grafana-oss:"} {
		if !strings.HasPrefix(byName[name].Image, image) {
			t.Errorf("service %s: image %q, want %s…", name, byName[name].Image, image)
		}
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	init := byName["auditpipe-init"]
	runComposeInit(t, init, bin, dir)
	before, _ := os.ReadFile(filepath.Join(secrets, "tokens.yaml"))
	runComposeInit(t, init, bin, dir) // again: keeps what it made
	if after, _ := os.ReadFile(filepath.Join(secrets, "tokens.yaml")); !bytes.Equal(before, after) || !bytes.Contains(after, []byte("role: metrics")) {
		t.Errorf("tokens.yaml changed on the second run or lacks the metrics token:\n%s\n%s", before, after)
	}

	auditpipes := 0
	for _, s := range svcs {
		for target, src := range s.Binds {
			if target == "/usr/bin/auditpipe" {
				if src != filepath.Join(repo, "bin", "auditpipe") {
					t.Errorf("%s: auditpipe from %s, want the repository's bin/auditpipe", s.Name, src)
				}
				continue // made by make build
			}
			if !strings.HasPrefix(src, repo+"/") {
				t.Errorf("%s: mounts %s from outside the repository", s.Name, src)
			} else if _, err := os.Stat(src); err != nil {
				t.Errorf("%s: mounts %s: %v", s.Name, src, err)
			}
		}
		i := slices.Index(s.Command, "--config")
		if len(s.Command) == 0 || s.Command[0] != "/usr/bin/auditpipe" || i < 0 || i+1 >= len(s.Command) {
			continue
		}
		auditpipes++
		if !slices.Contains(s.DependsOn, "auditpipe-init") || len(s.Healthcheck) == 0 {
			t.Errorf("%s: waits for %v, health check %v", s.Name, s.DependsOn, s.Healthcheck)
		}
		cfgPath := s.Binds[s.Command[i+1]]
		b, err := os.ReadFile(cfgPath)
		if err != nil {
			t.Fatalf("%s: its configuration %s is not mounted from the repository: %v", s.Name, s.Command[i+1], err)
		}
		if tgt := s.Command[slices.Index(s.Command, "--target")+1]; !strings.Contains(string(b), "target: "+tgt+"\n") {
			t.Errorf("%s: %s is not for target %s", s.Name, cfgPath, tgt)
		}
		local := filepath.Join(dir, s.Name+".yaml")
		// The container's paths as the host has them: its bind mounts
		// and named volumes (the secrets, the state).
		pairs := volumePairs(s, dir)
		for target, src := range s.Binds {
			pairs = append(pairs, target, src)
		}
		b = []byte(strings.NewReplacer(pairs...).Replace(string(b)))
		if err := os.WriteFile(local, b, 0o600); err != nil {
			t.Fatal(err)
		}
		v := exec.Command(bin, "config", "validate", local)
		v.Env = append(os.Environ(), "CLICKHOUSE_PASSWORD=x")
		if out, err := v.CombinedOutput(); err != nil {
			t.Errorf("%s: auditpipe config validate %s: %v\n%s", s.Name, cfgPath, err, out)
		}
	}
	if auditpipes < 3 {
		t.Errorf("%d auditpipe services, want collector, indexer and policy", auditpipes)
	}

	// Prometheus' configuration, with the rules and the token where the
	// container has them.
	pt := promtool(t)
	prom, err := os.ReadFile(byName["prometheus"].Binds["/etc/prometheus/prometheus.yml"])
	if err != nil {
		t.Fatal(err)
	}
	rules := byName["prometheus"].Binds["/etc/prometheus/auditpipe-rules.yml"]
	prom = []byte(strings.NewReplacer("/etc/prometheus/auditpipe-rules.yml", rules, "/etc/auditpipe/secrets/", secrets+"/").Replace(string(prom)))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), prom, 0o600); err != nil {
		t.Fatal(err)
	}
	runTool(t, dir, pt, "check", "config", "prometheus.yml")

	// Grafana's provisioning: the dashboards' path is where deploy/grafana
	// is mounted, the data source is the Prometheus service.
	g := byName["grafana"]
	var dsFile struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name, UID, Type, Access, URL string
			IsDefault                    bool `yaml:"isDefault"`
			Editable                     bool
		}
	}
	readYAMLStrict(t, filepath.Join(g.Binds["/etc/grafana/provisioning/datasources"], "prometheus.yaml"), &dsFile)
	if len(dsFile.Datasources) != 1 || dsFile.Datasources[0].Type != "prometheus" || dsFile.Datasources[0].URL != "http://prometheus:9090" {
		t.Errorf("grafana data sources: %+v", dsFile)
	}
	var dbFile struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name, Folder, Type string
			DisableDeletion    bool `yaml:"disableDeletion"`
			AllowUIUpdates     bool `yaml:"allowUiUpdates"`
			Options            struct{ Path string }
		}
	}
	readYAMLStrict(t, filepath.Join(g.Binds["/etc/grafana/provisioning/dashboards"], "auditpipe.yaml"), &dbFile)
	if len(dbFile.Providers) != 1 || g.Binds[dbFile.Providers[0].Options.Path] != filepath.Join(repo, "deploy", "grafana") {
		t.Errorf("grafana dashboards provider %+v: its path is not where deploy/grafana is mounted (%v)", dbFile, g.Binds)
	}
}

// TestComposeCheckRefuses: compose-go refuses what docker compose would
// (a key the specification does not have, a dependency on no service).
func TestComposeCheckRefuses(t *testing.T) {
	kc := kitcheck(t)
	src, err := os.ReadFile("compose/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ old, new, want string }{
		{"    restart: unless-stopped\n    environment:\n      KAFKA_NODE_ID", "    restart: unless-stopped\n    restrat: always\n    environment:\n      KAFKA_NODE_ID", "restrat"},
		{"depends_on: [prometheus]", "depends_on: [promethues]", "promethues"},
	} {
		if !bytes.Contains(src, []byte(tc.old)) {
			t.Fatalf("compose.yaml lacks %q", tc.old)
		}
		bad := filepath.Join(t.TempDir(), "compose.yaml")
		if err := os.WriteFile(bad, bytes.Replace(src, []byte(tc.old), []byte(tc.new), 1), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := loadCompose(t, kc, bad)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error naming %q", tc.new, err, tc.want)
		}
	}
}

// runComposeInit runs auditpipe-init's command (init.sh) as the container
// would (as root, with its environment), each named volume it mounts the
// directory dir/VOLUME.
func runComposeInit(t *testing.T, init composeService, bin, dir string) {
	t.Helper()
	testenv.RequireRoot(t, "init.sh chowns the metrics token to Prometheus' user, as root in its container")
	if init.Binds["/init.sh"] == "" || len(init.Command) < 2 || init.Command[1] != "/init.sh" {
		t.Fatalf("auditpipe-init runs no /init.sh: %+v", init)
	}
	args := []string{init.Binds["/init.sh"]}
	for _, a := range init.Command[2:] {
		vol, ok := init.Volumes[a]
		if !ok {
			t.Fatalf("auditpipe-init: argument %s is not a volume it mounts (%v)", a, init.Volumes)
		}
		args = append(args, filepath.Join(dir, vol))
	}
	cmd := exec.Command("bash", args...)
	cmd.Env = append(os.Environ(), "AUDITPIPE="+bin)
	for k, v := range init.Environment {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("init.sh: %v\n%s", err, out)
	}
}

// TestComposeMetricsTokenReadable: Prometheus' container reads the
// metrics token its scrape configuration names (regression: init.sh made
// it 0640 root's while prom/prometheus runs as nobody, 65534, so every
// scrape went without it and got 401). The token is read as the user the
// prometheus service runs as, through the directories as the volume has
// them (0755), and another unprivileged user cannot read it.
func TestComposeMetricsTokenReadable(t *testing.T) {
	kc := kitcheck(t)
	bin := auditpipeBinary(t)
	svcs, err := loadCompose(t, kc, "compose/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]composeService{}
	for _, s := range svcs {
		byName[s.Name] = s
	}
	prom := byName["prometheus"]
	var uid, gid uint32
	if _, err := fmt.Sscanf(prom.User, "%d:%d", &uid, &gid); err != nil || uid == 0 {
		t.Fatalf("prometheus: user %q, want the image's non-root uid:gid said in the file", prom.User)
	}
	dir := t.TempDir()
	// The named volumes' directories are 0755 in Docker; t.TempDir's are
	// 0700, which no other user could pass.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	runComposeInit(t, byName["auditpipe-init"], bin, dir)

	var cfg struct {
		ScrapeConfigs []struct {
			Authorization struct {
				CredentialsFile string `yaml:"credentials_file"`
			} `yaml:"authorization"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, prom.Binds["/etc/prometheus/prometheus.yml"], &cfg)
	if len(cfg.ScrapeConfigs) == 0 || cfg.ScrapeConfigs[0].Authorization.CredentialsFile == "" {
		t.Fatalf("prometheus.yml: no credentials_file: %+v", cfg)
	}
	// The container's path as the host has it.
	token := strings.NewReplacer(volumePairs(prom, dir)...).Replace(cfg.ScrapeConfigs[0].Authorization.CredentialsFile)
	if token == cfg.ScrapeConfigs[0].Authorization.CredentialsFile {
		t.Fatalf("%s is in no volume of the prometheus service (%v)", token, prom.Volumes)
	}
	for _, tc := range []struct {
		uid, gid uint32
		readable bool
	}{
		{uid, gid, true},
		{uid - 1, gid - 1, false}, // another unprivileged user
	} {
		cmd := exec.Command("cat", token)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: tc.uid, Gid: tc.gid}}
		out, err := cmd.CombinedOutput()
		switch {
		case tc.readable && (err != nil || len(bytes.TrimSpace(out)) != 64):
			t.Errorf("uid %d:%d (prometheus) reading %s: %v %q, want the 64-hex-digit token", tc.uid, tc.gid, token, err, out)
		case !tc.readable && err == nil:
			t.Errorf("uid %d:%d read the metrics token %s", tc.uid, tc.gid, token)
		}
	}
}

// volumePairs maps s's named volumes' container paths to their
// directories under dir (as runComposeInit makes them), for
// strings.NewReplacer.
func volumePairs(s composeService, dir string) []string {
	var pairs []string
	for target, vol := range s.Volumes {
		pairs = append(pairs, target+"/", filepath.Join(dir, vol)+"/")
	}
	return pairs
}

// TestComposeSecretsPerService: a container reads only the secrets its
// service uses. The policy service's signing key (whoever holds it signs
// grants every collector and agent trusts: a login on any host) and the
// admin token are the policy container's; the collector (which parses
// what operators typed), the indexer and Prometheus see the tokens file,
// the grants' public key and the metrics token, not them.
func TestComposeSecretsPerService(t *testing.T) {
	kc := kitcheck(t)
	bin := auditpipeBinary(t)
	svcs, err := loadCompose(t, kc, "compose/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, s := range svcs {
		if s.Name == "auditpipe-init" {
			runComposeInit(t, s, bin, dir)
		}
	}
	private := map[string]string{"policy.key": "policy", "admin.token": "policy"}
	seen := map[string]bool{}
	for _, s := range svcs {
		if s.Name == "auditpipe-init" {
			continue
		}
		for target, vol := range s.Volumes {
			entries, err := os.ReadDir(filepath.Join(dir, vol))
			if err != nil {
				continue // not a volume init.sh writes
			}
			for _, e := range entries {
				owner, ok := private[e.Name()]
				if !ok {
					continue
				}
				if s.Name != owner {
					t.Errorf("service %s reads %s/%s: it is the %s service's only", s.Name, target, e.Name(), owner)
				} else {
					seen[e.Name()] = true
				}
			}
		}
	}
	for name, owner := range private {
		if !seen[name] {
			t.Errorf("%s is not in a volume of the %s service", name, owner)
		}
	}
}
