//go:build !linux

package forwarder

import "testing"

// bindProcess binds nothing here.
func bindProcess(testing.TB, int) bool { return false }
