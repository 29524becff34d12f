// Package golden compares what a test produced with a golden file under
// testdata/, or rewrites the file when the test runs with its -update
// flag. Each test package keeps its own flag and passes its value.
package golden

import (
	"bytes"
	"os"
	"testing"
)

// Check compares got with the file at path. With update it writes got to
// path instead. A difference names the first line that differs and shows
// what the test produced.
func Check(t testing.TB, path string, got []byte, update bool) {
	t.Helper()
	if update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if bytes.Equal(got, want) {
		return
	}
	line, g, w := firstDifference(got, want)
	t.Errorf("%s differs at line %d (go test -update rewrites it):\n got %q\nwant %q\n--- got, whole:\n%s", path, line, g, w, got)
}

// firstDifference is the first line (from 1) where got and want differ,
// with that line of each ("" past the end).
func firstDifference(got, want []byte) (int, string, string) {
	gl, wl := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
	for i := 0; ; i++ {
		var g, w []byte
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if !bytes.Equal(g, w) || i >= len(gl) || i >= len(wl) {
			return i + 1, string(g), string(w)
		}
	}
}
