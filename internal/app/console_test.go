package app

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse/chdb"
	"github.com/auditpipe/auditpipe/internal/testenv"
)

// TestAllInOneConsole: the all-in-one serves the web console on its mux.
// Signed in with the admin token, the seeded request's page shows its
// process tree from the events the collector indexed, and its live trail
// (server-sent events) delivers the commands the test then appends to the
// audit log, as the pipeline indexes them.
func TestAllInOneConsole(t *testing.T) {
	if _, err := chdb.FindLibrary(""); err != nil {
		testenv.SkipOrFail(t, testenv.CHDB, "needs libchdb.so (run 'make deps'): %v", err)
	}
	dir := t.TempDir()
	log := filepath.Join(dir, "audit.log")
	cfg := sampleConfig(dir, log)
	cfg.Collector.Grants = map[string]string{"5f1c0e9d2a7b4c3e8d6f0a1b2c3d4e5f": "req2"}
	cfg.Collector.FlushInterval = 300 * time.Millisecond
	cfg.Collector.Host = "cell01.example.com"
	cfg.Policy.SeedFile = "../../deploy/sample/policy.yaml"
	first, second := sampleHalves(t)
	appendTo(t, log, first)
	r := start(t, cfg)
	const login = "830916abb78e4157b9e45b641e34fcf6"
	g, err := r.app.shared.policy.GetGrant(context.Background(), login)
	if err != nil {
		t.Fatalf("the seed's grant: %v", err)
	}
	trailSQL := "SELECT count() FROM audit_events WHERE req_auth_id = '" + g.RequestID + "' AND event IN ('command', 'keys')"
	until(t, "the first half's commands are indexed", 60*time.Second, func() bool { return count(t, r, trailSQL) != "0" })

	base := strings.TrimSuffix(r.url, "/")
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 60 * time.Second}
	body := consoleGet(t, c, base+"/console/signin")
	pre := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	if pre == nil {
		t.Fatalf("no CSRF field on the sign-in page:\n%s", body)
	}
	resp, err := c.PostForm(base+"/console/signin", url.Values{"csrf": {pre[1]}, "token": {r.token.Reveal()}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	page := consoleGet(t, c, base+"/console/requests/"+g.RequestID)
	for _, want := range []string{"PREAPPROVED", login, `id="tree"`, "su - celladmin [su: " + login + " → celladmin]"} {
		if !strings.Contains(page, want) {
			t.Errorf("the request page lacks %q", want)
		}
	}
	// The scheduler reaches the console as it reaches the API: the admin
	// has the Jobs pages and the compliance report.
	if home := consoleGet(t, c, base+"/console/"); !strings.Contains(home, `href="/console/jobs"`) || !strings.Contains(home, `href="/console/compliance"`) {
		t.Errorf("the admin's menu lacks Jobs or Compliance")
	}
	if jobs := consoleGet(t, c, base+"/console/jobs"); !strings.Contains(jobs, "Active jobs") {
		t.Errorf("the Jobs page:\n%s", jobs)
	}
	consoleGet(t, c, base+"/console/compliance")

	// The live trail: open the stream, then let the operator go on.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/console/requests/"+g.RequestID+"/trail", nil)
	stream := &http.Client{Jar: jar} // no timeout: the stream lasts
	resp, err = stream.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("the trail: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	ids := make(chan string)
	go func() {
		defer close(ids)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var e struct{ ID, Event, Text string }
				if json.Unmarshal([]byte(d), &e) == nil {
					select {
					case ids <- e.ID:
					case <-ctx.Done():
						return
					}
				}
			}
		}
	}()
	seen := map[string]bool{}
	before := count(t, r, trailSQL)
	appendTo(t, log, second)
	deadline := time.After(90 * time.Second)
	for {
		select {
		case id, ok := <-ids:
			if !ok {
				t.Fatal("the trail stream ended")
			}
			seen[id] = true
		case <-deadline:
			t.Fatalf("the trail delivered %d events (%s before the second half), the store has %s", len(seen), before, count(t, r, trailSQL))
		}
		if n := count(t, r, trailSQL); n != before && n == itoa(len(seen)) {
			break
		}
	}

	// A visitor still watching when the process stops: the stream ends
	// and the server shuts down without waiting on it (stop fails the
	// test when the all-in-one stops with an error).
	req2, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, base+"/console/requests/"+g.RequestID+"/trail", nil)
	resp2, err := stream.Do(req2)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	br := bufio.NewReader(resp2.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatalf("the second stream: %v", err)
	}
	r.stop(t)
	if _, err := io.Copy(io.Discard, br); err != nil {
		t.Logf("the second stream ended with %v", err)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func consoleGet(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", u, resp.Status, b)
	}
	return string(b)
}
