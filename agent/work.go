package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/auditpipe/auditpipe/agent/pkgmgr"
	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/deadletter"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

// ReasonOtherHost refuses a dispatch keyed by this agent's instance that
// names another host.
const ReasonOtherHost = "other_host"

// Error codes of a work request's errors (schemas.LogLine.Code).
const (
	CodePackageManager = "PACKAGE_MANAGER_FAILED" // apt-get or dpkg failed (the reason is theirs)
	CodeTimedOut       = "TIMED_OUT"              // the deadline or agent.work.max_run_time passed
	CodeCutoffPassed   = "CUTOFF_PASSED"          // received, or still waiting, after its not_after
	CodeAgentRestarted = "AGENT_RESTARTED"        // the agent stopped during the run
	CodeInvalidWork    = "INVALID_WORK"           // the package manager refused the request
	CodeLoginMissing   = "LOGIN_NOT_ON_HOST"      // the grant's login user never came to the host
)

// maxLogMessage bounds one log line of a work request.
const maxLogMessage = 4096

// loginUIDScript is the wrapper of apt-get on a governed run: sh (one
// thread, unlike a Go process, whose /proc/self/loginuid is the main
// thread's) writes the login's uid as its kernel loginuid, as
// pam_loginuid does at a login, and execs apt-get, which inherits it with
// dpkg and the maintainer scripts. The uid is $0, apt-get's argv "$@":
// nothing of the dispatch is read as shell.
const loginUIDScript = `echo "$0" > /proc/self/loginuid || { echo "E: auditpipe: cannot set the loginuid to $0" >&2; exit 97; }; exec "$@"`

// errStopping is the cause of a run stopped because the agent stops.
var errStopping = errors.New("the agent is stopping")

// errDeadline marks the deadline of a run.
var errDeadline = errors.New("deadline")

// worker runs the work requests dispatched to the agent's instance, one
// at a time, and reports their progress and the inventory.
type worker struct {
	cfg   Config
	log   *slog.Logger
	m     *metrics
	keys  *sign.Keyring
	host  Host
	rep   *reporter
	state *workState
	now   func() time.Time

	refusals *grants.RefusalLog
	// seqs refuses a dispatch record written again (grants.Seqs, by
	// instance), kept in the state directory (DispatchStateFile): opened
	// by run.
	seqs *grants.Seqs
	in   chan schemas.Dispatch

	// owned by run's loop
	queue      []workRecord
	current    *running
	waitLogged map[string]bool // work requests whose wait for their login was logged
}

// running is the work request whose package run is under way.
type running struct {
	rec    workRecord
	cancel context.CancelCauseFunc
	prog   *progress
	done   chan pkgmgr.Result
}

// progress gathers a run's log lines and percent between reports.
type progress struct {
	mu      sync.Mutex
	lines   []schemas.LogLine
	percent int
	changed bool
}

func (p *progress) add(ev pkgmgr.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ev.Percent >= 0 {
		if ev.Percent > p.percent {
			p.percent, p.changed = min(ev.Percent, 100), true
		}
		return
	}
	if l, ok := logLine(ev.Time, ev.Line); ok {
		p.lines, p.changed = append(p.lines, l), true
	}
}

func (p *progress) note(msg string) { p.add(pkgmgr.Event{Time: time.Now(), Percent: -1, Line: msg}) }

// take returns what came since the last take, and whether anything did.
func (p *progress) take() ([]schemas.LogLine, int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	lines, pct, changed := p.lines, p.percent, p.changed
	p.lines, p.changed = nil, false
	return lines, pct, changed
}

func logLine(t time.Time, msg string) (schemas.LogLine, bool) {
	msg = strings.ToValidUTF8(strings.TrimRight(msg, " \t\r"), "\uFFFD")
	if msg == "" {
		return schemas.LogLine{}, false
	}
	if len(msg) > maxLogMessage {
		msg = strings.ToValidUTF8(msg[:maxLogMessage], "") + " …"
	}
	return schemas.LogLine{Time: t.UTC(), Message: msg}, true
}

