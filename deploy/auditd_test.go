package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// pluginKeys are the keys of an auditd 3.0 plugin file
// (audisp/audispd-pconfig.c) and the values each takes (nil: any).
var pluginKeys = map[string][]string{
	"active":    {"yes", "no"},
	"direction": {"out"}, // "in" is parsed but never implemented
	"path":      nil,
	"type":      {"builtin", "always"},
	"args":      nil,
	"format":    {"binary", "string"},
}

// pluginLineMax is the line buffer of auditd's plugin parser (160 bytes,
// newline included): a longer line is refused.
const pluginLineMax = 159

// parsePlugin reads an auditd plugin file as audispd-pconfig.c does: lines
// of "name = value" with the '=' a token of its own (the parser splits on
// spaces), '#' comments, each known key once; args takes the rest of the
// line (the arguments, split on spaces), the others one value.
func parsePlugin(b []byte) (map[string]string, error) {
	kv := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if len(line) > pluginLineMax {
			return nil, fmt.Errorf("line %d: %d bytes, auditd reads at most %d", n, len(line), pluginLineMax)
		}
		line = strings.TrimLeft(line, " \t")
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 || f[1] != "=" {
			return nil, fmt.Errorf("line %d: not \"name = value\" (the '=' between spaces): %q", n, line)
		}
		name := f[0]
		allowed, known := pluginKeys[name]
		if !known {
			return nil, fmt.Errorf("line %d: unknown keyword %q", n, name)
		}
		if _, dup := kv[name]; dup {
			return nil, fmt.Errorf("line %d: %s given twice", n, name)
		}
		if name != "args" && len(f) != 3 {
			return nil, fmt.Errorf("line %d: %s takes one value, got %q", n, name, f[2:])
		}
		val := strings.Join(f[2:], " ")
		if allowed != nil && !slices.Contains(allowed, val) {
			return nil, fmt.Errorf("line %d: %s = %q, auditd takes %v", n, name, val, allowed)
		}
		if name == "path" && !strings.HasPrefix(val, "/") {
			return nil, fmt.Errorf("line %d: path %q is not absolute", n, val)
		}
		kv[name] = val
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, k := range []string{"active", "direction", "path", "type", "format"} {
		if _, ok := kv[k]; !ok {
			return nil, fmt.Errorf("%s missing", k)
		}
	}
	return kv, nil
}

// TestAuditdPlugin: the plugin file parses as auditd parses it, runs the
// binary the package installs as a collector reading auditd's string
// format on stdin, with an example configuration whose input is stdin.
func TestAuditdPlugin(t *testing.T) {
	b, err := os.ReadFile("audit/plugins.d/auditpipe.conf")
	if err != nil {
		t.Fatal(err)
	}
	kv, err := parsePlugin(b)
	if err != nil {
		t.Fatalf("audit/plugins.d/auditpipe.conf: %v", err)
	}
	want := map[string]string{
		"active": "yes", "direction": "out", "path": "/usr/bin/auditpipe", "type": "always",
		"args": "collector --config /etc/auditpipe/collector-stdin.yaml", "format": "string",
	}
	for k, v := range want {
		if kv[k] != v {
			t.Errorf("%s = %q, want %q", k, kv[k], v)
		}
	}
	cfg, err := os.ReadFile(filepath.Join("config", "collector-stdin.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"\ntarget: collector\n", "\n    type: stdin\n"} {
		if !bytes.Contains(cfg, []byte(s)) {
			t.Errorf("config/collector-stdin.yaml lacks %q", s)
		}
	}
}

// TestParsePlugin: the parser refuses what auditd refuses.
func TestParsePlugin(t *testing.T) {
	good := "active = yes\ndirection = out\npath = /usr/bin/auditpipe\ntype = always\nformat = string\n"
	for _, tc := range []struct{ name, in, err string }{
		{"good", good, ""},
		{"good with args and comments", "# c\n" + good + "args = a b c\n", ""},
		{"no spaces around =", strings.Replace(good, "active = yes", "active=yes", 1), "not \"name = value\""},
		{"unknown key", good + "user = root\n", "unknown keyword \"user\""},
		{"twice", good + "active = no\n", "active given twice"},
		{"bad value", strings.Replace(good, "string", "text", 1), "format = \"text\""},
		{"direction in", strings.Replace(good, "= out", "= in", 1), "direction = \"in\""},
		{"relative path", strings.Replace(good, "/usr/bin/auditpipe", "auditpipe", 1), "not absolute"},
		{"missing format", strings.Replace(good, "format = string\n", "", 1), "format missing"},
		{"two values", strings.Replace(good, "type = always", "type = always builtin", 1), "takes one value"},
		{"long line", good + "args = " + strings.Repeat("x", 160) + "\n", "auditd reads at most"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parsePlugin([]byte(tc.in))
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want one with %q", err, tc.err)
			}
		})
	}
}
