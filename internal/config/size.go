package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Size is a number of bytes that configuration files write in human units:
// "1GiB", "512MiB", "4KiB" (binary), "1GB", "10MB" (decimal, SI), "100B",
// or a plain integer of bytes. It is a flag.Value, and marshals to YAML,
// JSON and text as its String.
type Size int64

// sizeUnits are the accepted units, matched without regard to case.
var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"kb":  1e3,
	"mb":  1e6,
	"gb":  1e9,
	"tb":  1e12,
	"pb":  1e15,
	"eb":  1e18,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
	"pib": 1 << 50,
	"eib": 1 << 60,
}

// ParseSize parses a size: a non-negative number, optionally with a
// fraction, then an optional space and unit (B, KB, MB, GB, TB, PB, EB,
// KiB, MiB, GiB, TiB, PiB, EiB; any case). The result must be a whole
// number of bytes: "1.5KiB" is 1536, "0.5B" is an error.
func ParseSize(s string) (Size, error) {
	n, ok := parseSize(strings.TrimSpace(s))
	if !ok {
		return 0, fmt.Errorf("%q is not a size (like 512MiB, 1GiB, 10MB, 100B)", s)
	}
	return n, nil
}

func parseSize(s string) (Size, bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	intPart, rest := s[:i], s[i:]
	frac := ""
	if strings.HasPrefix(rest, ".") {
		rest = rest[1:]
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		frac, rest = rest[:j], rest[j:]
		if frac == "" {
			return 0, false
		}
	}
	if intPart == "" {
		return 0, false
	}
	unit, ok := sizeUnits[strings.ToLower(strings.TrimPrefix(rest, " "))]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(intPart, 10, 64)
	if err != nil || n > math.MaxInt64/unit {
		return 0, false
	}
	total := n * unit
	if frac != "" {
		// frac/10^len(frac) × unit must be whole: compute frac×unit and
		// divide, refusing fractions finer than the unit allows.
		if len(frac) > 18 {
			return 0, false
		}
		f, _ := strconv.ParseInt(frac, 10, 64)
		pow := int64(1)
		for range frac {
			pow *= 10
		}
		if f != 0 && unit > math.MaxInt64/f {
			return 0, false
		}
		if f*unit%pow != 0 {
			return 0, false
		}
		add := f * unit / pow
		if total > math.MaxInt64-add {
			return 0, false
		}
		total += add
	}
	return Size(total), true
}

// String writes s in the largest binary unit that holds it exactly
// ("1GiB", "64MiB"), else the largest exact decimal unit ("900KB"), else
// in bytes ("1500B"). ParseSize reads it back exactly.
func (s Size) String() string {
	if s == 0 {
		return "0B"
	}
	sign, u := "", uint64(s)
	if s < 0 {
		sign, u = "-", -u
	}
	for _, p := range []struct {
		unit uint64
		name string
	}{
		{1 << 60, "EiB"}, {1 << 50, "PiB"}, {1 << 40, "TiB"}, {1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"},
		{1e18, "EB"}, {1e15, "PB"}, {1e12, "TB"}, {1e9, "GB"}, {1e6, "MB"}, {1e3, "KB"},
	} {
		if u%p.unit == 0 {
			return sign + strconv.FormatUint(u/p.unit, 10) + p.name
		}
	}
	return sign + strconv.FormatUint(u, 10) + "B"
}

// Bytes returns s as an int, for the code that uses it.
func (s Size) Bytes() int { return int(s) }

// Set parses a flag value.
func (s *Size) Set(v string) error {
	n, err := ParseSize(v)
	if err != nil {
		return err
	}
	*s = n
	return nil
}

// MarshalText writes String.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses like ParseSize.
func (s *Size) UnmarshalText(b []byte) error { return s.Set(string(b)) }

// MarshalYAML writes String.
func (s Size) MarshalYAML() (any, error) { return s.String(), nil }

// UnmarshalYAML parses a scalar like ParseSize.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("%s is not a size (like 512MiB, 1GiB, 10MB, 100B)", describeNode(n))
	}
	return s.Set(n.Value)
}
