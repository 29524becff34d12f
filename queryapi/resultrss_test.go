package queryapi

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/internal/auth"
)

// envRSSChild makes TestResultBudgetRSS run as the child that measures:
// the value is the result budget in bytes.
const envRSSChild = "AUDITPIPE_TEST_RSS_CHILD_BUDGET"

// rssQuery's answer is about 36 MB of JSONEachRow from 5 MB of result.
const rssQuery = "SELECT number AS n, toString(number) AS s, 'padpadpadpad' AS p FROM numbers(800000) FORMAT JSONEachRow"

// TestResultBudgetRSS measures the process (its peak resident set, VmHWM,
// in a child process of its own: Go heap and chDB's buffers both) while
// six readers at once ask for a 36 MB answer from a real chDB, on six
// sessions, with a result budget of one running statement (192 MiB: three
// times a max_output_bytes of 64 MiB): the peak grows by at most twice the
// budget, and every reader is answered, in turn. Measured (2 CPUs, load
// 11-17): +64 to +199 MB; with no budget, as on the old code (the six
// answers built at once), +363 to +689 MB.
func TestResultBudgetRSS(t *testing.T) {
	if v := os.Getenv(envRSSChild); v != "" {
		budget, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		rssChild(t, budget)
		return
	}
	if runtime.GOOS != "linux" {
		t.Skip("VmHWM is Linux's")
	}
	const maxOutput = 64 << 20
	cmd := exec.Command(os.Args[0], "-test.run=^TestResultBudgetRSS$", "-test.v")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", envRSSChild, resultHold(maxOutput, false)))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\n%s", err, out.String())
	}
	var base, peak int64
	for _, line := range strings.Split(out.String(), "\n") {
		if _, err := fmt.Sscanf(strings.TrimSpace(line), "rss-child: baseline %d kB peak %d kB", &base, &peak); err == nil {
			break
		}
	}
	if peak == 0 {
		t.Fatalf("child printed no measurement:\n%s", out.String())
	}
	t.Logf("VmHWM: baseline %d MB, peak %d MB (+%d MB) for six readers of a 36 MB answer, budget of one", base>>10, peak>>10, (peak-base)>>10)
	if grew, budget := (peak-base)<<10, resultHold(maxOutput, false); grew > 2*budget {
		t.Errorf("the process grew by %d MB, want at most %d MB (twice the result budget of one statement)", grew>>20, 2*budget>>20)
	}
}

// rssChild runs the six readers with a budget of budget bytes and prints
// the process's VmHWM before and after.
func rssChild(t *testing.T, budget int64) {
	eng := clickhousetest.OpenEmbedded(t, "")
	pool, err := eng.OpenQueryPool(6) // the readers' statements run at once
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	h := NewQueryHandler(pool, nil, QueryHandlerOptions{MaxOutputBytes: 64 << 20, ResultBudget: NewResultBudget(budget, nil),
		ResultWait: time.Minute, MaxQueriesPerReader: 10})
	serve := func() (int, int) {
		req := httptest.NewRequest("GET", "/?"+url.Values{"query": {rssQuery}}.Encode(), nil)
		req = req.WithContext(auth.WithIdentity(req.Context(), auth.Identity{Name: "reader", Role: auth.RoleAuditor}))
		rw := &liveWriter{h: http.Header{}, q: &bigQuerier{}, ran: new(bool)}
		h.ServeHTTP(rw, req)
		return rw.code, rw.n
	}
	if code, n := serve(); code != http.StatusOK || n < 32<<20 {
		t.Fatalf("warm-up: %d, %d bytes", code, n)
	}
	runtime.GC()
	base := vmHWM(t)
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, n := serve(); code != http.StatusOK {
				t.Errorf("reader %d: %d, %d bytes", i, code, n)
			}
		}()
	}
	wg.Wait()
	fmt.Printf("rss-child: baseline %d kB peak %d kB\n", base, vmHWM(t))
}

// vmHWM returns the process's peak resident set in kB.
func vmHWM(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}
