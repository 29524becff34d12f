package builder

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/auditpipe/auditpipe/collector/auditlog"
)

// Regression (issue 11, live session): the collector read /etc/passwd once
// at start, so the records of an operator whose user the host agent
// created afterwards resolved their auid to unknown(UID) and were all
// skipped as no_grant. Names now reads the file again when an id is
// missing and the file changed; the builder's id cache no longer keeps a
// miss.
func TestNamesReloadOnMiss(t *testing.T) {
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(passwd, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("root:x:0:0::/root:/bin/sh\n")
	n, err := LoadNames(passwd, "")
	if err != nil {
		t.Fatal(err)
	}
	b := New(Config{Names: n})
	resolve := func() string {
		return string(b.appendID(nil, auditlog.Field{Key: []byte("auid"), Value: []byte("1001")}, &recState{}, true))
	}
	for _, c := range []struct {
		name, file, want string
	}{
		{"unknown at first", "", "unknown(1001)"},
		{"created later", "root:x:0:0::/root:/bin/sh\nop:x:1001:1001::/home/op:/bin/sh\n", "op"},
		{"kept while the file is unchanged", "", "op"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.file != "" {
				write(c.file)
			}
			if got := resolve(); got != c.want {
				t.Errorf("auid 1001 resolves to %q, want %q", got, c.want)
			}
		})
	}
	if got, ok := n.User(0); !ok || got != "root" {
		t.Errorf("uid 0: %q %v", got, ok)
	}
	if _, ok := NewNames(nil, nil).User(5); ok {
		t.Error("NewNames(nil) resolved an id")
	}
}
