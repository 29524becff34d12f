package pgtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
// directory and the server's pid, and then ends as $AUDITPIPE_PGTEST_CHILD
// says.
func TestClusterChild(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		t.Skip("helper process for TestClusterEndsWithTheBinary, run by it")
	}
	Start(t)
	dir := shared.c.dir
	pidFile, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _, _ := strings.Cut(string(pidFile), "\n")
	fmt.Printf("CLUSTER %s %s\n", dir, pid)
	switch mode {
	case "fail":
		t.Fatal("failing on purpose")
	case "panic":
		panic("panicking on purpose")
	case "block": // until killed, or -test.timeout
		time.Sleep(time.Hour)
	}
}

// TestClusterEndsWithTheBinary: however a test binary ends (its tests
// passed or failed, a panic, -timeout, SIGKILL), its server stops and the
// cluster's directory is removed.
func TestClusterEndsWithTheBinary(t *testing.T) {
	if _, err := findBin(); err != nil {
		Start(t) // skips, or fails under AUDITPIPE_REQUIRE
	}
	tests := []struct {
		name, mode string
		args       []string
		kill       bool
	}{
		{name: "pass", mode: "pass"},
		{name: "fail", mode: "fail"},
		{name: "panic", mode: "panic"},
		{name: "timeout", mode: "block", args: []string{"-test.timeout=3s"}},
		{name: "sigkill", mode: "block", kill: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestClusterChild$", "-test.count=1", "-test.v"}, tt.args...)...)
			cmd.Env = append(os.Environ(), childEnv+"="+tt.mode)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var dir string
			pid := 0
			sc := bufio.NewScanner(out)
			var lines []string
			for sc.Scan() {
				lines = append(lines, sc.Text())
				if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "CLUSTER" {
					dir = f[1]
					pid, _ = strconv.Atoi(f[2])
					if tt.kill {
						_ = cmd.Process.Signal(syscall.SIGKILL)
					}
				}
			}
			err = cmd.Wait()
			if dir == "" || pid == 0 {
				t.Fatalf("the child printed no cluster (exit %v):\n%s\n%s", err, strings.Join(lines, "\n"), stderr.String())
			}
			if (tt.mode == "pass") != (err == nil) {
				t.Fatalf("child exit %v, want success only for mode pass:\n%s", err, strings.Join(lines, "\n"))
			}
			ended := time.Now()
			deadline := ended.Add(30 * time.Second)
			for {
				_, statErr := os.Stat(dir)
				alive := syscall.Kill(pid, 0) == nil
				if errors.Is(statErr, os.ErrNotExist) && !alive {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("30 s after the binary ended: server %d alive %v, directory %s: %v", pid, alive, dir, statErr)
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Logf("server stopped and directory removed %s after the binary ended", time.Since(ended).Round(time.Millisecond))
		})
	}
}
