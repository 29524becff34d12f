package auditreport

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/auditpipe/auditpipe/internal/golden"
)

// checkGolden compares got with testdata/name, or rewrites it with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden.Check(t, filepath.Join("testdata", name), got, *update)
}

// TestGolden: the reports of the fixture trail, as text and JSON. req1 has
// two sessions on two hosts (one closed, one open), su and sudo (to root and
// to celladmin), a failed command, commands whose parent (the login shell)
// is not in the trail, a script with its children, a reused pid and
// keystrokes; req2 is one open session with a sudo.
func TestGolden(t *testing.T) {
	eng := loadFixture(t)
	tests := []struct {
		name string
		id   string
		keys bool
	}{
		{"req1", "req1", true},
		{"req2", "req2", false},
		{"unknown", "no-such-request", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := Build(context.Background(), eng, tt.id, Options{Keystrokes: tt.keys, Now: fixedClock})
			if err != nil {
				t.Fatal(err)
			}
			var text, js bytes.Buffer
			if err := WriteText(&text, rep); err != nil {
				t.Fatal(err)
			}
			if err := WriteJSON(&js, rep); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tt.name+".txt", text.Bytes())
			checkGolden(t, tt.name+".json", js.Bytes())
		})
	}
}
