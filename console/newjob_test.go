package console

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/policy/scheduler"
	"github.com/auditpipe/auditpipe/schemas"
)

// instance registers a managed instance (ungoverned) for jobs to target.
func (h *harness) instance(host string) scheduler.Instance {
	h.t.Helper()
	in, err := h.sched.CreateInstance(h.ctx, idAdmin, scheduler.InstanceInput{ID: host, DisplayName: host, Host: host, CompartmentID: jobsCompartment})
	if err != nil {
		h.t.Fatal(err)
	}
	return in
}

// jobNamed returns the active job called name from the store.
func (h *harness) jobNamed(name string) (scheduler.Job, bool) {
	h.t.Helper()
	jobs, _, err := h.sched.ListJobs(h.ctx, scheduler.JobFilter{Page: policy.Page{Limit: 1000}})
	if err != nil {
		h.t.Fatal(err)
	}
	i := slices.IndexFunc(jobs, func(j scheduler.Job) bool { return j.DisplayName == name })
	if i < 0 {
		return scheduler.Job{}, false
	}
	return jobs[i], true
}

// TestAdminCreatesJob: an admin creates a weekly security update job in
// the console (its first execution typed in the job's own time zone,
// Europe/Berlin), finds it with the next executions the scheduler
// computes, and runs it now.
func TestAdminCreatesJob(t *testing.T) {
	h := newHarness(t)
	inst := h.instance("web01.example.com")
	h.instance("web02.example.com")
	b := newBrowser(t)
	b.signIn(h, idAdmin)
	b.run(chromedp.Click(chromedp.Search(`//nav/a[normalize-space(.)="Jobs"]`)), chromedp.WaitVisible(chromedp.CSS(`#new-job`)))
	b.run(chromedp.Click(chromedp.CSS(`#new-job`)), chromedp.WaitVisible(chromedp.CSS(`#j-name`)))
	b.check("new job")
	b.run(chromedp.EmulateViewport(390, 844))
	b.check("new job at phone width")
	b.run(chromedp.EmulateViewport(1200, 900))

	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	tomorrow := time.Now().In(berlin).AddDate(0, 0, 1)
	first := time.Date(tomorrow.Year(), tomorrow.Month(), tomorrow.Day(), 3, 0, 0, 0, berlin)
	b.run(chromedp.SendKeys(chromedp.CSS(`#j-name`), "weekly security"), chromedp.SendKeys(chromedp.CSS(`#j-compartment`), jobsCompartment),
		chromedp.Click(chromedp.CSS(`#j-recurring`)), chromedp.SetValue(chromedp.CSS(`#j-first`), first.Format(formTimeLayout)),
		chromedp.SetValue(chromedp.CSS(`#j-zone`), "Europe/Berlin"), chromedp.SetValue(chromedp.CSS(`#j-every`), "1"),
		chromedp.SetValue(chromedp.CSS(`#j-unit`), string(scheduler.Week)), chromedp.SetValue(chromedp.CSS(`#j-operation`), schemas.OperationUpdateAll),
		chromedp.SetValue(chromedp.CSS(`#j-update`), schemas.UpdateSecurity),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`input[name="target"][value="instance:%s"]`, inst.ID))))
	b.shot("job-new")
	b.run(chromedp.Click(chromedp.CSS(`#create-job`)), chromedp.WaitVisible(chromedp.CSS(`#run-now`)))
	j, ok := h.jobNamed("weekly security")
	if !ok {
		t.Fatal("the job made in the console is not in the store")
	}
	if j.ScheduleType != scheduler.Recurring || j.IntervalType != scheduler.Week || j.IntervalValue != 1 || j.TimeZone != "Europe/Berlin" ||
		!j.TimeFirstExecution.Equal(first) || j.OperationType != schemas.OperationUpdateAll || j.UpdateType != schemas.UpdateSecurity ||
		!slices.Equal(j.ManagedInstances, []string{inst.ID}) || len(j.ManagedInstanceGroups) != 0 || j.CreatedBy != idAdmin.Name {
		t.Fatalf("the store's job differs from the form (first execution %s): %+v", first.UTC(), j)
	}
	up, err := h.sched.Upcoming(h.ctx, j.ID, 10)
	if err != nil || len(up) != 10 {
		t.Fatalf("upcoming: %v, %v", up, err)
	}
	for i, u := range up {
		if n := b.count(fmt.Sprintf(`#upcoming time[datetime="%s"]`, u.Time.UTC().Format(time.RFC3339))); n != 1 {
			t.Errorf("the job page shows execution %d (%s) %d times, want once", i, u.Time, n)
		}
		if i > 0 && u.Time.Sub(up[i-1].Time) > 8*24*time.Hour {
			t.Errorf("executions %d and %d are %s apart, want a week", i-1, i, u.Time.Sub(up[i-1].Time))
		}
	}
	b.check("job made in the console")
	b.run(chromedp.Click(chromedp.CSS(`#run-now`)), chromedp.WaitVisible(chromedp.CSS(`table.work td.status`)))
	if wrs, _, err := h.sched.ListWorkRequests(h.ctx, scheduler.WorkRequestFilter{JobID: j.ID}); err != nil || len(wrs) != 1 || wrs[0].InstanceID != inst.ID {
		t.Fatalf("after run now: %+v, %v; want one work request on %s", wrs, err, inst.ID)
	}
	b.check("job made in the console, run")
}

