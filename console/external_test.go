package console

import (
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/internal/auth"
)

// fakeProvider is an ExternalSignIn as an OIDC authenticator is one:
// Start binds a state to the browser (a cookie) and redirects to the
// provider; Callback checks the state the provider sent back and returns
// the identity it vouched for (here: who, with no provider behind it).
type fakeProvider struct {
	name string
	who  auth.Identity
}

const fakeState = "state-1"

func (p fakeProvider) Name() string { return p.name }

func (p fakeProvider) Start(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: "fake_state", Value: fakeState, Path: Prefix + "/signin/" + p.name, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "https://idp.example/authorize?state="+fakeState, http.StatusFound)
}

func (p fakeProvider) Callback(r *http.Request) (auth.Identity, error) {
	ck, err := r.Cookie("fake_state")
	if err != nil || r.URL.Query().Get("state") != ck.Value {
		return auth.Identity{}, errors.New("the state is not the one this browser was sent with")
	}
	return p.who, nil
}

// TestExternalSignIn: the seam an OIDC sign-in plugs into works end to
// end with a provider that implements ExternalSignIn: the sign-in page
// links to it, Start redirects to the provider, a callback with the
// wrong state (login CSRF) or an identity without a known role starts no
// session, the right one starts a session of the provider's identity,
// which sees its role's pages. New refuses a provider name that cannot be
// a path segment.
func TestExternalSignIn(t *testing.T) {
	h := newHarness(t)
	req := h.request(idOperator, "INFRA_UPDATE_RESTART")
	newConsole := func(ps ...ExternalSignIn) (*Console, error) {
		return New(Deps{Service: h.svc, API: h.api, Auth: h.authn}, Options{External: ps})
	}
	c, err := newConsole(fakeProvider{name: "corp-idp", who: auth.Identity{Name: idApprover.Name, Role: auth.RoleApprover, Groups: idApprover.Groups, Method: "oidc"}},
		fakeProvider{name: "norole", who: auth.Identity{Name: "mallory", Role: "superuser"}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(Prefix+"/", c)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	jar, _ := cookiejar.New(nil)
	cl := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := cl.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	signedIn := func() bool {
		t.Helper()
		resp, _ := get(Prefix + "/")
		return resp.StatusCode == http.StatusOK
	}

	if _, body := get(Prefix + "/signin"); !strings.Contains(body, `href="/console/signin/corp-idp"`) {
		t.Fatalf("the sign-in page offers no corp-idp:\n%s", body)
	}
	resp, _ := get(Prefix + "/signin/corp-idp")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "https://idp.example/") {
		t.Fatalf("start: %s to %q, want a redirect to the provider", resp.Status, resp.Header.Get("Location"))
	}
	for _, tc := range []struct{ provider, state, why string }{
		{"corp-idp", "forged", "a forged state"},
		{"norole", fakeState, "an identity of no auditpipe role"},
	} {
		get(Prefix + "/signin/" + tc.provider) // its state cookie
		if resp, _ := get(Prefix + "/signin/" + tc.provider + "/callback?state=" + tc.state); resp.StatusCode != http.StatusUnauthorized || signedIn() {
			t.Errorf("callback with %s: %s, signed in %v; want 401 and no session", tc.why, resp.Status, signedIn())
		}
	}
	resp, _ = get(Prefix + "/signin/corp-idp/callback?state=" + fakeState)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("callback: %s, want 303 to the console", resp.Status)
	}
	resp, body := get(Prefix + "/")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, idApprover.Name+` <span class="role">(approver)</span>`) ||
		!strings.Contains(body, `data-id="`+req.ID+`"`) {
		t.Fatalf("after the provider's sign-in: %s; want the approver's inbox with request %s:\n%s", resp.Status, req.ID, body)
	}

	for _, name := range []string{"Corp IdP", "a/b", "", "corp-idp"} {
		ps := []ExternalSignIn{fakeProvider{name: name}}
		if name == "corp-idp" {
			ps = append(ps, fakeProvider{name: name}) // twice
		}
		if _, err := newConsole(ps...); err == nil {
			t.Errorf("New accepted the external sign-in(s) %q", name)
		}
	}
}
