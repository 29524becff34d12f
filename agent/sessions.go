package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// endSessions ends every process of uid's sessions: those whose loginuid
// is uid (so su and sudo children, running as someone else, are
// included) and those running as uid. Each is signalled through a pidfd
// opened before its loginuid and uid are read again, so a pid reused in
// between is never signalled. First SIGHUP and SIGTERM (a shell hangs
// up, sshd's session ends), after grace SIGKILL, repeated until none is
// left (a process forked meanwhile is found by the next scan). Zombies
// are dead already and not waited for. It gives up when ctx ends.
//
// Processes of a group spare reports (the agent's own package runs,
// which carry the grant login's loginuid so that their records are tied
// to the request) are left alone: ending a grant must not kill dpkg
// halfway through; the run's deadline and cancel bound it. spare may be
// nil.
func endSessions(ctx context.Context, proc string, uid int, grace time.Duration, spare func(pgid int) bool) (int, error) {
	signalled := map[int]bool{}
	deadline := time.Now().Add(grace)
	for {
		pids, err := sessionPids(proc, uid, spare)
		if err != nil {
			return len(signalled), err
		}
		if len(pids) == 0 {
			return len(signalled), nil
		}
		kill := time.Now().After(deadline)
		for _, pid := range pids {
			sigs := []syscall.Signal{syscall.SIGHUP, syscall.SIGTERM}
			switch {
			case kill:
				sigs = []syscall.Signal{syscall.SIGKILL}
			case signalled[pid]:
				continue // waiting for it to end within grace
			}
			if signalPid(proc, pid, uid, sigs) {
				signalled[pid] = true
			}
		}
		select {
		case <-ctx.Done():
			return len(signalled), fmt.Errorf("sessions of uid %d: %w", uid, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// sessionPids lists the live (not zombie) processes of uid's sessions,
// but those of a process group spare reports.
func sessionPids(proc string, uid int, spare func(pgid int) bool) ([]int, error) {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil, fmt.Errorf("sessions: %w", err)
	}
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if ofSession(proc, pid, uid) && (spare == nil || !spare(processGroup(proc, pid))) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// ofSession reports whether pid is a live process with loginuid or real
// uid uid.
func ofSession(proc string, pid, uid int) bool {
	dir := filepath.Join(proc, strconv.Itoa(pid))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return false
	}
	// The state follows the command's closing parenthesis.
	if i := strings.LastIndexByte(string(stat), ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X' {
		return false
	}
	if b, err := os.ReadFile(filepath.Join(dir, "loginuid")); err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && v == uid {
			return true
		}
	}
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(rest)
			return len(f) > 0 && f[0] == strconv.Itoa(uid)
		}
	}
	return false
}

// signalPid sends sigs to pid through a pidfd, after checking again,
// with the pidfd held, that pid is of uid's sessions.
func signalPid(proc string, pid, uid int, sigs []syscall.Signal) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return false // gone
	}
	defer unix.Close(fd)
	if !ofSession(proc, pid, uid) {
		return false
	}
	sent := false
	for _, s := range sigs {
		if err := unix.PidfdSendSignal(fd, s, nil, 0); err == nil {
			sent = true
		} else if !errors.Is(err, unix.ESRCH) {
			return sent
		}
	}
	return sent
}

// processGroup is pid's process group from /proc/PID/stat (the third
// field after the command), -1 when unknown.
func processGroup(proc string, pid int) int {
	stat, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "stat"))
	if err != nil {
		return -1
	}
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 3 {
		return -1
	}
	g, err := strconv.Atoi(f[2])
	if err != nil {
		return -1
	}
	return g
}

// runGroups are the process groups of the agent's package runs under
// way, which endSessions spares.
type runGroups struct {
	mu sync.Mutex
	m  map[int]int
}

// add records pgid until the returned func is called.
func (g *runGroups) add(pgid int) (ended func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m == nil {
		g.m = map[int]int{}
	}
	g.m[pgid]++
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.m[pgid]--; g.m[pgid] <= 0 {
			delete(g.m, pgid)
		}
	}
}

// has reports whether pgid is a package run's.
func (g *runGroups) has(pgid int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.m[pgid] > 0
}
