package api

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/auditpipe/auditpipe/policy"
)

// TestETagIfMatch: the etag is the object's version; an update or action
// with a stale if-match is 412 and changes nothing; without if-match it
// applies to the current version; a malformed one is 400.
func TestETagIfMatch(t *testing.T) {
	f := newFixture(t, serverOptions{})
	r := f.must(200, call{who: idAdmin, method: "GET", path: "/v1/compartments/" + fxCompartment})
	if got := r.header.Get(HeaderETag); got != `"1"` {
		t.Fatalf("etag %q, want \"1\"", got)
	}
	path := "/v1/compartments/" + fxCompartment
	r = f.must(200, call{who: idAdmin, method: "PUT", path: path, body: map[string]string{"description": "a"}, header: map[string]string{HeaderIfMatch: `"1"`}})
	if got := r.header.Get(HeaderETag); got != `"2"` {
		t.Fatalf("etag after update %q, want \"2\"", got)
	}
	r = f.must(412, call{who: idAdmin, method: "PUT", path: path, body: map[string]string{"description": "b"}, header: map[string]string{HeaderIfMatch: "1"}})
	if code := r.errCode(t); code != CodePreconditionFailed {
		t.Errorf("code %s", code)
	}
	var c policy.Compartment
	f.must(200, call{who: idAdmin, method: "GET", path: path}).decode(t, &c)
	if c.Description != "a" || c.Version != 2 {
		t.Errorf("after a refused update: %+v", c)
	}
	f.must(200, call{who: idAdmin, method: "PUT", path: path, body: map[string]string{"description": "c"}})
	r = f.must(400, call{who: idAdmin, method: "PUT", path: path, body: map[string]string{"description": "d"}, header: map[string]string{HeaderIfMatch: "abc"}})
	if code := r.errCode(t); code != CodeInvalidParameter {
		t.Errorf("code %s", code)
	}

	// Actions: the approver read version 2, the operator completed it
	// meanwhile: the approval is refused with 412.
	req := f.request(idOperator, "INFRA_DIAG")
	tag := f.must(200, call{who: idApprover, method: "GET", path: "/v1/accessRequests/" + req.ID}).header.Get(HeaderETag)
	f.must(412, call{who: idApprover, method: "POST", path: "/v1/accessRequests/" + req.ID + "/action/approve", header: map[string]string{HeaderIfMatch: `"1"`}})
	r = f.must(200, call{who: idApprover, method: "POST", path: "/v1/accessRequests/" + req.ID + "/action/approve", header: map[string]string{HeaderIfMatch: tag}})
	var got policy.AccessRequest
	r.decode(t, &got)
	if got.LifecycleState != policy.StateApproved || r.header.Get(HeaderETag) != etag(got.Version) {
		t.Errorf("approved: %s, etag %s, version %d", got.LifecycleState, r.header.Get(HeaderETag), got.Version)
	}
	// interactionRequest takes no if-match.
	f.must(400, call{who: idApprover, method: "POST", path: "/v1/accessRequests/" + req.ID + "/action/interactionRequest",
		body: InteractionDetails{MoreInfoDetails: "?"}, header: map[string]string{HeaderIfMatch: tag}})
}

// TestListPagination: limit and page walk a list newest first without
// repeats; opc-next-page is absent on the last page; bad parameters are
// 400 naming them.
func TestListPagination(t *testing.T) {
	f := newFixture(t, serverOptions{})
	for i := range 7 {
		f.must(200, call{who: idAdmin, method: "POST", path: "/v1/compartments", body: policy.CompartmentInput{ID: fmt.Sprintf("c%d", i), Name: "c", ParentID: fxCompartment}})
	}
	var ids []string
	page, pages := "", 0
	for {
		path := "/v1/compartments?compartmentId=" + fxCompartment + "&limit=3&sortBy=timeCreated&sortOrder=DESC"
		if page != "" {
			path += "&page=" + page
		}
		r := f.must(200, call{who: idAuditor, method: "GET", path: path})
		var col collection[policy.Compartment]
		r.decode(t, &col)
		pages++
		for _, c := range col.Items {
			ids = append(ids, c.ID)
		}
		if page = r.header.Get(HeaderNextPage); page == "" {
			break
		}
		if len(col.Items) != 3 {
			t.Fatalf("a page that is not the last has %d items", len(col.Items))
		}
	}
	if want := "c6 c5 c4 c3 c2 c1 c0"; strings.Join(ids, " ") != want || pages != 3 {
		t.Errorf("pages %d: %v, want %s", pages, ids, want)
	}
	for _, tc := range []struct{ query, param string }{
		{"limit=0", "limit"}, {"limit=1001", "limit"}, {"limit=x", "limit"}, {"sortOrder=ASC", "sortOrder"}, {"sortBy=name", "sortBy"},
		{"page=nonsense", "page"}, {"colour=red", "colour"}, {"compartmentIdInSubtree=yes", "compartmentIdInSubtree"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.param != "page" { // the page token is opaque to the document
				hdr[hdrInvalid] = "1"
			}
			r := f.must(400, call{who: idAdmin, method: "GET", path: "/v1/compartments?" + tc.query, header: hdr})
			var e Error
			r.decode(t, &e)
			if e.Code != CodeInvalidParameter || len(e.Problems) == 0 || e.Problems[0].Field != tc.param {
				t.Errorf("%+v", e)
			}
		})
	}
}

