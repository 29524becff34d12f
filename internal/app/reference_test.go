package app

import (
	"bytes"
	"crypto/ed25519"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/sign"
)

var update = flag.Bool("update", false, "rewrite deploy/config/auditpipe.reference.yaml")

// TestReferenceIsCurrent: the shipped reference is what `auditpipe config
// defaults` prints (go test ./internal/app -run Reference -update rewrites it).
func TestReferenceIsCurrent(t *testing.T) {
	got, err := Reference()
	if err != nil {
		t.Fatal(err)
	}
	const path = "../../deploy/config/auditpipe.reference.yaml"
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("%s is not current: run go test ./internal/app -run Reference -update", path)
	}
	// The reference decodes back to the defaults.
	cfg := DefaultConfig()
	if err := config.Decode(got, &cfg); err != nil {
		t.Fatalf("the reference does not decode: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the reference is not valid: %v", err)
	}
}

// TestExampleConfigsValidate: every example under deploy/config is valid
// for its target, with the files it names (under /etc/auditpipe) present.
func TestExampleConfigsValidate(t *testing.T) {
	t.Setenv("CLICKHOUSE_PASSWORD", "example")
	t.Setenv("POLICY_DB_PASSWORD", "example")
	etc := t.TempDir()
	for _, name := range []string{"kafka-ca.pem", "siem-ca.pem", "tokens.yaml"} {
		if err := os.WriteFile(filepath.Join(etc, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, role := range []string{"collector", "indexer", "forwarder", "agent", "host", "policy"} {
		if err := os.WriteFile(filepath.Join(etc, "kafka-"+role+".password"), []byte("example\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	key, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := sign.SavePublicKey(filepath.Join(etc, "grants.pub"), key.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	if err := sign.SavePrivateKey(filepath.Join(etc, "policy.key"), key); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("../../deploy/config/*.yaml")
	if err != nil || len(files) < 5 {
		t.Fatalf("examples: %v %v", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte("/etc/auditpipe/"), []byte(etc+"/"))
		cfg := DefaultConfig()
		if err := config.Decode(b, &cfg); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		for _, field := range explicitFields(t, cfg.Target) {
			if !setIn(t, b, field) {
				t.Errorf("%s: target %s needs %s: the example does not say where it is", f, cfg.Target, field)
			}
		}
	}
}

// explicitFields are the fields an example of target must set rather than
// leave to their defaults, because an operator has to act on them: the
// agent's key_file (its public half is enrolled), the control plane's
// host_keys.dir (where it is enrolled). Target all keeps both in its data
// directory and enrolls its own agent.
func explicitFields(t *testing.T, target string) []string {
	t.Helper()
	if target == TargetAll {
		return nil
	}
	mods, err := Modules(target)
	if err != nil {
		t.Fatal(err)
	}
	var fields []string
	if slices.Contains(mods, "agent") {
		fields = append(fields, "agent.key_file")
	}
	if slices.Contains(mods, "policy") || slices.Contains(mods, "scheduler") || slices.Contains(mods, "indexer") {
		fields = append(fields, "host_keys.dir")
	}
	return fields
}

// setIn tells whether the YAML document src sets the dotted field.
func setIn(t *testing.T, src []byte, field string) bool {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(src, &doc); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(field, ".")
	for i, p := range parts {
		v, ok := doc[p]
		if !ok {
			return false
		}
		if i == len(parts)-1 {
			return v != nil && v != ""
		}
		if doc, ok = v.(map[string]any); !ok {
			return false
		}
	}
	return false
}