func newWorker(cfg Config, log *slog.Logger, m *metrics, keys *sign.Keyring, host Host, now func() time.Time) *worker {
	log = log.With("instance_id", cfg.Instance.ID)
	return &worker{cfg: cfg, log: log, m: m, keys: keys, host: host, now: now,
		refusals: grants.NewRefusalLog(log, "dispatch", "auditpipe_agent_dispatches_refused_total"),
		in:       make(chan schemas.Dispatch, 64), waitLogged: map[string]bool{}}
}

// run follows the dispatch topic and runs the work until ctx ends. A run
// under way when ctx ends is stopped (its process group killed) and left
// RUNNING in the state directory: the next start reports it FAILED.
func (w *worker) run(ctx context.Context, rep *reporter) error {
	st, err := openWorkState(w.cfg.Work.StateDir)
	if err != nil {
		return err
	}
	defer st.close()
	w.state, w.rep = st, rep
	if w.seqs, err = grants.OpenSeqs("instance", filepath.Join(w.cfg.Work.StateDir, DispatchStateFile), w.log.With("follower", "dispatch")); err != nil {
		return fmt.Errorf("agent.work.state_dir: %w", err)
	}
	if err := w.recover(); err != nil {
		return err
	}
	dead, err := deadletter.Open(w.cfg.Kafka, w.cfg.DeadLetterTopic, "agent", w.log)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	defer dead.Close()
	defer w.refusals.Summarize()
	f, err := w.cfg.Kafka.NewFollower(kafka.FollowerConfig{Topic: w.cfg.Work.DispatchTopic, Log: w.log.With("follower", "dispatch"),
		Apply: func(r kafka.Record) error { return w.receive(ctx, dead, r) }})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	fctx, stopFollow := context.WithCancel(ctx)
	followErr := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopFollow()
	wg.Go(func() { followErr <- f.Run(fctx) })
	w.log.Info("running the work dispatched to this instance", "topic", w.cfg.Work.DispatchTopic, "state_dir", w.cfg.Work.StateDir,
		"package_root", w.cfg.Work.PackageRoot, "loginuid", w.setsLoginUID())

	progressTick := time.NewTicker(w.cfg.Work.ProgressInterval)
	defer progressTick.Stop()
	invTick := time.NewTicker(w.cfg.Work.InventoryInterval)
	defer invTick.Stop()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	var (
		invDue     = schemas.InventoryScheduled // at start
		invWR      string
		invDone    chan struct{}
		runDone    <-chan pkgmgr.Result
		retryArmed bool
	)
	for {
		if w.current == nil && invDone == nil {
			if invDue != "" {
				invDone = make(chan struct{})
				trigger, wr := invDue, invWR
				invDue, invWR = "", ""
				wg.Go(func() {
					defer close(invDone)
					w.inventory(ctx, trigger, wr)
				})
			} else if waiting := w.startNext(ctx); w.current != nil {
				runDone = w.current.done
			} else if waiting && !retryArmed {
				retry.Reset(time.Second)
				retryArmed = true
			}
		}
		select {
		case <-ctx.Done():
			if w.current != nil {
				w.current.cancel(errStopping)
				<-w.current.done
				w.log.Warn("agent stopping: the package run was stopped; it stays RUNNING in the state and is reported FAILED at the next start",
					"work_request_id", w.current.rec.Dispatch.WorkRequestID)
			}
			if invDone != nil {
				<-invDone
			}
			return nil
		case err := <-followErr:
			if err != nil {
				return fmt.Errorf("agent: dispatch: %w", err)
			}
			return nil
		case d := <-w.in:
			w.handle(d)
		case res := <-runDone:
			runDone = nil
			wr := w.current.rec.Dispatch.WorkRequestID
			w.finishRun(ctx, res)
			invDue, invWR = schemas.InventoryWorkRequest, wr
		case <-invDone:
			invDone = nil
		case <-invTick.C:
			if invDue == "" {
				invDue = schemas.InventoryScheduled
			}
		case <-retry.C:
			retryArmed = false
		case <-progressTick.C:
			if c := w.current; c != nil {
				if lines, pct, changed := c.prog.take(); changed {
					w.send(&c.rec, schemas.WorkInProgress, pct, lines, nil)
				}
			}
		}
	}
}

