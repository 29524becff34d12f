package forwarder

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/auditpipe/auditpipe/schemas"
)

// Lifecycle events (issue 10): the policy service's state changes, read on
// opctl.lifecycle.v1 beside the audit events, go to the SIEM of their
// resource as RFC 5424 messages: APP-NAME as audit events, no HOSTNAME
// (the policy service is not one of the resource's hosts), MSGID the kind,
// SD-PARAMs event_id, kind, object_type, object_id, resource_id,
// compartment_id, state_from, state_to, actor and, when the message fits
// with it, json (the whole event), and a readable MSG (lifecycleLine).
// A message that does not fit is split into parts as an audit event is.

// EventLifecycle is what filter.events names lifecycle events by.
const EventLifecycle = "lifecycle"

// MatchLifecycle reports whether l passes the filter. Layers do not apply
// (a lifecycle event has none). Events must be empty or list "lifecycle".
// A filter with resources takes the lifecycle events of those resources
// only (an event without a resource, such as an operator control's, is in
// none). A filter without resources takes every lifecycle event, unless it
// has hosts: a destination for some hosts is a resource's SIEM, and gets
// the lifecycle events of no resource unless it names them, so that one
// resource's SIEM never receives another's changes.
func (f Filter) MatchLifecycle(l *schemas.Lifecycle) bool {
	if !matchList(f.Events, EventLifecycle) {
		return false
	}
	if len(f.Resources) > 0 {
		return l.ResourceID != "" && slices.Contains(f.Resources, l.ResourceID)
	}
	return len(f.Hosts) == 0
}

// wantsLifecycle reports whether any lifecycle event can pass the filter.
func (f Filter) wantsLifecycle() bool {
	return matchList(f.Events, EventLifecycle) && (len(f.Resources) > 0 || len(f.Hosts) == 0)
}

// wantsAudit reports whether any audit event can pass the filter.
func (f Filter) wantsAudit() bool {
	return len(f.Events) == 0 || slices.ContainsFunc(f.Events, func(e string) bool { return e != EventLifecycle })
}

// topics are the topics a destination with filter f reads.
func (f Filter) topics() []string {
	var ts []string
	if f.wantsAudit() {
		ts = append(ts, schemas.TopicAudit)
	}
	if f.wantsLifecycle() {
		ts = append(ts, schemas.TopicLifecycle)
	}
	return ts
}

// IsLifecycle reports whether the SD-PARAMs of a message the forwarder
// sent are a lifecycle event's (not an audit event's): tools that read a
// SIEM's file for audit events (auditpipe verify --from-syslog) skip
// those.
func IsLifecycle(params map[string]string) bool {
	_, kind := params["kind"]
	_, object := params["object_type"]
	return kind && object
}

// lifecycleMsgID is the MSGID of a lifecycle event: its kind, at most the
// 32 characters RFC 5424 allows. An assignment's kinds are longer
// (operator_control_assignment.applied): their object type is spelled
// "assignment" there; the kind parameter has it whole.
func lifecycleMsgID(kind string) string {
	if len(kind) > maxMsgID {
		if what, ok := strings.CutPrefix(kind, schemas.ObjectAssignment+"."); ok {
			kind = "assignment." + what
		}
	}
	return kind
}

// lifecycleLine is the readable MSG of a lifecycle event:
//
//	access_request ocid1.accessrequest.9f… APPROVALWAITING -> APPROVED by bob: patch window agreed (actions=INFRA_UPDATE_RESTART, approvals=1/1)
//
// "-> CREATED" when the object is new, "STATE (what)" when the change
// keeps the state (what: the kind after its object type), the comment
// after a colon, the other details in parentheses, sorted by key.
func lifecycleLine(l *schemas.Lifecycle) string {
	var b strings.Builder
	b.WriteString(l.ObjectType)
	b.WriteByte(' ')
	b.WriteString(l.ObjectID)
	b.WriteByte(' ')
	switch {
	case l.StateFrom == "":
		b.WriteString("-> " + l.StateTo)
	case l.StateFrom == l.StateTo:
		_, what, _ := strings.Cut(l.Kind, ".")
		b.WriteString(l.StateTo + " (" + what + ")")
	default:
		b.WriteString(l.StateFrom + " -> " + l.StateTo)
	}
	b.WriteString(" by ")
	b.WriteString(l.Actor)
	if c := l.Details["comment"]; c != "" {
		b.WriteString(": ")
		b.WriteString(c)
	}
	first := true
	for _, k := range slices.Sorted(maps.Keys(l.Details)) {
		if k == "comment" {
			continue
		}
		if first {
			b.WriteString(" (")
			first = false
		} else {
			b.WriteString(", ")
		}
		b.WriteString(k + "=" + l.Details[k])
	}
	if !first {
		b.WriteByte(')')
	}
	return b.String()
}

