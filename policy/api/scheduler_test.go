package api

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/auditpipe/auditpipe/policy/scheduler"
)

// TestSchedulerRoutes: what the scheduler's routes answer besides the
// matrix's successes: stale etags, bad parameters, unknown objects, a
// state with no such action, and 501 from a process without the
// scheduler. Every answer is checked against openapi.yaml by the harness.
func TestSchedulerRoutes(t *testing.T) {
	f := newFixture(t, serverOptions{})
	inst := f.instance()
	j := f.job(inst.ID)
	stale := map[string]string{HeaderIfMatch: strconv.Quote(strconv.FormatInt(j.Version+1, 10))}
	inv := map[string]string{hdrInvalid: "1"} // invalid on purpose: the document says so too
	for _, tc := range []struct {
		name string
		c    call
		code int
		err  string
	}{
		{"run now at a stale etag", call{method: http.MethodPost, path: "/v1/scheduledJobs/" + j.ID + "/actions/runNow", header: stale}, 412, CodePreconditionFailed},
		{"skip at a stale etag", call{method: http.MethodPost, path: "/v1/scheduledJobs/" + j.ID + "/actions/skipNextExecution", header: stale}, 412, CodePreconditionFailed},
		{"delete at a stale etag", call{method: http.MethodDelete, path: "/v1/scheduledJobs/" + j.ID, header: stale}, 412, CodePreconditionFailed},
		{"upcoming without timeEnd", call{method: http.MethodGet, path: "/v1/scheduledJobs/upcomingSchedules", header: inv}, 400, CodeInvalidParameter},
		{"upcoming limit out of range", call{method: http.MethodGet, path: "/v1/scheduledJobs/" + j.ID + "/upcomingSchedules?limit=0", header: inv}, 400, CodeInvalidParameter},
		{"an unknown list parameter", call{method: http.MethodGet, path: "/v1/workRequests?host=h1"}, 400, CodeInvalidParameter},
		{"an unknown status", call{method: http.MethodGet, path: "/v1/workRequests?status=DONE", header: inv}, 400, CodeInvalidParameter},
		{"an unknown work request", call{method: http.MethodGet, path: "/v1/workRequests/wr-nonesuch/logs"}, 404, CodeNotAuthorizedOrNotFound},
		{"an unknown job's history", call{method: http.MethodGet, path: "/v1/scheduledJobs/nonesuch/history"}, 404, CodeNotAuthorizedOrNotFound},
		{"a job naming instances and groups", call{method: http.MethodPost, path: "/v1/scheduledJobs", body: func() scheduler.JobInput {
			in := f.jobInput(inst.ID)
			in.ManagedInstanceGroups = []string{"g"}
			return in
		}()}, 400, CodeInvalidParameter},
		{"an instance a job names", call{method: http.MethodDelete, path: "/v1/managedInstances/" + inst.ID}, 409, CodeConflict},
		{"an unknown body field", call{method: http.MethodPost, path: "/v1/managedInstances", body: `{"host":"h9","colour":"red"}`, header: inv}, 400, CodeCannotParseRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.who = idAdmin
			if code := f.must(tc.code, tc.c).errCode(t); code != tc.err {
				t.Errorf("code %s, want %s", code, tc.err)
			}
		})
	}

	// Canceling twice: the second is a state with no such action.
	wr := f.workRequest(j.ID)
	f.must(200, call{who: idAdmin, method: http.MethodPost, path: "/v1/workRequests/" + wr.ID + "/actions/cancel"})
	if code := f.must(409, call{who: idAdmin, method: http.MethodPost, path: "/v1/workRequests/" + wr.ID + "/actions/cancel"}).errCode(t); code != CodeConflict && code != CodeIncorrectState {
		t.Errorf("second cancel: %s", code)
	}

	g := newFixture(t, serverOptions{noScheduler: true})
	if code := g.must(501, call{who: idAdmin, method: http.MethodGet, path: "/v1/scheduledJobs"}).errCode(t); code != CodeNotImplemented {
		t.Errorf("without the scheduler: %s", code)
	}
}