// TestListFilters: lifecycleState, resourceId, compartmentId with
// compartmentIdInSubtree; an operator lists only their own requests, an
// approver only those of the controls that name them.
func TestListFilters(t *testing.T) {
	f := newFixture(t, serverOptions{})
	f.must(200, call{who: idAdmin, method: "POST", path: "/v1/compartments", body: policy.CompartmentInput{ID: "child", Name: "child", ParentID: fxCompartment}})
	f.must(200, call{who: idAdmin, method: "POST", path: "/v1/resources", body: policy.ResourceInput{ID: "exa2", Name: "exa2", ResourceType: policy.ResourceExadataInfra,
		CompartmentID: "child", Hosts: []policy.Host{{Name: "exa2-cps01", Layer: "CPS"}}}})
	in := f.controlInput("other_groups")
	in.ApproverGroupsList = []string{"OTHER_GROUP"}
	var other policy.Control
	f.must(200, call{who: idAdmin, method: "POST", path: "/v1/operatorControls", body: in}).decode(t, &other)
	f.assign(other.ID, "exa2")

	waiting := f.request(idOperator, "INFRA_DIAG")
	granted := f.request(idOperator2, "INFRA_CPS_ONLY")
	var elsewhere policy.AccessRequest
	f.must(200, call{who: idOperator, method: "POST", path: "/v1/accessRequests", body: policy.RequestInput{ResourceID: "exa2", ActionRequests: []string{"INFRA_DIAG"},
		Reason: "r", Severity: policy.SeverityS4, DurationHours: 1}}).decode(t, &elsewhere)

	list := func(who string, query string) string {
		id := map[string]call{"admin": {who: idAdmin}, "op1": {who: idOperator}, "op2": {who: idOperator2}, "alice": {who: idApprover}, "mallory": {who: idStranger}}[who]
		id.method, id.path = "GET", "/v1/accessRequests?"+query
		var col collection[policy.AccessRequest]
		f.must(200, id).decode(t, &col)
		var out []string
		for _, r := range col.Items {
			out = append(out, map[string]string{waiting.ID: "waiting", granted.ID: "granted", elsewhere.ID: "elsewhere"}[r.ID])
		}
		// Sorted: requests made in one millisecond are in id order.
		slices.Sort(out)
		return strings.Join(out, " ")
	}
	for _, tc := range []struct{ who, query, want string }{
		{"admin", "", "elsewhere granted waiting"},
		{"admin", "lifecycleState=APPROVALWAITING", "elsewhere waiting"},
		{"admin", "lifecycleState=PREAPPROVED", "granted"},
		{"admin", "resourceId=exa2", "elsewhere"},
		{"admin", "compartmentId=" + fxCompartment, "granted waiting"},
		{"admin", "compartmentId=" + fxCompartment + "&compartmentIdInSubtree=true", "elsewhere granted waiting"},
		{"admin", "compartmentId=child&compartmentIdInSubtree=true", "elsewhere"},
		{"admin", "operatorId=oracle-op-2", "granted"},
		{"op1", "", "elsewhere waiting"},
		{"op1", "operatorId=oracle-op-2", ""},
		{"op2", "", "granted"},
		{"alice", "", "granted waiting"},
		{"alice", "resourceId=exa2", ""},
		{"mallory", "", "elsewhere"},
	} {
		if got := list(tc.who, tc.query); got != tc.want {
			t.Errorf("%s ?%s: %q, want %q", tc.who, tc.query, got, tc.want)
		}
	}
	// The other filters of the lists.
	var col collection[policy.Control]
	f.must(200, call{who: idAdmin, method: "GET", path: "/v1/operatorControls?lifecycleState=ASSIGNED&resourceType=EXADATAINFRASTRUCTURE&compartmentId=" + fxCompartment}).decode(t, &col)
	if len(col.Items) != 2 {
		t.Errorf("%d assigned controls, want 2", len(col.Items))
	}
	var as collection[policy.Assignment]
	f.must(200, call{who: idAdmin, method: "GET", path: "/v1/operatorControlAssignments?resourceId=exa2&lifecycleState=APPLIED&operatorControlId=" + other.ID}).decode(t, &as)
	if len(as.Items) != 1 {
		t.Errorf("%d assignments, want 1", len(as.Items))
	}
	var rs collection[policy.Resource]
	f.must(200, call{who: idOperator, method: "GET", path: "/v1/resources?compartmentId=child"}).decode(t, &rs)
	if len(rs.Items) != 1 || rs.Items[0].ID != "exa2" {
		t.Errorf("resources in child: %+v", rs.Items)
	}
	var acts collection[policy.Action]
	f.must(200, call{who: idOperator, method: "GET", path: "/v1/actions?resourceType=AUTONOMOUSVMCLUSTER"}).decode(t, &acts)
	for _, a := range acts.Items {
		if !strings.HasPrefix(a.Name, "AVM_") {
			t.Errorf("action %s for AUTONOMOUSVMCLUSTER", a.Name)
		}
	}
	f.must(404, call{who: idAdmin, method: "GET", path: "/v1/resources?compartmentId=nowhere&compartmentIdInSubtree=true"})
}

