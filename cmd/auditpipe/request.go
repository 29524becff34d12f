package main

// requestCommands are the subcommands of `auditpipe request`, one place
// for all of them: the policy API's (policy_request.go) and the audit
// log report (report.go).
func requestCommands() map[string]command {
	subs := policyRequestCommands()
	subs["report"] = command{"print an access request's audit log report: its sessions and commands as a process tree", runRequestReport}
	return subs
}
