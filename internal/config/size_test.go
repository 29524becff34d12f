package config

import (
	"encoding/json"
	"flag"
	"io"
	"math"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want Size
	}{
		{"0", 0},
		{"100", 100},
		{"100B", 100},
		{"4KiB", 4 << 10},
		{"512MiB", 512 << 20},
		{"1GiB", 1 << 30},
		{"1 GiB", 1 << 30},
		{"1gib", 1 << 30},
		{"2TiB", 2 << 40},
		{"1GB", 1e9},
		{"10MB", 10e6},
		{"10mb", 10e6},
		{"1kB", 1000},
		{"1.5KiB", 1536},
		{"0.5GB", 5e8},
		{"7EiB", 7 << 60},
		{"9223372036854775807", math.MaxInt64},
		{" 64KiB ", 64 << 10},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestParseSizeErrors(t *testing.T) {
	for _, in := range []string{"", "x", "GiB", "-1", "-1KiB", "1.5B", "0.0001KiB", "1 gigabyte", "1KiBB", "1.KiB", "8EiB", "9223372036854775808", "1e3", "1  KiB"} {
		_, err := ParseSize(in)
		want := `"` + in + `" is not a size (like 512MiB, 1GiB, 10MB, 100B)`
		if err == nil || err.Error() != want {
			t.Errorf("ParseSize(%q) error %v, want %s", in, err, want)
		}
	}
}

func TestSizeString(t *testing.T) {
	tests := []struct {
		in   Size
		want string
	}{
		{0, "0B"},
		{1, "1B"},
		{1 << 30, "1GiB"},
		{4 << 20, "4MiB"},
		{64 << 10, "64KiB"},
		{1536, "1536B"},
		{1 << 40, "1TiB"},
		{900000, "900KB"},
		{1e9, "1GB"},
		{1500, "1500B"},
		{-2048, "-2KiB"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Size(%d).String() = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSizeEncodings(t *testing.T) {
	var s struct {
		S Size `yaml:"s" json:"s"`
	}
	s.S = 512 << 20
	y, err := yaml.Marshal(s)
	if err != nil || string(y) != "s: 512MiB\n" {
		t.Errorf("yaml %q, %v", y, err)
	}
	j, err := json.Marshal(s)
	if err != nil || string(j) != `{"s":"512MiB"}` {
		t.Errorf("json %s, %v", j, err)
	}
	s.S = 0
	if err := yaml.Unmarshal([]byte("s: 1GiB\n"), &s); err != nil || s.S != 1<<30 {
		t.Errorf("yaml.Unmarshal: %d, %v", s.S, err)
	}
	if err := json.Unmarshal([]byte(`{"s":"4KiB"}`), &s); err != nil || s.S != 4096 {
		t.Errorf("json.Unmarshal: %d, %v", s.S, err)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	v := Size(1 << 20)
	fs.Var(&v, "max", "max bytes")
	if err := fs.Parse([]string{"-max", "2GiB"}); err != nil || v != 2<<30 {
		t.Errorf("flag: %d, %v", v, err)
	}
	if err := fs.Parse([]string{"-max", "lots"}); err == nil {
		t.Errorf("flag -max lots: no error")
	}
}
