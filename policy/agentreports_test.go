package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/internal/sign/signtest"
	"github.com/auditpipe/auditpipe/schemas"
)

// testSeqs numbers the test's records by the clock in microseconds, as
// agents and grant publish do (a consumer refuses a number more than
// grants.MaxSeqAhead above its clock), strictly increasing.
var testSeqs grants.ClockSeq

// TestAgentReportsMoveRequests: the agents' reports on opctl.agent.v1
// move the request through the service (DEPLOYED once every host of the
// grant reported it, then UNDEPLOYED); reports that cannot be applied
// are counted and dead-lettered with their reason, and the ones after
// them are applied all the same.
func TestAgentReportsMoveRequests(t *testing.T) {
	f := newFixture(t, backends(t)[0])
	kc, _ := kafkatest.Start(t, 2)
	f.resource("exa1")
	f.control("exa1", ControlInput{OperatorControlName: "upd", PreApprovedOpActions: []string{"INFRA_UPDATE_RESTART"}, ApproverGroupsList: []string{"EXPLICIT_APPROVED_POLICY_USERS"}})
	r := f.request(operator, "exa1", 4, "INFRA_UPDATE_RESTART")
	g := must[Grant](t)(f.svc.GetGrant(f.ctx, r.UserID))
	if len(g.Hosts) < 2 {
		t.Fatalf("grant hosts %v: the test needs two", g.Hosts)
	}
	// Every host of the grant, and "elsewhere" (a host the grant does
	// not name), has its own enrolled key; "stranger" has none.
	keysDir := t.TempDir()
	hostKeys := map[string]*sign.Signer{}
	for i, h := range append(slices.Clone(g.Hosts), "elsewhere") {
		hostKeys[h] = signtest.EnrolledHost(t, keysDir, h, byte(i+1))
	}
	hostKeys["stranger"] = signtest.EnrolledHost(t, t.TempDir(), "stranger", 99)
	agentReport := func(host, login, req string, state RequestState) schemas.AgentReport {
		return schemas.AgentReport{Host: host, LoginID: login, ReqAuthID: req, State: string(state), Reason: "agent says " + string(state), Time: f.clock.Now()}
	}
	// Numbered by the clock, as the agent numbers them: built in the order
	// they are written.
	signedBy := func(s *sign.Signer, key string, rep schemas.AgentReport) kafka.Record {
		rep.PublishSeq = testSeqs.Next()
		rec, err := grants.AgentRecord(s, rep.Host, rep)
		if err != nil {
			t.Fatal(err)
		}
		rec.Key = []byte(key)
		return rec
	}
	report := func(host, login, req string, state RequestState) kafka.Record {
		return signedBy(hostKeys[host], host, agentReport(host, login, req, state))
	}
	plain := func(host, login, req string, state RequestState) kafka.Record {
		b, err := json.Marshal(agentReport(host, login, req, state))
		if err != nil {
			t.Fatal(err)
		}
		return kafka.Record{Key: []byte(host), Value: b}
	}
	tampered := func(rec kafka.Record) kafka.Record {
		e, err := sign.Decode(rec.Value)
		if err != nil {
			t.Fatal(err)
		}
		e.Payload = bytes.Replace(e.Payload, []byte(`"DEPLOYFAILED"`), []byte(`"UNDEPLOYED"`), 1)
		rec.Value, _ = e.Marshal()
		return rec
	}
	type step struct {
		rec    kafka.Record
		reason string       // dead letter reason, "" when applied
		state  RequestState // the request's state after it
		host   string       // an applied report's host, whose state is then recorded
		before func()       // done before the report is written
		passed string       // the scheduler's or the indexer's, passed over under this result: neither applied nor dead-lettered
	}
	var steps []step
	last := g.Hosts[len(g.Hosts)-1]
	for _, h := range g.Hosts[:len(g.Hosts)-1] { // every host but one: not yet DEPLOYED
		steps = append(steps, step{rec: report(h, r.UserID, r.ID, StateDeployed), state: StatePreApproved, host: h})
	}
	steps = append(steps,
		step{rec: kafka.Record{Key: []byte("h"), Value: []byte(`{"host":`)}, reason: "agent_report_malformed", state: StatePreApproved},
		// A work request's progress on the same topic is the
		// scheduler's, even when it is malformed for it.
		step{rec: kafka.Record{Key: []byte(last), Value: []byte(`{"work_request_id":"wr1","host":"` + last + `","seq":0}`)}, passed: ReportWorkProgress, state: StatePreApproved},
		step{rec: kafka.Record{Key: []byte(last), Value: []byte(`{"inventory":"WORK_REQUEST","work_request_id":"wr1","host":"` + last + `"}`)}, passed: ReportInventory, state: StatePreApproved},
		step{rec: report(last, "0123456789abcdef0123456789abcdef", r.ID, StateDeployed), reason: "agent_report_unknown_login", state: StatePreApproved},
		step{rec: report(last, r.UserID, "ocid1.accessrequest.other", StateDeployed), reason: "agent_report_mismatch", state: StatePreApproved},
		step{rec: report("elsewhere", r.UserID, r.ID, StateDeployed), reason: "agent_report_forbidden", state: StatePreApproved},
		// Issue 9's forgeries: whoever holds the agent (or host) Kafka
		// credential writes for every host. Refused, counted,
		// dead-lettered, and the request does not move.
		step{rec: plain(last, r.UserID, r.ID, StateDeployed), reason: "agent_report_unsigned", state: StatePreApproved},
		step{rec: signedBy(hostKeys[g.Hosts[0]], last, agentReport(last, r.UserID, r.ID, StateDeployed)), reason: "agent_report_unknown_key", state: StatePreApproved},
		step{rec: signedBy(hostKeys["stranger"], "stranger", agentReport("stranger", r.UserID, r.ID, StateDeployed)), reason: "agent_report_unknown_host", state: StatePreApproved},
		step{rec: tampered(report(last, r.UserID, r.ID, StateDeployFailed)), reason: "agent_report_bad_signature", state: StatePreApproved},
		step{rec: signedBy(hostKeys[last], g.Hosts[0], agentReport(last, r.UserID, r.ID, StateDeployed)), reason: "agent_report_key_mismatch", state: StatePreApproved},
	)
	deployed := report(last, r.UserID, r.ID, StateDeployed)
	steps = append(steps,
		step{rec: deployed, state: StateDeployed, host: last},
		step{rec: report(last, r.UserID, r.ID, StateUndeployed), state: StateUndeployed, host: last},
		// Regression (issue 9): the host's old DEPLOYED report, written
		// again after its UNDEPLOYED, was applied again. Refused as
		// replayed (its publish_seq is below the last applied for the
		// host): the request stays UNDEPLOYED.
		step{rec: deployed, reason: "agent_report_replayed", state: StateUndeployed},
		// After the revocation the agent may no longer know the request.
		step{rec: report(last, r.UserID, "", StateUndeployed), state: StateRevoked, host: last, before: func() {
			must[AccessRequest](t)(f.svc.Revoke(f.ctx, explicit, r.ID, "done", 0))
		}},
	)
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig().AgentReports
	cfg.HostKeysDir = keysDir
	ar, err := NewAgentReports(f.svc, kc, cfg, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	go func() { done <- ar.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent reports: %v", err)
		}
	}()
	w, err := kc.NewWriter(kafka.TopicAgent)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	wctx, wcancel := context.WithTimeout(f.ctx, 30*time.Second)
	defer wcancel()
	var letters int
	var applied float64
	for i, s := range steps {
		// One at a time: the records' keys (hosts) spread them over
		// the partitions, which are applied concurrently.
		if s.before != nil {
			s.before()
		}
		if err := w.Write(wctx, s.rec); err != nil {
			t.Fatal(err)
		}
		var ok bool
		if s.reason != "" {
			letters++
			got := kafkatest.Read(t, kc, kafka.TopicDeadLetter, letters, 30*time.Second)
			var dl schemas.DeadLetter
			if err := json.Unmarshal(got[letters-1].Value, &dl); err != nil {
				t.Fatal(err)
			}
			if dl.Reason != s.reason || dl.Component != "policy" {
				t.Errorf("step %d: dead letter %s/%s, want policy/%s", i, dl.Component, dl.Reason, s.reason)
			}
			ok = true
		}
		if s.passed != "" {
			waitFor(t, fmt.Sprintf("step %d passed over", i), func() bool { return testutil.ToFloat64(ar.m.WithLabelValues(s.passed)) == 1 })
			ok = true
		}
		if !ok {
			applied++
			waitFor(t, fmt.Sprintf("step %d applied", i), func() bool { return testutil.ToFloat64(ar.m.WithLabelValues(ReportApplied)) == applied })
			if got := must[AccessRequest](t)(f.svc.GetRequest(f.ctx, r.ID)); got.HostDeployments[s.host] != reportedState(t, s.rec) {
				t.Fatalf("step %d: host %s is %q, want %s", i, s.host, got.HostDeployments[s.host], reportedState(t, s.rec))
			}
		}
		if got := must[AccessRequest](t)(f.svc.GetRequest(f.ctx, r.ID)); got.LifecycleState != s.state {
			t.Fatalf("step %d: request %s is %s, want %s", i, r.ID, got.LifecycleState, s.state)
		}
	}
	for result, want := range map[string]float64{ReportApplied: float64(len(g.Hosts) + 2), ReportMalformed: 1, ReportUnknownLogin: 1, ReportMismatch: 1, ReportForbidden: 1, ReportRefused: 0, ReportWorkProgress: 1, ReportInventory: 1,
		grants.ReasonUnsigned: 1, grants.ReasonUnknownKey: 1, grants.ReasonUnknownHost: 1, grants.ReasonBadSignature: 1, grants.ReasonKeyMismatch: 1, grants.ReasonReplayed: 1} {
		if got := testutil.ToFloat64(ar.m.WithLabelValues(result)); got != want {
			t.Errorf("auditpipe_policy_agent_reports_total{result=%q} = %v, want %v", result, got, want)
		}
	}
	var actors []string
	for _, h := range must[[]HistoryEntry](t)(f.svc.History(f.ctx, ObjectAccessRequest, r.ID)) {
		actors = append(actors, h.Actor+":"+h.Action)
	}
	if want := "agent@" + last + ":report_deployed"; !strings.Contains(strings.Join(actors, " "), want) {
		t.Errorf("history %v has no %s", actors, want)
	}
}

func reportedState(t *testing.T, r kafka.Record) string {
	t.Helper()
	e, err := sign.Decode(r.Value)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := schemas.DecodeAgentReport(e.Payload)
	if err != nil {
		t.Fatal(err)
	}
	return string(rep.State)
}
