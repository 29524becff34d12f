package console

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/policy/scheduler"
	"github.com/auditpipe/auditpipe/schemas"
)

const jobsCompartment = "ocid1.compartment.oc1..console"

// job makes a daily UPDATEALL SECURITY job on an ungoverned instance,
// first run tomorrow, through the scheduler service.
func (h *harness) job(name string) scheduler.Job {
	h.t.Helper()
	host := strings.ReplaceAll(name, " ", "-") + ".example.com"
	if _, err := h.sched.CreateInstance(h.ctx, idAdmin, scheduler.InstanceInput{ID: host, DisplayName: host, Host: host, CompartmentID: jobsCompartment}); err != nil {
		h.t.Fatal(err)
	}
	j, err := h.sched.CreateJob(h.ctx, idAdmin, scheduler.JobInput{DisplayName: name, CompartmentID: jobsCompartment,
		ScheduleType: scheduler.Recurring, IntervalType: scheduler.Day, IntervalValue: 1,
		TimeNextExecution: time.Now().UTC().Add(24 * time.Hour).Truncate(time.Minute),
		OperationType:     schemas.OperationUpdateAll, UpdateType: schemas.UpdateSecurity, ManagedInstances: []string{host}})
	if err != nil {
		h.t.Fatal(err)
	}
	return j
}

