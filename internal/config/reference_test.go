package config

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestReferenceGolden(t *testing.T) {
	c := defaultTestConfig()
	c.Password = "must-not-appear"
	got, err := Reference(c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(got), "must-not-appear") || strings.Contains(string(got), "REDACTED") {
		t.Errorf("the secret was written:\n%s", got)
	}
	golden := filepath.Join("testdata", "reference.golden.yaml")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("Reference:\n%s\nwant (%s; -update rewrites it):\n%s", got, golden, want)
	}
}

func TestReferenceRoundTrip(t *testing.T) {
	for name, c := range map[string]testConfig{
		"defaults": defaultTestConfig(),
		"zero":     {},
		"odd values": func() testConfig {
			c := defaultTestConfig()
			c.Name = "${NOT_A_VARIABLE} $$ true"
			c.Tags = []string{"", "null", "~", "1.5", "- x", "a: b", "#c"}
			c.Labels = map[string]string{"": "empty key", "${K}": "$v"}
			c.Small, c.Ratio, c.Big = -128, -0.125, 0
			c.Interval, c.Spool = -1500*1e6, 1536
			c.Optional = &testTLS{}
			return c
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			b, err := Reference(&c)
			if err != nil {
				t.Fatal(err)
			}
			// Decode onto a configuration that differs everywhere, so
			// that every field must come from the reference.
			got := differentTestConfig()
			if err := decode(b, &got, noEnv); err != nil {
				t.Fatalf("Decode(Reference):\n%v\nreference:\n%s", err, b)
			}
			if !reflect.DeepEqual(got, c) && !(name == "zero" && zeroEquivalent(got)) {
				t.Errorf("Decode(Reference(c)) =\n%+v\nwant\n%+v\nreference:\n%s", got, c, b)
			}
		})
	}
}

// differentTestConfig has no field in common with the configurations the
// round trip is tested on, except that pointers and maps are nil, which
// a null or {} in the reference keeps.
func differentTestConfig() testConfig {
	return testConfig{
		Name: "other", Enabled: true, Count: 1, Small: 1, Port: 1, Big: 1, Ratio: 9, Interval: 1, Retention: 1,
		Spool: 1, Password: "p", Tags: []string{"other"}, Level: 1, Mode: testMode{Words: []string{"w"}},
		Input:   testInput{Path: "o", PollInterval: 1, MaxLine: 1},
		Outputs: []testOutput{{Address: "o"}}, Common: testCommon{LogLevel: "o"},
	}
}

// zeroEquivalent: the zero configuration's nil lists come back as empty
// lists when decoded onto a configuration whose lists are not empty (an
// empty list empties a default). Everything else must be zero.
func zeroEquivalent(c testConfig) bool {
	if len(c.Tags) != 0 || len(c.Outputs) != 0 {
		return false
	}
	c.Tags, c.Outputs = nil, nil
	return reflect.DeepEqual(c, testConfig{})
}

func TestReferenceErrors(t *testing.T) {
	if _, err := Reference(nil); err == nil {
		t.Error("Reference(nil): no error")
	}
	if _, err := Reference((*testConfig)(nil)); err == nil {
		t.Error("Reference of a nil pointer: no error")
	}
	if _, err := Reference(3); err == nil {
		t.Error("Reference(3): no error")
	}
	var v struct {
		F func() `yaml:"f"`
	}
	if _, err := Reference(v); err == nil || !strings.Contains(err.Error(), "f: a func cannot be written") {
		t.Errorf("Reference of a func field: %v", err)
	}
}
