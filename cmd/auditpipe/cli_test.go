package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIRoughEdges: what a new user hits first answers helpfully.
func TestCLIRoughEdges(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
		absent   []string
	}{
		{"flags after positional arguments", []string{"query", "request-commands", "X", "--output", "json"}, 1,
			[]string{"no store given", "--server URL"}, []string{"flag provided"}},
		{"an unknown named query lists the names", []string{"query", "--server", "http://127.0.0.1:1/", "request-comands", "X"}, 1,
			[]string{`"request-comands" is not a named query`, "request-commands, open-sessions"}, []string{"connection refused"}},
		{"query without a store names the stores", []string{"query", "SELECT 1"}, 1,
			[]string{"--embedded DIR", "--clickhouse HOST:PORT", "--server URL"}, nil},
		{"index without a store names the stores", []string{"index", "/dev/null"}, 1,
			[]string{"--embedded DIR", "--clickhouse HOST:PORT"}, nil},
		{"a wrong flag suggests the nearest", []string{"query", "--outptu", "json", "SELECT 1"}, 2,
			[]string{"did you mean --output?"}, nil},
		{"a far-off flag suggests nothing", []string{"query", "--zzzzzzzz", "SELECT 1"}, 2,
			[]string{"zzzzzzzz"}, []string{"did you mean"}},
		{"help CMD is CMD -h", []string{"help", "query"}, 0, []string{"usage: auditpipe query", "named queries"}, nil},
		{"-- ends the flags", []string{"query", "--", "--output"}, 1, []string{`"--output" is not a named query`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCmd(t, "", tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tt.code, errOut)
			}
			for _, c := range tt.contains {
				if !strings.Contains(errOut, c) {
					t.Errorf("stderr %q lacks %q", errOut, c)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(errOut, a) {
					t.Errorf("stderr %q has %q", errOut, a)
				}
			}
		})
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		code, out, _ := runCmd(t, "", args...)
		if code != 0 || !strings.HasPrefix(out, "auditpipe ") || !strings.Contains(out, "go1.") {
			t.Errorf("%v: exit %d, %q", args, code, out)
		}
	}
}

// TestConfigCommands: config validate exits 0 for a good file and 78 for a
// bad one, naming every bad field; config defaults prints a file that
// validates.
func TestConfigCommands(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "target: forwarder\nkafka: {brokers: [k:9092]}\nserver: {auth: {tokens_file: /dev/null}}\nforwarder: {destinations: [{address: 'siem:6514'}]}\n")
	if code, out, errOut := runCmd(t, "", "config", "validate", good); code != 0 || !strings.Contains(out, "valid for target forwarder") {
		t.Errorf("good: exit %d, %q %q", code, out, errOut)
	}
	bad := write("bad.yaml", "target: collector\nlog: {format: xml}\ncollector: {layer: MOON}\n")
	code, _, errOut := runCmd(t, "", "config", "validate", bad)
	if code != 78 {
		t.Errorf("bad: exit %d, want 78", code)
	}
	for _, f := range []string{"log.format", "collector.layer", "kafka.brokers"} {
		if !strings.Contains(errOut, f) {
			t.Errorf("bad: %q does not name %s", errOut, f)
		}
	}
	// --target overrides the file's target.
	if code, _, errOut := runCmd(t, "", "config", "validate", "--target", "indexer", good); code != 0 {
		t.Errorf("--target indexer: exit %d, %q", code, errOut)
	}
	code, out, _ := runCmd(t, "", "config", "defaults")
	if code != 0 || !strings.Contains(out, "flush_interval: 30s") {
		t.Fatalf("defaults: exit %d, %q", code, out)
	}
	ref := write("ref.yaml", out)
	if code, _, errOut := runCmd(t, "", "config", "validate", ref); code != 0 {
		t.Errorf("the defaults do not validate: exit %d, %q", code, errOut)
	}
}
