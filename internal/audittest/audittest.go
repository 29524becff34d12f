// Package audittest lets tests change the kernel's audit state (the
// enabled flag and the rules), which is global to the machine: Take
// serializes every such test on the machine with a file lock and restores
// the state found when the test ends.
package audittest

import (
	"bytes"
	"os"
	"syscall"
	"testing"

	libaudit "github.com/elastic/go-libaudit/v2"
	"github.com/elastic/go-libaudit/v2/rule"

	"github.com/auditpipe/auditpipe/internal/testenv"
)

// LockPath is the file every test that changes the kernel's audit state
// locks (flock, exclusive) for as long as it runs, in every process and
// every worktree on the machine.
const LockPath = "/run/auditpipe-kernel-audit.lock"

// Kernel is the kernel's audit state, held by one test.
type Kernel struct {
	client *libaudit.AuditClient
	added  [][]byte
}

// Take waits for the machine-wide lock, records the audit enabled flag
// and rules, and returns a handle to change them; when the test ends the
// rules the test added are deleted, the enabled flag is set back, the
// rules are checked to be the ones found, and the lock is released. It
// skips or fails (testenv.SkipOrFail) when the process is not root or the
// kernel's audit netlink socket is unavailable or locked (immutable).
func Take(t testing.TB) *Kernel {
	t.Helper()
	testenv.RequireRoot(t, "changing the kernel's audit state needs CAP_AUDIT_CONTROL")
	lock, err := os.OpenFile(LockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatalf("audittest: %v", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		lock.Close()
		t.Fatalf("audittest: lock %s: %v", LockPath, err)
	}
	// Registered first, so it runs last: after the state was restored.
	t.Cleanup(func() { lock.Close() })

	client, err := libaudit.NewAuditClient(nil)
	if err != nil {
		testenv.SkipOrFail(t, testenv.KernelAudit, "audit netlink socket: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	st, err := client.GetStatus()
	if err != nil {
		testenv.SkipOrFail(t, testenv.KernelAudit, "audit status: %v", err)
	}
	if st.Enabled == 2 {
		testenv.SkipOrFail(t, testenv.KernelAudit, "the kernel's audit configuration is immutable (enabled=2) until reboot")
	}
	before, err := client.GetRules()
	if err != nil {
		t.Fatalf("audittest: list the audit rules: %v", err)
	}
	k := &Kernel{client: client}
	t.Cleanup(func() { k.restore(t, st.Enabled == 1, before) })
	return k
}

// restore deletes the rules the test added, sets the enabled flag back,
// and fails the test when the rules are not the ones found at Take.
func (k *Kernel) restore(t testing.TB, enabled bool, before [][]byte) {
	t.Helper()
	for _, r := range k.added {
		if err := k.client.DeleteRule(r); err != nil {
			t.Errorf("audittest: delete a rule the test added: %v", err)
		}
	}
	if err := k.client.SetEnabled(enabled, libaudit.WaitForReply); err != nil {
		t.Errorf("audittest: set audit enabled back to %v: %v", enabled, err)
	}
	after, err := k.client.GetRules()
	if err != nil {
		t.Errorf("audittest: list the audit rules: %v", err)
		return
	}
	if !equalRules(before, after) {
		t.Errorf("audittest: %d audit rules after the test, %d before; the kernel's state was not restored", len(after), len(before))
	}
}

func equalRules(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// Enable turns kernel auditing on (auditctl -e 1).
func (k *Kernel) Enable(t testing.TB) {
	t.Helper()
	if err := k.client.SetEnabled(true, libaudit.WaitForReply); err != nil {
		t.Fatalf("audittest: enable auditing: %v", err)
	}
}

// AddRule adds r, e.g. the rule.SyscallRule that auditctl builds from
// "-a always,exit -F arch=b64 -S execve -k mykey". It is deleted when the
// test ends.
func (k *Kernel) AddRule(t testing.TB, r rule.Rule) {
	t.Helper()
	wire, err := rule.Build(r)
	if err != nil {
		t.Fatalf("audittest: build rule %+v: %v", r, err)
	}
	if err := k.client.AddRule(wire); err != nil {
		t.Fatalf("audittest: add rule %+v: %v", r, err)
	}
	k.added = append(k.added, wire)
}
