package ident

import (
	"regexp"
	"strings"
	"testing"
)

// The regexps IsHost and IsID replace (internal/sign, policy and
// policy/scheduler had them); the tests and the fuzz target hold the
// hand-written checks to them.
var (
	hostRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$`)
	idRe   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,254}$`)
)

func TestIsHostAndIsID(t *testing.T) {
	tests := []struct {
		name         string
		in           string
		host, wantID bool
	}{
		{"empty", "", false, false},
		{"one letter", "a", true, true},
		{"one digit", "7", true, true},
		{"fqdn", "web-01.prod.example.com", true, true},
		{"underscore", "db_2", true, true},
		{"upper case", "HOST.Example", true, true},
		{"colon", "ns:res-1", false, true},
		{"leading dot", ".hidden", false, false},
		{"leading dash", "-x", false, false},
		{"leading underscore", "_x", false, false},
		{"leading colon", ":x", false, false},
		{"slash", "a/b", false, false},
		{"dot dot slash", "a/../../etc", false, false},
		{"space", "a b", false, false},
		{"trailing newline", "host\n", false, false},
		{"nul", "host\x00", false, false},
		{"non-ASCII letter", "hôte", false, false},
		{"invalid UTF-8", "h\xff", false, false},
		{"at", "user@host", false, false},
		{"253 bytes", "a" + strings.Repeat("b", 252), true, true},
		{"254 bytes", "a" + strings.Repeat("b", 253), false, true},
		{"255 bytes", "a" + strings.Repeat("b", 254), false, true},
		{"256 bytes", "a" + strings.Repeat("b", 255), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsHost(tt.in); got != tt.host {
				t.Errorf("IsHost(%q) = %v, want %v", tt.in, got, tt.host)
			}
			if got := IsID(tt.in); got != tt.wantID {
				t.Errorf("IsID(%q) = %v, want %v", tt.in, got, tt.wantID)
			}
			// The table itself must agree with the regexps replaced.
			if re := hostRe.MatchString(tt.in); re != tt.host {
				t.Errorf("table row disagrees with hostRe on %q: regexp says %v", tt.in, re)
			}
			if re := idRe.MatchString(tt.in); re != tt.wantID {
				t.Errorf("table row disagrees with idRe on %q: regexp says %v", tt.in, re)
			}
		})
	}
}

// FuzzIdent checks that IsHost and IsID accept exactly what the regexps
// they replace match.
func FuzzIdent(f *testing.F) {
	for _, s := range []string{"", "a", "web-01.example.com", "ns:res", ".x", "a/b", "h\xff",
		"host\n", strings.Repeat("a", 253), strings.Repeat("a", 254), strings.Repeat("a", 256)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := IsHost(s), hostRe.MatchString(s); got != want {
			t.Errorf("IsHost(%q) = %v, regexp %v", s, got, want)
		}
		if got, want := IsID(s), idRe.MatchString(s); got != want {
			t.Errorf("IsID(%q) = %v, regexp %v", s, got, want)
		}
	})
}