// TestNewJobFormChecked: a one-time INSTALL of named packages made
// through the form is the job the form says; a form the scheduler
// refuses comes back with its message and the fields as sent; who may
// not create jobs is refused (operators: no Jobs pages at all); nothing
// is created by a refused form.
func TestNewJobFormChecked(t *testing.T) {
	h := newHarness(t)
	h.instance("db01.example.com")
	if _, err := h.sched.CreateGroup(h.ctx, idAdmin, scheduler.GroupInput{ID: "dbs", DisplayName: "databases", CompartmentID: jobsCompartment, ManagedInstances: []string{"db01.example.com"}}); err != nil {
		t.Fatal(err)
	}
	c, csrf := h.client(idAdmin)
	page := h.get(c, Prefix+"/jobs/new", http.StatusOK)
	for _, want := range []string{`value="instance:db01.example.com"`, `value="group:dbs"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the form lacks the target %s", want)
		}
	}
	soon := time.Now().UTC().Add(2 * time.Hour).Truncate(time.Minute)
	good := url.Values{"name": {"install jq"}, "compartment": {jobsCompartment}, "schedule": {"ONETIME"}, "first": {soon.Format(formTimeLayout)},
		"time_zone": {"UTC"}, "operation": {schemas.OperationInstall}, "packages": {"jq\r\ncurl"}, "target": {"group:dbs"},
		"max_concurrency": {"50%"}, "max_errors": {"1"}, "cutoff_minutes": {"30"}}
	with := func(change func(url.Values)) url.Values {
		v := cloneValues(good)
		v.Set("csrf", csrf)
		change(v)
		return v
	}
	tests := []struct {
		name   string
		form   url.Values
		status int
		want   []string
	}{
		{"no first execution", with(func(v url.Values) { v.Del("first") }), http.StatusBadRequest, []string{"first execution: required", `value="install jq"`}},
		{"unknown zone", with(func(v url.Values) { v.Set("time_zone", "Mars/Olympus") }), http.StatusBadRequest, []string{"not an IANA time zone"}},
		{"in the past", with(func(v url.Values) { v.Set("first", "2020-01-01T00:00") }), http.StatusBadRequest, []string{"is in the past"}},
		{"no target", with(func(v url.Values) { v.Del("target") }), http.StatusBadRequest, []string{"name the managed instances or the managed instance groups"}},
		{"instance and group", with(func(v url.Values) { v.Add("target", "instance:db01.example.com") }), http.StatusBadRequest, []string{"not both"}},
		{"no CSRF token", with(func(v url.Values) { v.Del("csrf") }), http.StatusForbidden, []string{"CSRF token"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := h.post(c, Prefix+"/jobs", tt.form)
			if status != tt.status {
				t.Errorf("%d, want %d\n%s", status, tt.status, body)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("the answer lacks %q", w)
				}
			}
			if _, ok := h.jobNamed("install jq"); ok {
				t.Fatal("a refused form created the job")
			}
		})
	}
	// Who may not create jobs: operators have no Jobs pages (404), readers
	// of jobs no form (403); both are refused when they post one.
	for _, tt := range []struct {
		who    auth.Identity
		status int
	}{{idOperator, http.StatusNotFound}, {idApprover, http.StatusForbidden}, {idAuditor, http.StatusForbidden}} {
		oc, ocsrf := h.client(tt.who)
		if jobs := h.get(oc, Prefix+"/", http.StatusOK); strings.Contains(jobs, `href="/console/jobs/new"`) {
			t.Errorf("%s: a link to the new job form", tt.who.Role)
		}
		h.get(oc, Prefix+"/jobs/new", tt.status)
		v := cloneValues(good)
		v.Set("csrf", ocsrf)
		if status, _ := h.post(oc, Prefix+"/jobs", v); status != tt.status {
			t.Errorf("%s posts the form: %d, want %d", tt.who.Role, status, tt.status)
		}
		if tt.status == http.StatusForbidden {
			if page := h.get(oc, Prefix+"/jobs", http.StatusOK); strings.Contains(page, `id="new-job"`) {
				t.Errorf("%s: the Jobs page links to the new job form", tt.who.Role)
			}
		}
		if _, ok := h.jobNamed("install jq"); ok {
			t.Fatalf("%s created the job", tt.who.Role)
		}
	}
	if status, body := h.post(c, Prefix+"/jobs", with(func(url.Values) {})); status != http.StatusSeeOther {
		t.Fatalf("the good form: %d\n%s", status, body)
	}
	j, ok := h.jobNamed("install jq")
	if !ok {
		t.Fatal("the good form made no job")
	}
	if j.ScheduleType != scheduler.OneTime || j.IntervalType != "" || !j.TimeFirstExecution.Equal(soon) || j.OperationType != schemas.OperationInstall ||
		!slices.Equal(j.PackageNames, []string{"jq", "curl"}) ||
		!slices.Equal(j.ManagedInstanceGroups, []string{"dbs"}) || j.MaxConcurrency != "50%" || j.MaxErrors != "1" || j.CutoffMinutes != 30 ||
		j.TimeoutMinutes != scheduler.DefaultTimeoutMinutes {
		t.Fatalf("the job of the form: %+v", j)
	}
}
