package config

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// durationUnits are the units ParseDuration accepts, with their length.
var durationUnits = map[string]uint64{
	"ns": uint64(time.Nanosecond),
	"us": uint64(time.Microsecond),
	"µs": uint64(time.Microsecond), // U+00B5
	"μs": uint64(time.Microsecond), // U+03BC
	"ms": uint64(time.Millisecond),
	"s":  uint64(time.Second),
	"m":  uint64(time.Minute),
	"h":  uint64(time.Hour),
	"d":  uint64(24 * time.Hour),
	"w":  uint64(7 * 24 * time.Hour),
}

const day = 24 * time.Hour

// ParseDuration parses a Go duration ("1m30s", "250ms", "1.5h") that may
// also use days (d = 24h) and weeks (w = 7d): "7d", "1d12h", "2w". A lone
// "0" is zero. Negative durations parse; whether a field allows them is for
// its Validate to say.
func ParseDuration(s string) (time.Duration, error) {
	d, err := parseDuration(s)
	switch {
	case errors.Is(err, errDurationRange):
		return 0, fmt.Errorf("%q is out of range for a duration (at most about 292 years)", s)
	case err != nil:
		return 0, fmt.Errorf("%q is not a duration (like 30s, 5m, 7d)", s)
	}
	return d, nil
}

var (
	errDurationSyntax = errors.New("syntax")
	errDurationRange  = errors.New("range")
)

func parseDuration(s string) (time.Duration, error) {
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "0" {
		return 0, nil
	}
	if s == "" {
		return 0, errDurationSyntax
	}
	var total uint64
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		intPart := s[:i]
		s = s[i:]
		frac := ""
		if s != "" && s[0] == '.' {
			s = s[1:]
			j := 0
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			frac, s = s[:j], s[j:]
		}
		if intPart == "" && frac == "" {
			return 0, errDurationSyntax
		}
		j := 0
		for j < len(s) && s[j] != '.' && (s[j] < '0' || s[j] > '9') {
			j++
		}
		unit, ok := durationUnits[s[:j]]
		if !ok {
			return 0, errDurationSyntax
		}
		s = s[j:]
		v, ok := scaleDecimal(intPart, frac, unit)
		if !ok || v > math.MaxInt64+1 || total+v < total {
			return 0, errDurationRange
		}
		total += v
	}
	if total > math.MaxInt64+1 || (total == math.MaxInt64+1 && !neg) {
		return 0, errDurationRange
	}
	if neg {
		return time.Duration(-int64(total-1) - 1), nil
	}
	return time.Duration(total), nil
}

// scaleDecimal returns intPart.frac × unit, truncated to an integer, and
// false on overflow.
func scaleDecimal(intPart, frac string, unit uint64) (uint64, bool) {
	var n uint64
	for _, c := range intPart {
		if n > (math.MaxUint64-9)/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n != 0 && unit > math.MaxUint64/n {
		return 0, false
	}
	v := n * unit
	// The fraction as time.ParseDuration reads it: its digits as an
	// integer (those past 2^63 dropped) over their power of ten, times the
	// unit, so that both round alike (summing digit by digit in floating
	// point was off by one nanosecond for .1000000000011111h, FuzzParseDuration).
	var f uint64
	scale := 1.0
	for _, c := range frac {
		if f > (1<<63-1)/10 {
			break
		}
		y := f*10 + uint64(c-'0')
		if y > 1<<63 {
			break
		}
		f, scale = y, scale*10
	}
	add := uint64(float64(f) * (float64(unit) / scale))
	if v+add < v {
		return 0, false
	}
	return v + add, true
}

// FormatDuration writes d with the largest units, days included and no
// zero parts: 7*24h is "7d", 90s is "1m30s", 36h is "1d12h", 1500ms is
// "1s500ms", 0 is "0s". ParseDuration reads every result back exactly.
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	u := uint64(d)
	if d < 0 {
		b.WriteByte('-')
		u = -u
	}
	for _, p := range []struct {
		unit uint64
		name string
	}{
		{uint64(day), "d"}, {uint64(time.Hour), "h"}, {uint64(time.Minute), "m"}, {uint64(time.Second), "s"},
		{uint64(time.Millisecond), "ms"}, {uint64(time.Microsecond), "us"}, {1, "ns"},
	} {
		if n := u / p.unit; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, p.name)
			u %= p.unit
		}
	}
	return b.String()
}
