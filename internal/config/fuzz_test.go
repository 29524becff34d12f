package config

import (
	"reflect"
	"testing"
	"time"
)

// The seed corpus is in testdata/fuzz/<target>; f.Add adds a few more.

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"30s", "7d", "1d12h", "-1.5h", "2w", "0", "9223372036854775807ns"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		out := FormatDuration(d)
		back, err := ParseDuration(out)
		if err != nil || back != d {
			t.Fatalf("ParseDuration(%q) = %d; FormatDuration = %q; parsed back %d, %v", s, d, out, back, err)
		}
		if FormatDuration(back) != out {
			t.Fatalf("FormatDuration is not stable for %d", d)
		}
		// Without days and weeks, we read what time.ParseDuration reads.
		if gd, gerr := time.ParseDuration(s); gerr == nil && gd != d {
			t.Fatalf("ParseDuration(%q) = %d, time.ParseDuration says %d", s, d, gd)
		}
	})
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"1GiB", "512MiB", "10MB", "1.5KiB", "100", "0", "7EiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d, negative", s, n)
		}
		out := n.String()
		back, err := ParseSize(out)
		if err != nil || back != n {
			t.Fatalf("ParseSize(%q) = %d; String = %q; parsed back %d, %v", s, n, out, back, err)
		}
	})
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte("name: a\ncount: 3\ninterval: 7d\nspool: 1GiB\n"))
	f.Add([]byte("outputs:\n  - &o {address: a}\n  - <<: *o\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := defaultTestConfig()
		if err := decode(b, &c, noEnv); err != nil {
			return
		}
		c.Password = "" // Reference never writes a secret
		ref, err := Reference(&c)
		if err != nil {
			t.Fatalf("Reference of a decoded configuration: %v", err)
		}
		got := differentTestConfig()
		if err := decode(ref, &got, noEnv); err != nil {
			t.Fatalf("Decode(Reference):\n%v\nreference:\n%s", err, ref)
		}
		normalize(&got)
		normalize(&c)
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("Decode(Reference(c)) =\n%+v\nwant\n%+v\nreference:\n%s", got, c, ref)
		}
	})
}

// normalize makes the values that Reference cannot tell apart equal: nil
// and empty lists, and NaN.
func normalize(c *testConfig) {
	if len(c.Tags) == 0 {
		c.Tags = nil
	}
	if len(c.Outputs) == 0 {
		c.Outputs = nil
	}
	if c.Ratio != c.Ratio {
		c.Ratio = 0
	}
}
