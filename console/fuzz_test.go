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

// FuzzSplitList: a list field (approver groups, emails, packages) is its
// items: none empty, none with a separator or surrounding space, and the
// items joined by commas read back the same.
func FuzzSplitList(f *testing.F) {
	for _, s := range []string{"", "a", "a,b", "PATCHERS\r\nEXPLICIT_APPROVED_POLICY_USERS", " a , ,b\n\n", ",,,", "é,\u00a0x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		items := splitList(s)
		for _, it := range items {
			if it == "" || it != strings.TrimSpace(it) || strings.ContainsAny(it, ",\r\n") {
				t.Fatalf("splitList(%q) has item %q", s, it)
			}
		}
		if again := splitList(strings.Join(items, ",")); strings.Join(again, "\x00") != strings.Join(items, "\x00") {
			t.Fatalf("splitList(%q) = %q, but its items joined read back as %q", s, items, again)
		}
	})
}

// FuzzAssignmentWindow: whatever the assignment form holds, its window is
// read or refused with a 400 naming the field, never a panic; an
// always-enforced one has no times.
func FuzzAssignmentWindow(f *testing.F) {
	for _, s := range [][3]string{{"window", "2026-12-02T10:00", "2026-12-02T12:00"}, {"always", "", ""}, {"window", "yesterday", ""}, {"", "2026-13-40T25:61", "x"}} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, enforced, from, to string) {
		body := url.Values{"enforced": {enforced}, "from": {from}, "to": {to}, "forwarded": {"yes"}, "port": {from}}.Encode()
		r, _ := http.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w, err := assignmentWindow(r)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "InvalidParameter: ") {
				t.Fatalf("assignmentWindow: %v", err)
			}
			return
		}
		if w.IsEnforcedAlways && (!w.TimeAssignmentFrom.IsZero() || !w.TimeAssignmentTo.IsZero()) {
			t.Fatalf("an always-enforced window with times: %+v", w)
		}
	})
}
