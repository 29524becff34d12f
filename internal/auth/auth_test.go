package auth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestNewRefusesBadEntries(t *testing.T) {
	_, good, err := NewToken("a", RoleAuditor)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		tokens  []Token
		clients []Client
		want    string
	}{
		{"unknown role", []Token{{Name: "x", Role: "root", SHA256: good.SHA256}}, nil, `role "root" is not one of`},
		{"hash not hex", []Token{{Name: "x", Role: RoleAuditor, SHA256: "zz"}}, nil, "not 64 hex digits"},
		{"hash too short", []Token{{Name: "x", Role: RoleAuditor, SHA256: good.SHA256[:62]}}, nil, "not 64 hex digits"},
		{"client without a name", nil, []Client{{Role: RoleMetrics}}, "a name and a known role"},
	}
	for _, tt := range tests {
		if _, err := New(tt.tokens, tt.clients); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestAuthenticateAndRevoke: a token authenticates in each shape clients
// send it, and no longer once it is removed (Set, as a reload does).
func TestAuthenticateAndRevoke(t *testing.T) {
	tok, entry, err := NewToken("grafana", RoleAuditor)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(entry.SHA256, tok) || len(entry.SHA256) != 64 {
		t.Fatalf("entry %+v: want the token's hash only", entry)
	}
	a, err := New([]Token{entry}, nil)
	if err != nil {
		t.Fatal(err)
	}
	shapes := map[string]func(r *http.Request){
		"bearer":           func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) },
		"basic":            func(r *http.Request) { r.SetBasicAuth("grafana", tok) },
		"X-ClickHouse-Key": func(r *http.Request) { r.Header.Set("X-ClickHouse-Key", tok) },
	}
	for name, set := range shapes {
		r := httptest.NewRequest("GET", "/", nil)
		set(r)
		id, err := a.Authenticate(r)
		if err != nil || id.Name != "grafana" || id.Role != RoleAuditor || id.Method != "token" {
			t.Errorf("%s: %+v %v", name, id, err)
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer "+tok+"x")
	if _, err := a.Authenticate(r); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("a wrong token: %v", err)
	}
	if err := a.Set(nil, nil); err != nil {
		t.Fatal(err)
	}
	r = httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	if _, err := a.Authenticate(r); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("a revoked token: %v", err)
	}
}

// TestGroups: a token's groups (the tokens file's field groups) reach its
// identity, and an empty group name is refused.
func TestGroups(t *testing.T) {
	tok, entry, err := NewToken("alice", RoleApprover)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	body := "tokens:\n  - name: alice\n    role: approver\n    sha256: " + entry.SHA256 + "\n    groups: [EXPLICIT_APPROVED_POLICY_USERS, ops]\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(tokens, []Client{{CommonName: "agent01", Role: RoleAgent, Groups: []string{"hosts"}}})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	id, err := a.Authenticate(r)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(id.Groups, []string{"EXPLICIT_APPROVED_POLICY_USERS", "ops"}) {
		t.Errorf("groups %v", id.Groups)
	}
	if !id.InGroup("nobody", "ops") || id.InGroup("PRE_APPROVED_POLICY_USERS") || (Identity{}).InGroup("ops") {
		t.Errorf("InGroup wrong for %v", id.Groups)
	}
	tests := []struct {
		name    string
		tokens  []Token
		clients []Client
	}{
		{"token with an empty group", []Token{{Name: "x", Role: RoleApprover, SHA256: entry.SHA256, Groups: []string{"a", " "}}}, nil},
		{"client with an empty group", nil, []Client{{CommonName: "c", Role: RoleAgent, Groups: []string{""}}}},
	}
	for _, tt := range tests {
		if _, err := New(tt.tokens, tt.clients); err == nil || !strings.Contains(err.Error(), "groups[") {
			t.Errorf("%s: %v, want an error naming the group", tt.name, err)
		}
	}
}
