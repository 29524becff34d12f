package golden

import (
	"os"
	"path/filepath"
	"testing"
)

// recorder is a testing.TB that keeps what Check reports.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, format)
	r.TB.Logf(format, args...)
}

func TestCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.golden")
	Check(t, path, []byte("a\nb\n"), true)
	if b, err := os.ReadFile(path); err != nil || string(b) != "a\nb\n" {
		t.Fatalf("update wrote %q, %v", b, err)
	}
	tests := []struct {
		got  string
		fail bool
	}{
		{"a\nb\n", false},
		{"a\nc\n", true},
		{"a\nb\nextra\n", true},
		{"a\n", true},
	}
	for _, tc := range tests {
		r := &recorder{TB: t}
		Check(r, path, []byte(tc.got), false)
		if got := len(r.errors) > 0; got != tc.fail {
			t.Errorf("Check(%q) failed=%v, want %v", tc.got, got, tc.fail)
		}
	}
}

func TestFirstDifference(t *testing.T) {
	tests := []struct {
		got, want string
		line      int
		g, w      string
	}{
		{"a\nb", "a\nc", 2, "b", "c"},
		{"a\nb\nc", "a\nb", 3, "c", ""},
		{"a", "a\nb", 2, "", "b"},
		{"x", "y", 1, "x", "y"},
	}
	for _, tc := range tests {
		line, g, w := firstDifference([]byte(tc.got), []byte(tc.want))
		if line != tc.line || g != tc.g || w != tc.w {
			t.Errorf("firstDifference(%q, %q) = %d %q %q, want %d %q %q", tc.got, tc.want, line, g, w, tc.line, tc.g, tc.w)
		}
	}
}
