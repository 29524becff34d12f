package schemas

import (
	"fmt"
	"net"
	"strconv"
)

// Assignment is a message on topic opctl.assignments.v1 (compacted, key =
// ResourceID): an operator control assigned to a resource, with the
// resource's SIEM destination. Field names follow OCI's
// OperatorControlAssignment. A tombstone (nil value), or IsLogForwarded
// false, means no forwarding for the resource. The policy service
// publishes it; forwarders run one destination per forwarded resource.
type Assignment struct {
	ID                string `json:"id,omitempty"`
	OperatorControlID string `json:"operator_control_id,omitempty"`
	ResourceID        string `json:"resource_id"`
	ResourceType      string `json:"resource_type,omitempty"`
	IsEnforcedAlways  bool   `json:"is_enforced_always"`
	IsLogForwarded    bool   `json:"is_log_forwarded"`
	// RemoteSyslogServerAddress and Port are the SIEM's syslog-over-TLS
	// listener (the seed allows one per system).
	RemoteSyslogServerAddress string `json:"remote_syslog_server_address,omitempty"`
	RemoteSyslogServerPort    int    `json:"remote_syslog_server_port,omitempty"`
	// RemoteSyslogServerCACert is the SIEM's CA certificate, PEM.
	RemoteSyslogServerCACert string `json:"remote_syslog_server_ca_cert,omitempty"`
	// Hosts are the resource's hosts: the events forwarded for it.
	Hosts          []string `json:"hosts,omitempty"`
	LifecycleState string   `json:"lifecycle_state,omitempty"`
	// PublishSeq numbers the policy service's records of this key on
	// this topic (policy's publish_seqs table, inside the signed payload):
	// a consumer refuses a record whose number is below the last it
	// applied for the key, or equal to it with other content, as a replay
	// (grants.Seqs).
	PublishSeq int64 `json:"publish_seq,omitempty"`
}

// Validate checks what a forwarder relies on.
func (a *Assignment) Validate() error {
	if a.ResourceID == "" {
		return fmt.Errorf("assignment: resource_id is empty")
	}
	if !a.IsLogForwarded {
		return nil
	}
	if a.RemoteSyslogServerAddress == "" || a.RemoteSyslogServerPort <= 0 || a.RemoteSyslogServerPort > 65535 {
		return fmt.Errorf("assignment %s: log forwarding needs remote_syslog_server_address and a port (got %q, %d)",
			a.ResourceID, a.RemoteSyslogServerAddress, a.RemoteSyslogServerPort)
	}
	if !a.IsEnforcedAlways {
		// The seed: forwarding needs an always-enforced assignment.
		return fmt.Errorf("assignment %s: log forwarding needs is_enforced_always", a.ResourceID)
	}
	if len(a.Hosts) == 0 {
		return fmt.Errorf("assignment %s: log forwarding needs the resource's hosts", a.ResourceID)
	}
	return nil
}

// SyslogAddress is host:port of the SIEM.
func (a *Assignment) SyslogAddress() string {
	return net.JoinHostPort(a.RemoteSyslogServerAddress, strconv.Itoa(a.RemoteSyslogServerPort))
}
