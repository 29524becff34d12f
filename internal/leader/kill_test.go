package leader

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/pgtest"
	"github.com/auditpipe/auditpipe/internal/proctest"
)

const childEnv = "AUDITPIPE_LEADER_CHILD"

// childConfig is what TestElectorChild gets from its parent.
type childConfig struct {
	DSN  string
	Name string
}

// TestElectorChild is not a test: it is the process that
// TestKilledLeaderReplaced starts and kills. It runs only when the parent
// sets AUDITPIPE_LEADER_CHILD. It campaigns with the default
// configuration and prints "LEADER <name> <unix ns>" when it leads.
func TestElectorChild(t *testing.T) {
	raw := os.Getenv(childEnv)
	if raw == "" {
		t.Skip("helper process for TestKilledLeaderReplaced, run by it")
	}
	var cfg childConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatal(err)
	}
	e, err := NewPostgres(cfg.DSN, KeyFor("processes"), DefaultConfig(), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("CAMPAIGN %s\n", cfg.Name)
	// Runs until the parent kills it.
	err = e.Run(context.Background(), func(ctx context.Context) error {
		fmt.Printf("LEADER %s %d\n", cfg.Name, time.Now().UnixNano())
		<-ctx.Done()
		fmt.Printf("LOST %s\n", cfg.Name)
		return ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// child is a started TestElectorChild.
type child struct {
	name  string
	cmd   *exec.Cmd
	lines chan string // its stdout, closed at its end
}

func startChild(t *testing.T, dsn, name string) *child {
	t.Helper()
	raw, err := json.Marshal(childConfig{DSN: dsn, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestElectorChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
	cmd.Stderr = proctest.LogFile(t, filepath.Join(t.TempDir(), name+".log"), "elector "+name)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{name: name, cmd: cmd, lines: make(chan string, 64)}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	t.Cleanup(c.kill)
	return c
}

// kill ends the child with SIGKILL, as a crash would, and waits for it.
func (c *child) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	for range c.lines { // until its stdout closes
	}
	_ = c.cmd.Wait()
}

// expect waits for the child's next line starting with prefix, failing
// on any other line that starts with one of refuse.
func (c *child) expect(t *testing.T, prefix string, timeout time.Duration, refuse ...string) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				t.Fatalf("elector %s ended before printing %s", c.name, prefix)
			}
			for _, r := range refuse {
				if strings.HasPrefix(l, r) {
					t.Fatalf("elector %s printed %q while waiting for %s", c.name, l, prefix)
				}
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-deadline:
			t.Fatalf("elector %s did not print %s within %s", c.name, prefix, timeout)
		}
	}
}

// quiet fails if the child prints a line starting with prefix within d.
func (c *child) quiet(t *testing.T, prefix string, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case l, ok := <-c.lines:
			if ok && strings.HasPrefix(l, prefix) {
				t.Fatalf("elector %s printed %q", c.name, l)
			}
			if !ok {
				t.Fatalf("elector %s ended", c.name)
			}
		case <-deadline:
			return
		}
	}
}

// TestKilledLeaderReplaced: two processes campaign on one database with
// the default configuration; only one leads; the leader is killed with
// SIGKILL (its session ends with the process, and the lock with it) and
// the other leads within the bound, three times over, the killed one
// coming back as a follower each time. The takeover takes up to one poll
// interval (2 s by default) plus the moment the server takes to end the
// killed session; the bound asserted is generous (30 s), the measured
// times are logged.
func TestKilledLeaderReplaced(t *testing.T) {
	dsn := pgtest.Start(t)
	admin := connect(t, dsn)
	poll := DefaultConfig().PollInterval
	sessions := func() int {
		var n int
		if err := admin.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'auditpipe policy leader' AND datname = current_database()").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	leader := startChild(t, dsn, "p0")
	leader.expect(t, "LEADER", 60*time.Second)
	var took []time.Duration
	for round := 1; round <= 3; round++ {
		follower := startChild(t, dsn, "p"+strconv.Itoa(round))
		follower.expect(t, "CAMPAIGN", 60*time.Second, "LEADER")
		// The follower's session exists, so it has tried the lock (it
		// tries right after connecting); then one more poll or up to
		// two without it leading, the kill falling anywhere between
		// two of its attempts.
		eventually(t, 60*time.Second, "two electors' sessions", func() bool { return sessions() == 2 })
		follower.quiet(t, "LEADER", poll+rand.N(poll))
		held := holders(t, admin)
		if len(held) != 1 {
			t.Fatalf("lock holders %v with two electors, want one", held)
		}

		killed := time.Now()
		leader.kill()
		l := follower.expect(t, "LEADER", 30*time.Second)
		ns, err := strconv.ParseInt(strings.Fields(l)[2], 10, 64)
		if err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		d := time.Unix(0, ns).Sub(killed)
		took = append(took, d)
		if now := holders(t, admin); len(now) != 1 || now[0] == held[0] {
			t.Fatalf("lock holders %v after the takeover, the killed leader's backend was %d", now, held[0])
		}
		leader = follower
	}
	slices.Sort(took)
	t.Logf("SIGKILLed leader replaced after %v (min %v, median %v, max %v; poll interval %v)", took, took[0], took[len(took)/2], took[len(took)-1], poll)
}
