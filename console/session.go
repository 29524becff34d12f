package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/auditpipe/auditpipe/internal/auth"
)

// Cookie names. The session cookie holds only the session's random id;
// the identity stays on the server.
const (
	sessionCookie = "auditpipe_console"
	// preCookie is the sign-in form's CSRF token (double submit), set
	// before there is a session.
	preCookie = "auditpipe_console_signin"
	csrfField = "csrf"
)

// session is one signed-in visitor.
type session struct {
	id      string
	who     auth.Identity
	csrf    string
	expires time.Time
	idle    time.Time
	// recheck authenticates the visitor again at every request (the
	// token they signed in with, or the request's client certificate),
	// so a token removed from the tokens file, or a role changed, ends
	// the session at once; nil for an external sign-in.
	recheck func(*http.Request) (auth.Identity, error)
}

// sessions is the server-side session store (in memory: a restart signs
// everyone out, as Teleport's web sessions without a backend do).
type sessions struct {
	mu      sync.Mutex
	byID    map[string]*session
	ttl     time.Duration
	idleTTL time.Duration
	now     func() time.Time
}

func newSessions(ttl, idle time.Duration, now func() time.Time) *sessions {
	return &sessions{byID: map[string]*session{}, ttl: ttl, idleTTL: idle, now: now}
}

// randomToken returns 32 random bytes, base64url.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// create starts a session for who.
func (s *sessions) create(who auth.Identity, recheck func(*http.Request) (auth.Identity, error)) *session {
	now := s.now()
	ss := &session{id: randomToken(), who: who, csrf: randomToken(), expires: now.Add(s.ttl), idle: now.Add(s.idleTTL), recheck: recheck}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, x := range s.byID { // sweep the ended ones
		if now.After(x.expires) || now.After(x.idle) {
			delete(s.byID, id)
		}
	}
	s.byID[ss.id] = ss
	return ss
}

// get returns the live session of id and renews its idle time.
func (s *sessions) get(id string) (*session, bool) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.byID[id]
	if !ok {
		return nil, false
	}
	if now.After(ss.expires) || now.After(ss.idle) {
		delete(s.byID, id)
		return nil, false
	}
	ss.idle = now.Add(s.idleTTL)
	return ss, true
}

func (s *sessions) end(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, id)
}

// cookie returns a console cookie: HttpOnly, SameSite=Strict, Secure when
// the console is served over TLS, scoped to the console's path.
func (c *Console) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: Prefix + "/", MaxAge: maxAge,
		HttpOnly: true, Secure: c.opts.Secure, SameSite: http.SameSiteStrictMode}
}

// sameOrigin refuses a request another site made: a browser's
// Sec-Fetch-Site other than same-origin (or none: typed by the user), or
// an Origin that is not this host.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	return true
}

// tokenEqual compares two tokens in constant time; an empty one never
// matches.
func tokenEqual(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
