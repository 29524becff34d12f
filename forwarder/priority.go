package forwarder

import (
	"path"

	"github.com/auditpipe/auditpipe/schemas"
)

// Class is what an event says happened, as far as its syslog severity goes.
// Each class has a default severity (DefaultSeverities), which a
// destination can override (Destination.Severities).
type Class string

// Event classes.
const (
	ClassLogin         Class = "login"          // a successful login
	ClassLoginFailed   Class = "login_failed"   // a login with res=failed
	ClassLogout        Class = "logout"         // a logout
	ClassCommand       Class = "command"        // a command that succeeded
	ClassCommandFailed Class = "command_failed" // a command whose syscall failed
	ClassSudoRefused   Class = "sudo_refused"   // sudo (or su) that failed: refused privileges
	ClassKeys          Class = "keys"           // keystrokes
	// ClassLifecycle is a lifecycle event of the policy service (a
	// control, an assignment or an access request changed).
	ClassLifecycle Class = "lifecycle"
	// ClassLifecycleEnded is a lifecycle event that ends or refuses
	// access, or reports a failure: a request revoked, expired, rejected
	// or whose deployment failed; a control or an assignment deleted,
	// unassigned or failed (see lifecycleEnded).
	ClassLifecycleEnded Class = "lifecycle_ended"
)

// RFC 5424 severities (section 6.2.1) and the facility the forwarder uses
// by default.
const (
	SeverityWarning = 4
	SeverityNotice  = 5
	SeverityInfo    = 6
	// FacilityAuthpriv (10, security/authorization messages, private) is
	// where stock receiver configurations file security records: rsyslog's
	// and syslog-ng's Debian configurations write authpriv.* to the
	// restricted auth log.
	FacilityAuthpriv = 10
)

// numClasses is the number of event classes.
const numClasses = 9

// Classes returns every class, in the order of the README's table.
func Classes() []Class {
	return []Class{ClassLogin, ClassLoginFailed, ClassLogout, ClassCommand, ClassCommandFailed, ClassSudoRefused, ClassKeys,
		ClassLifecycle, ClassLifecycleEnded}
}

// DefaultSeverities returns each class's default severity, indexed as
// Classes: failures notice, failed logins and refused sudo warning,
// lifecycle events that end or refuse access notice, the rest
// informational.
func DefaultSeverities() [numClasses]int {
	return [numClasses]int{
		SeverityInfo,    // login
		SeverityWarning, // login_failed
		SeverityInfo,    // logout
		SeverityInfo,    // command
		SeverityNotice,  // command_failed
		SeverityWarning, // sudo_refused
		SeverityInfo,    // keys
		SeverityInfo,    // lifecycle
		SeverityNotice,  // lifecycle_ended
	}
}

// classIndex returns c's index in Classes.
func classIndex(c Class) (int, bool) {
	for i, x := range Classes() {
		if x == c {
			return i, true
		}
	}
	return 0, false
}

// classify returns the index (in Classes) of ev's class.
func classify(ev *schemas.Event) int {
	failed := ev.Res == "failed"
	switch ev.Event {
	case schemas.KindLogin:
		if failed {
			return 1
		}
		return 0
	case schemas.KindLogout:
		return 2
	case schemas.KindCommand:
		if !failed {
			return 3
		}
		if privileged(ev) {
			return 5
		}
		return 4
	}
	return 6
}

// privileged reports whether a command event ran sudo or su (by its
// executable, or its argv[0] when the executable is not known).
func privileged(ev *schemas.Event) bool {
	prog := ev.Exe
	if prog == "" && len(ev.Args) > 0 {
		prog = ev.Args[0]
	}
	switch path.Base(prog) {
	case "sudo", "su", "sudoedit":
		return true
	}
	return false
}

// lifecycleEnded are the states that make a lifecycle event's class
// lifecycle_ended: of an access request (OCI's AccessRequest states),
// of an operator control and of an assignment.
var lifecycleEnded = map[string]bool{
	"REVOKING": true, "REVOKED": true, "REVOKEFAILED": true, "EXPIRED": true, "EXPIRYFAILED": true,
	"REJECTED": true, "EXTENSIONREJECTED": true, "DEPLOYFAILED": true, "UNDEPLOYFAILED": true, "CLOSEFAILED": true,
	"DELETED": true, "DELETIONFAILED": true, "UNASSIGNED": true, "APPLYFAILED": true, "UPDATEFAILED": true,
}

// classifyLifecycle returns the index (in Classes) of l's class.
func classifyLifecycle(l *schemas.Lifecycle) int {
	if lifecycleEnded[l.StateTo] {
		return 8
	}
	return 7
}
