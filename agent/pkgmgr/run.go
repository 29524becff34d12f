package pkgmgr

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultTimeout bounds a package run when RunConfig.Timeout is zero.
const DefaultTimeout = 30 * time.Minute

// RunConfig is what the adapters share about their package runs.
type RunConfig struct {
	// Timeout bounds each run (DefaultTimeout when zero).
	Timeout time.Duration
	// OnEvent, when set, receives each log line and progress step as it
	// happens, from one goroutine at a time.
	OnEvent func(Event)
	// Wrapper, when set, is the command that runs the package manager
	// for a package run (not the inventory's queries): the program and
	// its arguments follow it, and it must exec them in its own process
	// (the host agent's sets the kernel loginuid, then execs them).
	Wrapper []string
	// OnStart, when set, is told the process group of each package run
	// (the package manager, dpkg or rpm and the maintainer scripts) once
	// it started; the func it returns is called when the run has ended.
	// The host agent spares these groups when it ends a login's sessions.
	OnStart func(pgid int) (ended func())
}

// check validates c and sets its defaults.
func (c *RunConfig) check() error {
	if c.Timeout < 0 {
		return fmt.Errorf("pkgmgr: timeout %v: must not be negative", c.Timeout)
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	return nil
}

var errTimeout = errors.New("timed out")

// withTimeout bounds ctx by timeout, with errTimeout as the cause when it
// passes.
func withTimeout(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, timeout, fmt.Errorf("%w after %v", errTimeout, timeout))
}

// stopped is the result of prog's run whose context ended: FAILED on the
// adapter's timeout (or the caller's deadline), CANCELED when the caller
// canceled it.
func stopped(ctx context.Context, prog string, log []LogLine) Result {
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, errTimeout):
		return Result{Status: Failed, Reason: prog + " " + cause.Error(), Log: log}
	case errors.Is(ctx.Err(), context.Canceled):
		return Result{Status: Canceled, Reason: "canceled: " + cause.Error(), Log: log}
	}
	return Result{Status: Failed, Reason: prog + " stopped: " + cause.Error(), Log: log}
}

// process is one package run of an adapter: the program and its
// arguments, and how its output becomes the run's log, progress and
// failure reason. Apt and Dnf differ only in these.
type process struct {
	prog string   // the program, as run and as named in reasons
	args []string // its arguments
	env  []string
	RunConfig
	// line reads a line of the combined output. It may return a
	// progress step (ok) and the run's failure reason ("" for none).
	line func(text string, now time.Time) (step Event, ok bool, reason string)
	// status, when set, reads the lines of a status descriptor the
	// program gets as fd 3 (apt's APT::Status-Fd=3): each gives an event
	// (ok) and maybe the failure reason.
	status func(text string, now time.Time) (ev Event, ok bool, reason string)
	// forwardOnly reports a progress step only when it is beyond the last
	// one reported (a dnf transaction counts its steps once per phase).
	forwardOnly bool
	// reasonFails makes a reason from the output fail a run whose
	// program exited 0 (rpm only warns about a failed scriptlet); without
	// it the reason only names why a failed run failed.
	reasonFails bool
	// lastError finds the failure reason in the log when no line gave one.
	lastError func([]LogLine) string
}

