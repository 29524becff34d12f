// Package pgtest gives tests a real PostgreSQL: Start returns the DSN of a
// fresh, empty database on a cluster that the test binary starts the first
// time a test asks for one and shares with every later test.
//
// The cluster is Debian's PostgreSQL (15 on the build machines; make deps
// installs it, see scripts/deps.d/50-postgres.sh), found through pg_config
// or in /usr/lib/postgresql/*/bin. It lives in a directory of its own under
// the temporary directory ($TMPDIR when all may write there and it is
// sticky, as /tmp is; else /tmp): initdb's data, the unix socket and the
// server's log. Tests run as root and PostgreSQL refuses to, so initdb and the server
// run as the user nobody (as the current user when that is not root). The
// server listens on 127.0.0.1 at a free port (proctest.FreePorts) with
// trust authentication for the superuser postgres, and fsync, synchronous
// commit and full-page writes off: a crash of the machine may lose it, which
// is all a test cluster can lose. The time zone is UTC.
//
// # Stopping
//
// Nothing needs to stop the cluster, and no TestMain is needed: it ends with
// the test binary, however that ends (tests passed or failed, a panic,
// -timeout, SIGKILL, even during initdb). initdb and the server run under a
// small /bin/sh supervisor that holds the read end of a pipe whose only
// write end is the test binary's (close-on-exec, so no other child inherits
// it). When the binary exits the kernel closes that end; the supervisor
// reads end-of-file, stops the server with an immediate shutdown (SIGQUIT),
// waits for it and removes the directory. Only a binary killed in the
// instant between creating the directory and starting the supervisor
// leaves something: the directory, with an empty log. The supervisor is in a process group of its own, so the ^C
// that interrupts `go test` reaches it only through the pipe. The shutdown
// takes a fraction of a second after the binary has exited; `go test` does
// not wait for it. No goroutine is started for the cluster, so goleak in a
// package's TestMain sees none.
//
// Each Start creates a database named after the test and drops it (WITH
// FORCE, ending its sessions) when the test ends.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sys/unix"

	"github.com/auditpipe/auditpipe/internal/proctest"
	"github.com/auditpipe/auditpipe/internal/testenv"
)

// Superuser is the cluster's superuser role, which every DSN names.
const Superuser = "postgres"

// startTimeout bounds initdb plus the server's start on a loaded machine.
const startTimeout = 60 * time.Second

// The cluster of this test binary, started by the first Start. Package
// state because the cluster outlives every single test: it is the binary's.
var shared struct {
	mu  sync.Mutex
	c   *cluster
	err error // the first start's failure, reported to every later test
	n   int   // databases created, for unique names
}

// cluster is a running server.
type cluster struct {
	dir     string // removed by the supervisor when the binary exits
	port    int
	version string
	// hold is the write end of the supervisor's pipe. It is never closed
	// while the binary runs; keeping it referenced here keeps its
	// finalizer from closing it.
	hold *os.File
}

// Start returns the DSN (pgx's URL form, sslmode=disable) of a new, empty
// database owned by the superuser, dropped when t ends. The first call in
// the test binary starts the cluster (about a second: initdb and the
// server's start), and logs how long that took. When PostgreSQL is not
// installed, t is skipped, or fails under AUDITPIPE_REQUIRE (testenv.Postgres).
// Safe for parallel tests.
func Start(t testing.TB) string {
	t.Helper()
	c := get(t)
	shared.mu.Lock()
	shared.n++
	name := dbName(shared.n, t.Name())
	shared.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.exec(ctx, "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return c.dsn(name)
}

// TerminateBackend ends the session of the backend with process id pid
// (pgconn's PID, or pg_stat_activity.pid) as pg_terminate_backend does, and
// waits until it has ended: to the client it is a connection the server
// closed. dsn is any DSN Start returned.
func TerminateBackend(t testing.TB, dsn string, pid uint32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("pgtest: connect to terminate backend %d: %v", pid, err)
	}
	defer conn.Close(context.Background())
	var ok bool
	// The second argument makes the call wait (in milliseconds) until the
	// backend is gone.
	if err := conn.QueryRow(ctx, "SELECT pg_terminate_backend($1, 20000)", int32(pid)).Scan(&ok); err != nil {
		t.Fatalf("pgtest: terminate backend %d: %v", pid, err)
	}
	if !ok {
		t.Fatalf("pgtest: backend %d was not terminated (no such backend, or it did not end within 20 s)", pid)
	}
}