// recover reads the state directory: a run the agent stopped in (it
// crashed, or was stopped) is reported FAILED, queued ones queue again.
func (w *worker) recover() error {
	recs, err := w.state.load(w.now())
	if err != nil {
		return err
	}
	for _, r := range recs {
		switch r.Phase {
		case phaseRunning:
			msg := fmt.Sprintf("the agent stopped during the run (started %s by agent pid %d) and was restarted: the run's outcome is unknown; check the instance's packages",
				r.Started.UTC().Format(time.RFC3339), r.PID)
			w.log.Warn("a work request was running when the agent stopped: reported FAILED", "work_request_id", r.Dispatch.WorkRequestID, "seq", r.Seq)
			w.finish(&r, schemas.WorkFailed, r.Percent, nil, CodeAgentRestarted, msg)
		case phaseQueued:
			w.queue = append(w.queue, r)
		}
	}
	return nil
}

// receive verifies one record of the dispatch topic; those for this
// instance go to the loop. A record keyed by another instance is that
// instance's agent's business and is skipped unread.
func (w *worker) receive(ctx context.Context, dead *deadletter.Writer, r kafka.Record) error {
	if r.Value == nil || string(r.Key) != w.cfg.Instance.ID {
		return nil
	}
	m, err := grants.DecodeDispatch(r.Key, r.Value, w.keys)
	if err == nil && m.Dispatch.Host != w.cfg.Host {
		err = &grants.RefusedError{Reason: ReasonOtherHost, Err: fmt.Errorf("dispatch %s of instance %s names host %q, not this host %q",
			m.Dispatch.WorkRequestID, m.Dispatch.InstanceID, m.Dispatch.Host, w.cfg.Host)}
	}
	if err == nil {
		err = w.seqs.AdmitRecord(grants.Numbered{Key: m.Dispatch.InstanceID, Seq: m.Dispatch.PublishSeq, Payload: m.Payload,
			Partition: r.Partition, Offset: r.Offset})
		if errors.Is(err, grants.ErrSuperseded) {
			return nil // read before the instance's applied dispatch
		}
	}
	if err != nil {
		reason := grants.Reason(err)
		err = fmt.Errorf("dispatch record key %q: %w", r.Key, err)
		w.m.dispatchRefused.WithLabelValues(reason).Inc()
		w.refusals.Refused(time.Now(), reason, err, r.Source())
		if werr := dead.Write(ctx, dead.Letter("dispatch_"+reason, err, r.Value, w.cfg.Host, r.Source())); werr != nil {
			return fmt.Errorf("refused dispatch at %s not dead-lettered: %w", r.Source(), werr)
		}
		w.m.deadLetters.Inc()
		return nil
	}
	select {
	case w.in <- m.Dispatch:
	case <-ctx.Done():
	}
	return nil
}

// handle takes one verified dispatch: a RUN is queued once (a dispatch
// delivered again, or read again at a restart, is known by its state),
// a CANCEL stops the run or takes it off the queue.
func (w *worker) handle(d schemas.Dispatch) {
	log := w.log.With("work_request_id", d.WorkRequestID, "action", d.Action)
	if w.now().Sub(d.Time) > stateRetention {
		w.m.dispatches.WithLabelValues("too_old").Inc()
		log.Info("dispatch older than the state is kept: ignored", "time", d.Time)
		return
	}
	rec, known, err := w.state.get(d.WorkRequestID)
	if err != nil {
		log.Error("reading the work state: dispatch not taken (read again at the next start)", "err", err)
		return
	}
	if d.Action == schemas.DispatchCancel {
		w.m.dispatches.WithLabelValues("cancel").Inc()
		w.cancel(log, d, rec, known)
		return
	}
	if known {
		w.m.dispatches.WithLabelValues("redelivered").Inc()
		log.Debug("dispatch known already: not run again", "phase", rec.Phase)
		return
	}
	w.m.dispatches.WithLabelValues("run").Inc()
	rec = workRecord{Dispatch: d, Phase: phaseQueued}
	if err := w.state.put(rec); err != nil {
		log.Error("writing the work state: dispatch not taken (read again at the next start)", "err", err)
		return
	}
	log.Info("work request queued", "operation", d.OperationType, "update_type", d.UpdateType, "packages", d.PackageNames,
		"req_auth_id", d.ReqAuthID, "loginid", d.LoginID, "not_after", d.NotAfter, "deadline", d.Deadline)
	w.queue = append(w.queue, rec)
}

