package console

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/schemas"
)

// TestOperatorAnswersAndExtends: the operator answers the approver's
// question (MOREINFO) on their request's page, and once approved asks
// for more hours there; the store and the page agree at each step, and
// the extension the approver grants shows on the page.
func TestOperatorAnswersAndExtends(t *testing.T) {
	h := newHarness(t)
	req := h.request(idOperator, "INFRA_UPDATE_RESTART")
	const question = "Which cell disk, and is the restart rolling?"
	if _, err := h.svc.Ask(h.ctx, idApprover, req.ID, question); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	b.signIn(h, idOperator)
	b.run(chromedp.Navigate(h.srv.URL+Prefix+"/requests/"+req.ID), chromedp.WaitVisible(chromedp.CSS(`#answer`)))
	if s := b.text(`#state`); s != string(policy.StateMoreInfo) {
		t.Fatalf("the page shows %q, want MOREINFO", s)
	}
	if q := b.text(`ol.thread`); !strings.Contains(q, question) {
		t.Errorf("the thread shows %q, want the question", q)
	}
	if n := b.count(`#extend-hours`); n != 0 {
		t.Errorf("a request waiting on an answer offers an extension")
	}
	b.check("request, more information wanted")
	b.shot("request-moreinfo")

	const answer = "Disk 7 of cell01; yes, one cell at a time."
	b.run(chromedp.SendKeys(chromedp.CSS(`#answer`), answer),
		chromedp.Click(chromedp.Search(`//form[contains(@action, "/answer")]//button`)),
		chromedp.WaitVisible(chromedp.Search(`//ol[@class="thread"]/li[2]`)))
	thread, err := h.svc.Interactions(h.ctx, req.ID)
	if err != nil || len(thread) != 2 || thread[1].Message != answer || thread[1].UserID != idOperator.Name {
		t.Fatalf("the store's thread: %+v, %v; want the question, then the operator's answer", thread, err)
	}
	st := h.state(req.ID)
	if s := b.text(`#state`); s != string(st) || st == policy.StateMoreInfo {
		t.Errorf("after the answer the page shows %q, the store %s; want it out of MOREINFO", s, st)
	}
	b.check("request, answered")

	got, err := h.svc.Approve(h.ctx, idApprover, req.ID, policy.ApproveInput{AuditType: schemas.AuditCommand})
	if err != nil || !got.LifecycleState.Granted() {
		t.Fatalf("approve: %s, %v", got.LifecycleState, err)
	}
	b.run(chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`#extend-hours`)))
	b.check("request, approved, operator")
	b.run(chromedp.SendKeys(chromedp.CSS(`#extend-hours`), "4"), chromedp.SendKeys(chromedp.CSS(`#extend-reason`), "rebalance still running"),
		chromedp.Click(chromedp.Search(`//form[contains(@action, "/extend")]//button`)),
		chromedp.WaitVisible(chromedp.Search(`//dd[@id="state"][normalize-space(.)="`+string(policy.StateExtending)+`"]`)))
	if s := h.state(req.ID); s != policy.StateExtending {
		t.Fatalf("after asking for an extension the store says %s, want EXTENDING", s)
	}
	if n := b.count(`#extend-hours`); n != 0 {
		t.Errorf("a request being extended offers another extension")
	}
	b.check("request, extending")
	if _, err := h.svc.Approve(h.ctx, idApprover, req.ID, policy.ApproveInput{}); err != nil {
		t.Fatal(err)
	}
	b.run(chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`#state`)))
	after, err := h.svc.GetRequest(h.ctx, req.ID)
	if err != nil || after.ExtendedHours != 4 {
		t.Fatalf("after the extension's approval: %d hours extended, %v; want 4", after.ExtendedHours, err)
	}
	if s, d := b.text(`#state`), b.text(`dl.facts`); s != string(after.LifecycleState) || !strings.Contains(d, "(+4 h extended)") {
		t.Errorf("the page shows state %q and %q; the store %s, 4 h extended", s, d, after.LifecycleState)
	}
	b.check("request, extended")
}