// get returns the binary's cluster, starting it on first use.
func get(t testing.TB) *cluster {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.c != nil {
		return shared.c
	}
	if shared.err != nil {
		t.Fatalf("pgtest: the cluster failed to start earlier in this test binary: %v", shared.err)
	}
	bin, err := findBin()
	if err != nil {
		testenv.SkipOrFail(t, testenv.Postgres, "pgtest: %v; run `make deps` (Debian package postgresql-15)", err)
	}
	began := time.Now()
	// A port chosen free can be taken before the server binds it: try
	// again on a new one.
	for attempt := 1; ; attempt++ {
		var c *cluster
		c, err = startCluster(t, bin)
		if err == nil {
			shared.c = c
			t.Logf("pgtest: PostgreSQL %s started in %s on 127.0.0.1:%d (%s)", c.version, time.Since(began).Round(time.Millisecond), c.port, c.dir)
			return c
		}
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			break
		}
	}
	shared.err = err
	t.Fatalf("pgtest: %v", err)
	return nil
}

// errPortTaken is wrapped by startCluster's error when the server could
// not bind its port.
var errPortTaken = errors.New("the port was taken")

// findBin returns the directory of initdb and postgres: pg_config's
// BINDIR, else the newest /usr/lib/postgresql/N/bin, else the PATH's.
func findBin() (string, error) {
	has := func(dir string) bool {
		for _, f := range []string{"initdb", "postgres"} {
			if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); has(dir) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return majorOf(b) - majorOf(a) })
	for _, dir := range dirs {
		if has(dir) {
			return dir, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil && has(filepath.Dir(p)) {
		return filepath.Dir(p), nil
	}
	return "", errors.New("PostgreSQL's initdb and postgres not found (pg_config --bindir, /usr/lib/postgresql/*/bin, PATH)")
}

// majorOf is N of /usr/lib/postgresql/N/bin (0 when not a number).
func majorOf(bindir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(bindir)))
	return n
}

// supervisor makes the cluster and runs the server ($1 the binaries'
// directory, $2 the cluster's directory, the rest the server's arguments)
// until the test binary's end of the pipe on fd 3 closes, then stops it
// (SIGQUIT: immediate shutdown) and removes the directory. initdb runs
// here, not in the test binary, so that a binary killed during initdb
// leaves nothing either: the watcher, started after it, then reads
// end-of-file at once. The watcher repeats SIGQUIT until the server is
// gone: a background job starts with SIGQUIT ignored, and a signal sent
// before the server has set its handlers is lost. When initdb or the server exits by itself, the
// reason goes to $2/exited, which Start waits for beside readiness, and
// the directory stays, with the log, until the binary exits. Background
// lists read /dev/null unless redirected, hence <&3.
const supervisor = `bin=$1 dir=$2
shift 2
if "$bin/initdb" -D "$dir/data" -U ` + Superuser + ` --auth=trust --encoding=UTF8 --locale=C --no-sync --no-instructions 3<&-; then
	"$bin/postgres" -D "$dir/data" "$@" 3<&- &
	pid=$!
	{ read -r _ || :; while kill -QUIT "$pid" 2>/dev/null; do sleep 0.1; done; } <&3 &
	exec 3<&-
	wait "$pid"
	echo "the server exited with status $?" >"$dir/exited"
	wait
else
	echo "initdb exited with status $?" >"$dir/exited"
	read -r _ <&3 || :
fi
rm -rf "$dir"
`