func (w *worker) cancel(log *slog.Logger, d schemas.Dispatch, rec workRecord, known bool) {
	if c := w.current; c != nil && c.rec.Dispatch.WorkRequestID == d.WorkRequestID {
		log.Info("canceling the running work request")
		c.cancel(fmt.Errorf("the scheduler canceled work request %s at %s", d.WorkRequestID, d.Time.UTC().Format(time.RFC3339)))
		return
	}
	if i := slices.IndexFunc(w.queue, func(r workRecord) bool { return r.Dispatch.WorkRequestID == d.WorkRequestID }); i >= 0 {
		r := w.queue[i]
		w.queue = slices.Delete(w.queue, i, i+1)
		log.Info("work request canceled before it started")
		w.finish(&r, schemas.WorkCanceled, 0, []schemas.LogLine{w.line("canceled by the scheduler before it started")}, "", "")
		return
	}
	if known && rec.Phase == phaseFinished {
		log.Debug("cancel of a finished work request: nothing to do", "status", rec.Status)
		return
	}
	// Never seen (its RUN is older than the state, or was lost with it):
	// recorded, so that it never runs, and reported so that its
	// CANCELING ends.
	r := workRecord{Dispatch: d, Phase: phaseQueued}
	log.Info("cancel of a work request this agent never ran: reported CANCELED")
	w.finish(&r, schemas.WorkCanceled, 0, []schemas.LogLine{w.line("canceled by the scheduler; this agent never ran it")}, "", "")
}

