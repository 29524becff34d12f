package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/policy"
)

// matrixColumn is one caller of the matrix: every role, no credential,
// and the callers the per-object rules keep out.
type matrixColumn struct {
	name string
	who  auth.Identity
	note string
}

var matrixColumns = []matrixColumn{
	{"admin", idAdmin, ""},
	{"auditor", idAuditor, ""},
	{"approver", idApprover, "in a group the request's control names"},
	{"operator", idOperator, "the requester"},
	{"collector", idCollector, ""},
	{"agent", idAgent, "the agent of a host the grant names"},
	{"indexer", idIndexer, ""},
	{"forwarder", idForwarder, ""},
	{"scheduler", idScheduler, ""},
	{"metrics", idMetrics, ""},
	{"none", idNone, "no credential"},
	{"approver*", idStranger, "an approver of another group"},
	{"operator*", idOperator2, "another operator"},
	{"agent*", idAgent2, "the agent of another host"},
}

// matrixRow is one operation, with what each column gets. setup makes
// fresh objects for one call, so that every cell starts from the same
// state.
type matrixRow struct {
	op     string
	expect string // one status per column, in matrixColumns order
	setup  func(f *fixture) call
}

// authorizationMatrix is the spec of who may do what (policy/README.md
// shows it): 200/204 done, 401 no credential, 403 the role may not (or the
// domain's rule refuses: an admin approving a request under a control that
// does not name them), 404 the caller may not see the object.
func authorizationMatrix() []matrixRow {
	get := func(path string) func(*fixture) call {
		return func(*fixture) call { return call{method: "GET", path: path} }
	}
	waiting := func(f *fixture) policy.AccessRequest { return f.request(idOperator, "INFRA_DIAG") }
	granted := func(f *fixture) policy.AccessRequest { return f.request(idOperator, "INFRA_CPS_ONLY") }
	onRequest := func(method, suffix string, mk func(*fixture) policy.AccessRequest, body any) func(*fixture) call {
		return func(f *fixture) call {
			return call{method: method, path: "/v1/accessRequests/" + mk(f).ID + suffix, body: body}
		}
	}
	compartment := func(f *fixture) string {
		id := f.next("comp")
		f.must(200, call{who: idAdmin, method: "POST", path: "/v1/compartments", body: policy.CompartmentInput{ID: id, Name: id, ParentID: fxCompartment}})
		return id
	}
	resource := func(f *fixture) string {
		id := f.next("exa")
		f.resource(id)
		return id
	}
	control := func(f *fixture) string {
		var c policy.Control
		f.must(200, call{who: idAdmin, method: "POST", path: "/v1/operatorControls", body: f.controlInput(f.next("ctl"))}).decode(f.t, &c)
		return c.ID
	}
	return append([]matrixRow{
		{"ListOperatorActions", "200 200 200 200 403 403 403 403 403 403 401 200 200 403", get("/v1/actions")},
		{"GetOperatorAction", "200 200 200 200 403 403 403 403 403 403 401 200 200 403", get("/v1/actions/INFRA_DIAG")},

		{"CreateCompartment", "200 403 403 403 403 403 403 403 403 403 401 403 403 403", func(f *fixture) call {
			return call{method: "POST", path: "/v1/compartments", body: policy.CompartmentInput{Name: "c", ParentID: fxCompartment}}
		}},
		{"ListCompartments", "200 200 200 200 403 403 403 403 403 403 401 200 200 403", get("/v1/compartments")},
		{"GetCompartment", "200 200 200 200 403 403 403 403 403 403 401 200 200 403", get("/v1/compartments/" + fxCompartment)},
		{"UpdateCompartment", "200 403 403 403 403 403 403 403 403 403 401 403 403 403", func(f *fixture) call {
			return call{method: "PUT", path: "/v1/compartments/" + compartment(f), body: map[string]string{"description": "moved"}}
		}},
		{"DeleteCompartment", "204 403 403 403 403 403 403 403 403 403 401 403 403 403", func(f *fixture) call {
			return call{method: "DELETE", path: "/v1/compartments/" + compartment(f)}
		}},

		{"CreateResource", "200 403 403 403 403 403 403 403 403 403 401 403 403 403", func(f *fixture) call {
			return call{method: "POST", path: "/v1/resources", body: policy.ResourceInput{ID: f.next("exa"), Name: "x", ResourceType: policy.ResourceExadataInfra,
				CompartmentID: fxCompartment, Hosts: []policy.Host{{Name: "h1", Layer: "CPS"}}}}
		}},
		{"ListResources", "200 200 200 200 403 403 403 403 403 403 401 200 200 403", get("/v1/resources")},
		{"GetResource", "200 200 200 200 403 403 403 403 403 403 401 200 200 403", get("/v1/resources/" + fxResource)},
		{"UpdateResource", "200 403 403 403 403 403 403 403 403 403 401 403 403 403", func(f *fixture) call {
			return call{method: "PUT", path: "/v1/resources/" + resource(f), body: map[string]string{"name": "renamed"}}
		}},
		{"DeleteResource", "204 403 403 403 403 403 403 403 403 403 401 403 403 403", func(f *fixture) call {
			return call{method: "DELETE", path: "/v1/resources/" + resource(f)}
		}},

		{"CreateOperatorControl", "200 403 403 403 403 403 403 403 403 403 401 403 403 403", func(f *fixture) call {
			return call{method: "POST", path: "/v1/operatorControls", body: f.controlInput(f.next("ctl"))}
		}},
		{"ListOperatorControls", "200 200 200 403 403 403 403 403 403 403 401 200 403 403", get("/v1/operatorControls")},
		{"GetOperatorControl", "200 200 200 403 403 403 403 403 403 403 401 200 403 403", func(f *fixture) call {
			return call{method: "GET", path: "/v1/operatorControls/" + f.control}
		}},
		{"UpdateOperatorControl", "200 403 403 403 403 403 403 403 403 403 401 403 403 403", func(f *fixture) call {
			u := ControlUpdate(policy.Control{OperatorControlName: "renamed", ApproverGroupsList: []string{"EXPLICIT_APPROVED_POLICY_USERS"},
				ApprovalRequiredOpActions: []string{"INFRA_DIAG"}})
			return call{method: "PUT", path: "/v1/operatorControls/" + control(f), body: u}
		}},
		{"DeleteOperatorControl", "204 403 403 403 403 403 403 403 403 403 401 403 403 403", func(f *fixture) call {
			return call{method: "DELETE", path: "/v1/operatorControls/" + control(f)}
		}},

		{"CreateOperatorControlAssignment", "200 403 403 403 403 403 403 403 403 403 401 403 403 403", func(f *fixture) call {
			return call{method: "POST", path: "/v1/operatorControlAssignments", body: policy.AssignmentInput{OperatorControlID: f.control, ResourceID: resource(f),
				AssignmentWindow: policy.AssignmentWindow{IsEnforcedAlways: true}}}
		}},
		{"ListOperatorControlAssignments", "200 200 200 403 403 403 403 403 403 403 401 200 403 403", get("/v1/operatorControlAssignments")},
		{"GetOperatorControlAssignment", "200 200 200 403 403 403 403 403 403 403 401 200 403 403", func(f *fixture) call {
			return call{method: "GET", path: "/v1/operatorControlAssignments/" + f.assign(control(f), resource(f)).ID}
		}},
		{"UpdateOperatorControlAssignment", "200 403 403 403 403 403 403 403 403 403 401 403 403 403", func(f *fixture) call {
			return call{method: "PUT", path: "/v1/operatorControlAssignments/" + f.assign(f.control, resource(f)).ID,
				body: map[string]any{"is_enforced_always": true, "comment": "always"}}
		}},
		{"DeleteOperatorControlAssignment", "204 403 403 403 403 403 403 403 403 403 401 403 403 403", func(f *fixture) call {
			return call{method: "DELETE", path: "/v1/operatorControlAssignments/" + f.assign(f.control, resource(f)).ID}
		}},

		{"CreateAccessRequest", "200 403 403 200 403 403 403 403 403 403 401 403 200 403", func(f *fixture) call {
			return call{method: "POST", path: "/v1/accessRequests", body: policy.RequestInput{ResourceID: fxResource, ActionRequests: []string{"INFRA_DIAG"},
				Reason: "SR 3-1", Severity: policy.SeverityS3, DurationHours: 2}}
		}},
		{"ListAccessRequests", "200 200 200 200 403 403 403 403 403 403 401 200 200 403", get("/v1/accessRequests")},
		{"GetAccessRequest", "200 200 200 200 403 403 403 403 403 403 401 404 404 403", onRequest("GET", "", waiting, nil)},
		{"ApproveAccessRequest", "403 403 200 403 403 403 403 403 403 403 401 404 403 403", onRequest("POST", "/action/approve", waiting, nil)},
		{"RejectAccessRequest", "200 403 200 403 403 403 403 403 403 403 401 404 403 403", onRequest("POST", "/action/reject", waiting, RejectDetails{ApproverComment: "no SR"})},
		{"RevokeAccessRequest", "200 403 200 403 403 403 403 403 403 403 401 404 403 403", onRequest("POST", "/action/revoke", granted, RevokeDetails{ApproverComment: "done"})},
		{"ExtendAccessRequest", "403 403 403 200 403 403 403 403 403 403 401 403 404 403", onRequest("POST", "/action/extend", granted, ExtendDetails{ExtendDuration: 1})},
		{"CompleteAccessRequest", "403 403 403 200 403 403 403 403 403 403 401 403 404 403", onRequest("POST", "/action/complete", waiting, nil)},
		{"InteractionRequest", "403 403 200 200 403 403 403 403 403 403 401 404 404 403", func(f *fixture) call {
			// In MOREINFO: the approver asks again, the requester answers.
			r := waiting(f)
			f.must(200, call{who: idApprover, method: "POST", path: "/v1/accessRequests/" + r.ID + "/action/interactionRequest", body: InteractionDetails{MoreInfoDetails: "which disk?"}})
			return call{method: "POST", path: "/v1/accessRequests/" + r.ID + "/action/interactionRequest", body: InteractionDetails{MoreInfoDetails: "slot 3"}}
		}},
		{"ListInteractions", "200 200 200 200 403 403 403 403 403 403 401 404 404 403", onRequest("GET", "/interactions", waiting, nil)},
		{"ListAccessRequestHistories", "200 200 200 200 403 403 403 403 403 403 401 404 404 403", onRequest("GET", "/history", waiting, nil)},
		{"GetAuditLogReport", "200 200 200 200 403 403 403 403 403 403 401 404 404 403", onRequest("GET", "/auditLogReport", waiting, nil)},

		{"GetGrant", "200 200 403 403 403 200 403 403 403 403 401 403 403 404", func(f *fixture) call {
			return call{method: "GET", path: "/v1/grants/" + granted(f).UserID}
		}},
		{"ReportDeployment", "200 403 403 403 403 200 403 403 403 403 401 403 403 404", func(f *fixture) call {
			return call{method: "POST", path: "/v1/grants/" + granted(f).UserID + "/action/report",
				body: ReportDetails{Host: idAgent.Name, State: policy.StateDeployed, Message: "user created"}}
		}},
	}, schedulerMatrix()...)
}

