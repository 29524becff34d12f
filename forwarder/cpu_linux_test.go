//go:build linux

package forwarder

import (
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// bindProcess binds every thread of this process (and so the threads it
// starts later) to cpu, and restores the previous CPU set when tb ends.
// It reports false when the binding is not possible.
func bindProcess(tb testing.TB, cpu int) bool {
	tb.Helper()
	var prev, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &prev); err != nil {
		tb.Logf("not bound to CPU %d: %v", cpu, err)
		return false
	}
	set.Set(cpu)
	if err := setAllThreads(&set); err != nil {
		tb.Logf("not bound to CPU %d: %v", cpu, err)
		_ = setAllThreads(&prev)
		return false
	}
	tb.Cleanup(func() { _ = setAllThreads(&prev) })
	return true
}

func setAllThreads(set *unix.CPUSet) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, set); err != nil && err != unix.ESRCH {
			return err
		}
	}
	return nil
}
