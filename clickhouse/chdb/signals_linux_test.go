//go:build linux && (amd64 || arm64)

package chdb

import (
	"runtime"
	"testing"

	"github.com/auditpipe/auditpipe/internal/testenv"
)

// TestGoKeepsFaultSignals: libchdb installs ClickHouse's fault handlers
// (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP) when it is loaded and
// connected. With them, a nil dereference anywhere in the process hung it
// (no panic, no recover, no crash report; measured: not ended after 90 s)
// instead of panicking: net/http's recovery of a handler's panic, a test's
// failure and the mutants of indexer.go that dereference nil all became
// hangs. Bug: Open left ClickHouse's handlers in place. After Open and a
// query, each fault signal still has Go's handler, and a nil dereference is
// a panic that recover sees.
func TestGoKeepsFaultSignals(t *testing.T) {
	lib, err := FindLibrary("")
	if err != nil {
		testenv.SkipOrFail(t, testenv.CHDB, "needs libchdb.so (run 'make deps'): %v", err)
	}
	before, err := faultHandlers()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(lib, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Query("SELECT count() FROM numbers(10)", "CSV"); err != nil {
		t.Fatal(err)
	}
	after, err := faultHandlers()
	if err != nil {
		t.Fatal(err)
	}
	for i, sig := range faultSignals() {
		if after[i].handler != before[i].handler {
			// Fail before the dereference below, which would hang.
			t.Fatalf("%v: handler %#x after Open and a query, Go's was %#x", sig, after[i].handler, before[i].handler)
		}
	}
	recovered := func() (r any) {
		defer func() { r = recover() }()
		var p *struct{ x int }
		_ = p.x
		return nil
	}()
	if _, ok := recovered.(runtime.Error); !ok {
		t.Fatalf("nil dereference after Open: recovered %v (%T), want a runtime error", recovered, recovered)
	}
}
