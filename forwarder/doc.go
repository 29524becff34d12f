// Package forwarder sends audit events, and the policy service's lifecycle
// events, to the owner's SIEM as RFC 5424 syslog messages over TLS with
// RFC 5425 octet-counting framing, at least once and never dropping an
// event silently.
//
// A Forwarder runs one pipeline per Destination. Each pipeline has its own
// Kafka consumer group and filter, so a slow or unreachable SIEM never holds
// back another. A pipeline commits a Kafka offset only after the message's
// bytes were written to the SIEM's TCP connection, acknowledged by the
// SIEM's TCP stack, and the connection stayed up for the settle time
// afterwards; when a connection breaks, every message not yet settled counts
// as unwritten and is sent again on the next connection. On a stop, the rest
// is committed only when the SIEM closes its side cleanly (not with a reset)
// after reading everything. A receiver therefore sees each event at
// least once, sometimes twice, in order per host; event_id is the dedup key.
//
// Events longer than the destination's maximum message size are split into
// numbered parts that share the event_id (SD params part and parts); the
// MSG of the parts, concatenated in order, is the event's raw_data. Events
// that cannot be sent at all (undecodable, or headers alone over the limit)
// go to the dead-letter topic with the reason; nothing is truncated or
// skipped silently.
//
// Lifecycle events (opctl.lifecycle.v1) are read beside the audit events
// and sent with MSGID the kind, their fields as SD-PARAMs and a readable
// MSG (see lifecycle.go and the README's "Lifecycle events"); a
// destination gets those of the resources its Filter.Resources names, or
// all of them when it is filtered neither by resource nor by host.
//
// Destinations come from a Source: the configuration (StaticSource), or
// the signed assignments of opctl.assignments.v1 (AssignmentSource), one
// destination per resource whose verified assignment forwards logs (the
// assignment's syslog address and CA certificate, Filter.Hosts the
// resource's hosts, Filter.Resources the resource); a record that does
// not verify against the configured keys is refused and changes nothing.
package forwarder
