package netlinksrc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	libaudit "github.com/elastic/go-libaudit/v2"
	"github.com/elastic/go-libaudit/v2/auparse"
	"github.com/elastic/go-libaudit/v2/rule"

	"github.com/auditpipe/auditpipe/internal/audittest"
	"github.com/auditpipe/auditpipe/internal/testenv"
)

type reply struct {
	msg *libaudit.RawAuditMessage
	err error
}

// fakeReceiver replays replies, then reports EAGAIN.
type fakeReceiver struct {
	replies []reply
	closed  bool
}

func (f *fakeReceiver) Receive(nonBlocking bool) (*libaudit.RawAuditMessage, error) {
	if !nonBlocking {
		panic("blocking receive cannot be cancelled")
	}
	if len(f.replies) == 0 {
		return nil, syscall.EAGAIN
	}
	r := f.replies[0]
	f.replies = f.replies[1:]
	return r.msg, r.err
}

func (f *fakeReceiver) Close() error { f.closed = true; return nil }

func msg(t auparse.AuditMessageType, data string) reply {
	return reply{msg: &libaudit.RawAuditMessage{Type: t, Data: []byte(data)}}
}

func TestLines(t *testing.T) {
	tests := []struct {
		name    string
		replies []reply
		want    []string // "ERR:overrun" for ErrOverrun
	}{
		{
			name: "syscall event",
			replies: []reply{
				msg(auparse.AUDIT_SYSCALL, `audit(1603941629.418:10777424): arch=c000003e syscall=59 success=yes exit=0 a0=1 items=2 ppid=1 pid=2 auid=1000 uid=0 tty=pts0 ses=3 comm="ls" exe="/usr/bin/ls" key=(null)`),
				msg(auparse.AUDIT_EXECVE, `audit(1603941629.418:10777424): argc=2 a0="ls" a1="/"`),
				msg(auparse.AUDIT_PROCTITLE, "audit(1603941629.418:10777424): proctitle=6C73002F"),
				msg(auparse.AUDIT_EOE, "audit(1603941629.418:10777424): \x00"),
			},
			want: []string{
				`type=SYSCALL msg=audit(1603941629.418:10777424): arch=c000003e syscall=59 success=yes exit=0 a0=1 items=2 ppid=1 pid=2 auid=1000 uid=0 tty=pts0 ses=3 comm="ls" exe="/usr/bin/ls" key=(null)`,
				`type=EXECVE msg=audit(1603941629.418:10777424): argc=2 a0="ls" a1="/"`,
				`type=PROCTITLE msg=audit(1603941629.418:10777424): proctitle=6C73002F`,
				`type=EOE msg=audit(1603941629.418:10777424): `,
			},
		},
		{
			name: "user and tty records, trailing newline trimmed",
			replies: []reply{
				msg(auparse.AUDIT_USER_LOGIN, "audit(1.002:7): pid=1 uid=0 auid=1000 ses=1 msg='op=login id=1000 exe=\"/usr/sbin/sshd\" hostname=h addr=10.0.0.1 terminal=ssh res=success'\n"),
				msg(auparse.AUDIT_TTY, "audit(1.003:8): tty pid=1 uid=0 auid=1000 ses=1 major=136 minor=0 comm=\"bash\" data=6C730D\x00\x00"),
			},
			want: []string{
				`type=USER_LOGIN msg=audit(1.002:7): pid=1 uid=0 auid=1000 ses=1 msg='op=login id=1000 exe="/usr/sbin/sshd" hostname=h addr=10.0.0.1 terminal=ssh res=success'`,
				`type=TTY msg=audit(1.003:8): tty pid=1 uid=0 auid=1000 ses=1 major=136 minor=0 comm="bash" data=6C730D`,
			},
		},
		{
			name:    "unknown type named as auditd names it",
			replies: []reply{msg(auparse.AuditMessageType(1999), "audit(1.0:1): x=1")},
			want:    []string{"type=UNKNOWN[1999] msg=audit(1.0:1): x=1"},
		},
		{
			name: "control replies skipped, transient errors retried, overrun reported",
			replies: []reply{
				msg(auparse.AuditMessageType(1000), "status reply"), // AUDIT_GET
				{err: syscall.EINTR},
				msg(auparse.AUDIT_SYSCALL, "audit(1.0:2): a=1"),
				{err: syscall.ENOBUFS},
				{err: syscall.EAGAIN},
				msg(auparse.AUDIT_EOE, "audit(1.0:2): "),
			},
			want: []string{"type=SYSCALL msg=audit(1.0:2): a=1", "ERR:overrun", "type=EOE msg=audit(1.0:2): "},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSource(&fakeReceiver{replies: tt.replies}, Options{PollInterval: time.Millisecond})
			for _, want := range tt.want {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				line, err := s.Next(ctx)
				cancel()
				got := string(line)
				if errors.Is(err, ErrOverrun) {
					got = "ERR:overrun"
				} else if err != nil {
					t.Fatalf("Next: %v", err)
				}
				if got != want {
					t.Fatalf("line\n got %q\nwant %q", got, want)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			if line, err := s.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Next after the last record = %q, %v; want it to block", line, err)
			}
		})
	}
}

