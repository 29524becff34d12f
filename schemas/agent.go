package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// TopicAgent carries the host agents' reports (AgentReport), key = host.
const TopicAgent = "opctl.agent.v1"

// Deployment states of a grant on a host, as OCI's access request states
// name them: the policy service moves the request's state with them.
const (
	AgentDeployed     = "DEPLOYED"     // the host matches the grant
	AgentDeployFailed = "DEPLOYFAILED" // a step failed; nothing of the grant is left on the host
	AgentUndeployed   = "UNDEPLOYED"   // the grant's user, sessions, sudoers and rules are gone
)

// AgentReport is a message on topic opctl.agent.v1 (key = Host): what a
// host agent did with one grant. Its JSON Schema is
// jsonschema/agent-report.schema.json.
type AgentReport struct {
	Host      string `json:"host"`
	LoginID   string `json:"loginid"`
	ReqAuthID string `json:"req_auth_id,omitempty"` // empty when the agent no longer knows it
	// State is AgentDeployed, AgentDeployFailed or AgentUndeployed.
	State string `json:"state"`
	// Step is the step that failed (DEPLOYFAILED: user, ssh_keys,
	// sudoers, audit_rules, tty_audit) or what removed the grant
	// (UNDEPLOYED: revoked, expired, not_for_host, reconcile).
	Step string `json:"step,omitempty"`
	// Reason says why, in words: the error of a failed step.
	Reason string `json:"reason,omitempty"`
	// Time is when the agent finished, UTC.
	Time time.Time `json:"time"`
	// PublishSeq numbers the agent's messages of its host on
	// opctl.agent.v1 (all kinds together; inside the signed payload): each
	// consumer refuses a message whose number is below the last it applied
	// for the host, or equal to it with other content, as a replay.
	PublishSeq int64 `json:"publish_seq,omitempty"`
}

// Validate checks what consumers rely on.
func (r *AgentReport) Validate() error {
	switch {
	case r.Host == "":
		return errors.New("agent report: host is empty")
	case r.LoginID == "":
		return fmt.Errorf("agent report from %s: loginid is empty", r.Host)
	case r.State != AgentDeployed && r.State != AgentDeployFailed && r.State != AgentUndeployed:
		return fmt.Errorf("agent report from %s on %s: state %q is not %s, %s or %s", r.Host, r.LoginID, r.State, AgentDeployed, AgentDeployFailed, AgentUndeployed)
	case r.State == AgentDeployFailed && r.Reason == "":
		return fmt.Errorf("agent report from %s on %s: DEPLOYFAILED without a reason", r.Host, r.LoginID)
	case r.Time.IsZero():
		return fmt.Errorf("agent report from %s on %s: time is zero", r.Host, r.LoginID)
	}
	return nil
}

// DecodeAgentReport decodes one report strictly (unknown fields and
// trailing data refused) and validates it.
func DecodeAgentReport(b []byte) (AgentReport, error) {
	var r AgentReport
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return AgentReport{}, fmt.Errorf("agent report: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return AgentReport{}, errors.New("agent report: data after the report")
	}
	if err := r.Validate(); err != nil {
		return AgentReport{}, err
	}
	return r, nil
}
