package forwarder

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/siemtest"
	"github.com/auditpipe/auditpipe/schemas"
)

// lifecycleEvents returns n lifecycle events of resources res-0, res-1
// and res-2 in turn, with a control's event (no resource) among them and
// a comment that makes one of them a split message.
func lifecycleEvents(n int) []schemas.Lifecycle {
	states := []string{"", "CREATED", "APPROVALWAITING", "APPROVED", "DEPLOYED", "REVOKED"}
	out := make([]schemas.Lifecycle, n)
	for i := range out {
		j := 1 + i%(len(states)-1)
		out[i] = schemas.Lifecycle{EventID: fmt.Sprintf("%032x", 0x1fec0000+i), Kind: "access_request." + strings.ToLower(states[j]),
			ObjectType: schemas.ObjectAccessRequest, ObjectID: fmt.Sprintf("ocid1.accessrequest.%d", i/5), ResourceID: fmt.Sprintf("res-%d", i%3),
			CompartmentID: "tenancy", StateFrom: states[j-1], StateTo: states[j], Actor: `al"ice]`, Time: time.Date(2026, 3, 2, 9, 0, 0, i*1e6, time.UTC),
			Details: map[string]string{"comment": fmt.Sprintf("step %d\tdone", i)}}
	}
	out[4].ObjectType, out[4].Kind, out[4].ResourceID, out[4].StateFrom = schemas.ObjectOperatorControl, "operator_control.created", "", ""
	out[7].Details["comment"] = strings.Repeat("a long comment ", 700) // over 8192: parts
	return out
}

func produceLifecycle(t *testing.T, ctx context.Context, kc kafka.Config, ls []schemas.Lifecycle) {
	t.Helper()
	w, err := kc.NewWriter(schemas.TopicLifecycle)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var recs []kafka.Record
	for i := range ls {
		v, _ := json.Marshal(&ls[i])
		recs = append(recs, kafka.Record{Key: []byte(ls[i].Key()), Value: v})
	}
	recs = append(recs, kafka.Record{Key: []byte("res-0"), Value: []byte(`{"event_id":"not a lifecycle event"}`)})
	if err := w.Write(ctx, recs...); err != nil {
		t.Fatal(err)
	}
}

