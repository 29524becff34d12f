package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/proctest"
)

// TestSIGHUPReloadsAndSIGTERMStops runs the binary as an operator does:
// SIGHUP (auditd sends it to its plugins when it reloads) must not kill the
// process (Go's default for SIGHUP is to exit); it re-reads the file and
// applies the new log level. A bad file on SIGHUP is logged and the old
// configuration kept. SIGTERM then stops it cleanly.
func TestSIGHUPReloadsAndSIGTERMStops(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := buildBinary(t)
	logPath := filepath.Join(dir, "audit.log")
	if err := os.WriteFile(logPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "c.yaml")
	writeCfg := func(level string) {
		t.Helper()
		cfg := "target: collector\nlog: {level: " + level + "}\nserver: {http_addr: '127.0.0.1:0', auth: {open_metrics: true}}\n" +
			"kafka: {brokers: ['127.0.0.1:1'], dial_timeout: 200ms}\n" +
			"collector: {state_dir: '" + filepath.Join(dir, "state") + "', follow_grants: false, input: {path: '" + logPath + "'}}\n"
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg("info")
	cmd := exec.Command(bin, "collector", "--config", cfgPath)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	lines := make(chan string, 1000)
	var wg sync.WaitGroup
	wg.Go(func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	})
	var seen []string
	waitLine := func(want string) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("process ended before %q; log:\n%s", want, strings.Join(seen, "\n"))
				}
				seen = append(seen, l)
				if strings.Contains(l, want) {
					return
				}
			case <-deadline:
				t.Fatalf("no %q in 20s; log:\n%s", want, strings.Join(seen, "\n"))
			}
		}
	}
	waitLine("http listening")

	writeCfg("debug")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLine("reload (SIGHUP): configuration applied")

	if err := os.WriteFile(cfgPath, []byte("collector: {layer: MOON}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLine("configuration not applied")
	if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the process died after SIGHUP: %v", err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for l := range lines {
		seen = append(seen, l)
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v; log:\n%s", err, strings.Join(seen, "\n"))
		}
	case <-ctx.Done():
		t.Fatal("no exit 20s after SIGTERM")
	}
}

// auditpipe is the binary of this package, built once for its tests.
var auditpipe = proctest.Binary{Pkg: "."}

// buildBinary builds the auditpipe binary once for the package's tests.
func buildBinary(t *testing.T) string {
	t.Helper()
	return auditpipe.Path(t)
}