// startNext starts the first queued work request that can start; one
// past its cutoff fails. It reports whether one waits for its login.
func (w *worker) startNext(ctx context.Context) (waiting bool) {
	for i := 0; i < len(w.queue); i++ {
		rec := w.queue[i]
		d := rec.Dispatch
		now := w.now()
		var (
			wrapper     []string
			attribution string
			missing     error // the login user is not on the host (yet)
		)
		if d.LoginID != "" {
			attribution = fmt.Sprintf("for access request %s as its grant's login %s", d.ReqAuthID, d.LoginID)
			if w.setsLoginUID() {
				u, ok, err := w.host.LookupUser(d.LoginID)
				switch {
				case err != nil:
					missing = err
				case !ok || !managed(u):
					missing = fmt.Errorf("the grant's login %s of access request %s is not on this host (its grant not deployed here)", d.LoginID, d.ReqAuthID)
				default:
					wrapper = []string{"/bin/sh", "-c", loginUIDScript, strconv.Itoa(u.UID)}
					attribution += fmt.Sprintf(" (uid %d): apt-get runs with loginuid %d, so the kernel's audit records of the run carry that auid", u.UID, u.UID)
				}
			} else {
				attribution += ": the loginuid is not set (agent.live off, or agent.work.login_uid false)"
			}
		}
		if now.After(d.NotAfter) {
			w.queue = slices.Delete(w.queue, i, i+1)
			i--
			delete(w.waitLogged, d.WorkRequestID)
			code, msg := CodeCutoffPassed, fmt.Sprintf("not started: its cutoff %s passed before its turn came (now %s)",
				d.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
			if missing != nil {
				code, msg = CodeLoginMissing, fmt.Sprintf("not started: its cutoff %s passed while %v", d.NotAfter.UTC().Format(time.RFC3339), missing)
			}
			w.finish(&rec, schemas.WorkFailed, 0, nil, code, msg)
			continue
		}
		if missing != nil {
			if !w.waitLogged[d.WorkRequestID] {
				w.waitLogged[d.WorkRequestID] = true
				w.log.Info("work request waits for its grant's login user to be on this host", "work_request_id", d.WorkRequestID, "loginid", d.LoginID, "err", missing)
			}
			waiting = true
			continue
		}
		w.queue = slices.Delete(w.queue, i, i+1)
		delete(w.waitLogged, d.WorkRequestID)
		w.start(ctx, rec, wrapper, attribution)
		return waiting
	}
	return waiting
}

// start starts rec's package run.
func (w *worker) start(ctx context.Context, rec workRecord, wrapper []string, attribution string) {
	d := rec.Dispatch
	rec.Phase, rec.Started, rec.PID = phaseRunning, w.now().UTC(), os.Getpid()
	what := d.OperationType + " " + strings.Join(d.PackageNames, " ")
	if d.OperationType == schemas.OperationUpdateAll {
		what = d.OperationType + " " + d.UpdateType
	}
	first := []schemas.LogLine{w.line(fmt.Sprintf("work request %s (job %s, execution %s): %s on instance %s (host %s)",
		d.WorkRequestID, d.JobID, d.ExecutionID, what, d.InstanceID, w.cfg.Host))}
	if attribution != "" {
		first = append(first, w.line(attribution))
	}
	if err := w.send(&rec, schemas.WorkInProgress, 0, first, nil); err != nil {
		w.queue = append([]workRecord{rec}, w.queue...)
		return
	}
	deadline := d.Deadline
	if limit := rec.Started.Add(w.cfg.Work.MaxRunTime); limit.Before(deadline) {
		deadline = limit
	}
	rctx, cancel := context.WithCancelCause(ctx)
	dctx, cancelDeadline := context.WithDeadlineCause(rctx, deadline,
		fmt.Errorf("%w %s of the work request passed", errDeadline, deadline.UTC().Format(time.RFC3339)))
	c := &running{rec: rec, cancel: cancel, prog: &progress{}, done: make(chan pkgmgr.Result, 1)}
	w.current = c
	w.m.workRunning.Set(1)
	w.log.Info("work request started", "work_request_id", d.WorkRequestID, "req_auth_id", d.ReqAuthID, "loginid", d.LoginID, "deadline", deadline)
	go func() {
		defer cancelDeadline()
		c.done <- w.execute(dctx, d, wrapper, c.prog)
	}()
}

// execute runs d's operation through the package manager.
func (w *worker) execute(ctx context.Context, d schemas.Dispatch, wrapper []string, prog *progress) pkgmgr.Result {
	mgr, err := w.manager(wrapper, prog.add)
	if err != nil {
		return pkgmgr.Result{Status: pkgmgr.Failed, Reason: err.Error()}
	}
	var res pkgmgr.Result
	switch d.OperationType {
	case schemas.OperationInstall:
		res, err = mgr.Install(ctx, d.PackageNames)
	case schemas.OperationUpdate:
		res, err = mgr.Update(ctx, d.PackageNames)
	case schemas.OperationRemove:
		res, err = mgr.Remove(ctx, d.PackageNames)
	case schemas.OperationUpdateAll:
		res, err = mgr.UpdateAll(ctx, pkgmgr.UpdateType(d.UpdateType))
	default:
		err = fmt.Errorf("operation %q is not one the agent runs", d.OperationType)
	}
	if err != nil {
		return pkgmgr.Result{Status: pkgmgr.Failed, Reason: "refused: " + err.Error()}
	}
	return res
}

// finishRun reports the end of the current run, unless the agent is
// stopping (then the state stays RUNNING, and the next start reports it).
func (w *worker) finishRun(ctx context.Context, res pkgmgr.Result) {
	c := w.current
	w.current = nil
	w.m.workRunning.Set(0)
	if ctx.Err() != nil {
		return
	}
	lines, pct, _ := c.prog.take()
	id := c.rec.Dispatch.WorkRequestID
	w.log.Info("work request finished", "work_request_id", id, "status", res.Status, "reason", res.Reason, "took", w.now().Sub(c.rec.Started))
	switch res.Status {
	case pkgmgr.Succeeded:
		w.finish(&c.rec, schemas.WorkSucceeded, 100, lines, "", "")
	case pkgmgr.Canceled:
		if l, ok := logLine(w.now(), res.Reason); ok {
			lines = append(lines, l)
		}
		w.finish(&c.rec, schemas.WorkCanceled, pct, lines, "", "")
	default:
		code := CodePackageManager
		switch {
		case strings.Contains(res.Reason, errDeadline.Error()+" "), strings.HasPrefix(res.Reason, "apt-get timed out"), strings.HasPrefix(res.Reason, "dnf timed out"):
			code = CodeTimedOut
		case strings.HasPrefix(res.Reason, "refused: "):
			code = CodeInvalidWork
		}
		reason := res.Reason
		if reason == "" {
			reason = "the package manager failed without a reason"
		}
		w.finish(&c.rec, schemas.WorkFailed, pct, lines, code, reason)
	}
}

// finish makes rec's final report; code and reason make its error.
func (w *worker) finish(rec *workRecord, status string, pct int, lines []schemas.LogLine, code, reason string) {
	var errs []schemas.LogLine
	if reason != "" {
		l, _ := logLine(w.now(), reason)
		l.Code = code
		errs = append(errs, l)
	}
	rec.Phase, rec.Status, rec.Finished = phaseFinished, status, w.now().UTC()
	w.m.workRuns.WithLabelValues(status).Inc()
	_ = w.send(rec, status, pct, lines, errs)
}

// send writes rec with its next seq to the state directory, then queues
// the report: a seq is never used twice, even across a crash.
func (w *worker) send(rec *workRecord, status string, pct int, logs, errs []schemas.LogLine) error {
	rec.Seq++
	pct = max(pct, rec.Percent)
	rec.Percent = pct
	p := schemas.WorkProgress{WorkRequestID: rec.Dispatch.WorkRequestID, Host: w.cfg.Host, Seq: rec.Seq, Status: status,
		PercentComplete: pct, Logs: logs, Errors: errs, Time: w.now().UTC()}
	if err := p.Validate(); err != nil {
		w.log.Error("work progress not valid: not sent", "err", err) // not reached: built to the rules above
		return err
	}
	if err := w.state.put(*rec); err != nil {
		w.log.Error("writing the work state failed: report not sent (its seq could be reused after a crash)", "work_request_id", p.WorkRequestID, "err", err)
		rec.Seq--
		return err
	}
	w.rep.addMessage(w.cfg.Host, "work_"+status, p.WorkRequestID, p)
	return nil
}

func (w *worker) line(msg string) schemas.LogLine {
	l, _ := logLine(w.now(), msg)
	return l
}

// setsLoginUID reports whether governed runs take the login's loginuid.
func (w *worker) setsLoginUID() bool { return w.cfg.Live && w.cfg.Work.loginUID() }

// manager returns the package manager of a run (wrapper, on) or of an
// inventory (nil, nil), with the security feed read afresh.
//
// agent.work.package_manager picks the adapter: dnf reads update types
// and CVEs from its repositories' updateinfo, so the security feed is
// apt's only.
func (w *worker) manager(wrapper []string, on func(pkgmgr.Event)) (pkgmgr.Manager, error) {
	var onStart func(int) func()
	if lh, ok := w.host.(*LiveHost); ok {
		onStart = lh.runs.add // its EndSessions spares the run
	}
	runs := pkgmgr.RunConfig{Timeout: w.cfg.Work.MaxRunTime, OnEvent: on, Wrapper: wrapper, OnStart: onStart}
	if w.cfg.Work.PackageManager == "dnf" {
		return pkgmgr.NewDnf(pkgmgr.DnfConfig{Root: w.cfg.Work.PackageRoot, Releasever: w.cfg.Work.Release, RunConfig: runs})
	}
	var tr pkgmgr.Tracker
	if path := w.cfg.Work.SecurityTracker; path != "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("agent.work.security_tracker: %w", err)
		}
		tr, err = pkgmgr.ReadTracker(bufio.NewReader(f))
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("agent.work.security_tracker: %w", err)
		}
	}
	return pkgmgr.NewApt(pkgmgr.AptConfig{Root: w.cfg.Work.PackageRoot, Release: w.release(), Tracker: tr, RunConfig: runs})
}