// post sends a console form and returns the status and body.
func (h *harness) post(c *http.Client, path string, form url.Values) (int, string) {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", h.srv.URL)
	resp, err := c.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAdminRunsJobNow: an admin sees a job with its next executions,
// runs it now and sees its work request, opens it and cancels it.
func TestAdminRunsJobNow(t *testing.T) {
	h := newHarness(t)
	b := newBrowser(t)
	j := h.job("nightly security")
	up, err := h.sched.Upcoming(h.ctx, j.ID, upcomingShown)
	if err != nil || len(up) != upcomingShown {
		t.Fatalf("upcoming: %v, %v", up, err)
	}
	b.signIn(h, idAdmin)
	b.run(chromedp.Click(chromedp.Search(`//nav/a[normalize-space(.)="Jobs"]`)), chromedp.WaitVisible(chromedp.CSS(`#jobs`)))
	row := fmt.Sprintf(`#jobs tr[data-id="%s"]`, j.ID)
	for _, u := range up {
		if n := b.count(fmt.Sprintf(`%s time[datetime="%s"]`, row, u.Time.UTC().Format(time.RFC3339))); n != 1 {
			t.Errorf("the Jobs page shows the execution of %s %d times, want once", u.Time, n)
		}
	}
	b.check("jobs")
	b.shot("jobs")
	b.run(chromedp.EmulateViewport(390, 844))
	b.check("jobs at phone width")
	b.run(chromedp.EmulateViewport(1200, 900))

	b.run(chromedp.Click(chromedp.CSS(row+` a`)), chromedp.WaitVisible(chromedp.CSS(`#run-now`)))
	b.check("job")
	b.run(chromedp.Click(chromedp.CSS(`#run-now`)), chromedp.WaitVisible(chromedp.CSS(`table.work td.status`)))
	wrs, _, err := h.sched.ListWorkRequests(h.ctx, scheduler.WorkRequestFilter{JobID: j.ID})
	if err != nil || len(wrs) != 1 {
		t.Fatalf("after run now: work requests %v, %v; want one", wrs, err)
	}
	// The agent reports: 40 %, a log line and an error, each with its time.
	at := time.Date(2026, 12, 2, 7, 30, 15, 0, time.UTC)
	wr, err := h.sched.ReportProgress(h.ctx, auth.Identity{Name: "agents", Role: auth.RoleAgent}, schemas.WorkProgress{
		WorkRequestID: wrs[0].ID, Host: wrs[0].Host, Seq: 1, Status: schemas.WorkInProgress, PercentComplete: 40, Time: at,
		Logs:   []schemas.LogLine{{Time: at, Message: "Reading package lists"}},
		Errors: []schemas.LogLine{{Time: at.Add(time.Second), Code: "MIRROR_SLOW", Message: "deb.debian.org answered slowly"}}})
	if err != nil {
		t.Fatal(err)
	}
	b.run(chromedp.Reload(), chromedp.WaitVisible(chromedp.Search(`//table[@class="work"]//td[normalize-space(.)="40 %"]`)))
	if got := b.text(`table.work td.status`); got != string(wr.Status) {
		t.Errorf("the job page shows status %q, the store %q", got, wr.Status)
	}
	b.check("job, run")
	b.shot("job")

	b.run(chromedp.Click(chromedp.CSS(`table.work td a`)), chromedp.WaitVisible(chromedp.CSS(`#logs`)))
	for sel, want := range map[string]string{
		`#logs li time[datetime="2026-12-02T07:30:15Z"]`:   "Reading package lists",
		`#errors li time[datetime="2026-12-02T07:30:16Z"]`: "MIRROR_SLOW",
	} {
		if n := b.count(sel); n != 1 {
			t.Errorf("%s (%s): %d, want 1", sel, want, n)
		}
	}
	if logs, errs := b.text(`#logs`), b.text(`#errors`); !strings.Contains(logs, "Reading package lists") || !strings.Contains(errs, "MIRROR_SLOW deb.debian.org answered slowly") {
		t.Errorf("the work request page shows log %q and errors %q", logs, errs)
	}
	b.check("work request")
	b.shot("workrequest")
	b.run(chromedp.Click(chromedp.Search(`//button[normalize-space(.)="Cancel"]`)),
		chromedp.WaitVisible(chromedp.Search(`//dd[@id="status"][normalize-space(.)!="`+string(wrs[0].Status)+`"]`)))
	got, err := h.sched.GetWorkRequest(h.ctx, wrs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != scheduler.Canceled && got.Status != scheduler.Canceling {
		t.Fatalf("after cancel: %s", got.Status)
	}
	if s := b.text(`#status`); s != string(got.Status) {
		t.Errorf("the page shows %q, the store %q", s, got.Status)
	}
	b.check("work request, canceled")
}

// TestJobsByRole: operators have no Jobs menu item and a 404 on every
// Jobs URL and form; auditors and approvers read without forms.
func TestJobsByRole(t *testing.T) {
	h := newHarness(t)
	j := h.job("weekly updates")
	e, err := h.sched.RunNow(h.ctx, idAdmin, j.ID, j.Version)
	if err != nil {
		t.Fatal(err)
	}
	if j, err = h.sched.GetJob(h.ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	wrs, _, err := h.sched.ListWorkRequests(h.ctx, scheduler.WorkRequestFilter{ExecutionID: e.ID})
	if err != nil || len(wrs) != 1 {
		t.Fatalf("work requests of run now: %v, %v", wrs, err)
	}
	wr := wrs[0]
	for _, who := range []auth.Identity{idOperator, idAuditor, idApprover} {
		c, csrf := h.client(who)
		home := h.get(c, Prefix+"/", http.StatusOK)
		reads := who.Role != auth.RoleOperator
		if got := strings.Contains(home, `href="/console/jobs"`); got != reads {
			t.Errorf("%s: Jobs menu item %v, want %v", who.Role, got, reads)
		}
		want := http.StatusNotFound
		if reads {
			want = http.StatusOK
		}
		page := h.get(c, Prefix+"/jobs", want)
		h.get(c, Prefix+"/jobs/"+j.ID, want)
		if strings.Contains(page, "weekly updates") != reads {
			t.Errorf("%s: the Jobs page shows the job: %v", who.Role, !reads)
		}
		if strings.Contains(page, "/run") {
			t.Errorf("%s: the Jobs page offers run now", who.Role)
		}
		if wp := h.get(c, Prefix+"/workrequests/"+wr.ID, want); strings.Contains(wp, "/cancel") {
			t.Errorf("%s: the work request page offers cancel", who.Role)
		}
		if status, _ := h.post(c, Prefix+"/workrequests/"+wr.ID+"/cancel", url.Values{"csrf": {csrf}}); status != http.StatusNotFound && status != http.StatusForbidden {
			t.Errorf("%s: cancel: %d, want 403 or 404", who.Role, status)
		}
		for _, action := range []string{"run", "skip", "delete"} {
			status, _ := h.post(c, Prefix+"/jobs/"+j.ID+"/"+action, url.Values{"csrf": {csrf}, "version": {fmt.Sprint(j.Version)}, "confirm": {"yes"}})
			if status != http.StatusNotFound && status != http.StatusForbidden {
				t.Errorf("%s: %s: %d, want 403 or 404", who.Role, action, status)
			}
		}
	}
	if got, err := h.sched.GetJob(h.ctx, j.ID); err != nil || got.Version != j.Version {
		t.Fatalf("the job changed: %+v, %v", got, err)
	}
	if got, err := h.sched.GetWorkRequest(h.ctx, wr.ID); err != nil || got.Status != wr.Status || got.Version != wr.Version {
		t.Fatalf("the work request changed: %s (was %s), %v", got.Status, wr.Status, err)
	}
}

// TestJobActionsChecked: a stale version, a missing confirmation and a
// missing CSRF token are refused and change nothing; the right ones act.
func TestJobActionsChecked(t *testing.T) {
	h := newHarness(t)
	j := h.job("monthly kernel")
	c, csrf := h.client(idAdmin)
	path := Prefix + "/jobs/" + j.ID
	tests := []struct {
		name   string
		action string
		form   url.Values
		status int
		msg    string
	}{
		{"no CSRF token", "run", url.Values{"version": {fmt.Sprint(j.Version)}}, http.StatusForbidden, "CSRF token"},
		{"stale version", "skip", url.Values{"csrf": {csrf}, "version": {fmt.Sprint(j.Version + 1)}}, http.StatusPreconditionFailed, "the job changed since this page showed it"},
		{"no version", "run", url.Values{"csrf": {csrf}}, http.StatusBadRequest, "no job version"},
		{"delete unconfirmed", "delete", url.Values{"csrf": {csrf}, "version": {fmt.Sprint(j.Version)}}, http.StatusBadRequest, "tick the box"},
		{"no such action", "explode", url.Values{"csrf": {csrf}, "version": {fmt.Sprint(j.Version)}}, http.StatusNotFound, "no such action"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := h.post(c, path+"/"+tt.action, tt.form)
			if status != tt.status || !strings.Contains(body, tt.msg) {
				t.Fatalf("%d, want %d with %q:\n%s", status, tt.status, tt.msg, body)
			}
			if got, err := h.sched.GetJob(h.ctx, j.ID); err != nil || got.Version != j.Version {
				t.Fatalf("the job changed: version %d, %v", got.Version, err)
			}
		})
	}
	next := j.TimeNextExecution
	if status, body := h.post(c, path+"/skip", url.Values{"csrf": {csrf}, "version": {fmt.Sprint(j.Version)}}); status != http.StatusSeeOther {
		t.Fatalf("skip: %d\n%s", status, body)
	}
	j2, err := h.sched.GetJob(h.ctx, j.ID)
	if err != nil || !j2.TimeNextExecution.After(next) {
		t.Fatalf("after skip: next %s (was %s), %v", j2.TimeNextExecution, next, err)
	}
	// The page's version from before the skip is stale now.
	if status, body := h.post(c, path+"/delete", url.Values{"csrf": {csrf}, "version": {fmt.Sprint(j.Version)}, "confirm": {"yes"}}); status != http.StatusPreconditionFailed {
		t.Fatalf("delete on the old version: %d\n%s", status, body)
	}
	if status, body := h.post(c, path+"/delete", url.Values{"csrf": {csrf}, "version": {fmt.Sprint(j2.Version)}, "confirm": {"yes"}}); status != http.StatusSeeOther {
		t.Fatalf("delete: %d\n%s", status, body)
	}
	if got, err := h.sched.GetJob(h.ctx, j.ID); err != nil || got.LifecycleState != scheduler.JobDeleted {
		t.Fatalf("after delete: %s, %v", got.LifecycleState, err)
	}
	if page := h.get(c, Prefix+"/jobs", http.StatusOK); strings.Contains(page, "monthly kernel") {
		t.Errorf("the Jobs page still lists the deleted job")
	}
	all := h.get(c, Prefix+"/jobs?all=1", http.StatusOK)
	if !strings.Contains(all, "monthly kernel") || !strings.Contains(all, "DELETED") || strings.Contains(all, "/jobs/"+j.ID+"/run") {
		t.Errorf("with ?all=1 the deleted job is not listed as DELETED without actions:\n%s", all)
	}
}
