package agent

import (
	"context"
	"time"
)

// User is a local account, as /etc/passwd holds it.
type User struct {
	Name  string
	UID   int
	GID   int
	Gecos string
	Home  string
	Shell string
}

// UserSpec is an account the agent creates: password locked, home
// directory created, a group of its own.
type UserSpec struct {
	Name  string
	Gecos string // the agent's marker (see marker)
	Home  string
	Shell string
	// Expires is the day (UTC) the account expires: the second line of
	// defence if the agent is not there to delete it.
	Expires time.Time
}

// Host is everything the agent changes on a host. Each method does one
// thing and can be undone by another; the agent orders them and rolls
// back. A method is idempotent where that is natural: removing what is
// absent succeeds.
type Host interface {
	// Users lists the local accounts.
	Users() ([]User, error)
	// LookupUser returns the account named name, if any.
	LookupUser(name string) (User, bool, error)
	// AddUser creates the account (useradd).
	AddUser(spec UserSpec) error
	// SetExpiry sets the account's expiry day (usermod -e).
	SetExpiry(name string, day time.Time) error
	// DeleteUser deletes the account and its home directory (userdel -r);
	// an account that does not exist is not an error.
	DeleteUser(name string) error
	// WriteAuthorizedKeys replaces u's ~/.ssh/authorized_keys.
	WriteAuthorizedKeys(u User, keys []string) error

	// Sudoers returns the names of the fragments in the sudoers
	// directory whose names start with prefix.
	Sudoers(prefix string) ([]string, error)
	// ReadSudoers returns a fragment's content; nil when absent.
	ReadSudoers(name string) ([]byte, error)
	// InstallSudoers checks content (visudo -cf) and installs it under
	// name with an atomic rename; content that does not check is never
	// installed.
	InstallSudoers(name string, content []byte) error
	// RemoveSudoers removes a fragment; absent is not an error.
	RemoveSudoers(name string) error

	// AuditKeys returns the keys of the audit rules in force.
	AuditKeys() ([]string, error)
	// AddAuditRules adds rules (auditctl arguments, each tagged with key
	// by its -k); when one fails, those added are deleted again.
	AddAuditRules(key string, rules [][]string) error
	// DeleteAuditRules deletes every rule tagged with key.
	DeleteAuditRules(key string) error

	// TTYAudit returns the users the agent's PAM file enables
	// pam_tty_audit for.
	TTYAudit() ([]string, error)
	// SetTTYAudit rewrites the agent's PAM file for users (none: no
	// pam_tty_audit line).
	SetTTYAudit(users []string) error

	// EndSessions ends every process whose loginuid (or real uid) is uid:
	// SIGHUP and SIGTERM, then after grace SIGKILL, until none is left.
	// It returns the number of processes signalled.
	EndSessions(ctx context.Context, uid int, grace time.Duration) (int, error)
}