// TestErrors: bodies are decoded strictly and bounded; the domain's
// errors keep their codes; unknown paths and methods answer JSON.
func TestErrors(t *testing.T) {
	f := newFixture(t, serverOptions{})
	inv := map[string]string{hdrInvalid: "1"}
	for _, tc := range []struct {
		name   string
		c      call
		status int
		code   string
	}{
		{"unknown field", call{method: "POST", path: "/v1/compartments", body: `{"name":"x","colour":"red"}`, header: inv}, 400, CodeCannotParseRequest},
		{"two values", call{method: "POST", path: "/v1/compartments", body: `{"name":"x"} {"name":"y"}`, header: inv}, 400, CodeCannotParseRequest},
		{"not JSON", call{method: "POST", path: "/v1/compartments", body: `name=x`, header: inv}, 400, CodeCannotParseRequest},
		{"no body", call{method: "POST", path: "/v1/compartments", header: inv}, 400, CodeCannotParseRequest},
		{"wrong type", call{method: "POST", path: "/v1/compartments", body: `{"name":7}`, header: inv}, 400, CodeCannotParseRequest},
		{"too large", call{method: "POST", path: "/v1/compartments", body: `{"name":"` + strings.Repeat("x", DefaultMaxBodyBytes) + `"}`, header: inv}, 413, CodeRequestTooLarge},
		{"invalid field", call{method: "POST", path: "/v1/resources", body: policy.ResourceInput{ID: "bad id!", Name: "x", ResourceType: "EXACC", CompartmentID: fxCompartment,
			Hosts: []policy.Host{{Name: "h", Layer: "CPS"}}}}, 400, CodeInvalidParameter},
		{"exists", call{method: "POST", path: "/v1/compartments", body: policy.CompartmentInput{ID: fxCompartment, Name: "again"}}, 409, CodeConflict},
		{"not found", call{method: "GET", path: "/v1/operatorControls/ocid1.operatorcontrol.none"}, 404, CodeNotAuthorizedOrNotFound},
		{"no action", call{method: "GET", path: "/v1/actions/INFRA_NOTHING"}, 404, CodeNotAuthorizedOrNotFound},
		{"still assigned", call{method: "DELETE", path: "/v1/operatorControls/" + f.control}, 409, CodeConflict},
		{"unknown path", call{method: "GET", path: "/v1/nothing", header: map[string]string{hdrUndocumented: "1"}}, 404, CodeNotFound},
		{"unknown method", call{method: "PATCH", path: "/v1/compartments/" + fxCompartment, header: map[string]string{hdrUndocumented: "1"}}, 405, CodeNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.who = idAdmin
			r := f.must(tc.status, tc.c)
			if code := r.errCode(t); code != tc.code {
				t.Errorf("code %s, want %s: %s", code, tc.code, r.body)
			}
			if r.header.Get(HeaderRequestID) == "" {
				t.Error("no opc-request-id")
			}
		})
	}
	// A field problem names the field.
	var e Error
	f.must(400, call{who: idOperator, method: "POST", path: "/v1/accessRequests", body: policy.RequestInput{ResourceID: fxResource, ActionRequests: []string{"INFRA_FULL"},
		Reason: "r", Severity: "S2", DurationHours: 1}}).decode(t, &e)
	if len(e.Problems) != 1 || e.Problems[0].Field != "action_requests_list" {
		t.Errorf("%+v", e)
	}
	// A state the request's state lacks: IncorrectState.
	r := f.request(idOperator, "INFRA_DIAG")
	f.must(200, call{who: idOperator, method: "POST", path: "/v1/accessRequests/" + r.ID + "/action/complete"})
	if code := f.must(409, call{who: idApprover, method: "POST", path: "/v1/accessRequests/" + r.ID + "/action/approve"}).errCode(t); code != CodeIncorrectState {
		t.Errorf("code %s", code)
	}
	// The client's opc-request-id comes back.
	if got := f.must(200, call{who: idAdmin, method: "GET", path: "/v1/actions", header: map[string]string{HeaderRequestID: "REQ-1"}}).header.Get(HeaderRequestID); got != "REQ-1" {
		t.Errorf("opc-request-id %q", got)
	}
}

