package config

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// noEnv is a lookup with no variables set.
func noEnv(string) (string, bool) { return "", false }

func envOf(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown field with suggestion", "input:\n  pathh: /x\n", `input.pathh: unknown field; did you mean "path"?`},
		{"unknown field without suggestion", "zzzzzz: 1\n", `zzzzzz: unknown field`},
		{"unknown field under an inline struct's parent", "log_levl: debug\n", `log_levl: unknown field; did you mean "log_level"?`},
		{"duration", "interval: abc\n", `interval: "abc" is not a duration (like 30s, 5m, 7d)`},
		{"duration without unit", "interval: 30\n", `interval: "30" is not a duration (like 30s, 5m, 7d)`},
		{"duration given a list", "interval: [1s]\n", `interval: a list is not a duration (like 30s, 5m, 7d)`},
		{"integer", "count: x\n", `count: "x" is not an integer`},
		{"integer given a float", "count: 1.5\n", `count: "1.5" is not an integer`},
		{"integer given a mapping", "count: {a: 1}\n", `count: a mapping is not an integer`},
		{"int8 range", "small: 300\n", `small: 300 is out of range (-128 to 127)`},
		{"int64 range", "count: 99999999999999999999\n", `count: 99999999999999999999 is out of range (-9223372036854775808 to 9223372036854775807)`},
		{"uint16 range", "port: 65536\n", `port: 65536 is out of range (0 to 65535)`},
		{"uint negative", "port: -1\n", `port: -1 is out of range (0 to 65535)`},
		{"uint64 range", "big: 18446744073709551616\n", `big: 18446744073709551616 is out of range (0 to 18446744073709551615)`},
		{"float", "ratio: much\n", `ratio: "much" is not a number`},
		{"bool", "enabled: maybe\n", `enabled: "maybe" is not true or false`},
		{"string given a list", "name: [a]\n", `name: a list is not a string`},
		{"struct given a scalar", "input: /var/log\n", `input: "/var/log" is not a mapping`},
		{"list given a scalar", "tags: a\n", `tags: "a" is not a list`},
		{"map given a list", "labels: [a]\n", `labels: a list is not a mapping`},
		{"size", "spool: 1 gigabyte\n", `spool: "1 gigabyte" is not a size (like 512MiB, 1GiB, 10MB, 100B)`},
		{"size given a mapping", "spool: {a: 1}\n", `spool: a mapping is not a size (like 512MiB, 1GiB, 10MB, 100B)`},
		{"text unmarshaler", "level: medium\n", `level: "medium" is not low or high`},
		{"text unmarshaler given a list", "level: [low]\n", `level: a list is not a single value`},
		{"yaml unmarshaler", "mode: {a: b}\n", `mode: want words`},
		{"pointer to bool", "follow: sometimes\n", `follow: "sometimes" is not true or false`},
		{"pointer to struct", "optional: {ca_fil: x}\n", `optional.ca_fil: unknown field; did you mean "ca_file"?`},
		{"nested list path", "outputs:\n  - address: a:1\n  - tls: {ca_file: [x]}\n", `outputs[1].tls.ca_file: a list is not a string`},
		{"map value path", "routes:\n  r2: {insecure_skip_verify: nope}\n", `routes.r2.insecure_skip_verify: "nope" is not true or false`},
		{"map key that is not a name", "routes:\n  \"a.b\": {x: 1}\n", `routes["a.b"].x: unknown field`},
		{"key set twice", "name: a\ncount: 1\nname: b\n", `name: set twice (lines 1 and 3)`},
		{"unset variable", "name: ${AUDITPIPE_NOPE}\n", `name: environment variable AUDITPIPE_NOPE is not set (write ${AUDITPIPE_NOPE:-default} for a default)`},
		{"bad variable name", "name: ${1X}\n", `name: ${1X}: "1X" is not an environment variable name (letters, digits and _, not starting with a digit)`},
		{"unclosed variable", "name: a${X\n", `name: "${X": ${ without a closing }`},
		{"root not a mapping", "- a\n", `a list is not a mapping`},
		{"merge of a scalar", "input:\n  <<: x\n", `input: <<: "x" is not a mapping to merge`},
		{"alias cycle", "optional: &a {ca_file: x, insecure_skip_verify: *a}\n", `optional.insecure_skip_verify: alias *a refers to a value that contains it`},
		{"mapping key", "labels: {[a]: b}\n", `labels: a list cannot be a key: want a name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaultTestConfig()
			err := decode([]byte(tt.yaml), &c, noEnv)
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n %s\nwant\n %s", err, tt.want)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Line == 0 {
				t.Errorf("errors.As(*FieldError) = %v, line %d; want a field error with its line", fe, fe.Line)
			}
		})
	}
}

func TestDecodeReportsEveryErrorAtOnce(t *testing.T) {
	in := `
name: [x]
count: x
input:
  pathh: /x
  poll_interval: soon
outputs:
  - address: a:1
  - tls:
      ca_file: {}
  - address: c:1
  - address: d:1
  - address: e:1
  - address: f:1
  - address: g:1
  - address: h:1
  - address: i:1
  - address: j:1
  - tls: {insecure_skip_verify: 2}
`
	c := defaultTestConfig()
	err := decode([]byte(in), &c, noEnv)
	want := strings.Join([]string{
		`count: "x" is not an integer`,
		`input.pathh: unknown field; did you mean "path"?`,
		`input.poll_interval: "soon" is not a duration (like 30s, 5m, 7d)`,
		`name: a list is not a string`,
		`outputs[1].tls.ca_file: a mapping is not a string`,
		`outputs[10].tls.insecure_skip_verify: "2" is not true or false`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Fatalf("error\n%v\nwant\n%s", err, want)
	}
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 6 {
		t.Fatalf("errors.As(ErrorList) = %d errors, want 6", len(list))
	}
	if list[1].Line != 5 {
		t.Errorf("input.pathh at line %d, want 5", list[1].Line)
	}
}

func TestDecodeValues(t *testing.T) {
	in := `
name: "  spaced  "
enabled: off
count: 0x10
small: -128
port: "8080"
big: 18446744073709551615
ratio: 1e3
interval: 1d12h
retention: 2w
spool: 512MiB
password: hunter2
follow: false
optional: {ca_file: /o.pem}
labels: {team: ops}
tags: [b]
level: low
mode: one two
input:
  path: /p
  max_line_bytes: 1 KiB
outputs:
  - address: x:1
    tls: {ca_file: /x.pem}
routes:
  r1: {insecure_skip_verify: true}
log_level: debug
`
	got := defaultTestConfig()
	if err := decode([]byte(in), &got, noEnv); err != nil {
		t.Fatal(err)
	}
	want := defaultTestConfig()
	follow := false
	want.Name = "  spaced  "
	want.Enabled = false
	want.Count = 16
	want.Small = -128
	want.Port = 8080
	want.Big = 1<<64 - 1
	want.Ratio = 1000
	want.Interval = 36 * time.Hour
	want.Retention = 14 * 24 * time.Hour
	want.Spool = 512 << 20
	want.Password = "hunter2"
	want.Follow = &follow
	want.Optional = &testTLS{CAFile: "/o.pem"}
	want.Labels = map[string]string{"env": "prod", "a.b": "dotted", "team": "ops"} // added to the defaults
	want.Tags = []string{"b"}                                                      // replaces the default list
	want.Level = 0
	want.Mode = testMode{Words: []string{"one", "two"}}
	want.Input.Path = "/p"
	want.Input.MaxLine = 1024
	want.Outputs = []testOutput{{Address: "x:1", TLS: testTLS{CAFile: "/x.pem"}}}
	want.Routes = map[string]testTLS{"r1": {CAFile: "/ca1.pem", Insecure: true}} // starts from the default entry
	want.Common.LogLevel = "debug"
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
}

func TestDecodeNullKeepsDefaults(t *testing.T) {
	in := "name:\ncount: ~\nfollow: null\ninput: {path: }\ntags: null\nlabels:\nspool: null\nmode: ~\n"
	got := defaultTestConfig()
	if err := decode([]byte(in), &got, noEnv); err != nil {
		t.Fatal(err)
	}
	if want := defaultTestConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant the defaults\n%+v", got, want)
	}
	// A quoted empty string is a value, not a null.
	if err := decode([]byte(`name: ""`), &got, noEnv); err != nil || got.Name != "" {
		t.Errorf(`name: "" gave %q, %v; want ""`, got.Name, err)
	}
}

func TestDecodeDoesNotChangeSharedDefaults(t *testing.T) {
	def := defaultTestConfig()
	c := def
	if err := decode([]byte("follow: false\nlabels: {x: y}\n"), &c, noEnv); err != nil {
		t.Fatal(err)
	}
	if !*def.Follow || len(def.Labels) != 2 {
		t.Errorf("decoding changed the default's pointer or map: follow %v, labels %v", *def.Follow, def.Labels)
	}
}

func TestDecodeEmptyListsAndMaps(t *testing.T) {
	c := defaultTestConfig()
	if err := decode([]byte("tags: []\nlabels: {}\noutputs: []\n"), &c, noEnv); err != nil {
		t.Fatal(err)
	}
	if c.Tags == nil || len(c.Tags) != 0 || len(c.Outputs) != 0 {
		t.Errorf("tags %#v, outputs %v: want a default list emptied", c.Tags, c.Outputs)
	}
	if len(c.Labels) != 2 {
		t.Errorf("labels %v: an empty mapping adds nothing, want the default's", c.Labels)
	}
	var z testConfig
	if err := decode([]byte("tags: []\nlabels: {}\n"), &z, noEnv); err != nil {
		t.Fatal(err)
	}
	if z.Tags != nil || z.Labels != nil {
		t.Errorf("tags %#v, labels %#v: want nil left nil", z.Tags, z.Labels)
	}
}

func TestDecodeEnv(t *testing.T) {
	env := envOf(map[string]string{"PORT": "9000", "SPOOL": "2GiB", "PW": "s3cr3t", "EMPTY": "", "WORDS": "a b"})
	in := `
port: ${PORT}
spool: ${SPOOL}
password: ${PW}
name: "cost: $$5 ${MISSING:-none}/${EMPTY:-dflt}/$x"
interval: ${IV:-1d}
tags: ["${PORT}", '$${PORT}']
labels: {"${PORT}": v}
mode: ${WORDS}
level: ${LVL:-low}
`
	c := defaultTestConfig()
	if err := decode([]byte(in), &c, env); err != nil {
		t.Fatal(err)
	}
	if c.Port != 9000 || c.Spool != 2<<30 || c.Password.Reveal() != "s3cr3t" || c.Interval != 24*time.Hour || c.Level != 0 {
		t.Errorf("port %d, spool %d, password %q, interval %s, level %d", c.Port, c.Spool, c.Password.Reveal(), c.Interval, c.Level)
	}
	if want := "cost: $5 none/dflt/$x"; c.Name != want {
		t.Errorf("name %q, want %q", c.Name, want)
	}
	if want := []string{"9000", "${PORT}"}; !reflect.DeepEqual(c.Tags, want) {
		t.Errorf("tags %q, want %q", c.Tags, want)
	}
	if _, ok := c.Labels["${PORT}"]; !ok {
		t.Errorf("labels %v: keys are not substituted, want the key ${PORT}", c.Labels)
	}
	if want := []string{"a", "b"}; !reflect.DeepEqual(c.Mode.Words, want) {
		t.Errorf("mode %q: a yaml.Unmarshaler gets substituted values, want %q", c.Mode.Words, want)
	}
}

func TestDecodeEnvFromProcess(t *testing.T) {
	t.Setenv("AUDITPIPE_CONFIG_TEST_NAME", "from-env")
	var c testConfig
	if err := Decode([]byte("name: ${AUDITPIPE_CONFIG_TEST_NAME}\n"), &c); err != nil || c.Name != "from-env" {
		t.Errorf("name %q, %v; want from-env", c.Name, err)
	}
}

func TestDecodeMergesAndAliases(t *testing.T) {
	in := `
base: &base {address: "base:1", tls: {ca_file: /base.pem}}
`
	var c testConfig
	if err := decode([]byte(in), &c, noEnv); err == nil || !strings.HasPrefix(err.Error(), "base: unknown field") {
		t.Fatalf("an anchor on an unknown key: %v, want it reported", err)
	}
	in = `
optional: &tls {ca_file: /a.pem, insecure_skip_verify: true}
routes:
  one: *tls
  two:
    <<: *tls
    ca_file: /b.pem
outputs:
  - &out {address: "o:1"}
  - <<: [*out, {address: "ignored:1", tls: *tls}]
`
	if err := decode([]byte(in), &c, noEnv); err != nil {
		t.Fatal(err)
	}
	a := testTLS{CAFile: "/a.pem", Insecure: true}
	if *c.Optional != a || c.Routes["one"] != a || c.Routes["two"] != (testTLS{CAFile: "/b.pem", Insecure: true}) {
		t.Errorf("optional %+v, routes %+v", *c.Optional, c.Routes)
	}
	if want := []testOutput{{Address: "o:1"}, {Address: "o:1", TLS: a}}; !reflect.DeepEqual(c.Outputs, want) {
		t.Errorf("outputs %+v, want %+v: the first merge source wins", c.Outputs, want)
	}
}

func TestDecodeAliasExpansionIsBounded(t *testing.T) {
	// A billion laughs: ten levels of ten aliases each.
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 10; i++ {
		p := "*a" + string(rune('0'+i-1))
		b.WriteString("a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [" + strings.Repeat(p+", ", 9) + p + "]\n")
	}
	var deep map[string][][][][][][][][][][]string
	err := decode([]byte(b.String()), &deep, noEnv)
	if err == nil || !strings.Contains(err.Error(), "expands to more than") {
		t.Fatalf("error %v, want the expansion stopped", err)
	}
}

func TestDecodeDocuments(t *testing.T) {
	c := defaultTestConfig()
	for _, in := range []string{"", "# only a comment\n", "---\n"} {
		if err := decode([]byte(in), &c, noEnv); err != nil {
			t.Errorf("%q: %v, want no error", in, err)
		}
	}
	if !reflect.DeepEqual(c, defaultTestConfig()) {
		t.Errorf("an empty document changed the defaults")
	}
	if err := decode([]byte("name: a\n---\nname: b\n"), &c, noEnv); err == nil || !strings.Contains(err.Error(), "second YAML document") {
		t.Errorf("two documents: %v, want an error", err)
	}
	if err := decode([]byte("name: [a\n"), &c, noEnv); err == nil || !strings.HasPrefix(err.Error(), "config: yaml: line") {
		t.Errorf("a syntax error: %v, want yaml's error with its line", err)
	}
	if err := decode([]byte("name: a\n"), c, noEnv); err == nil {
		t.Errorf("decoding into a non-pointer: no error")
	}
}

func TestDecodeUnsupportedKind(t *testing.T) {
	var v struct {
		F func()         `yaml:"f"`
		M map[int]string `yaml:"m"`
	}
	err := decode([]byte("f: x\nm: {1: a}\n"), &v, noEnv)
	want := "f: cannot be set from a configuration file (a field of Go kind func)\nm: cannot be set from a configuration file (a map with int keys)"
	if err == nil || err.Error() != want {
		t.Errorf("error\n%v\nwant\n%s", err, want)
	}
}

func TestLoad(t *testing.T) {
	c := defaultTestConfig()
	if err := Load("", &c); err != nil {
		t.Errorf("empty path: %v", err)
	}
	p := t.TempDir() + "/c.yaml"
	if err := Load(p, &c); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
	writeFile(t, p, "count: x\n")
	if err := Load(p, &c); err == nil || err.Error() != "config "+p+`: count: "x" is not an integer` {
		t.Errorf("bad file: %v", err)
	}
	writeFile(t, p, "count: 7\n")
	if err := Load(p, &c); err != nil || c.Count != 7 {
		t.Errorf("good file: count %d, %v", c.Count, err)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
