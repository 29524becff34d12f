// Package auth authenticates every HTTP request to an auditpipe process
// and authorizes it by role: a bearer token (stored only as its SHA-256,
// with a name and a role) or a client certificate verified by the
// listener's TLS (mutual TLS), mapped to a role by its subject. The
// identity reaches handlers through the request's context, so they can log
// who did what.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// Roles. Machine identities get only what their component needs.
const (
	RoleAdmin     = "admin"     // everything
	RoleAuditor   = "auditor"   // read every event, query, metrics
	RoleApprover  = "approver"  // answer access requests (policy)
	RoleOperator  = "operator"  // own access requests (policy)
	RoleCollector = "collector" // machine: a collector host
	RoleAgent     = "agent"     // machine: a host agent
	RoleIndexer   = "indexer"   // machine: writes the store
	RoleForwarder = "forwarder" // machine
	RoleScheduler = "scheduler" // machine
	RoleMetrics   = "metrics"   // a Prometheus scraper: /metrics only
)

// Roles lists every role.
func Roles() []string {
	return []string{RoleAdmin, RoleAuditor, RoleApprover, RoleOperator, RoleCollector, RoleAgent, RoleIndexer, RoleForwarder, RoleScheduler, RoleMetrics}
}

// Identity is who made a request.
type Identity struct {
	// Name is the token's name or the certificate's subject.
	Name string
	// Role is one of Roles().
	Role string
	// Method is "token" or "certificate".
	Method string
	// Groups are the groups the identity belongs to (the tokens file's or
	// the client entry's groups): the policy service lets a member of a
	// control's approver group act on requests under that control.
	Groups []string
}

// InGroup reports whether the identity belongs to one of groups.
func (id Identity) InGroup(groups ...string) bool {
	for _, g := range groups {
		if slices.Contains(id.Groups, g) {
			return true
		}
	}
	return false
}

// Token is one entry of the tokens file: the token itself is never
// stored, only its SHA-256 (tokens are 256 random bits, so a fast hash is
// as strong as a slow one).
type Token struct {
	Name   string `yaml:"name"`
	Role   string `yaml:"role"`
	SHA256 string `yaml:"sha256"`
	// Groups the token's holder belongs to (optional), e.g. an
	// operator control's approver group.
	Groups []string `yaml:"groups,omitempty"`
}

// Client maps a client certificate's subject common name to a role.
type Client struct {
	CommonName string `yaml:"common_name"`
	Role       string `yaml:"role"`
	// Groups the certificate's holder belongs to (optional).
	Groups []string `yaml:"groups,omitempty"`
}

// File is the tokens file's layout.
type File struct {
	Tokens []Token `yaml:"tokens"`
}

// Authenticator checks requests against tokens and client certificates.
// It is safe for concurrent use; Reload replaces the tokens.
type Authenticator struct {
	mu      sync.RWMutex
	tokens  map[[32]byte]Token
	clients map[string]Client
}

// New returns an authenticator for tokens and certificate clients; every
// role must be known and every hash well formed.
func New(tokens []Token, clients []Client) (*Authenticator, error) {
	a := &Authenticator{}
	if err := a.Set(tokens, clients); err != nil {
		return nil, err
	}
	return a, nil
}

// Set replaces what the authenticator accepts.
func (a *Authenticator) Set(tokens []Token, clients []Client) error {
	tm := map[[32]byte]Token{}
	for i, t := range tokens {
		if !slices.Contains(Roles(), t.Role) {
			return fmt.Errorf("tokens[%d] (%s): role %q is not one of %s", i, t.Name, t.Role, strings.Join(Roles(), ", "))
		}
		b, err := hex.DecodeString(t.SHA256)
		if err != nil || len(b) != 32 {
			return fmt.Errorf("tokens[%d] (%s): sha256 is not 64 hex digits", i, t.Name)
		}
		if err := checkGroups(t.Groups); err != nil {
			return fmt.Errorf("tokens[%d] (%s): %w", i, t.Name, err)
		}
		t.Groups = slices.Clone(t.Groups)
		tm[[32]byte(b)] = t
	}
	cm := map[string]Client{}
	for i, c := range clients {
		if !slices.Contains(Roles(), c.Role) || c.CommonName == "" {
			return fmt.Errorf("clients[%d]: common_name %q, role %q: a name and a known role are required", i, c.CommonName, c.Role)
		}
		if err := checkGroups(c.Groups); err != nil {
			return fmt.Errorf("clients[%d] (%s): %w", i, c.CommonName, err)
		}
		c.Groups = slices.Clone(c.Groups)
		cm[c.CommonName] = c
	}
	a.mu.Lock()
	a.tokens, a.clients = tm, cm
	a.mu.Unlock()
	return nil
}