// release is agent.work.release, or the os-release's VERSION_CODENAME.
func (w *worker) release() string {
	if w.cfg.Work.Release != "" {
		return w.cfg.Work.Release
	}
	root := w.cfg.Work.PackageRoot
	if root == "" {
		root = "/"
	}
	for _, p := range []string{filepath.Join(root, "etc/os-release"), "/etc/os-release"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VERSION_CODENAME="); ok {
				return strings.Trim(v, `"'`)
			}
		}
	}
	return ""
}

// inventory reports the instance's packages and their updates.
func (w *worker) inventory(ctx context.Context, trigger, wr string) {
	start := time.Now()
	err := w.sendInventory(ctx, trigger, wr)
	w.m.inventorySeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		if ctx.Err() == nil {
			w.m.inventoryErrors.Inc()
			w.log.Error("inventory failed; retried at the next one", "trigger", trigger, "err", err)
		}
		return
	}
	w.m.inventories.WithLabelValues(trigger).Inc()
}

func (w *worker) sendInventory(ctx context.Context, trigger, wr string) error {
	mgr, err := w.manager(nil, nil)
	if err != nil {
		return err
	}
	inv, err := mgr.Inventory(ctx)
	if err != nil {
		return err
	}
	v := InventoryMessage(w.cfg, inv, trigger, wr, w.now())
	if err := v.Validate(); err != nil {
		return err
	}
	security := 0
	for _, p := range v.Packages {
		if p.UpdateType == schemas.UpdateSecurity {
			security++
		}
	}
	w.m.inventoryPackages.Set(float64(len(v.Packages)))
	w.m.securityUpdates.Set(float64(security))
	w.log.Info("inventory reported", "trigger", trigger, "packages", len(v.Packages), "updates", len(inv.Updates), "security_updates", security)
	w.rep.addMessage(w.cfg.Host, "inventory", trigger, v)
	return nil
}

