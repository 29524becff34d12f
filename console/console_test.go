package console

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/auth"
)

// TestSecurityHeadersAndCookies: every answer has the CSP without inline
// script and the other headers; the session cookie is HttpOnly and
// SameSite=Strict; a wrong token starts no session; sign-out ends it.
func TestSecurityHeadersAndCookies(t *testing.T) {
	h := newHarness(t)
	c, csrf := h.client(idApprover)
	for _, path := range []string{Prefix + "/signin", Prefix + "/", Prefix + "/static/console.js", Prefix + "/nope"} {
		resp, err := c.Get(h.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for k, want := range map[string]string{"Content-Security-Policy": ContentSecurityPolicy, "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("%s: %s = %q, want %q", path, k, got, want)
			}
		}
	}
	if strings.Contains(ContentSecurityPolicy, "unsafe-inline") || strings.Contains(ContentSecurityPolicy, "unsafe-eval") {
		t.Errorf("the CSP allows inline script or eval: %s", ContentSecurityPolicy)
	}
	u, _ := url.Parse(h.srv.URL + Prefix + "/")
	var session *http.Cookie
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == sessionCookie {
			session = ck
		}
	}
	if session == nil {
		t.Fatal("no session cookie")
	}

	// The cookie jar hides the attributes: read them from a fresh sign-in.
	jar := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := jar.Get(h.srv.URL + Prefix + "/signin")
	if err != nil {
		t.Fatal(err)
	}
	var pre *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == preCookie {
			pre = ck
		}
	}
	resp.Body.Close()
	if pre == nil {
		t.Fatal("the sign-in page set no pre-session cookie")
	}
	tests := []struct {
		name       string
		token      string
		csrf       string
		wantStatus int
	}{
		{name: "wrong token", token: "ap_nope", csrf: pre.Value, wantStatus: http.StatusUnauthorized},
		{name: "no pre-session token", token: h.tokens[idApprover.Name], csrf: "", wantStatus: http.StatusForbidden},
		{name: "right token", token: h.tokens[idApprover.Name], csrf: pre.Value, wantStatus: http.StatusSeeOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodPost, h.srv.URL+Prefix+"/signin", strings.NewReader(url.Values{"token": {tt.token}, "csrf": {tt.csrf}, "next": {"//evil.example/"}}.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.AddCookie(pre)
			resp, err := jar.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("%s: %s, want %d", tt.name, resp.Status, tt.wantStatus)
			}
			var got *http.Cookie
			for _, ck := range resp.Cookies() {
				if ck.Name == sessionCookie {
					got = ck
				}
			}
			if tt.wantStatus != http.StatusSeeOther {
				if got != nil {
					t.Fatalf("%s started a session", tt.name)
				}
				return
			}
			if got == nil || !got.HttpOnly || got.SameSite != http.SameSiteStrictMode || got.Path != Prefix+"/" {
				t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/console/", got)
			}
			if loc := resp.Header.Get("Location"); loc != Prefix+"/" {
				t.Errorf("after sign-in to next=//evil.example/: Location %q, want the console", loc)
			}
		})
	}

	// Sign-out ends the session on the server: the old cookie is worth nothing.
	resp, err = c.PostForm(h.srv.URL+Prefix+"/signout", url.Values{"csrf": {csrf}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	r, _ := http.NewRequest(http.MethodGet, h.srv.URL+Prefix+"/", nil)
	r.AddCookie(session)
	resp, err = jar.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), Prefix+"/signin") {
		t.Errorf("the signed-out session still works: %s %s", resp.Status, resp.Header.Get("Location"))
	}
}

// TestSessionLifetime: a session ends after its lifetime, or after being
// idle, whichever comes first; use renews the idle time.
func TestSessionLifetime(t *testing.T) {
	now := time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s := newSessions(8*time.Hour, 30*time.Minute, clock)
	tests := []struct {
		name    string
		advance time.Duration
		alive   bool
	}{
		{"fresh", 0, true},
		{"used after 29 minutes", 29 * time.Minute, true},
		{"used 29 minutes later again", 29 * time.Minute, true},
		{"idle 31 minutes", 31 * time.Minute, false},
	}
	ss := s.create(idApprover, nil)
	for _, tt := range tests {
		now = now.Add(tt.advance)
		if _, ok := s.get(ss.id); ok != tt.alive {
			t.Errorf("%s: alive %v, want %v", tt.name, ok, tt.alive)
		}
	}
	ss = s.create(idApprover, nil)
	for range 17 { // used every 29 minutes: 8h13m
		now = now.Add(29 * time.Minute)
		s.get(ss.id)
	}
	if _, ok := s.get(ss.id); ok {
		t.Error("a session used every 29 minutes outlived its 8 hours")
	}
	if _, ok := s.get("no such session"); ok {
		t.Error("an unknown id is a session")
	}
}

// TestSessionEndsWithItsToken: a token removed from the tokens file, or
// given another role, ends the console sessions signed in with it at
// their next request, not hours later (the API refuses it at once).
func TestSessionEndsWithItsToken(t *testing.T) {
	h := newHarness(t)
	c, _ := h.client(idAuditor)
	h.get(c, Prefix+"/search", http.StatusOK)
	var kept []auth.Token
	for _, tok := range h.toks {
		if tok.Name != idAuditor.Name {
			kept = append(kept, tok)
		}
	}
	if err := h.authn.Set(kept, nil); err != nil {
		t.Fatal(err)
	}
	h.get(c, Prefix+"/search", http.StatusSeeOther) // to the sign-in page
	if err := h.authn.Set(h.toks, nil); err != nil {
		t.Fatal(err)
	}
	h.get(c, Prefix+"/search", http.StatusSeeOther) // the session stays ended

	// A role lowered: the approver's token now names an operator.
	a, _ := h.client(idApprover)
	h.get(a, Prefix+"/", http.StatusOK)
	changed := slices.Clone(h.toks)
	for i := range changed {
		if changed[i].Name == idApprover.Name {
			changed[i].Role = auth.RoleOperator
		}
	}
	if err := h.authn.Set(changed, nil); err != nil {
		t.Fatal(err)
	}
	h.get(a, Prefix+"/", http.StatusSeeOther)
}
