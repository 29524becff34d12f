package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/auditpipe/auditpipe/agent/pkgmgr"
	"github.com/auditpipe/auditpipe/agent/pkgmgr/pkgmgrtest"
	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

const testInstance = "ocid1.instance.db01"

// workPackages are the local repository of the work tests: hello 1.0 and
// 2.0 (2.0 fixes two CVEs), tool 1.0, broken (its postinst exits 1), slow
// (its postinst sleeps), and whoami (its postinst prints its loginuid).
var workPackages = []pkgmgrtest.Package{
	{Name: "hello", Version: "1.0", Postinst: `echo "hello 1.0 configured"`},
	{Name: "hello", Version: "2.0", Postinst: `echo "hello 2.0 configured"`},
	{Name: "tool", Version: "1.0"},
	{Name: "broken", Version: "1.0", Postinst: `echo "broken: cannot configure" >&2; exit 1`},
	{Name: "slow", Version: "1.0", Postinst: `echo "slow: configuring"; sleep 120`},
	{Name: "whoami", Version: "1.0", Postinst: `echo "whoami: loginuid=$(cat /proc/self/loginuid)"`},
}

// workTracker is the security feed, in the Debian security tracker's
// shape.
const workTracker = `{"hello": {
  "CVE-2026-1001": {"releases": {"bookworm": {"status": "resolved", "fixed_version": "2.0", "urgency": "high"}}},
  "CVE-2026-1000": {"releases": {"bookworm": {"status": "resolved", "fixed_version": "2.0", "urgency": "medium"}}}}}`

// workHarness is a harness whose agent runs work: its instance, a
// private package root over a local repository, a state directory.
type workHarness struct {
	*harness
	root string
	seen []schemas.WorkProgress
	invs []schemas.Inventory
}

func newWorkHarness(t *testing.T, repo string) *workHarness { return workOn(newHarness(t), repo) }

// workOn makes base's agent run work over repo.
func workOn(base *harness, repo string) *workHarness {
	t := base.t
	t.Helper()
	h := &workHarness{harness: base, root: t.TempDir()}
	if err := pkgmgr.PrepareRoot(h.root, "deb [trusted=yes] file:"+repo+" ./\n"); err != nil {
		t.Fatal(err)
	}
	tracker := filepath.Join(t.TempDir(), "tracker.json")
	if err := os.WriteFile(tracker, []byte(workTracker), 0o644); err != nil {
		t.Fatal(err)
	}
	h.cfg.Instance = InstanceConfig{ID: testInstance, Name: "db01", CompartmentPath: []string{"c-root", "c-prod"}, GroupIDs: []string{"g-dbs"}}
	h.cfg.Work.StateDir = filepath.Join(t.TempDir(), "work")
	h.cfg.Work.PackageRoot = h.root
	h.cfg.Work.Release = "bookworm"
	h.cfg.Work.SecurityTracker = tracker
	h.cfg.Work.ProgressInterval = 100 * time.Millisecond
	return h
}

// runOf is a RUN of op on the test instance, due now.
func runOf(id, op string, pkgs ...string) schemas.Dispatch {
	now := time.Now().UTC().Truncate(time.Millisecond)
	d := schemas.Dispatch{WorkRequestID: id, Action: schemas.DispatchRun, JobID: "job1", ExecutionID: "exec1",
		InstanceID: testInstance, Host: testHost, OperationType: op, PackageNames: pkgs,
		NotAfter: now.Add(time.Hour), Deadline: now.Add(time.Hour), Time: now}
	if op == schemas.OperationUpdateAll {
		d.UpdateType, d.PackageNames = pkgs[0], nil
	}
	return d
}

func cancelOf(id string) schemas.Dispatch {
	return schemas.Dispatch{WorkRequestID: id, Action: schemas.DispatchCancel, JobID: "job1", ExecutionID: "exec1",
		InstanceID: testInstance, Host: testHost, Time: time.Now().UTC().Truncate(time.Millisecond)}
}