// lifecycleJSON is the json parameter of a lifecycle event: the event as
// encoding/json writes it, its time in UTC.
func lifecycleJSON(l *schemas.Lifecycle) string {
	c := *l
	c.Time = c.Time.UTC()
	b, _ := json.Marshal(&c) // strings, a map of strings and a time: always encodes
	return string(b)
}

// lifecycleHeader appends "<PRI>1 TIMESTAMP - APP-NAME - MSGID ".
func (f *formatter) lifecycleHeader(b []byte, l *schemas.Lifecycle) []byte {
	b = append(b, f.pri[classifyLifecycle(l)]...)
	b = l.Time.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, " - "...) // HOSTNAME: the change was made in the policy service, on none of the resource's hosts
	b = append(b, f.appName...)
	b = append(b, " - "...)
	b = appendHeaderField(b, lifecycleMsgID(l.Kind), maxMsgID)
	return append(b, ' ')
}

// appendLifecycleSD appends the structured-data element of a lifecycle
// event: SD-ID, event_id, kind, object_type, object_id, resource_id,
// compartment_id, state_from, state_to, actor, and json when x.json, then
// what x adds (appendSDTail).
func (f *formatter) appendLifecycleSD(b []byte, l *schemas.Lifecycle, js string, x sdExtra) []byte {
	b = append(b, '[')
	b = append(b, f.sdID...)
	for _, p := range [...]struct{ k, v string }{
		{"event_id", l.EventID}, {"kind", l.Kind}, {"object_type", l.ObjectType}, {"object_id", l.ObjectID},
		{"resource_id", l.ResourceID}, {"compartment_id", l.CompartmentID}, {"state_from", l.StateFrom},
		{"state_to", l.StateTo}, {"actor", l.Actor},
	} {
		b = append(b, ' ')
		b = append(b, p.k...)
		b = append(b, '=', '"')
		b = appendParamValue(b, p.v)
		b = append(b, '"')
	}
	if x.json {
		b = append(b, ` json="`...)
		b = appendParamValue(b, js)
		b = append(b, '"')
	}
	return appendSDTail(b, x)
}

// lifecycleFrames renders l as one framed message, with the json
// parameter, when it fits whole with it; else it is split into parts
// (whose MSGs, reassembled, are the readable line and a LF) that carry the
// json in pieces across the first of them, as appendFrames does with an
// audit event (ReassembleJSON). Only when max_message_size leaves no room
// for the json pieces' parameters does it go without json, as before:
// whole when it fits so, else split.
func (f *formatter) lifecycleFrames(dst [][]byte, l *schemas.Lifecycle) ([][]byte, error) {
	// The line ends in LF, the usual end, which the wire form leaves out
	// without an eol parameter: Reassemble gives it back.
	msg := lifecycleLine(l) + "\n"
	if !utf8.ValidString(msg) {
		msg = toValidUTF8(msg)
	}
	body, eol := cutEOL(msg)
	js := lifecycleJSON(l)
	base := f.lifecycleHeader(make([]byte, 0, 128), l)
	sd := func(x sdExtra) []byte { return f.appendLifecycleSD(base, l, js, x) }
	whole := func(withJSON bool) []byte {
		head := sd(sdExtra{eol: eol, json: withJSON})
		size := len(head)
		if body != "" {
			size += 1 + len(bom) + len(body)
		}
		if size+3*(controls(head)+controls(body)) <= f.maxSize && (body == "" || !isEOL(body[len(body)-1])) {
			return frame(head, body)
		}
		return nil
	}
	if fr := whole(true); fr != nil {
		return append(dst, fr), nil
	}
	parts, err := f.split(l.EventID, msg, body, js, sdExtra{eol: eol}, sd)
	if errors.Is(err, ErrHeaderTooLarge) { // no room for the json pieces
		if fr := whole(false); fr != nil {
			return append(dst, fr), nil
		}
		parts, err = f.split(l.EventID, msg, body, "", sdExtra{eol: eol}, sd)
	}
	if err != nil {
		return dst, fmt.Errorf("lifecycle %w", err)
	}
	return append(dst, parts...), nil
}

// LifecycleFrames renders l as the forwarder sends it with format f: one
// RFC 5425 frame per message, several for a split event. For tools and
// tests that need the exact wire form.
func LifecycleFrames(f Format, l *schemas.Lifecycle) ([][]byte, error) {
	fm, err := newFormatter(f)
	if err != nil {
		return nil, err
	}
	return fm.lifecycleFrames(nil, l)
}
