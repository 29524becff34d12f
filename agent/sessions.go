package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
func endSessions(ctx context.Context, proc string, uid int, grace time.Duration) (int, error) {
	signalled := map[int]bool{}
	deadline := time.Now().Add(grace)
	for {
		pids, err := sessionPids(proc, uid)
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

// sessionPids lists the live (not zombie) processes of uid's sessions.
func sessionPids(proc string, uid int) ([]int, error) {
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
		if ofSession(proc, pid, uid) {
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
