package pgtest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them: the
// cluster must not need one.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func tables(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestStartGivesFreshDatabases: each Start is a database of its own on
// one cluster, empty, with UTC as its time zone; what one test creates the
// other does not see; the database is gone after the test.
func TestStartGivesFreshDatabases(t *testing.T) {
	var dsns []string
	for _, name := range []string{"first", "second"} {
		t.Run(name, func(t *testing.T) {
			dsn := Start(t)
			dsns = append(dsns, dsn)
			conn := connect(t, dsn)
			if got := tables(t, conn); len(got) != 0 {
				t.Fatalf("a fresh database has tables %v", got)
			}
			var tz string
			if err := conn.QueryRow(context.Background(), "SHOW timezone").Scan(&tz); err != nil || tz != "UTC" {
				t.Fatalf("timezone %q, %v; want UTC", tz, err)
			}
			if _, err := conn.Exec(context.Background(), "CREATE TABLE t_"+name+" (id int PRIMARY KEY)"); err != nil {
				t.Fatal(err)
			}
			if got := tables(t, conn); len(got) != 1 || got[0] != "t_"+name {
				t.Fatalf("tables %v, want [t_%s]", got, name)
			}
		})
	}
	if len(dsns) != 2 || dsns[0] == dsns[1] {
		t.Fatalf("DSNs %v: want two different databases", dsns)
	}
	a, _ := pgx.ParseConfig(dsns[0])
	b, _ := pgx.ParseConfig(dsns[1])
	if a.Host != b.Host || a.Port != b.Port {
		t.Fatalf("two clusters (%s:%d, %s:%d), want one per test binary", a.Host, a.Port, b.Host, b.Port)
	}
	// The subtests' cleanups dropped their databases.
	admin := connect(t, Start(t))
	var n int
	if err := admin.QueryRow(context.Background(), "SELECT count(*) FROM pg_database WHERE datname = $1 OR datname = $2", a.Database, b.Database).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d of the subtests' databases left after them", n)
	}
}

// TestTerminateBackend: the terminated session's next query fails, and a
// new connection works.
func TestTerminateBackend(t *testing.T) {
	dsn := Start(t)
	conn := connect(t, dsn)
	TerminateBackend(t, dsn, conn.PgConn().PID())
	if _, err := conn.Exec(context.Background(), "SELECT 1"); err == nil {
		t.Fatal("a query on the terminated session succeeded")
	}
	if !conn.IsClosed() {
		t.Fatal("the terminated connection is not closed")
	}
	if _, err := connect(t, dsn).Exec(context.Background(), "SELECT 1"); err != nil {
		t.Fatalf("a new connection after the termination: %v", err)
	}
}

func TestDBName(t *testing.T) {
	tests := []struct {
		n    int
		test string
		want string
	}{
		{1, "TestX", "t1_testx"},
		{12, "TestA/sub-case_2", "t12_testa_sub_case_2"},
		{3, strings.Repeat("Ab", 40), "t3_" + strings.Repeat("ab", 30)},
	}
	for _, tt := range tests {
		if got := dbName(tt.n, tt.test); got != tt.want || len(got) > 63 {
			t.Errorf("dbName(%d, %q) = %q, want %q (at most 63 bytes)", tt.n, tt.test, got, tt.want)
		}
	}
}

const childEnv = "AUDITPIPE_PGTEST_CHILD"

// TestClusterChild is not a test: it is the test binary that
// TestClusterEndsWithTheBinary starts, which starts a cluster, prints its
// directory, and then ends as $AUDITPIPE_PGTEST_CHILD says.
func TestClusterChild(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		t.Skip("helper process for TestClusterEndsWithTheBinary, run by it")
	}
	Start(t)
	fmt.Printf("CLUSTER %s\n", shared.c.dir)
	switch mode {
	case "fail":
		t.Fatal("failing on purpose")
	case "panic":
		panic("panicking on purpose")
	case "alarm":
		// What -test.timeout does: a panic in a goroutine other than
		// the test's, which runs no cleanup.
		go panic("a test timed out, as the testing package's alarm says")
		time.Sleep(time.Hour)
	case "block": // until killed
		time.Sleep(time.Hour)
	}
}

// TestClusterEndsWithTheBinary: however a test binary ends (its tests
// passed or failed, a panic, -timeout, SIGKILL after the start or during
// initdb), no process of its cluster is left and the cluster's directory
// is removed.
func TestClusterEndsWithTheBinary(t *testing.T) {
	if _, err := findBin(); err != nil {
		Start(t) // skips, or fails under AUDITPIPE_REQUIRE
	}
	tests := []struct {
		name, mode string
		kill       string // "": none; "ready": after it printed its cluster; "initdb": while initdb runs
	}{
		{name: "pass", mode: "pass"},
		{name: "fail", mode: "fail"},
		{name: "panic", mode: "panic"},
		{name: "timeout", mode: "alarm"},
		{name: "sigkill", mode: "block", kill: "ready"},
		{name: "sigkill during initdb", mode: "block", kill: "initdb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// A temporary directory of the child's own, like /tmp
			// (all may write, sticky): its cluster goes there, so
			// that what is left of it can be found.
			tmp, err := os.MkdirTemp("", "pgtest-child-")
			if err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(tmp)
			if err := os.Chmod(tmp, os.ModeSticky|0o777); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestClusterChild$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), childEnv+"="+tt.mode, "TMPDIR="+tmp)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if tt.kill == "initdb" {
				waitInitdb(t, tmp)
				_ = cmd.Process.Signal(syscall.SIGKILL)
			}
			var lines []string
			printed := false
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines = append(lines, sc.Text())
				if strings.HasPrefix(sc.Text(), "CLUSTER ") {
					printed = true
					if tt.kill == "ready" {
						_ = cmd.Process.Signal(syscall.SIGKILL)
					}
				}
			}
			err = cmd.Wait()
			if !printed && tt.kill != "initdb" {
				t.Fatalf("the child printed no cluster (exit %v):\n%s\n%s", err, strings.Join(lines, "\n"), stderr.String())
			}
			if (tt.mode == "pass") != (err == nil) {
				t.Fatalf("child exit %v, want success only for mode pass:\n%s", err, strings.Join(lines, "\n"))
			}
			ended := time.Now()
			deadline := ended.Add(30 * time.Second)
			for {
				left, _ := os.ReadDir(tmp)
				procs := processesMentioning(tmp)
				if len(left) == 0 && len(procs) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("30 s after the binary ended: left in %s: %v; processes: %v", tmp, left, procs)
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Logf("every process of the cluster gone and its directory removed %s after the binary ended", time.Since(ended).Round(time.Millisecond))
		})
	}
}

// waitInitdb waits until initdb runs in a cluster directory under tmp.
func waitInitdb(t *testing.T, tmp string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m, _ := filepath.Glob(filepath.Join(tmp, "auditpipe-pg-*", "data")); len(m) > 0 {
			for _, p := range processesMentioning(tmp) {
				if strings.Contains(p, "/initdb -D ") { // initdb itself, not the supervisor
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("initdb did not start within 60 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// processesMentioning lists the command lines (pid: args) of the processes
// whose arguments contain s.
func processesMentioning(s string) []string {
	var out []string
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range dirs {
		b, err := os.ReadFile(f)
		if err != nil || !strings.Contains(string(b), s) {
			continue
		}
		pid := filepath.Base(filepath.Dir(f))
		out = append(out, pid+": "+strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " "))
	}
	return out
}