// TestLifecycleToRsyslog: lifecycle events read on opctl.lifecycle.v1
// beside the audit events reach a real rsyslog (over TLS) with MSGID the
// kind, their fields as SD-PARAMs, json, and the readable line as MSG (a
// long one in parts that reassemble); the audit events sent with them are
// unchanged (byte-equal to what the formatter renders, raw_data
// reassembled). A destination for a resource's hosts and that resource
// gets that resource's lifecycle events only; an invalid lifecycle
// message is dead-lettered. Every offset of both topics is committed
// once delivered.
func TestLifecycleToRsyslog(t *testing.T) {
	all := startSIEM(t, siemtest.RsyslogOptions{})
	one := startSIEM(t, siemtest.RsyslogOptions{})
	kcfg, _ := kafkatest.Start(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	evs := testEvents(0, 60)
	ls := lifecycleEvents(12)
	produce(t, ctx, kcfg, evs)
	produceLifecycle(t, ctx, kcfg, ls)

	dAll := all.destination()
	dAll.Name = "all"
	dOne := one.destination()
	dOne.Name, dOne.Filter = "res-1", Filter{Hosts: []string{"host1"}, Resources: []string{"res-1"}}
	reg := prometheus.NewRegistry()
	stop := runForwarder(t, ctx, Config{Kafka: kcfg, Destinations: []Destination{dAll, dOne}}, reg)

	// What each SIEM must receive, unframed: the audit events as
	// rendered, and the lifecycle events.
	fm, err := newFormatter(dAll.WithDefaults().format())
	if err != nil {
		t.Fatal(err)
	}
	// resource "": every lifecycle event.
	lifecycleFor := func(resource string) (want []schemas.Lifecycle, msgs int) {
		for i := range ls {
			if resource == "" || ls[i].ResourceID == resource {
				fr, err := fm.lifecycleFrames(nil, &ls[i])
				if err != nil {
					t.Fatal(err)
				}
				want, msgs = append(want, ls[i]), msgs+len(fr)
			}
		}
		return want, msgs
	}
	var host1 []*schemas.Event
	for _, ev := range evs {
		if ev.Host == "host1" {
			host1 = append(host1, ev)
		}
	}
	for _, c := range []struct {
		s        *siem
		d        Destination
		audit    []*schemas.Event
		resource string
	}{{all, dAll, evs, ""}, {one, dOne, host1, "res-1"}} {
		wantLC, nLC := lifecycleFor(c.resource)
		got := c.s.rs.WaitMessages(t, len(c.audit)+nLC, 30*time.Second)
		var audit []string
		lc := map[string][]Received{} // by event_id, in order
		for _, m := range got {
			r := received(t, []byte(m))
			if !IsLifecycle(r.Params) {
				audit = append(audit, m)
				continue
			}
			sm := parse(t, []byte(m))
			if want := lifecycleMsgID(r.Params["kind"]); str(sm.MsgID) != want || str(sm.Appname) != "opctl" || sm.Hostname != nil {
				t.Errorf("%s: lifecycle message header %s %s %s, want MSGID %s", c.d.Name, str(sm.Hostname), str(sm.Appname), str(sm.MsgID), want)
			}
			lc[r.Params["event_id"]] = append(lc[r.Params["event_id"]], r)
		}
		// Audit events: exactly as rendered, in order per host, raw_data
		// given back.
		requireExactly(t, c.d.Name, audit, c.audit)
		want := expected(t, c.d, c.audit)
		byHost := map[string][]string{}
		for _, m := range want {
			h := received(t, []byte(m)).Params["host"]
			byHost[h] = append(byHost[h], m)
		}
		for _, m := range audit {
			r := received(t, []byte(m))
			h := r.Params["host"]
			if len(byHost[h]) == 0 || byHost[h][0] != m {
				t.Fatalf("%s: audit message %.120q, want %.120q", c.d.Name, m, byHost[h])
			}
			byHost[h] = byHost[h][1:]
		}
		// Lifecycle events: each once, its fields and line.
		if len(lc) != len(wantLC) {
			t.Errorf("%s: %d lifecycle events, want %d", c.d.Name, len(lc), len(wantLC))
		}
		for i := range wantLC {
			l := &wantLC[i]
			rs := lc[l.EventID]
			if len(rs) == 0 {
				t.Errorf("%s: lifecycle event %s (%s) missing", c.d.Name, l.EventID, l.ResourceID)
				continue
			}
			p := rs[0].Params
			for k, v := range map[string]string{"kind": l.Kind, "object_type": l.ObjectType, "object_id": l.ObjectID, "resource_id": l.ResourceID,
				"state_from": l.StateFrom, "state_to": l.StateTo, "actor": l.Actor} {
				if p[k] != v {
					t.Errorf("%s: %s %s = %q, want %q", c.d.Name, l.EventID, k, p[k], v)
				}
			}
			// Its json, whole or in pieces across the parts of a split one.
			js, ok, err := ReassembleJSON(rs)
			if err != nil || !ok {
				t.Errorf("%s: %s (%d messages): json %q, %v, %v", c.d.Name, l.EventID, len(rs), js, ok, err)
			} else if back, err := schemas.DecodeLifecycle([]byte(js)); err != nil || back.Details["comment"] != l.Details["comment"] {
				t.Errorf("%s: %s json %v", c.d.Name, l.EventID, err)
			}
			if line := mustReassemble(t, rs...); line != lifecycleLine(l)+"\n" {
				t.Errorf("%s: %s MSG %.80q, want %.80q", c.d.Name, l.EventID, line, lifecycleLine(l))
			}
		}
	}
	for _, topic := range []string{schemas.TopicAudit, schemas.TopicLifecycle} {
		for _, g := range []string{dAll.WithDefaults().Group, dOne.WithDefaults().Group} {
			waitFor(t, 20*time.Second, func() bool {
				lag, err := kcfg.Lag(ctx, g, topic)
				return err == nil && lag == 0
			})
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// The invalid lifecycle message, dead-lettered by each destination.
	if got := metricSum(t, reg, "auditpipe_forwarder_events_dead_lettered_total"); got != 2 {
		t.Errorf("%v events dead-lettered, want 2 (the invalid lifecycle message, once per destination)", got)
	}
	dead := kafkatest.Read(t, kcfg, schemas.TopicDeadLetter, 2, 30*time.Second)
	for _, r := range dead {
		var d schemas.DeadLetter
		if err := json.Unmarshal(r.Value, &d); err != nil || d.Reason != reasonInvalid || !strings.HasPrefix(d.Source, schemas.TopicLifecycle+"/") {
			t.Errorf("dead letter %+v %v, want reason %s from the lifecycle topic", d, err, reasonInvalid)
		}
	}
}