// TestNoIdentity: mounted without the process's authentication, the API
// refuses every request (401 JSON), so nothing is served unauthenticated
// by mistake.
func TestNoIdentity(t *testing.T) {
	s := newServer(t, serverOptions{})
	for _, rt := range s.api.Routes() {
		req, err := http.NewRequest(rt.Method, strings.NewReplacer("{", "", "}", "").Replace(rt.Pattern), nil)
		if err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		s.api.ServeHTTP(w, req)
		if w.Code != 401 || !strings.Contains(w.Body.String(), CodeNotAuthenticated) {
			t.Errorf("%s %s without identity: %d %s", rt.Method, rt.Pattern, w.Code, w.Body.String())
		}
	}
}

// TestFlow walks the seed's example 1-1 over HTTP: INFRA_DIAG waits for
// one explicit approval (the requester may not approve it, keystroke audit
// and a shorter duration set by the approver), a question and its answer,
// the agent's reports, an extension, revoke; the history and the thread.
func TestFlow(t *testing.T) {
	f := newFixture(t, serverOptions{})
	r := f.request(idOperator, "INFRA_DIAG")
	if r.LifecycleState != policy.StateApprovalWaiting || r.IsAutoApproved {
		t.Fatalf("created %s", r.LifecycleState)
	}
	base := "/v1/accessRequests/" + r.ID
	f.must(200, call{who: idApprover, method: "POST", path: base + "/action/interactionRequest", body: InteractionDetails{MoreInfoDetails: "which cell?"}})
	if st := f.get(r.ID).LifecycleState; st != policy.StateMoreInfo {
		t.Fatalf("after a question: %s", st)
	}
	f.must(200, call{who: idOperator, method: "POST", path: base + "/action/interactionRequest", body: InteractionDetails{MoreInfoDetails: "cel01"}})
	var th collection[policy.Interaction]
	f.must(200, call{who: idOperator, method: "GET", path: base + "/interactions"}).decode(t, &th)
	if len(th.Items) != 2 || th.Items[0].UserType != policy.UserCustomer || th.Items[1].UserType != policy.UserOperator {
		t.Errorf("thread %+v", th.Items)
	}
	var got policy.AccessRequest
	f.must(200, call{who: idApprover, method: "POST", path: base + "/action/approve",
		body: policy.ApproveInput{Comment: "ok", AuditType: "COMMAND_KEYSTROKE_AUDIT", DurationHours: 2}}).decode(t, &got)
	if got.LifecycleState != policy.StateApproved || got.AuditType != "COMMAND_KEYSTROKE_AUDIT" || got.DurationHours != 2 || got.UserID == "" {
		t.Fatalf("approved: %+v", got)
	}
	var g policy.Grant
	f.must(200, call{who: idAgent, method: "GET", path: "/v1/grants/" + got.UserID}).decode(t, &g)
	if g.RequestID != r.ID || len(g.Hosts) != 3 {
		t.Errorf("grant %+v", g)
	}
	// An agent reports for its own host only.
	f.must(403, call{who: idAgent, method: "POST", path: "/v1/grants/" + g.LoginID + "/action/report", body: ReportDetails{Host: "exa1-db01", State: policy.StateDeployed}})
	f.must(400, call{who: idAgent, method: "POST", path: "/v1/grants/" + g.LoginID + "/action/report", body: `{"host":"exa1-cps01","state":"LOST"}`, header: map[string]string{hdrInvalid: "1"}})
	for _, h := range g.Hosts {
		f.must(200, call{who: idAdmin, method: "POST", path: "/v1/grants/" + g.LoginID + "/action/report", body: ReportDetails{Host: h, State: policy.StateDeployed}})
	}
	if st := f.get(r.ID).LifecycleState; st != policy.StateDeployed {
		t.Fatalf("after every host reported: %s", st)
	}
	f.must(200, call{who: idOperator, method: "POST", path: base + "/action/extend", body: ExtendDetails{ExtendDuration: 3, Reason: "more"}})
	f.must(200, call{who: idApprover2, method: "POST", path: base + "/action/approve"}).decode(t, &got)
	if got.LifecycleState != policy.StateExtended || got.ExtendedHours != 3 {
		t.Fatalf("extension: %s %d", got.LifecycleState, got.ExtendedHours)
	}
	f.must(200, call{who: idApprover, method: "POST", path: base + "/action/revoke", body: RevokeDetails{ApproverComment: "done"}}).decode(t, &got)
	if got.LifecycleState != policy.StateRevoked {
		t.Fatalf("revoked: %s", got.LifecycleState)
	}
	var h collection[policy.HistoryEntry]
	f.must(200, call{who: idAuditor, method: "GET", path: base + "/history"}).decode(t, &h)
	var steps []string
	for _, e := range h.Items {
		steps = append(steps, e.Actor+":"+e.Action+"→"+e.To)
	}
	want := "oracle-op-1:create→CREATED oracle-op-1:submit→APPROVALWAITING alice:ask→MOREINFO oracle-op-1:answer→APPROVALWAITING alice:approve→APPROVED " +
		"admin:report_deployed→APPROVED admin:report_deployed→APPROVED admin:report_deployed→DEPLOYED oracle-op-1:extend→EXTENDING carol:approve→EXTENDED alice:revoke→REVOKED"
	if got := strings.Join(steps, " "); got != want {
		t.Errorf("history:\n %s\nwant\n %s", got, want)
	}
	// Metrics: the approval's latency, the store's gauges.
	if n := testutil.CollectAndCount(f.reg, "auditpipe_policy_approval_latency_seconds"); n != 1 {
		t.Errorf("approval latency: %d series", n)
	}
	if v := testutil.ToFloat64(f.api.metrics.requests.WithLabelValues("ApproveAccessRequest", "200")); v != 2 {
		t.Errorf("ApproveAccessRequest 200: %v", v)
	}
	if err := testutil.GatherAndCompare(f.reg, strings.NewReader(`
# HELP auditpipe_policy_active_grants Grants not revoked (login users live on their hosts, or about to be).
# TYPE auditpipe_policy_active_grants gauge
auditpipe_policy_active_grants 0
# HELP auditpipe_policy_revocations_total Access requests revoked.
# TYPE auditpipe_policy_revocations_total counter
auditpipe_policy_revocations_total 1
`), "auditpipe_policy_active_grants", "auditpipe_policy_revocations_total"); err != nil {
		t.Error(err)
	}
}

// TestAuditLogReportHandOff: the report route checks who may see the
// request and hands over to Options.Report; without one it is 501.
func TestAuditLogReportHandOff(t *testing.T) {
	f := newFixture(t, serverOptions{report: reportStandIn})
	r := f.request(idOperator, "INFRA_DIAG")
	var body map[string]string
	f.must(200, call{who: idOperator, method: "GET", path: "/v1/accessRequests/" + r.ID + "/auditLogReport"}).decode(t, &body)
	if body["access_request_id"] != r.ID {
		t.Errorf("the report handler got %v", body)
	}
	f.must(404, call{who: idOperator2, method: "GET", path: "/v1/accessRequests/" + r.ID + "/auditLogReport"})

	g := newFixture(t, serverOptions{})
	r = g.request(idOperator, "INFRA_DIAG")
	if code := g.must(501, call{who: idOperator, method: "GET", path: "/v1/accessRequests/" + r.ID + "/auditLogReport"}).errCode(t); code != CodeNotImplemented {
		t.Errorf("code %s", code)
	}
}
