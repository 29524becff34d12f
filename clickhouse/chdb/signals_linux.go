//go:build linux && (amd64 || arm64)

package chdb

import (
	"fmt"
	"syscall"
	"unsafe"
)

// kernelSigaction is the kernel's struct sigaction on amd64 and arm64
// (rt_sigaction(2)): handler, flags, restorer, then a 64-bit mask.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// faultSignals are the signals Go's runtime turns into panics or crash
// reports, and which libchdb takes over for ClickHouse's own fault handler
// when it is loaded and connected: with ClickHouse's handler in place, a nil
// dereference anywhere in the process hangs it (measured: a test that
// dereferences nil after one query did not end in 90 s) instead of
// panicking, so net/http's recovery, deferred cleanups and crash reports are
// all lost. Other signals (SIGUSR1/2 of ClickHouse's query profiler, the
// termination signals) are left as they are.
func faultSignals() []syscall.Signal {
	return []syscall.Signal{syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGILL, syscall.SIGABRT, syscall.SIGTRAP}
}

func sigaction(sig syscall.Signal, set, old *kernelSigaction) error {
	_, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig),
		uintptr(unsafe.Pointer(set)), uintptr(unsafe.Pointer(old)), unsafe.Sizeof(kernelSigaction{}.mask), 0, 0)
	if e != 0 {
		return fmt.Errorf("chdb: rt_sigaction(%v): %w", sig, e)
	}
	return nil
}

// faultHandlers returns the current action of each of faultSignals, in
// their order.
func faultHandlers() ([]kernelSigaction, error) {
	sigs := faultSignals()
	acts := make([]kernelSigaction, len(sigs))
	for i, s := range sigs {
		if err := sigaction(s, nil, &acts[i]); err != nil {
			return nil, err
		}
	}
	return acts, nil
}

// keepGoFaultHandlers runs f (a call into libchdb that may install signal
// handlers) and then puts back the handlers the fault signals had before.
func keepGoFaultHandlers(f func()) error {
	saved, err := faultHandlers()
	if err != nil {
		return err
	}
	f()
	for i, s := range faultSignals() {
		if err := sigaction(s, &saved[i], nil); err != nil {
			return err
		}
	}
	return nil
}