func TestFatalErrorAndClose(t *testing.T) {
	rx := &fakeReceiver{replies: []reply{{err: syscall.EBADF}}}
	s := newSource(rx, Options{})
	if _, err := s.Next(context.Background()); !errors.Is(err, syscall.EBADF) {
		t.Fatalf("Next: %v, want EBADF wrapped", err)
	}
	if err := s.Close(); err != nil || !rx.closed {
		t.Fatalf("Close: %v, closed %v", err, rx.closed)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
}

func TestCloseUnblocksNext(t *testing.T) {
	s := newSource(&fakeReceiver{}, Options{PollInterval: time.Millisecond})
	errc := make(chan error, 1)
	go func() {
		_, err := s.Next(context.Background())
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	s.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Next: %v, want ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Next still blocked after Close")
	}
}

// TestKernel reads real records from the kernel: with auditing enabled and
// an execve rule for this process's children, a command it runs arrives
// as SYSCALL and EXECVE lines of one event, in auditd's log format. It
// changes the machine's audit state under audittest's lock and restores
// it. Formerly it passed when no record arrived at all.
func TestKernel(t *testing.T) {
	k := audittest.Take(t)
	s, err := Open(Options{})
	if err != nil {
		testenv.SkipOrFail(t, testenv.KernelAudit, "audit netlink multicast socket: %v", err)
	}
	defer s.Close()
	const key = "auditpipe-netlinksrc-test"
	// auditctl -a always,exit -F arch=b64 -S execve -F ppid=PID -k KEY
	k.AddRule(t, &rule.SyscallRule{
		Type: rule.AppendSyscallRuleType, List: "exit", Action: "always",
		Filters: []rule.FilterSpec{
			{Type: rule.ValueFilterType, LHS: "arch", Comparator: "=", RHS: "b64"},
			{Type: rule.ValueFilterType, LHS: "ppid", Comparator: "=", RHS: strconv.Itoa(os.Getpid())},
		},
		Syscalls: []string{"execve"},
		Keys:     []string{key},
	})
	k.Enable(t)

	marker := fmt.Sprintf("auditpipe-marker-%d-%d", os.Getpid(), time.Now().UnixNano())
	run := func() {
		if out, err := exec.Command("/bin/sh", "-c", ":", marker).CombinedOutput(); err != nil {
			t.Fatalf("run the audited command: %v\n%s", err, out)
		}
	}
	run()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// The event's serial ("msg=audit(SEC.MSEC:SERIAL):") → what was seen.
	syscalls, execves := map[string]bool{}, map[string]bool{}
	lines, overruns := 0, 0
	rerun := time.Now().Add(2 * time.Second)
	for {
		lctx, lcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		line, err := s.Next(lctx)
		lcancel()
		switch {
		case errors.Is(err, ErrOverrun):
			overruns++
			continue
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			if time.Now().After(rerun) { // lost in an overrun: once more
				run()
				rerun = time.Now().Add(2 * time.Second)
			}
			continue
		case err != nil:
			t.Fatalf("no EXECVE and SYSCALL record of %q after %d lines (%d overruns): %v", marker, lines, overruns, err)
		}
		lines++
		l := string(line)
		if !strings.HasPrefix(l, "type=") || !strings.Contains(l, " msg=audit(") {
			t.Fatalf("line %q is not in auditd's format", l)
		}
		serial := l[strings.Index(l, "msg=audit("):]
		serial = serial[:strings.IndexByte(serial, ')')+1]
		switch {
		case strings.HasPrefix(l, "type=SYSCALL ") && strings.Contains(l, `key="`+key+`"`):
			if !strings.Contains(l, "syscall=59 ") || !strings.Contains(l, "success=yes") {
				t.Fatalf("SYSCALL record of the rule is not a successful execve: %s", l)
			}
			syscalls[serial] = true
		case strings.HasPrefix(l, "type=EXECVE ") && strings.Contains(l, `"`+marker+`"`):
			execves[serial] = true
		}
		for serial := range execves {
			if syscalls[serial] {
				t.Logf("kernel event %s: EXECVE with the marker and SYSCALL with the rule's key (%d lines read, %d overruns)", serial, lines, overruns)
				return
			}
		}
	}
}
