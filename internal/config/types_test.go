package config

import (
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// testConfig exercises every kind Decode and Reference support.
type testConfig struct {
	Name      string             `yaml:"name" doc:"Name of the thing. Default \"pipe\"."`
	Enabled   bool               `yaml:"enabled"`
	Count     int                `yaml:"count" doc:"Count of things."`
	Small     int8               `yaml:"small"`
	Port      uint16             `yaml:"port"`
	Big       uint64             `yaml:"big"`
	Ratio     float64            `yaml:"ratio"`
	Interval  time.Duration      `yaml:"interval"`
	Retention time.Duration      `yaml:"retention"`
	Spool     Size               `yaml:"spool"`
	Password  Secret             `yaml:"password"`
	Follow    *bool              `yaml:"follow"`
	Optional  *testTLS           `yaml:"optional"`
	Labels    map[string]string  `yaml:"labels"`
	Tags      []string           `yaml:"tags"`
	Level     testLevel          `yaml:"level"`
	Mode      testMode           `yaml:"mode"`
	Input     testInput          `yaml:"input"`
	Outputs   []testOutput       `yaml:"outputs"`
	Routes    map[string]testTLS `yaml:"routes"`
	Common    testCommon         `yaml:",inline"`
	Ignored   string             `yaml:"-"`
}

type testInput struct {
	Path         string        `yaml:"path" doc:"Path followed."`
	PollInterval time.Duration `yaml:"poll_interval"`
	MaxLine      Size          `yaml:"max_line_bytes"`
}

type testOutput struct {
	Address string  `yaml:"address"`
	TLS     testTLS `yaml:"tls"`
}

type testTLS struct {
	CAFile   string `yaml:"ca_file"`
	Insecure bool   `yaml:"insecure_skip_verify,omitempty"`
}

type testCommon struct {
	LogLevel string `yaml:"log_level" doc:"Inline field."`
}

// testLevel implements encoding.TextUnmarshaler.
type testLevel int

func (l testLevel) MarshalText() ([]byte, error) {
	return []byte([]string{"low", "high"}[l]), nil
}

func (l *testLevel) UnmarshalText(b []byte) error {
	switch string(b) {
	case "low":
		*l = 0
	case "high":
		*l = 1
	default:
		return fmt.Errorf("%q is not low or high", b)
	}
	return nil
}

// testMode implements yaml.Unmarshaler and yaml.Marshaler.
type testMode struct{ Words []string }

func (m testMode) MarshalYAML() (any, error) { return strings.Join(m.Words, " "), nil }

func (m *testMode) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want words")
	}
	m.Words = strings.Fields(n.Value)
	if len(m.Words) == 0 {
		m.Words = nil
	}
	return nil
}

func defaultTestConfig() testConfig {
	follow := true
	return testConfig{
		Name:      "pipe$HOME", // a literal $ must survive Reference
		Enabled:   true,
		Count:     5000,
		Small:     -3,
		Port:      9461,
		Big:       1 << 63,
		Ratio:     0.25,
		Interval:  30 * time.Second,
		Retention: 7 * 24 * time.Hour,
		Spool:     1 << 30,
		Follow:    &follow,
		Labels:    map[string]string{"env": "prod", "a.b": "dotted"},
		Tags:      []string{"x", "true", "42"},
		Level:     1,
		Mode:      testMode{Words: []string{"fast", "safe"}},
		Input:     testInput{Path: "/var/log/audit/audit.log", PollInterval: 250 * time.Millisecond, MaxLine: 64 << 10},
		Outputs: []testOutput{
			{Address: "siem1:6514", TLS: testTLS{CAFile: "/etc/ca.pem"}},
			{Address: "siem2:6514", TLS: testTLS{Insecure: true}},
		},
		Routes: map[string]testTLS{"r1": {CAFile: "/ca1.pem"}},
		Common: testCommon{LogLevel: "info"},
	}
}
