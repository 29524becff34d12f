package queryapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/auditpipe/auditpipe/internal/config"
)

// Credentials are what a request presented to authenticate, in any of the
// ways ClickHouse's HTTP interface accepts: HTTP basic auth, the
// X-ClickHouse-User / X-ClickHouse-Key headers, the user / password URL
// parameters, or a bearer token (Authorization: Bearer, as clickhouse-go
// sends a JWT).
type Credentials struct {
	User     string
	Password config.Secret
	Token    config.Secret
}

// IsAnonymous reports whether the request presented no credentials, or
// only ClickHouse's default user with no password, which every ClickHouse
// client sends when it is given none.
func (c Credentials) IsAnonymous() bool {
	return (c.User == "" || c.User == "default") && c.Password == "" && c.Token == ""
}

// credentialsOf reads the credentials of r.
func credentialsOf(r *http.Request) Credentials {
	var c Credentials
	if u, p, ok := r.BasicAuth(); ok {
		c.User, c.Password = u, config.Secret(p)
	}
	if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "Bearer ") {
		c.Token = config.Secret(strings.TrimSpace(a[7:]))
	}
	if u := r.Header.Get("X-ClickHouse-User"); u != "" {
		c.User = u
		c.Password = config.Secret(r.Header.Get("X-ClickHouse-Key"))
	}
	q := r.URL.Query()
	if u := q.Get("user"); u != "" && c.User == "" {
		c.User, c.Password = u, config.Secret(q.Get("password"))
	}
	return c
}

// ErrBadCredentials is returned by an Authenticator for credentials that
// are not valid.
var ErrBadCredentials = errors.New("authentication failed: password is incorrect, or there is no user with such name")

// Authenticator decides who a request's credentials belong to. It is the
// seam where the endpoint's real authentication plugs in; StaticCredential
// is the one used until then (and by tests).
type Authenticator interface {
	// Authenticate returns the name of the principal c authenticates, or
	// an error (ErrBadCredentials, wrapped or not) when c is not valid.
	Authenticate(ctx context.Context, c Credentials) (string, error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(ctx context.Context, c Credentials) (string, error)

// Authenticate implements Authenticator.
func (f AuthenticatorFunc) Authenticate(ctx context.Context, c Credentials) (string, error) {
	return f(ctx, c)
}

// StaticCredential authenticates one user with one password, or one bearer
// token, compared in constant time. An empty Password or Token never
// matches.
type StaticCredential struct {
	User     string
	Password config.Secret
	Token    config.Secret
}

// Authenticate implements Authenticator.
func (s StaticCredential) Authenticate(_ context.Context, c Credentials) (string, error) {
	if s.Token != "" && c.Token != "" && equalSecret(string(s.Token), string(c.Token)) {
		return s.User, nil
	}
	if s.Password != "" && c.Token == "" && c.User == s.User && equalSecret(string(s.Password), string(c.Password)) {
		return s.User, nil
	}
	return "", ErrBadCredentials
}

// equalSecret compares a and b in time independent of where they differ
// (digests first, so the length does not show either).
func equalSecret(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}
