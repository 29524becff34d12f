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
	// AgentKindInventory is an instance's package inventory (Inventory),
	// for the indexer.
	AgentKindInventory = "inventory"
)

// AgentMessageKind tells the messages of opctl.agent.v1 apart without
// decoding them: a JSON object with an inventory member is an Inventory
// (which may name a work_request_id too), else one with a
// work_request_id member is a WorkProgress, any other value an
// AgentReport (which its decoder then refuses when it is not one). Each consumer of the topic takes its own
// kind, decodes it strictly and dead-letters what fails; it passes over
// the other kinds. So every message has exactly one consumer that may
// refuse it, and a malformed message is dead-lettered once: by the policy
// service (the topic's first reader), the scheduler (work progress) or
// the indexer (inventories).
func AgentMessageKind(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return AgentKindReport
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(b, &members); err != nil {
		return AgentKindReport
	}
	if _, ok := members["inventory"]; ok {
		return AgentKindInventory
	}
	if _, ok := members["work_request_id"]; !ok {
		return AgentKindReport
	}
	return AgentKindWorkProgress
}