// reportStandIn stands in for the audit log report's handler (another
// package): it answers with the request id the API passed on.
var reportStandIn = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"access_request_id": r.PathValue(pRequest)})
})

// TestAuthorizationMatrix: every role, no credential, and the callers the
// per-object rules keep out, against every operation, each from a fresh
// object; the table is the spec, and policy/README.md shows it.
func TestAuthorizationMatrix(t *testing.T) {
	f := newFixture(t, serverOptions{report: reportStandIn})
	rows := authorizationMatrix()
	var ops []string
	for _, row := range rows {
		ops = append(ops, row.op)
		want := strings.Fields(row.expect)
		if len(want) != len(matrixColumns) {
			t.Fatalf("%s: %d statuses for %d columns", row.op, len(want), len(matrixColumns))
		}
		for i, col := range matrixColumns {
			c := row.setup(f)
			c.who = col.who
			got := f.do(c)
			if w, _ := strconv.Atoi(want[i]); got.status != w {
				t.Errorf("%s as %s: %d, want %d: %s", row.op, col.name, got.status, w, got.body)
			}
		}
	}
	var routes []string
	for _, rt := range f.api.Routes() {
		routes = append(routes, rt.OperationID)
	}
	if !slices.Equal(ops, routes) {
		t.Errorf("the matrix's operations are not the routes, in order:\n matrix %v\n routes %v", ops, routes)
	}
}

// MatrixMarkdown renders the matrix as the README shows it.
func matrixMarkdown() string {
	var b strings.Builder
	b.WriteString("| operation |")
	for _, c := range matrixColumns {
		b.WriteString(" " + c.name + " |")
	}
	b.WriteString("\n|---|")
	for range matrixColumns {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, row := range authorizationMatrix() {
		fmt.Fprintf(&b, "| %s |", row.op)
		for _, st := range strings.Fields(row.expect) {
			b.WriteString(" " + st + " |")
		}
		b.WriteString("\n")
	}
	var notes []string
	for _, c := range matrixColumns {
		if c.note != "" {
			notes = append(notes, fmt.Sprintf("%s = %s", c.name, c.note))
		}
	}
	b.WriteString("\nColumns: " + strings.Join(notes, "; ") + ".\n")
	return b.String()
}

// TestREADMEMatrix keeps policy/README.md's matrix the test's.
func TestREADMEMatrix(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if want := matrixMarkdown(); !strings.Contains(string(b), want) {
		t.Errorf("policy/README.md lacks the authorization matrix as the test has it; put this in its \"HTTP API\" section:\n\n%s", want)
	}
}
