package config

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const secretValue = "hunter2-very-secret"

type withSecret struct {
	User     string  `yaml:"user" json:"user"`
	Password Secret  `yaml:"password" json:"password"`
	Token    *Secret `yaml:"token" json:"token"`
}

func TestSecretNeverPrints(t *testing.T) {
	s := Secret(secretValue)
	c := withSecret{User: "u", Password: s, Token: &s}
	var out []string
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%10s", "%-12v"} {
		out = append(out, fmt.Sprintf(f, s), fmt.Sprintf(f, c), fmt.Sprintf(f, &c), fmt.Sprintf(f, []Secret{s}))
	}
	out = append(out, fmt.Sprint(s), fmt.Sprintln(c), s.String(), s.GoString())

	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("m", "pw", s, "cfg", c)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("m", "pw", s, "cfg", c)
	out = append(out, logs.String())

	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, string(j), string(y))

	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	def := Secret(secretValue)
	fs.Var(&def, "password", "the password")
	var usage bytes.Buffer
	fs.SetOutput(&usage)
	fs.PrintDefaults()
	out = append(out, usage.String())

	for _, o := range out {
		if strings.Contains(o, secretValue) || strings.Contains(o, "hunter") {
			t.Errorf("the secret printed: %q", o)
		}
		if !strings.Contains(o, "REDACTED") {
			t.Errorf("%q: want REDACTED in its place", o)
		}
	}
	if s.Reveal() != secretValue {
		t.Errorf("Reveal() = %q", s.Reveal())
	}
}

func TestSecretEmptyPrintsEmpty(t *testing.T) {
	var s Secret
	if got := fmt.Sprintf("[%v|%s|%#v|%q]", s, s, s, s); got != `[|||""]` {
		t.Errorf("empty secret printed %s", got)
	}
	if j, _ := json.Marshal(s); string(j) != `""` {
		t.Errorf("json %s", j)
	}
}

func TestSecretDecodeAndFlag(t *testing.T) {
	t.Setenv("AUDITPIPE_CONFIG_TEST_PW", secretValue)
	var c withSecret
	if err := Decode([]byte("password: ${AUDITPIPE_CONFIG_TEST_PW}\ntoken: tok\n"), &c); err != nil {
		t.Fatal(err)
	}
	if c.Password.Reveal() != secretValue || c.Token.Reveal() != "tok" {
		t.Errorf("password %q, token %q", c.Password.Reveal(), c.Token.Reveal())
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var s Secret
	fs.Var(&s, "password", "")
	if err := fs.Parse([]string{"-password", "x"}); err != nil || s.Reveal() != "x" {
		t.Errorf("flag: %q, %v", s.Reveal(), err)
	}
}
