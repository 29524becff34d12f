package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCmd(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), env{args: args, stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb})
	return code, out.String(), errb.String()
}

// TestParseSeed: the parse command on the seed's example 1-4 prints the
// golden event.
func TestParseSeed(t *testing.T) {
	code, out, errOut := runCmd(t, "", "parse", "--layer", "CPS", "--host", "scaqae08dv0605m",
		"--passwd", "../../collector/testdata/seed/passwd", "--group", "../../collector/testdata/seed/group",
		"--grant", "USERNAME=1", "../../collector/testdata/seed/example-1-4-command.log")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	golden, err := os.ReadFile("../../collector/testdata/seed/example-1-4-command.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := json.Compact(&want, golden); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != want.String() {
		t.Fatalf("got\n%s\nwant\n%s", out, want.String())
	}
}

func TestParseRejectsAndUsers(t *testing.T) {
	log := "garbage\n" + strings.ReplaceAll(mustRead(t, "../../collector/testdata/seed/example-1-2-login.log"), "1001", "4242")
	tests := []struct {
		name       string
		args       []string
		wantEvents int
	}{
		{"without a grant the user is not audited", nil, 0},
		{"--all-users audits everyone", []string{"--all-users"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"parse", "--passwd", "", "--group", ""}, tt.args...)
			code, out, errOut := runCmd(t, log, append(args, "-")...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if got := strings.Count(out, "\n"); got != tt.wantEvents {
				t.Errorf("%d events, want %d: %s", got, tt.wantEvents, out)
			}
			if !strings.Contains(errOut, "reject line 1: no_type:") {
				t.Errorf("reject not reported on stderr: %q", errOut)
			}
			if tt.wantEvents == 1 && !strings.Contains(out, `"loginid":"unknown(4242)"`) {
				t.Errorf("unresolved uid not shown as ausearch does: %s", out)
			}
		})
	}
}

func TestParseUnreadableInput(t *testing.T) {
	code, _, errOut := runCmd(t, "", "parse", filepath.Join(t.TempDir(), "missing.log"))
	if code != 1 || !strings.Contains(errOut, "no such file") {
		t.Fatalf("exit %d, stderr %q; want 1 and the reason", code, errOut)
	}
}

func TestUsage(t *testing.T) {
	if code, _, errOut := runCmd(t, ""); code != 2 || !strings.Contains(errOut, "all-in-one") {
		t.Fatalf("no args: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCmd(t, "", "frobnicate"); code != 2 || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCmd(t, "", "collector", "--config", filepath.Join(t.TempDir(), "nope.yaml")); code != 1 || !strings.Contains(errOut, "config") {
		t.Fatalf("missing config: exit %d, %q", code, errOut)
	}
}

// TestHelpAndBadFlags: every command prints its usage and exits 0 when
// asked with -h, and exits 2 after an unknown flag.
func TestHelpAndBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"parse"}, {"collector"}, {"all-in-one"}, {"forward"}, {"forwarder"}, {"forwarder", "check"},
		{"index"}, {"indexer"}, {"query"}, {"grant", "publish"}, {"grant", "revoke"}, {"grant", "keygen"}, {"agent", "prepare-root"},
	} {
		name := strings.Join(args, " ")
		if code, _, errOut := runCmd(t, "", append(args, "-h")...); code != 0 || !strings.Contains(errOut, "usage: auditpipe "+args[0]) {
			t.Errorf("%s -h: exit %d, %q", name, code, errOut)
		}
		if code, _, errOut := runCmd(t, "", append(args, "--no-such-flag")...); code != 2 || !strings.Contains(errOut, "no-such-flag") {
			t.Errorf("%s --no-such-flag: exit %d, %q", name, code, errOut)
		}
	}
}

// TestCollectorConfigErrorsNameTheField: a bad configuration stops the
// collector at start with the field's name.
func TestCollectorConfigErrorsNameTheField(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ yaml, want string }{
		{"collector: {layer: MOON}\n", "collector.layer"},
		{"collector: {input: {type: socket}}\n", "collector.input.type"},
		{"collector: {flush_interval: -1s}\n", "collector.flush_interval"},
		{"kafka: {brokers: [nohost]}\n", "kafka.brokers"},
		{"typo_field: 1\n", "typo_field"},
	}
	for _, tt := range tests {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte(tt.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, errOut := runCmd(t, "", "collector", "--config", p)
		if code != 1 || !strings.Contains(errOut, tt.want) {
			t.Errorf("%q: exit %d, stderr %q; want the field %s named", tt.yaml, code, errOut, tt.want)
		}
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
