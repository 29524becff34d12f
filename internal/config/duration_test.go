package config

import (
	"math"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"0", 0},
		{"-0s", 0},
		{"30s", 30 * time.Second},
		{"1m30s", 90 * time.Second},
		{"250ms", 250 * time.Millisecond},
		{"1.5h", 90 * time.Minute},
		{".5s", 500 * time.Millisecond},
		{"7d", 7 * day},
		{"1d12h", 36 * time.Hour},
		{"0.5d", 12 * time.Hour},
		{"2w", 14 * day},
		{"1w1d1h1m1s1ms1us1ns", 8*day + time.Hour + time.Minute + time.Second + time.Millisecond + time.Microsecond + 1},
		{"3µs", 3 * time.Microsecond},
		{"-1h", -time.Hour},
		{"+5s", 5 * time.Second},
		{"9223372036854775807ns", math.MaxInt64},
		{"-9223372036854775808ns", math.MinInt64},
		{"106751d", 106751 * day},
		{"1.d", day}, // as time.ParseDuration reads "1.s"
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseDurationErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `"" is not a duration (like 30s, 5m, 7d)`},
		{"abc", `"abc" is not a duration (like 30s, 5m, 7d)`},
		{"30", `"30" is not a duration (like 30s, 5m, 7d)`},
		{"5 m", `"5 m" is not a duration (like 30s, 5m, 7d)`},
		{"1y", `"1y" is not a duration (like 30s, 5m, 7d)`},
		{"d", `"d" is not a duration (like 30s, 5m, 7d)`},
		{"-", `"-" is not a duration (like 30s, 5m, 7d)`},
		{"9223372036854775808ns", `"9223372036854775808ns" is out of range for a duration (at most about 292 years)`},
		{"106752d", `"106752d" is out of range for a duration (at most about 292 years)`},
		{"99999999999999999999999h", `"99999999999999999999999h" is out of range for a duration (at most about 292 years)`},
	}
	for _, tt := range tests {
		_, err := ParseDuration(tt.in)
		if err == nil || err.Error() != tt.want {
			t.Errorf("ParseDuration(%q) error %v, want %s", tt.in, err, tt.want)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{7 * day, "7d"},
		{90 * time.Second, "1m30s"},
		{36 * time.Hour, "1d12h"},
		{14 * day, "14d"},
		{1500 * time.Millisecond, "1s500ms"},
		{250 * time.Millisecond, "250ms"},
		{1, "1ns"},
		{-time.Minute, "-1m"},
		{math.MinInt64, "-106751d23h47m16s854ms775us808ns"},
	}
	for _, tt := range tests {
		if got := FormatDuration(tt.in); got != tt.want {
			t.Errorf("FormatDuration(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
