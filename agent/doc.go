// Package agent is the host agent: it follows the signed grants on
// opctl.grants.v1 for the host and resources it is configured for and
// makes the host match each live grant (after its start, before its
// expiry): the grant's login user (password locked, home directory,
// shell, account expiry), the operator's SSH keys in its
// authorized_keys, a sudoers fragment from the grant's effective
// privileges (checked with visudo -cf before it is installed), audit
// rules on the user's auid (execve, both arches) and, for keystroke
// grants, pam_tty_audit. On revocation, expiry or completion it ends
// every process of the user's sessions (by loginuid), removes the rest
// and deletes the user. It reconciles at start and periodically, and
// reports DEPLOYED, DEPLOYFAILED and UNDEPLOYED on opctl.agent.v1.
//
// Everything it changes goes through Host, a narrow interface with two
// implementations: the live host (real commands, behind the agent.live
// switch) and the rendering host, which writes the plan under a root
// directory for review and for tests that cannot be root.
package agent