// checkGroups refuses an empty group name.
func checkGroups(groups []string) error {
	for j, g := range groups {
		if strings.TrimSpace(g) == "" {
			return fmt.Errorf("groups[%d] is empty", j)
		}
	}
	return nil
}

// LoadFile reads a tokens file.
func LoadFile(path string) ([]Token, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokens file: %w", err)
	}
	var f File
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("tokens file %s: %w", path, err)
	}
	return f.Tokens, nil
}

// ErrUnauthenticated is returned when a request carries no credential the
// authenticator knows.
var ErrUnauthenticated = errors.New("no valid credential: send Authorization: Bearer TOKEN, or a client certificate")

// Authenticate returns the request's identity: from the client certificate
// the TLS listener verified, else from the bearer token (Authorization:
// Bearer, or as the password of basic auth or X-ClickHouse-Key, the way
// ClickHouse's clients send credentials).
func (a *Authenticator) Authenticate(r *http.Request) (Identity, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		cn := r.TLS.VerifiedChains[0][0].Subject.CommonName
		if c, ok := a.clients[cn]; ok {
			return Identity{Name: cn, Role: c.Role, Method: "certificate", Groups: slices.Clone(c.Groups)}, nil
		}
	}
	return a.token(bearer(r))
}

// AuthenticateToken returns the identity of a bearer token (the web
// console's sign-in form sends the token once, then carries a session).
func (a *Authenticator) AuthenticateToken(tok string) (Identity, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.token(strings.TrimSpace(tok))
}

// token looks tok up; the caller holds a.mu.
func (a *Authenticator) token(tok string) (Identity, error) {
	if tok == "" {
		return Identity{}, ErrUnauthenticated
	}
	// Looked up by its hash: the lookup's timing depends on the hash,
	// which tells nothing of a token that is not known.
	t, ok := a.tokens[sha256.Sum256([]byte(tok))]
	if !ok {
		return Identity{}, ErrUnauthenticated
	}
	return Identity{Name: t.Name, Role: t.Role, Method: "token", Groups: slices.Clone(t.Groups)}, nil
}

func bearer(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if t, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(t)
		}
		if _, p, ok := r.BasicAuth(); ok {
			return p
		}
	}
	return r.Header.Get("X-ClickHouse-Key")
}

type ctxKey struct{}

// FromContext returns the identity Require put in the request's context.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(Identity)
	return id, ok
}

// WithIdentity returns ctx carrying id (for tests and in-process callers).
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// Require wraps h: a request without a valid credential gets 401, one
// whose role is not among roles (admin always is) 403; the identity is in
// the handler's context.
func (a *Authenticator) Require(h http.Handler, roles ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := a.Authenticate(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="auditpipe"`)
			http.Error(w, "401 unauthorized: "+err.Error(), http.StatusUnauthorized)
			return
		}
		if id.Role != RoleAdmin && !slices.Contains(roles, id.Role) {
			http.Error(w, fmt.Sprintf("403 forbidden: %s (role %s) may not use %s", id.Name, id.Role, r.URL.Path), http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r.WithContext(WithIdentity(r.Context(), id)))
	})
}

// NewToken returns a fresh random token and its entry for the tokens file.
func NewToken(name, role string) (string, Token, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", Token{}, fmt.Errorf("new token: %w", err)
	}
	tok := "ap_" + base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(tok))
	return tok, Token{Name: name, Role: role, SHA256: hex.EncodeToString(sum[:])}, nil
}
