package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// Role is a part of the pipeline with a Kafka principal of its own and
// the ACLs of DESIGN.md's "Topics and who may write them": each role may
// write and read only the topics the table gives it.
type Role string

// The roles.
const (
	RoleCollector Role = "collector"
	RoleIndexer   Role = "indexer"
	RoleForwarder Role = "forwarder"
	RolePolicy    Role = "policy"
	RoleScheduler Role = "scheduler"
	RoleAgent     Role = "agent"
	// RoleHost is target host's one principal: the collector and the
	// agent of one host in one process, so the union of their ACLs.
	RoleHost Role = "host"
)

// Roles lists every role.
func Roles() []Role {
	return []Role{RoleCollector, RoleIndexer, RoleForwarder, RolePolicy, RoleScheduler, RoleAgent, RoleHost}
}

// Operation is what an ACL allows.
type Operation string

// The operations the roles are given. Describe (metadata, offsets) comes
// with Read and Write.
const (
	OpRead  Operation = "Read"
	OpWrite Operation = "Write"
)

// ResourceType is what an ACL is about.
type ResourceType string

// The resource types the roles' ACLs name.
const (
	ResourceTopic ResourceType = "Topic"
	ResourceGroup ResourceType = "Group"
)

// ACL allows a principal one operation on a resource (a topic, or the
// consumer groups whose names start with Name when Prefixed).
type ACL struct {
	Resource  ResourceType
	Name      string
	Prefixed  bool
	Operation Operation
}

func (a ACL) String() string {
	p := ""
	if a.Prefixed {
		p = "*"
	}
	return fmt.Sprintf("%s %s %s%s", a.Operation, a.Resource, a.Name, p)
}

// The consumer-group name prefixes of the consuming roles: a group whose
// name does not start with its role's prefix is refused
// (GROUP_AUTHORIZATION_FAILED). The defaults, auditpipe-indexer and
// auditpipe-forwarder-<destination>, do.
const (
	GroupPrefixIndexer   = "auditpipe-indexer"
	GroupPrefixForwarder = "auditpipe-forwarder"
	GroupPrefixPolicy    = "auditpipe-policy"
	GroupPrefixScheduler = "auditpipe-scheduler"
	GroupPrefixAgent     = "auditpipe-agent"
)

// RoleACLs returns what role may do: write its topics, read its topics,
// and (for roles that consume in a group) use the groups of its prefix.
// Every role writes the dead-letter topic. No role may create, delete or
// alter topics, or read what the table does not give it.
func RoleACLs(role Role) []ACL {
	var writes, reads, groups []string
	switch role {
	case RoleCollector:
		writes = []string{TopicAudit}
		reads = []string{TopicGrants}
	case RoleIndexer:
		reads = []string{TopicAudit, TopicLifecycle, TopicDeadLetter, TopicAgent}
		groups = []string{GroupPrefixIndexer}
	case RoleForwarder:
		reads = []string{TopicAudit, TopicLifecycle, TopicAssignments}
		groups = []string{GroupPrefixForwarder}
	case RolePolicy:
		writes = []string{TopicGrants, TopicAssignments, TopicLifecycle, TopicDispatch}
		reads = []string{TopicAgent}
		// Target scheduler runs the policy module (its outbox relay
		// publishes the scheduler's dispatches, and the grants of
		// governed runs) beside the scheduler's consumer of the agents'
		// work progress, under the one principal of the process: the
		// policy principal, which therefore also uses the scheduler's
		// groups.
		groups = []string{GroupPrefixPolicy, GroupPrefixScheduler}
	case RoleScheduler:
		writes = []string{TopicLifecycle, TopicDispatch}
		reads = []string{TopicAgent}
		groups = []string{GroupPrefixScheduler}
	case RoleAgent:
		writes = []string{TopicAgent}
		reads = []string{TopicGrants, TopicAssignments, TopicDispatch}
		groups = []string{GroupPrefixAgent}
	case RoleHost:
		writes = []string{TopicAudit, TopicAgent}
		reads = []string{TopicGrants, TopicAssignments, TopicDispatch}
		groups = []string{GroupPrefixAgent}
	default:
		return nil
	}
	writes = append(writes, TopicDeadLetter)
	var acls []ACL
	for _, t := range writes {
		acls = append(acls, ACL{Resource: ResourceTopic, Name: t, Operation: OpWrite})
	}
	for _, t := range reads {
		acls = append(acls, ACL{Resource: ResourceTopic, Name: t, Operation: OpRead})
	}
	for _, g := range groups {
		acls = append(acls, ACL{Resource: ResourceGroup, Name: g, Prefixed: true, Operation: OpRead})
	}
	return acls
}

// Principal is the ACL principal of a SASL user.
func Principal(user string) string { return "User:" + user }

func (a ACL) entry(principal string) kafkago.ACLEntry {
	e := kafkago.ACLEntry{
		ResourceType:        kafkago.ResourceTypeTopic,
		ResourceName:        a.Name,
		ResourcePatternType: kafkago.PatternTypeLiteral,
		Principal:           principal,
		Host:                "*",
		Operation:           kafkago.ACLOperationTypeRead,
		PermissionType:      kafkago.ACLPermissionTypeAllow,
	}
	if a.Resource == ResourceGroup {
		e.ResourceType = kafkago.ResourceTypeGroup
	}
	if a.Prefixed {
		e.ResourcePatternType = kafkago.PatternTypePrefixed
	}
	if a.Operation == OpWrite {
		e.Operation = kafkago.ACLOperationTypeWrite
	}
	return e
}

// EnsureACLs creates, for each role in users (role → SASL username), the
// ACLs of RoleACLs for its principal; ACLs that exist already are left as
// they are. c must be a principal allowed to alter the cluster's ACLs (a
// superuser).
func (c Config) EnsureACLs(ctx context.Context, users map[Role]string) error {
	tr, err := c.transport()
	if err != nil {
		return fmt.Errorf("kafka: ensure ACLs: %w", err)
	}
	defer tr.CloseIdleConnections()
	cl := &kafkago.Client{Addr: kafkago.TCP(c.Brokers...), Transport: tr, Timeout: 30 * time.Second}
	req := &kafkago.CreateACLsRequest{}
	for _, role := range Roles() {
		user, ok := users[role]
		if !ok {
			continue
		}
		for _, a := range RoleACLs(role) {
			req.ACLs = append(req.ACLs, a.entry(Principal(user)))
		}
	}
	if len(req.ACLs) == 0 {
		return nil
	}
	resp, err := cl.CreateACLs(ctx, req)
	if err != nil {
		return fmt.Errorf("kafka: create ACLs: %w", Classify(err))
	}
	var errs []error
	for i, e := range resp.Errors {
		if e != nil {
			errs = append(errs, fmt.Errorf("kafka: create ACL %s for %s: %w", req.ACLs[i].ResourceName, req.ACLs[i].Principal, Classify(e)))
		}
	}
	return errors.Join(errs...)
}
