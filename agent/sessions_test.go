package agent

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/testenv"
)

// TestSessionPidsSparesPackageRuns: of two processes with a login's
// loginuid, each in a process group of its own, the one whose group is a
// package run's (a governed run's apt-get, started under the login's
// loginuid so its records carry the request) is spared; the other, an
// operator's, is found. Ending a grant does not kill dpkg halfway.
func TestSessionPidsSparesPackageRuns(t *testing.T) {
	testenv.RequireRoot(t, "sets the loginuid of processes")
	if _, err := os.Stat("/proc/self/loginuid"); err != nil {
		testenv.SkipOrFail(t, testenv.KernelAudit, "no loginuid: %v", err)
	}
	const uid = 4000123 // no such user: nothing else has this loginuid
	start := func() *exec.Cmd {
		c := exec.Command("/bin/sh", "-c", `echo "$0" > /proc/self/loginuid && exec sleep 60`, strconv.Itoa(uid))
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
		deadline := time.Now().Add(10 * time.Second)
		for !ofSession("/proc", c.Process.Pid, uid) {
			if time.Now().After(deadline) {
				t.Fatalf("process %d never had loginuid %d", c.Process.Pid, uid)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return c
	}
	run, op := start(), start()
	var runs runGroups
	ended := runs.add(run.Process.Pid) // as pkgmgr's OnStart does
	pids, err := sessionPids("/proc", uid, runs.has)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(pids, run.Process.Pid) || !slices.Contains(pids, op.Process.Pid) {
		t.Errorf("during the run: %v, want %d and not %d", pids, op.Process.Pid, run.Process.Pid)
	}
	ended()
	if pids, _ = sessionPids("/proc", uid, runs.has); !slices.Contains(pids, run.Process.Pid) {
		t.Errorf("after the run ended: %v lacks %d", pids, run.Process.Pid)
	}
	if g := processGroup("/proc", run.Process.Pid); g != run.Process.Pid {
		t.Errorf("process group of %d read as %d", run.Process.Pid, g)
	}
}