// run runs p in a process group of its own (the program, its children and
// the maintainer scripts, so that a timeout or a cancellation ends them
// all) under p's timeout. The first log line is the command run.
func (p process) run(ctx context.Context) Result {
	ctx, cancel := withTimeout(ctx, p.Timeout)
	defer cancel()
	if ctx.Err() != nil {
		return stopped(ctx, p.prog, nil)
	}
	var (
		mu     sync.Mutex
		log    []LogLine
		reason string
		last   = -1
	)
	note := func(why string) {
		mu.Lock()
		defer mu.Unlock()
		if why != "" && reason == "" {
			reason = why
		}
	}
	add := func(ev Event) {
		mu.Lock()
		defer mu.Unlock()
		if ev.Percent < 0 {
			log = append(log, LogLine{Time: ev.Time, Text: ev.Line})
		} else if p.forwardOnly {
			if ev.Percent <= last {
				return
			}
			last = ev.Percent
		}
		if p.OnEvent != nil {
			p.OnEvent(ev)
		}
	}
	fail := func(r string) Result {
		mu.Lock()
		defer mu.Unlock()
		return Result{Status: Failed, Reason: r, Log: log}
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return fail(fmt.Sprintf("pkgmgr: pipe: %v", err))
	}
	var stR, stW *os.File
	if p.status != nil {
		if stR, stW, err = os.Pipe(); err != nil {
			outR.Close()
			outW.Close()
			return fail(fmt.Sprintf("pkgmgr: pipe: %v", err))
		}
	}
	argv := append(slices.Clone(p.Wrapper), p.prog)
	argv = append(argv, p.args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = outW, outW
	if stW != nil {
		cmd.ExtraFiles = []*os.File{stW}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	add(Event{Time: time.Now(), Percent: -1, Line: "$ " + p.prog + " " + strings.Join(p.args, " ")})
	startErr := cmd.Start()
	outW.Close()
	var wg sync.WaitGroup
	wg.Go(func() {
		defer outR.Close()
		eachLine(outR, func(text string) {
			now := time.Now()
			add(Event{Time: now, Percent: -1, Line: text})
			if p.line == nil {
				return
			}
			step, ok, why := p.line(text, now)
			note(why)
			if ok {
				add(step)
			}
		})
	})
	if stW != nil {
		stW.Close()
		wg.Go(func() {
			defer stR.Close()
			eachLine(stR, func(text string) {
				ev, ok, why := p.status(text, time.Now())
				note(why)
				if ok {
					add(ev)
				}
			})
		})
	}
	if startErr != nil {
		wg.Wait()
		return fail(fmt.Sprintf("pkgmgr: start %s: %v", p.prog, startErr))
	}
	if p.OnStart != nil {
		defer p.OnStart(cmd.Process.Pid)()
	}
	waitErr := cmd.Wait()
	wg.Wait()
	mu.Lock()
	succeeded := waitErr == nil && ctx.Err() == nil && (reason == "" || !p.reasonFails)
	mu.Unlock()
	if succeeded {
		add(Event{Time: time.Now(), Percent: 100, Line: "done"})
	}
	mu.Lock()
	defer mu.Unlock()
	switch {
	case ctx.Err() != nil:
		return stopped(ctx, p.prog, log)
	case succeeded:
		return Result{Status: Succeeded, Log: log}
	}
	res := Result{Status: Failed, Reason: reason, Log: log}
	if res.Reason == "" && p.lastError != nil {
		res.Reason = p.lastError(log)
	}
	if res.Reason == "" {
		res.Reason = fmt.Sprintf("%s: %v", p.prog, waitErr)
	}
	return res
}

// maxLine is the longest output line kept whole; the rest of a longer
// line is dropped and the line marked truncated.
const maxLine = 1 << 20

// truncatedMark ends a line cut at maxLine.
const truncatedMark = " [line truncated]"

// eachLine calls fn with each line of r (without its newline) until r
// ends. A line longer than maxLine is cut there and marked, and the rest
// of it is read and dropped: the reader never stops before the program's
// output ends (a bufio.Scanner stops at its limit, and the program then
// dies of SIGPIPE).
func eachLine(r io.Reader, fn func(string)) {
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		line []byte
		cut  bool
	)
	for {
		chunk, err := br.ReadSlice('\n')
		full := err == nil
		if full {
			chunk = chunk[:len(chunk)-1]
		}
		if room := maxLine - len(line); len(chunk) > room {
			line, cut = append(line, chunk[:room]...), true
		} else if !cut {
			line = append(line, chunk...)
		}
		if full || (err != bufio.ErrBufferFull && len(line) > 0) {
			text := strings.TrimSuffix(string(line), "\r")
			if cut {
				text += truncatedMark
			}
			fn(text)
			line, cut = line[:0], false
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}
