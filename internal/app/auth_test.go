package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/auditpipe/auditpipe/clickhouse/chdb"
	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/siemtest"
	"github.com/auditpipe/auditpipe/internal/testenv"
)

// startServer runs only the server module of cfg (target "t").
func startServer(t *testing.T, cfg Config) string {
	t.Helper()
	cfg.Target = "t"
	var server Module
	for _, m := range modules() {
		if m.Name == "server" {
			server = m
		}
	}
	addr := make(chan string, 1)
	a, err := newApp(cfg, Deps{Ready: func(s string) { addr <- s }}, []Module{server}, map[string][]string{"t": {"server"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	select {
	case s := <-addr:
		return "http://" + s
	case err := <-done:
		t.Fatalf("server did not start: %v", err)
	}
	return ""
}

func writeTokens(t *testing.T, dir string, roles ...string) (file string, tokens map[string]string) {
	t.Helper()
	tokens = map[string]string{}
	var f auth.File
	for _, r := range roles {
		tok, e, err := auth.NewToken("t-"+r, r)
		if err != nil {
			t.Fatal(err)
		}
		tokens[r] = tok
		f.Tokens = append(f.Tokens, e)
	}
	b, err := yaml.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return file, tokens
}

func status(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestEndpointsAuthenticate: every endpoint but the probes needs a
// credential (401 without, 403 with a role that may not), in each of the
// shapes clients send it (bearer, basic auth's password, ClickHouse's
// X-ClickHouse-Key); /metrics is open only when configured, on loopback.
func TestEndpointsAuthenticate(t *testing.T) {
	file, tok := writeTokens(t, t.TempDir(), auth.RoleMetrics, auth.RoleCollector, auth.RoleAuditor)
	cfg := DefaultConfig()
	cfg.Server.HTTPAddr = "127.0.0.1:0"
	cfg.Server.Auth.TokensFile = file
	base := startServer(t, cfg)
	req := func(path string, set func(*http.Request)) *http.Request {
		r, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if set != nil {
			set(r)
		}
		return r
	}
	bearer := func(tok string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	}
	tests := []struct {
		name string
		r    *http.Request
		want int
	}{
		{"probes are open", req("/-/healthy", nil), 200},
		{"metrics without a credential", req("/metrics", nil), 401},
		{"metrics with a wrong token", req("/metrics", bearer("ap_not-a-token")), 401},
		{"metrics with the metrics role", req("/metrics", bearer(tok[auth.RoleMetrics])), 200},
		{"metrics with the auditor role", req("/metrics", bearer(tok[auth.RoleAuditor])), 200},
		{"metrics with a collector's token", req("/metrics", bearer(tok[auth.RoleCollector])), 403},
		{"basic auth's password", req("/metrics", func(r *http.Request) { r.SetBasicAuth("default", tok[auth.RoleMetrics]) }), 200},
		{"X-ClickHouse-Key", req("/metrics", func(r *http.Request) { r.Header.Set("X-ClickHouse-Key", tok[auth.RoleAuditor]) }), 200},
	}
	for _, tt := range tests {
		if code, body := status(t, tt.r); code != tt.want {
			t.Errorf("%s: %d %q, want %d", tt.name, code, body, tt.want)
		}
	}
	code, body := status(t, req("/metrics", bearer(tok[auth.RoleMetrics])))
	if code != 200 || !strings.Contains(body, "go_build_info") || !strings.Contains(body, "process_start_time_seconds") {
		t.Errorf("metrics: %d, missing build info or process metrics", code)
	}

	open := DefaultConfig()
	open.Server.HTTPAddr = "127.0.0.1:0"
	open.Server.Auth.OpenMetrics = true
	open.Server.Auth.TokensFile = file
	obase := startServer(t, open)
	r, _ := http.NewRequest(http.MethodGet, obase+"/metrics", nil)
	if code, _ := status(t, r); code != 200 {
		t.Errorf("open metrics on loopback: %d", code)
	}
	open.Target = TargetCollector
	open.Kafka.Brokers = []string{"k:9092"}
	open.Server.HTTPAddr = "0.0.0.0:9461"
	if err := open.Server.validate(TargetCollector); err == nil || !strings.Contains(err.Error(), "server.auth.open_metrics") {
		t.Errorf("open metrics on 0.0.0.0: %v, want refused", err)
	}
	open.Server = ServerConfig{HTTPAddr: "127.0.0.1:9462"}
	if err := open.Server.validate(TargetIndexer); err == nil || !strings.Contains(err.Error(), "server.auth.tokens_file") {
		t.Errorf("an indexer without credentials: %v, want refused", err)
	}
}

// TestAllInOneDataDirIsPrivate: the all-in-one's data directory (broker
// log, store, collector state: every event and keystroke) is 0700 and its
// credentials 0600, created on first start and kept after; another local
// user cannot read them.
func TestAllInOneDataDirIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o755); err != nil { // as an old version left it
		t.Fatal(err)
	}
	tf, created, err := auth.Bootstrap(dir)
	if err != nil || !created {
		t.Fatalf("bootstrap: %v %v", created, err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, tf: 0o600, filepath.Join(dir, auth.AdminTokenName): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
	first, _ := os.ReadFile(tf)
	if _, created, err := auth.Bootstrap(dir); err != nil || created {
		t.Fatalf("second start: created %v, %v", created, err)
	}
	if again, _ := os.ReadFile(tf); string(again) != string(first) {
		t.Fatal("the second start replaced the tokens")
	}
	tokens, err := auth.LoadFile(tf)
	if err != nil || len(tokens) != 1 || tokens[0].Role != auth.RoleAdmin {
		t.Fatalf("tokens: %v %v", tokens, err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, auth.AdminTokenName))
	if strings.Contains(string(first), strings.TrimSpace(string(b))) {
		t.Fatal("the tokens file holds the token itself, not its hash")
	}
	if os.Geteuid() != 0 {
		return
	}
	runuser, err := exec.LookPath("runuser")
	if err != nil {
		testenv.SkipOrFail(t, testenv.Root, "runuser (util-linux, on every Debian) not found, needed to read as nobody: %v", err)
	}
	// The test's temporary directory is private to root already on some
	// systems; open the way up to dir so only dir's own mode protects it.
	for d := filepath.Dir(dir); d != "/" && d != "."; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err == nil && fi.Mode().Perm()&0o001 == 0 {
			_ = os.Chmod(d, fi.Mode().Perm()|0o001)
		}
	}
	out, err := exec.Command(runuser, "-u", "nobody", "--", "cat", filepath.Join(dir, auth.AdminTokenName)).CombinedOutput()
	if err == nil {
		t.Fatalf("nobody read the admin token: %q", out)
	}
	if !strings.Contains(string(out), "Permission denied") {
		t.Fatalf("nobody: %q, want Permission denied", out)
	}
}

// TestClientCertificates: with TLS on the listener and a client CA, a
// client certificate the CA signed and auth.clients lists authenticates
// with its role; one from another CA does not get through the handshake;
// no certificate and no token is 401.
func TestClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := siemtest.NewCA(t, dir, "ca")
	srvCert, srvKey := ca.Issue(t, dir, "server", siemtest.CertOptions{})
	promCert, promKey := ca.Issue(t, dir, "prometheus", siemtest.CertOptions{Client: true})
	other := siemtest.NewCA(t, filepath.Join(dir), "other-ca")
	strangerCert, strangerKey := other.Issue(t, dir, "stranger", siemtest.CertOptions{Client: true})

	cfg := DefaultConfig()
	cfg.Server.HTTPAddr = "127.0.0.1:0"
	cfg.Server.TLS = ServerTLS{CertFile: srvCert, KeyFile: srvKey, ClientCAFile: ca.CertPEM}
	cfg.Server.Auth.Clients = []auth.Client{{CommonName: "prometheus", Role: auth.RoleMetrics}}
	base := strings.Replace(startServer(t, cfg), "http://", "https://", 1)

	pool := x509.NewCertPool()
	pem, err := os.ReadFile(ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(pem)
	client := func(certFile, keyFile string) *http.Client {
		tc := &tls.Config{RootCAs: pool}
		if certFile != "" {
			c, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			tc.Certificates = []tls.Certificate{c}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	}
	get := func(c *http.Client) (int, error) {
		resp, err := c.Get(base + "/metrics")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := get(client(promCert, promKey)); err != nil || code != 200 {
		t.Errorf("the CA's client certificate: %d %v, want 200", code, err)
	}
	if code, err := get(client("", "")); err != nil || code != 401 {
		t.Errorf("no certificate, no token: %d %v, want 401", code, err)
	}
	if code, err := get(client(strangerCert, strangerKey)); err == nil && code != 401 {
		t.Errorf("a certificate from another CA: %d, want 401 or the handshake refused", code)
	}
}

// Regression (issue 9): the broker's log files in the all-in-one's data
// directory were 0644 and anyone could produce to the broker. Now every
// file the all-in-one writes under --data (the broker's log and state,
// its TLS files and credentials, the store, the collector's state) is its
// owner's only, each directory 0700; the embedded broker's credentials
// (one password file per role, the CA) are made on first start and kept
// after; an older data directory's files are made private at start.
func TestAllInOneEveryFileIsPrivate(t *testing.T) {
	if _, err := chdb.FindLibrary(""); err != nil {
		testenv.SkipOrFail(t, testenv.CHDB, "needs libchdb.so (run 'make deps'): %v", err)
	}
	dir := t.TempDir()
	log := filepath.Join(dir, "audit.log")
	first, _ := sampleHalves(t)
	appendTo(t, log, first)
	cfg := sampleConfig(dir, log)
	cfg.Collector.FlushInterval = 200 * time.Millisecond
	// What an older version left: a world-readable file in the broker's log.
	old := filepath.Join(cfg.Embedded.DataDir, "kafka", "old-segment.log")
	if err := os.MkdirAll(filepath.Dir(old), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(old, []byte("an event"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := start(t, cfg)
	waitCount(t, r, "SELECT count() FROM audit_events WHERE event != 'chain'", "10", 30*time.Second)
	r.stop(t)

	data := cfg.Embedded.DataDir
	creds := filepath.Join(data, KafkaCredentialsDir)
	pw := map[kafka.Role][]byte{}
	for _, role := range kafka.Roles() {
		b, err := os.ReadFile(filepath.Join(creds, kafka.PasswordFileName(role)))
		if err != nil || len(b) < 32 {
			t.Fatalf("%s's password file: %q %v", role, b, err)
		}
		pw[role] = b
	}
	files := 0
	err := filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil // chDB's links between its directories: no mode of their own
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		} else {
			files++
		}
		if fi.Mode().Perm()&^want != 0 {
			t.Errorf("%s: mode %v, want %v or less", path, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"kafka", KafkaCredentialsDir, KafkaTLSDir, "chdb", "collector"} {
		if _, err := os.Stat(filepath.Join(data, sub)); err != nil {
			t.Errorf("no %s in the data directory: %v", sub, err)
		}
	}
	t.Logf("%d files under the data directory checked", files)

	// A second start keeps the credentials and the CA.
	ca, _ := os.ReadFile(filepath.Join(data, KafkaTLSDir, "ca.crt"))
	r = start(t, cfg)
	r.stop(t)
	for role, b := range pw {
		if again, _ := os.ReadFile(filepath.Join(creds, kafka.PasswordFileName(role))); string(again) != string(b) {
			t.Errorf("the second start replaced the %s's password", role)
		}
	}
	if again, _ := os.ReadFile(filepath.Join(data, KafkaTLSDir, "ca.crt")); string(again) != string(ca) {
		t.Error("the second start replaced the broker's CA")
	}
}
