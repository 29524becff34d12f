package console

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// complianceInventory: db1 in prod (patched), web1 in prod's child web
// and group g (two security updates), old1 elsewhere (one).
const complianceInventory = `INSERT INTO instance_inventory
(time, instance_id, instance_name, compartment_id, compartment_path, group_ids, os_family, package, version, arch, update_version, update_type, cves) VALUES
('2026-12-01 10:00:00', 'i-db1', 'db1', 'prod', ['root','prod'], ['g'], 'LINUX', '', '', '', '', '', []),
('2026-12-01 10:00:00', 'i-db1', 'db1', 'prod', ['root','prod'], ['g'], 'LINUX', 'openssl', '3.0.15-1~deb12u1', 'amd64', '', '', []),
('2026-12-01 11:00:00', 'i-web1', 'web1', 'web', ['root','prod','web'], ['g'], 'LINUX', '', '', '', '', '', []),
('2026-12-01 11:00:00', 'i-web1', 'web1', 'web', ['root','prod','web'], ['g'], 'LINUX', 'libxml2', '2.9.14+dfsg-1.3~deb12u1', 'amd64', '2.9.14+dfsg-1.3~deb12u2', 'SECURITY', ['CVE-2025-1001','CVE-2025-1002']),
('2026-12-01 11:00:00', 'i-web1', 'web1', 'web', ['root','prod','web'], ['g'], 'LINUX', 'curl', '7.88.1-10+deb12u7', 'amd64', '7.88.1-10+deb12u8', 'SECURITY', ['CVE-2025-2001']),
('2026-12-01 12:00:00', 'i-old1', 'old1', 'other', ['root','other'], [], 'LINUX', '', '', '', '', '', []),
('2026-12-01 12:00:00', 'i-old1', 'old1', 'other', ['root','other'], [], 'LINUX', 'sudo', '1.9.13p3-1+deb12u1', 'amd64', '1.9.13p3-1+deb12u2', 'SECURITY', ['CVE-2025-32463'])`

// TestCompliancePage: the report by scope, a bad scope's clear error,
// and no page for operators.
func TestCompliancePage(t *testing.T) {
	h := newHarness(t)
	if err := h.store.Exec(h.ctx, complianceInventory); err != nil {
		t.Fatal(err)
	}
	c, _ := h.client(idAuditor)
	tests := []struct {
		name  string
		query url.Values
		want  []string
		not   []string
	}{
		{"everything", nil, []string{"2 of 3 instances", "web1", "old1", "CVE-2025-32463", "curl 7.88.1-10"}, nil},
		{"compartment", url.Values{"compartment": {"prod"}}, []string{"0 of 1 instances", "Every instance in scope"}, []string{"web1</td>"}},
		{"compartment recursive", url.Values{"compartment": {"prod"}, "recursive": {"1"}}, []string{"1 of 2 instances", "web1", "CVE-2025-1002"}, []string{"old1"}},
		{"group", url.Values{"group": {"g"}}, []string{"1 of 2 instances", "web1"}, []string{"old1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page := h.get(c, Prefix+"/compliance?"+tt.query.Encode(), http.StatusOK)
			for _, w := range tt.want {
				if !strings.Contains(page, w) {
					t.Errorf("the page lacks %q", w)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(page, w) {
					t.Errorf("the page shows %q", w)
				}
			}
		})
	}
	bad := h.get(c, Prefix+"/compliance?compartment=prod&group=g", http.StatusBadRequest)
	if !strings.Contains(bad, "compartment and group exclude each other") {
		t.Errorf("a scope of both: %s", bad)
	}
	op, _ := h.client(idOperator)
	if home := h.get(op, Prefix+"/", http.StatusOK); strings.Contains(home, `href="/console/compliance"`) {
		t.Errorf("an operator has the Compliance menu item")
	}
	h.get(op, Prefix+"/compliance", http.StatusNotFound)
}

// TestCompliancePageInBrowser: axe-core and the browser's console on the
// report page.
func TestCompliancePageInBrowser(t *testing.T) {
	h := newHarness(t)
	if err := h.store.Exec(h.ctx, complianceInventory); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	b.signIn(h, idAuditor)
	b.run(chromedp.Click(chromedp.Search(`//nav/a[normalize-space(.)="Compliance"]`)), chromedp.WaitVisible(chromedp.CSS(`#vulnerable`)))
	if n := b.count(`#vulnerable tbody tr`); n != 3 {
		t.Errorf("the table has %d rows, want the 3 outstanding updates", n)
	}
	b.check("compliance")
	b.run(chromedp.SendKeys(chromedp.CSS(`#c-compartment`), "prod"), chromedp.Click(chromedp.CSS(`#c-recursive`)),
		chromedp.Submit(chromedp.CSS(`#c-compartment`)),
		chromedp.WaitVisible(chromedp.Search(`//h2[@id="rep-h"][contains(., "1 of 2 instances")]`)))
	b.check("compliance, compartment prod with sub-compartments")
	b.shot("compliance")
}