// InventoryMessage is inv as the agent of cfg reports it: each installed
// package with its available update, and the instance as agent.instance
// names it.
func InventoryMessage(cfg Config, inv pkgmgr.Inventory, trigger, workRequestID string, now time.Time) schemas.Inventory {
	name := cfg.Instance.Name
	if name == "" {
		name = cfg.Host
	}
	v := schemas.Inventory{Inventory: trigger, Host: cfg.Host, InstanceID: cfg.Instance.ID, InstanceName: name,
		CompartmentPath: cfg.Instance.CompartmentPath, GroupIDs: cfg.Instance.GroupIDs, OSFamily: "debian",
		WorkRequestID: workRequestID, Packages: []schemas.InventoryPackage{}, Time: now.UTC().Truncate(time.Millisecond)}
	if n := len(cfg.Instance.CompartmentPath); n > 0 {
		v.CompartmentID = cfg.Instance.CompartmentPath[n-1]
	}
	updates := map[string]pkgmgr.Update{}
	for _, u := range inv.Updates {
		updates[u.Name] = u
	}
	for _, p := range inv.Installed {
		ip := schemas.InventoryPackage{Name: p.Name, Version: p.Version, Arch: p.Arch}
		if u, ok := updates[p.Name]; ok {
			ip.UpdateVersion, ip.UpdateType, ip.CVEs = u.Available, string(u.Type), u.CVEs
		}
		v.Packages = append(v.Packages, ip)
	}
	return v
}