// startCluster starts the supervisor in a new directory with a free port:
// it runs initdb and the server. It waits until the server accepts
// connections.
func startCluster(t testing.TB, bin string) (*cluster, error) {
	t.Helper()
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	vout, err := exec.Command(filepath.Join(bin, "postgres"), "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("postgres --version: %w", err)
	}
	version := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(vout)), "postgres (PostgreSQL)"))
	port := proctest.FreePorts(t, 1)[0]

	// From here to the supervisor's start, an instant in which a killed
	// binary leaves an empty directory behind; after it, nothing.
	dir, err := os.MkdirTemp(baseDir(cred), "auditpipe-pg-")
	if err != nil {
		return nil, fmt.Errorf("cluster directory: %w", err)
	}
	removeDir := true // until the supervisor owns it
	defer func() {
		if removeDir {
			os.RemoveAll(dir)
		}
	}()
	logPath := filepath.Join(dir, "postgres.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("server log: %w", err)
	}
	defer logf.Close()
	if cred != nil {
		if err := errors.Join(os.Chown(dir, int(cred.Uid), int(cred.Gid)), logf.Chown(int(cred.Uid), int(cred.Gid))); err != nil {
			return nil, fmt.Errorf("cluster directory: %w", err)
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("supervisor pipe: %w", err)
	}
	defer r.Close()
	args := []string{"-c", supervisor, "pgtest-supervisor", bin, dir,
		"-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200", "-c", "shared_buffers=32MB",
		"-c", "timezone=UTC", "-c", "log_timezone=UTC",
		"-c", "logging_collector=off", "-c", "log_min_messages=warning",
	}
	cmd := exec.Command("/bin/sh", args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C", "TZ=UTC"}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{r} // fd 3
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("start the supervisor: %w", err)
	}
	removeDir = false
	c := &cluster{dir: dir, port: port, version: version, hold: w}
	if err := c.waitReady(cmd.Process.Pid); err != nil {
		log := proctest.Tail(logPath)
		// The supervisor stops the server, if it runs, and removes
		// the directory; reap it.
		w.Close()
		_ = cmd.Wait()
		if strings.Contains(string(log), "could not bind") || strings.Contains(string(log), "Address already in use") {
			err = fmt.Errorf("%w: %w", errPortTaken, err)
		}
		return nil, fmt.Errorf("PostgreSQL on port %d (as %s): %w\nlog (last 4 KiB):\n%s", port, who(cred), err, log)
	}
	return c, nil
}

// waitReady waits until the server answers a query, or exits, or the
// supervisor (process sup) does.
func (c *cluster) waitReady(sup int) error {
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := c.exec(ctx, "SELECT 1")
		cancel()
		if err == nil {
			return nil
		}
		if st, rerr := os.ReadFile(filepath.Join(c.dir, "exited")); rerr == nil {
			return fmt.Errorf("at start, %s", strings.TrimSpace(string(st)))
		}
		// WNOWAIT: only look; cmd.Wait reaps it.
		var info unix.Siginfo
		if werr := unix.Waitid(unix.P_PID, sup, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil); werr == nil && info.Signo != 0 {
			return errors.New("the supervisor shell exited at start")
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", startTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// exec runs sql in the database postgres as the superuser.
func (c *cluster) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, c.dsn("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

func (c *cluster) dsn(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", Superuser, c.port, db)
}

// baseDir is where the cluster's directory goes: the temporary directory
// ($TMPDIR, else /tmp). When the cluster runs as nobody, its supervisor must
// be able to remove its directory from there, so a temporary directory
// that is not writable by all and sticky, as /tmp is, gives way to /tmp.
func baseDir(cred *syscall.Credential) string {
	tmp := os.TempDir()
	if cred == nil {
		return tmp
	}
	if fi, err := os.Stat(tmp); err == nil && fi.Mode()&(os.ModeSticky|0o777) == os.ModeSticky|0o777 {
		return tmp
	}
	return "/tmp"
}

// runAs is the credential of the user the server runs as: nobody when the
// tests run as root (PostgreSQL refuses root), nil (this process's user)
// otherwise.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL needs an unprivileged user: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("user nobody: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

func who(cred *syscall.Credential) string {
	if cred == nil {
		return "the current user"
	}
	return "nobody"
}

// dbName is a database name of at most 63 bytes, PostgreSQL's limit: n
// then the test's name in lower-case letters, digits and underscores.
func dbName(n int, test string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "t%d_", n)
	for _, r := range strings.ToLower(test) {
		if b.Len() >= 63 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}
