package console

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// FuzzSafeNext: whatever a sign-in's next parameter holds, the redirect
// stays inside the console (no other host, no scheme, no protocol-
// relative path).
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/console/", "/console/requests/x?y=1", "//evil.example/", "https://evil.example/", "/console/\\\\evil", "/console//evil", "", "/v1/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := safeNext(next)
		if !strings.HasPrefix(got, Prefix+"/") || strings.HasPrefix(got, "//") || strings.Contains(got, "\\") {
			t.Fatalf("safeNext(%q) = %q", next, got)
		}
		u, err := url.Parse(got)
		if err == nil && (u.Host != "" || u.Scheme != "") {
			t.Fatalf("safeNext(%q) = %q leaves the console (host %q, scheme %q)", next, got, u.Host, u.Scheme)
		}
	})
}

// FuzzFormInt: a form's number field is a whole number or a 400 naming
// the field, never a panic.
func FuzzFormInt(f *testing.F) {
	for _, s := range []string{"", "8", " 12 ", "-1", "1e3", "99999999999999999999", "８"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r, _ := http.NewRequest(http.MethodPost, "/", strings.NewReader(url.Values{"duration": {v}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		_, err := formInt(r, "duration")
		if err != nil && !strings.HasPrefix(err.Error(), "InvalidParameter: duration:") {
			t.Fatalf("formInt(%q): %v", v, err)
		}
	})
}
