package schemas

import (
	"bytes"
	"encoding/json"
)

// Kinds of message on opctl.agent.v1 (AgentMessageKind).
const (
	// AgentKindReport is a grant deployment report (AgentReport), for the
	// policy service.
	AgentKindReport = "agent_report"
	// AgentKindWorkProgress is a work request's progress (WorkProgress),
	// for the scheduler.
	AgentKindWorkProgress = "work_progress"
)

// AgentMessageKind tells the two messages of opctl.agent.v1 apart
// without decoding either: a JSON object with a work_request_id member is
// a WorkProgress, any other value an AgentReport (which its decoder then
// refuses when it is not one). Each consumer of the topic takes its own
// kind, decodes it strictly and dead-letters what fails; it passes over
// the other kind. So every message has exactly one consumer that may
// refuse it, and a malformed message is dead-lettered once, by the policy
// service (the topic's first reader).
func AgentMessageKind(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return AgentKindReport
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(b, &members); err != nil {
		return AgentKindReport
	}
	if _, ok := members["work_request_id"]; !ok {
		return AgentKindReport
	}
	return AgentKindWorkProgress
}
