package auditreport

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/queryapi"
)

// requests is the policy store's part the authorization needs, for the
// handler tests: who raised each request, and who may approve it.
var requests = map[string]struct {
	operator  string
	approvers []string
}{
	"req1": {"alice", []string{"carol"}},
	"req2": {"bob", []string{"dave"}},
}

// policyRule is the rule NewHandler's documentation gives, on the
// identity auth.Require puts in the context.
func policyRule(r *http.Request, id string) error {
	who, ok := auth.FromContext(r.Context())
	if !ok {
		return ErrUnauthenticated
	}
	if who.Role == auth.RoleAdmin || who.Role == auth.RoleAuditor {
		return nil
	}
	req, ok := requests[id]
	if !ok {
		return ErrNotFound
	}
	if who.Name == req.operator {
		return nil
	}
	for _, a := range req.approvers {
		if who.Name == a && who.Role == auth.RoleApprover {
			return nil
		}
	}
	return ErrForbidden
}

// TestHandler: the route's answers, by role, id and parameter, behind the
// authentication the policy API uses.
func TestHandler(t *testing.T) {
	emb := loadFixture(t)
	opt := Options{Now: fixedClock}
	tokens := map[string]string{}
	var entries []auth.Token
	for name, role := range map[string]string{
		"admin": auth.RoleAdmin, "auditor": auth.RoleAuditor, "alice": auth.RoleOperator, "bob": auth.RoleOperator,
		"carol": auth.RoleApprover, "dave": auth.RoleApprover, "prometheus": auth.RoleMetrics,
	} {
		tok, e, err := auth.NewToken(name, role)
		if err != nil {
			t.Fatal(err)
		}
		tokens[name] = tok
		entries = append(entries, e)
	}
	authn, err := auth.New(entries, nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(Pattern, authn.Require(NewHandler(emb, policyRule, nil, opt), auth.RoleAuditor, auth.RoleApprover, auth.RoleOperator))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	get := func(t *testing.T, who, method, path string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if who != "" {
			req.Header.Set("Authorization", "Bearer "+tokens[who])
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	const r1, r2 = "/v1/accessRequests/req1/auditLogReport", "/v1/accessRequests/req2/auditLogReport"
	tests := []struct {
		who, method, path string
		status            int
	}{
		{"", "GET", r1, 401},
		{"prometheus", "GET", r1, 403},
		{"admin", "GET", r1, 200},
		{"auditor", "GET", r2, 200},
		{"auditor", "GET", "/v1/accessRequests/nobody-asked/auditLogReport", 200}, // NOTAVAILABLE
		{"alice", "GET", r1, 200},
		{"alice", "GET", r2, 403},
		{"bob", "GET", r2, 200},
		{"carol", "GET", r1, 200},
		{"carol", "GET", r2, 403},
		{"dave", "GET", r2, 200},
		{"alice", "GET", "/v1/accessRequests/nobody-asked/auditLogReport", 404},
		{"alice", "HEAD", r1, 200},
		{"auditor", "GET", r1 + "?keystrokes=maybe", 400},
		{"auditor", "GET", "/v1/accessRequests/" + strings.Repeat("x", maxIDBytes+1) + "/auditLogReport", 400},
		{"auditor", "GET", "/v1/accessRequests/%ff/auditLogReport", 400},
	}
	for _, tt := range tests {
		if code, body := get(t, tt.who, tt.method, tt.path); code != tt.status {
			t.Errorf("%s %s as %q: %d %s, want %d", tt.method, tt.path, tt.who, code, body, tt.status)
		}
	}

	t.Run("the body is the report with its text", func(t *testing.T) {
		code, body := get(t, "alice", "GET", r1+"?keystrokes=true")
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		var got Report
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		o := opt
		o.Keystrokes = true
		want, err := Build(context.Background(), emb, "req1", o)
		if err != nil {
			t.Fatal(err)
		}
		var text bytes.Buffer
		if err := WriteText(&text, want); err != nil {
			t.Fatal(err)
		}
		if got.Text != text.String() {
			t.Errorf("report text:\n%s\nwant\n%s", got.Text, text.String())
		}
		got.Text = ""
		if g, w := jsonOf(t, &got), jsonOf(t, want); g != w {
			t.Errorf("body differs from Build's report:\n%s", g)
		}
		if len(got.Sessions) != 2 || len(got.Sessions[0].KeystrokeEvents) != 1 {
			t.Errorf("keystrokes=true: sessions %d, keystrokes of the first %v", len(got.Sessions), got.Sessions)
		}
	})

	t.Run("methods", func(t *testing.T) {
		h := NewHandler(emb, func(*http.Request, string) error { return nil }, nil, opt)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("POST", r1, nil))
		if w.Code != 405 || w.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("POST: %d, Allow %q", w.Code, w.Header().Get("Allow"))
		}
	})

	t.Run("mounted without a path value", func(t *testing.T) {
		h := NewHandler(emb, func(*http.Request, string) error { return nil }, nil, opt)
		for path, status := range map[string]int{
			"/api/v1/accessRequests/req2/auditLogReport": 200,
			"/v1/accessRequests/a%2Fb/auditLogReport":    400,
			"/v1/accessRequests//auditLogReport":         400,
			"/v1/accessRequests/req2":                    400,
		} {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
			if w.Code != status {
				t.Errorf("%s: %d %s, want %d", path, w.Code, w.Body, status)
			}
		}
	})

	t.Run("a nil authorize refuses", func(t *testing.T) {
		w := httptest.NewRecorder()
		NewHandler(emb, nil, nil, opt).ServeHTTP(w, httptest.NewRequest("GET", r1, nil))
		if w.Code != 403 {
			t.Errorf("%d, want 403", w.Code)
		}
	})

	t.Run("the authorization comes before the store", func(t *testing.T) {
		// A store that cannot answer: a query endpoint that is gone.
		gone := httptest.NewServer(queryapi.NewQueryHandler(emb, nil, queryapi.QueryHandlerOptions{}))
		gone.Close()
		q := &queryapi.HTTPClient{URL: gone.URL}
		w := httptest.NewRecorder()
		NewHandler(q, func(*http.Request, string) error { return ErrForbidden }, nil, opt).ServeHTTP(w, httptest.NewRequest("GET", r1, nil))
		if w.Code != 403 {
			t.Errorf("refused caller, store down: %d, want 403", w.Code)
		}
		w = httptest.NewRecorder()
		NewHandler(q, func(*http.Request, string) error { return nil }, nil, opt).ServeHTTP(w, httptest.NewRequest("GET", r1, nil))
		if w.Code != 503 || strings.Contains(w.Body.String(), "127.0.0.1") || strings.Contains(w.Body.String(), url.PathEscape(gone.URL)) {
			t.Errorf("store down: %d %s; want 503 without the cause", w.Code, w.Body)
		}
	})
}
