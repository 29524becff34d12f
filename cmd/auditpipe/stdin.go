package main

import (
	"fmt"
	"os"
	"syscall"
)

// detachStdin hands the process's standard input to the commands on a
// descriptor of its own and points descriptor 0 at /dev/null. chDB, the
// embedded store, reads descriptor 0 as the data of every INSERT
// (chdb-io/chdb-core#239): with data waiting on stdin (`auditpipe parse …
// | auditpipe index --embedded DIR -`, or a service started with a pipe)
// every INSERT failed ("Processing async inserts with both inlined and
// external data"), and with async inserts off chDB would insert the
// caller's stdin as rows nobody wrote.
func detachStdin() (*os.File, error) {
	fd, err := syscall.Dup(0)
	if err != nil {
		if err == syscall.EBADF {
			return os.Stdin, nil // no stdin at all: nothing for chDB to read
		}
		return nil, fmt.Errorf("stdin: %w", err)
	}
	syscall.CloseOnExec(fd)
	null, err := os.Open(os.DevNull)
	if err != nil {
		return nil, fmt.Errorf("stdin: %w", err)
	}
	defer null.Close()
	if err := syscall.Dup3(int(null.Fd()), 0, 0); err != nil {
		return nil, fmt.Errorf("stdin: %w", err)
	}
	return os.NewFile(uintptr(fd), "/dev/stdin"), nil
}
