package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/clickhouse/chdb"
	"github.com/auditpipe/auditpipe/internal/testenv"
)

// TestIndexFromAPipe: `auditpipe parse … | auditpipe index --embedded DIR -`
// as the README shows it. Bug: chDB reads descriptor 0 as the data of every
// INSERT (chdb-io/chdb-core#239), so with events waiting on stdin the first
// migration failed with "Processing async inserts with both inlined and
// external data"; and a command that does not read stdin (index FILE)
// failed the same way when anything was piped to it.
func TestIndexFromAPipe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if _, err := chdb.FindLibrary(""); err != nil {
		testenv.SkipOrFail(t, testenv.CHDB, "needs libchdb.so (run 'make deps'): %v", err)
	}
	bin := buildBinary(t)
	parse := exec.Command(bin, "parse", "--layer", "CPS", "--host", "h",
		"--passwd", "../../collector/testdata/seed/passwd", "--group", "../../collector/testdata/seed/group",
		"--grant", "USERNAME=1", "../../collector/testdata/seed/example-1-4-command.log")
	events, err := parse.Output()
	if err != nil || len(events) == 0 {
		t.Fatalf("parse: %v (%d bytes)", err, len(events))
	}
	dir := filepath.Join(t.TempDir(), "chdb")
	index := exec.Command(bin, "index", "--embedded", dir, "-")
	index.Stdin = strings.NewReader(string(events))
	if out, err := index.CombinedOutput(); err != nil || !strings.Contains(string(out), "indexed 1 events") {
		t.Fatalf("index from a pipe: %v\n%s", err, out)
	}
	// Something on stdin of a command that reads a file: ignored, and
	// never inserted.
	query := exec.Command(bin, "query", "--embedded", dir, "--output", "csv", "SELECT count() FROM audit_events")
	query.Stdin = strings.NewReader("(9999)\n")
	out, err := query.CombinedOutput()
	if err != nil || strings.TrimSpace(lastLine(string(out))) != "1" {
		t.Fatalf("query with data on stdin: %v\n%s", err, out)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