func signedDispatch(t *testing.T, s *sign.Signer, d schemas.Dispatch) kafka.Record {
	t.Helper()
	if d.PublishSeq == 0 {
		d.PublishSeq = testSeqs.Next()
	}
	r, err := grants.DispatchRecord(s, d)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// dispatch publishes signed dispatches.
func (h *workHarness) dispatch(ds ...schemas.Dispatch) {
	h.t.Helper()
	var recs []kafka.Record
	for _, d := range ds {
		recs = append(recs, signedDispatch(h.t, h.signer, d))
	}
	h.publishDispatch(recs...)
}

func (h *workHarness) publishDispatch(recs ...kafka.Record) {
	h.t.Helper()
	w, err := h.kcfg.NewWriter(schemas.TopicDispatch)
	if err != nil {
		h.t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.Write(ctx, recs...); err != nil {
		h.t.Fatal(err)
	}
}

func final(status string) bool { return status != schemas.WorkInProgress }

// waitFor reads work progress until one satisfies ok, and returns it.
func (h *workHarness) waitFor(what string, ok func(p schemas.WorkProgress) bool) schemas.WorkProgress {
	h.t.Helper()
	for _, p := range h.seen {
		if ok(p) {
			return p
		}
	}
	deadline := time.After(90 * time.Second)
	for {
		select {
		case p := <-h.progress:
			// Reports are at least once: one written as an agent stops
			// may come again, the same.
			if i := slices.IndexFunc(h.seen, func(q schemas.WorkProgress) bool {
				return q.WorkRequestID == p.WorkRequestID && q.Seq == p.Seq
			}); i >= 0 {
				if a, b := fmt.Sprint(h.seen[i]), fmt.Sprint(p); a != b {
					h.t.Errorf("seq %d of %s reported twice, differently:\n%s\n%s", p.Seq, p.WorkRequestID, a, b)
				}
				continue
			}
			h.seen = append(h.seen, p)
			if ok(p) {
				return p
			}
		case <-deadline:
			h.t.Fatalf("no work progress %s within 90s; seen: %s", what, h.dump())
		}
	}
}

func (h *workHarness) dump() string {
	var b strings.Builder
	for _, p := range h.seen {
		j, _ := json.Marshal(p)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

// waitFinal waits for id's final report and returns all of id's reports,
// checked: seq 1, 2, … with no gap, IN_PROGRESS until the last, percent
// never falling.
func (h *workHarness) waitFinal(id string) []schemas.WorkProgress {
	h.t.Helper()
	h.waitFor(id+" final", func(p schemas.WorkProgress) bool { return p.WorkRequestID == id && final(p.Status) })
	reps := h.of(id)
	for i, p := range reps {
		if p.Seq != int64(i+1) {
			h.t.Errorf("%s: report %d has seq %d:\n%s", id, i, p.Seq, h.dump())
		}
		if final(p.Status) != (i == len(reps)-1) {
			h.t.Errorf("%s: report seq %d is %s:\n%s", id, p.Seq, p.Status, h.dump())
		}
		if i > 0 && p.PercentComplete < reps[i-1].PercentComplete {
			h.t.Errorf("%s: percent fell from %d to %d", id, reps[i-1].PercentComplete, p.PercentComplete)
		}
	}
	return reps
}

func (h *workHarness) of(id string) []schemas.WorkProgress {
	var out []schemas.WorkProgress
	for _, p := range h.seen {
		if p.WorkRequestID == id {
			out = append(out, p)
		}
	}
	return out
}

func logsOf(reps []schemas.WorkProgress) string {
	var b strings.Builder
	for _, p := range reps {
		for _, l := range p.Logs {
			b.WriteString(l.Message + "\n")
		}
	}
	return b.String()
}

// waitInventory waits for an inventory of trigger (and work request).
func (h *workHarness) waitInventory(trigger, wr string) schemas.Inventory {
	h.t.Helper()
	deadline := time.After(90 * time.Second)
	for {
		for _, v := range h.invs {
			if v.Inventory == trigger && v.WorkRequestID == wr {
				return v
			}
		}
		select {
		case v := <-h.inventories:
			h.invs = append(h.invs, v)
		case <-deadline:
			h.t.Fatalf("no %s inventory of %q within 90s (%d seen)", trigger, wr, len(h.invs))
		}
	}
}

func packageOf(v schemas.Inventory, name string) (schemas.InventoryPackage, bool) {
	i := slices.IndexFunc(v.Packages, func(p schemas.InventoryPackage) bool { return p.Name == name })
	if i < 0 {
		return schemas.InventoryPackage{}, false
	}
	return v.Packages[i], true
}

// TestWorkRuns: signed dispatches in through the broker, each run by real
// apt-get and dpkg in the private root, the progress and the result out,
// with the logs: success (then the inventory), a failing maintainer
// script, the deadline, a cancellation, a cutoff passed before the run,
// and an UPDATEALL of the security updates.
func TestWorkRuns(t *testing.T) {
	pkgmgrtest.RequireApt(t)
	repo := pkgmgrtest.BuildRepo(t, workPackages)
	tests := []struct {
		name  string
		setup []string // installed first, by a dispatch of its own
		d     func() schemas.Dispatch
		// cancelOn sends a CANCEL once a log line contains it.
		cancelOn   string
		wantStatus string
		wantCode   string
		wantError  string
		wantLogs   []string
		check      func(t *testing.T, h *workHarness, id string)
	}{
		{
			name: "install", d: func() schemas.Dispatch { return runOf("wr-install", schemas.OperationInstall, "hello=1.0") },
			wantStatus: schemas.WorkSucceeded,
			wantLogs: []string{"work request wr-install (job job1, execution exec1): INSTALL hello=1.0 on instance " + testInstance,
				"Unpacking hello (1.0)", "Setting up hello (1.0)", "hello 1.0 configured"},
			check: func(t *testing.T, h *workHarness, id string) {
				v := h.waitInventory(schemas.InventoryWorkRequest, id)
				p, ok := packageOf(v, "hello")
				want := schemas.InventoryPackage{Name: "hello", Version: "1.0", Arch: "all", UpdateVersion: "2.0", UpdateType: "SECURITY", CVEs: []string{"CVE-2026-1000", "CVE-2026-1001"}}
				if !ok || fmt.Sprint(p) != fmt.Sprint(want) {
					t.Errorf("inventory after the run: hello %+v, want %+v", p, want)
				}
				if v.InstanceID != testInstance || v.InstanceName != "db01" || v.CompartmentID != "c-prod" ||
					!slices.Equal(v.CompartmentPath, []string{"c-root", "c-prod"}) || !slices.Equal(v.GroupIDs, []string{"g-dbs"}) || v.OSFamily != "debian" {
					t.Errorf("inventory names the instance %+v", v)
				}
			},
		},
		{
			name: "failing maintainer script", d: func() schemas.Dispatch { return runOf("wr-broken", schemas.OperationInstall, "broken") },
			wantStatus: schemas.WorkFailed, wantCode: CodePackageManager, wantError: "broken",
			wantLogs: []string{"broken: cannot configure", "post-installation script subprocess returned error exit status 1"},
		},
		{
			name: "deadline", d: func() schemas.Dispatch {
				d := runOf("wr-deadline", schemas.OperationInstall, "slow")
				d.Deadline = time.Now().Add(4 * time.Second)
				return d
			},
			wantStatus: schemas.WorkFailed, wantCode: CodeTimedOut, wantError: "deadline",
		},
		{
			name: "cancel", d: func() schemas.Dispatch { return runOf("wr-cancel", schemas.OperationInstall, "slow") },
			cancelOn: "slow: configuring", wantStatus: schemas.WorkCanceled,
			wantLogs: []string{"Setting up slow (1.0)", "slow: configuring", "canceled: the scheduler canceled work request wr-cancel"},
		},
		{
			name: "cutoff passed", d: func() schemas.Dispatch {
				d := runOf("wr-late", schemas.OperationInstall, "hello")
				d.NotAfter = time.Now().Add(-time.Minute)
				return d
			},
			wantStatus: schemas.WorkFailed, wantCode: CodeCutoffPassed, wantError: "not started: its cutoff",
		},
		{
			name: "update all security updates", setup: []string{"hello=1.0", "tool"},
			d: func() schemas.Dispatch {
				return runOf("wr-security", schemas.OperationUpdateAll, schemas.UpdateSecurity)
			},
			wantStatus: schemas.WorkSucceeded, wantLogs: []string{"UPDATEALL SECURITY", "Unpacking hello (2.0) over (1.0)", "hello 2.0 configured"},
			check: func(t *testing.T, h *workHarness, id string) {
				v := h.waitInventory(schemas.InventoryWorkRequest, id)
				if p, _ := packageOf(v, "hello"); p.Version != "2.0" || p.UpdateVersion != "" {
					t.Errorf("hello after the security update: %+v", p)
				}
				if p, _ := packageOf(v, "tool"); p.Version != "1.0" {
					t.Errorf("tool after the security update: %+v", p)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newWorkHarness(t, repo)
			h.start(nil)
			// The inventory at start fetched the package lists.
			h.waitInventory(schemas.InventoryScheduled, "")
			if len(tc.setup) > 0 {
				h.dispatch(runOf("wr-setup", schemas.OperationInstall, tc.setup...))
				if reps := h.waitFinal("wr-setup"); reps[len(reps)-1].Status != schemas.WorkSucceeded {
					t.Fatalf("setup: %s", h.dump())
				}
			}
			d := tc.d()
			h.dispatch(d)
			if tc.cancelOn != "" {
				h.waitFor("logging "+tc.cancelOn, func(p schemas.WorkProgress) bool {
					return p.WorkRequestID == d.WorkRequestID && strings.Contains(logsOf([]schemas.WorkProgress{p}), tc.cancelOn)
				})
				h.dispatch(cancelOf(d.WorkRequestID))
			}
			reps := h.waitFinal(d.WorkRequestID)
			last := reps[len(reps)-1]
			if last.Status != tc.wantStatus {
				t.Fatalf("status %s, want %s:\n%s", last.Status, tc.wantStatus, h.dump())
			}
			switch {
			case tc.wantCode == "" && len(last.Errors) > 0:
				t.Errorf("errors on %s: %+v", last.Status, last.Errors)
			case tc.wantCode != "" && (len(last.Errors) != 1 || last.Errors[0].Code != tc.wantCode || !strings.Contains(last.Errors[0].Message, tc.wantError)):
				t.Errorf("errors %+v, want one %s with %q", last.Errors, tc.wantCode, tc.wantError)
			}
			if tc.wantStatus == schemas.WorkSucceeded && last.PercentComplete != 100 {
				t.Errorf("SUCCEEDED at %d%%", last.PercentComplete)
			}
			logs := logsOf(reps)
			for _, w := range tc.wantLogs {
				if !strings.Contains(logs, w) {
					t.Errorf("logs lack %q:\n%s", w, logs)
				}
			}
			for _, p := range reps {
				for _, l := range append(slices.Clone(p.Logs), p.Errors...) {
					if l.Time.IsZero() || l.Time.After(p.Time) {
						t.Errorf("log line %q stamped %v, its report %v", l.Message, l.Time, p.Time)
					}
				}
			}
			if tc.check != nil {
				tc.check(t, h, d.WorkRequestID)
			}
		})
	}
}

// TestWorkOneAtATime: two dispatches at once run one after the other
// (two package runs would fight over dpkg's lock): the second's first
// report comes after the first's last; a CANCEL of the queued one takes
// it off the queue before it ran.
func TestWorkOneAtATime(t *testing.T) {
	pkgmgrtest.RequireApt(t)
	repo := pkgmgrtest.BuildRepo(t, workPackages)
	h := newWorkHarness(t, repo)
	h.start(nil)
	h.waitInventory(schemas.InventoryScheduled, "")
	h.dispatch(runOf("wr-a", schemas.OperationInstall, "hello=1.0"), runOf("wr-b", schemas.OperationInstall, "tool"),
		runOf("wr-slow", schemas.OperationInstall, "slow"), runOf("wr-queued", schemas.OperationInstall, "hello=2.0"))
	h.waitFor("slow running", func(p schemas.WorkProgress) bool {
		return p.WorkRequestID == "wr-slow" && strings.Contains(logsOf([]schemas.WorkProgress{p}), "slow: configuring")
	})
	h.dispatch(cancelOf("wr-queued"), cancelOf("wr-slow"))
	for _, id := range []string{"wr-a", "wr-b", "wr-slow", "wr-queued"} {
		h.waitFinal(id)
	}
	// In the topic's order (one host, one partition): each run's reports
	// are together, never interleaved with another's.
	var order []string
	for _, p := range h.seen {
		if len(order) == 0 || order[len(order)-1] != p.WorkRequestID {
			order = append(order, p.WorkRequestID)
		}
	}
	if want := []string{"wr-a", "wr-b", "wr-slow", "wr-queued"}; !slices.Equal(order, want) && !slices.Equal(order, []string{"wr-a", "wr-b", "wr-slow", "wr-queued", "wr-slow"}) {
		// The queued one's CANCELED may come while slow still runs.
		t.Errorf("reports in order %v, want %v:\n%s", order, want, h.dump())
	}
	if q := h.of("wr-queued"); len(q) != 1 || q[0].Status != schemas.WorkCanceled || !strings.Contains(logsOf(q), "before it started") {
		t.Errorf("queued work canceled: %s", h.dump())
	}
	if s := h.of("wr-slow"); s[len(s)-1].Status != schemas.WorkCanceled {
		t.Errorf("running work canceled: %s", h.dump())
	}
}

// TestWorkRedeliveredAndRestarted: a dispatch delivered again, or read
// again when the agent restarts, does not run twice; a run the agent
// stopped in is reported FAILED by the next start, with the next seq.
func TestWorkRedeliveredAndRestarted(t *testing.T) {
	pkgmgrtest.RequireApt(t)
	repo := pkgmgrtest.BuildRepo(t, workPackages)
	h := newWorkHarness(t, repo)
	stop, a := h.startAgent(nil)
	h.waitInventory(schemas.InventoryScheduled, "")
	once := runOf("wr-once", schemas.OperationInstall, "hello=1.0")
	h.dispatch(once)
	h.waitFinal("wr-once")
	h.dispatch(once) // delivered again
	h.dispatch(runOf("wr-slow", schemas.OperationInstall, "slow"))
	h.waitFor("slow running", func(p schemas.WorkProgress) bool {
		return p.WorkRequestID == "wr-slow" && strings.Contains(logsOf([]schemas.WorkProgress{p}), "slow: configuring")
	})
	if got := testutil.ToFloat64(a.m.dispatches.WithLabelValues("redelivered")); got != 1 {
		t.Errorf("redelivered dispatches %v, want 1", got)
	}
	stop() // the agent stops in the run, as a crash would: its state says RUNNING
	before := len(h.of("wr-slow"))

	_, a = h.startAgent(nil)
	reps := h.waitFinal("wr-slow")
	last := reps[len(reps)-1]
	if last.Status != schemas.WorkFailed || last.Seq != int64(before+1) || len(last.Errors) != 1 || last.Errors[0].Code != CodeAgentRestarted ||
		!strings.Contains(last.Errors[0].Message, "the agent stopped during the run") {
		t.Errorf("after the restart: %+v, want FAILED %s with seq %d", last, CodeAgentRestarted, before+1)
	}
	// The topic is read from its start again: both RUNs of wr-once and
	// the one of wr-slow are known and not run; a new one runs.
	// A marker that runs nothing (its cutoff passed: apt-get would
	// configure the half-installed slow first).
	after := runOf("wr-after", schemas.OperationInstall, "tool")
	after.NotAfter = time.Now().Add(-time.Second)
	h.dispatch(after)
	h.waitFinal("wr-after")
	if n := len(h.of("wr-once")); n != len(h.waitFinal("wr-once")) || h.of("wr-once")[0].Seq != 1 {
		t.Errorf("wr-once reported again: %s", h.dump())
	}
	if reps := h.of("wr-once"); slices.ContainsFunc(reps[:len(reps)-1], func(p schemas.WorkProgress) bool { return final(p.Status) }) {
		t.Errorf("wr-once finished twice: %s", h.dump())
	}
	// wr-once's two RUNs come before wr-slow's, the instance's dispatch
	// applied last, which the replay memory (DispatchStateFile) names:
	// they are skipped as superseded (grants.ErrSuperseded), not handed
	// over; wr-slow's, read again, is known by its state.
	if got := testutil.ToFloat64(a.m.dispatches.WithLabelValues("redelivered")); got != 1 {
		t.Errorf("redelivered dispatches after the restart %v, want 1 (wr-slow; wr-once's are superseded)", got)
	}
	if n := len(h.of("wr-slow")); n != before+1 {
		t.Errorf("wr-slow has %d reports, want %d", n, before+1)
	}
}

// TestWorkStateLocked: a second agent on the same state directory does
// not start (two agents would run two package managers on one host).
func TestWorkStateLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := openWorkState(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if _, err := openWorkState(dir); err == nil || !strings.Contains(err.Error(), "locked by another agent") {
		t.Fatalf("second open: %v", err)
	}
}

// TestWorkStateNarrowed: a state directory made before with a mode
// others can read is narrowed to the agent's own (its files name
// requests, logins and packages).
func TestWorkStateNarrowed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "work")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := openWorkState(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode %v (%v), want 0700", fi.Mode().Perm(), err)
	}
}

// TestDispatchForgeries: dispatches keyed by this instance that are
// unsigned, signed by an unknown key, tampered with, signed for another
// instance or naming another host are refused, counted by reason,
// dead-lettered and never run; one keyed by another instance is not this
// agent's and is skipped unread. A signed one after them runs.
func TestDispatchForgeries(t *testing.T) {
	pkgmgrtest.RequireApt(t)
	repo := pkgmgrtest.BuildRepo(t, workPackages)
	h := newWorkHarness(t, repo)
	_, a := h.startAgent(nil)
	h.waitInventory(schemas.InventoryScheduled, "")

	otherKey, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	other, err := sign.NewSigner(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	// Signed before wr-good's dispatch (a lower publish_seq), written after.
	replayed := signedDispatch(t, h.signer, runOf("wr-replayed", schemas.OperationInstall, "hello"))
	plain, _ := json.Marshal(runOf("wr-unsigned", schemas.OperationInstall, "hello"))
	tampered := signedDispatch(t, h.signer, runOf("wr-tampered", schemas.OperationInstall, "hello"))
	env, err := sign.Decode(tampered.Value)
	if err != nil {
		t.Fatal(err)
	}
	env.Payload = []byte(strings.Replace(string(env.Payload), `"hello"`, `"broken"`, 1))
	if tampered.Value, err = env.Marshal(); err != nil {
		t.Fatal(err)
	}
	otherHost := runOf("wr-other-host", schemas.OperationInstall, "hello")
	otherHost.Host = "dbhost02"
	otherInstance := runOf("wr-other-instance", schemas.OperationInstall, "hello")
	otherInstance.InstanceID = "ocid1.instance.db02"
	misKeyed := signedDispatch(t, h.signer, otherInstance)
	misKeyed.Key = []byte(testInstance)
	tests := []struct {
		reason string
		rec    kafka.Record
	}{
		{grants.ReasonUnsigned, kafka.Record{Key: []byte(testInstance), Value: plain}},
		{grants.ReasonUnknownKey, signedDispatch(t, other, runOf("wr-unknown-key", schemas.OperationInstall, "hello"))},
		{grants.ReasonBadSignature, tampered},
		{grants.ReasonKeyMismatch, misKeyed},
		{ReasonOtherHost, signedDispatch(t, h.signer, otherHost)},
	}
	for _, tc := range tests {
		h.publishDispatch(tc.rec)
	}
	// Not this instance's: skipped, not counted.
	h.publishDispatch(signedDispatch(t, h.signer, otherInstance))
	h.dispatch(runOf("wr-good", schemas.OperationInstall, "tool"))
	if reps := h.waitFinal("wr-good"); reps[len(reps)-1].Status != schemas.WorkSucceeded {
		t.Fatalf("the signed dispatch: %s", h.dump())
	}
	// Regression (issue 9): a validly signed dispatch written again later
	// was taken as new. One numbered below wr-good's is refused as
	// replayed and never runs.
	h.publishDispatch(replayed)
	for deadline := time.Now().Add(30 * time.Second); testutil.ToFloat64(a.m.dispatchRefused.WithLabelValues(grants.ReasonReplayed)) != 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the replayed dispatch was not refused")
		}
	}
	for _, p := range h.seen {
		if p.WorkRequestID != "wr-good" {
			t.Errorf("a refused dispatch ran: %+v", p)
		}
	}
	if v := h.waitInventory(schemas.InventoryWorkRequest, "wr-good"); func() bool { _, ok := packageOf(v, "hello"); return ok }() {
		t.Error("hello was installed by a refused dispatch")
	}
	for _, tc := range tests {
		if got := testutil.ToFloat64(a.m.dispatchRefused.WithLabelValues(tc.reason)); got != 1 {
			t.Errorf("refused for %s: %v, want 1", tc.reason, got)
		}
	}
	tests = append(tests, struct {
		reason string
		rec    kafka.Record
	}{grants.ReasonReplayed, replayed})
	var letters []string
	for len(letters) < len(tests) {
		select {
		case r := <-h.dead:
			var d schemas.DeadLetter
			if err := json.Unmarshal(r.Value, &d); err != nil {
				t.Fatal(err)
			}
			letters = append(letters, d.Reason)
		case <-time.After(30 * time.Second):
			t.Fatalf("dead letters %v, want %d", letters, len(tests))
		}
	}
	for _, tc := range tests {
		if !slices.Contains(letters, "dispatch_"+tc.reason) {
			t.Errorf("no dead letter dispatch_%s in %v", tc.reason, letters)
		}
	}
}

// TestInventorySchedule: besides at start and after each run, the
// inventory is reported every inventory_interval; without an instance
// the agent reports none.
func TestInventorySchedule(t *testing.T) {
	pkgmgrtest.RequireApt(t)
	h := newWorkHarness(t, pkgmgrtest.BuildRepo(t, workPackages[:1]))
	h.cfg.Work.InventoryInterval = 200 * time.Millisecond
	_, a := h.startAgent(nil)
	deadline := time.After(60 * time.Second)
	for n := 0; n < 3; {
		select {
		case v := <-h.inventories:
			if v.Inventory != schemas.InventoryScheduled || v.InstanceID != testInstance {
				t.Fatalf("inventory %+v", v)
			}
			n++
		case <-deadline:
			t.Fatalf("%d scheduled inventories in 60s, want 3", n)
		}
	}
	if got := testutil.ToFloat64(a.m.inventories.WithLabelValues(schemas.InventoryScheduled)); got < 3 {
		t.Errorf("auditpipe_agent_inventories_total{trigger=SCHEDULED} = %v, want at least 3", got)
	}

	plain := newHarness(t)
	_, b := plain.startAgent(nil)
	// A grant is applied (the agent runs) but no inventory comes.
	login := newLogin(t)
	plain.grant(diagGrant(login))
	plain.waitReport(login, schemas.AgentDeployed)
	if got := testutil.ToFloat64(b.m.inventories.WithLabelValues(schemas.InventoryScheduled)); got != 0 {
		t.Errorf("an agent without an instance reported %v inventories", got)
	}
}
