// Package schemas owns auditpipe's wire contract: the Go types of every
// message on the Kafka topics, their JSON Schema files, the ClickHouse
// migrations and the golden examples taken from the seed documents.
//
// Every other package imports its message types from here, so a change to
// the contract is a change to this package and its golden files.
package schemas

// Kafka topics of the pipeline.
const (
	// TopicAudit carries audit events (login, logout, command, keys), key = host.
	TopicAudit = "opctl.audit.v1"
	// TopicGrants carries grants, compacted, key = login user; a tombstone revokes.
	TopicGrants = "opctl.grants.v1"
	// TopicAssignments carries operator-control assignments with their
	// SIEM destinations, compacted, signed, key = resource.
	TopicAssignments = "opctl.assignments.v1"
	// TopicLifecycle carries policy state changes (Lifecycle), key =
	// resource.
	TopicLifecycle = "opctl.lifecycle.v1"
	// TopicDispatch carries work requests to agents.
	TopicDispatch = "opctl.dispatch.v1"
	// TopicDeadLetter carries input that could not be processed, with the reason.
	TopicDeadLetter = "opctl.deadletter.v1"
)
