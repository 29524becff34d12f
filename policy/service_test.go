package policy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/schemas"
)

func caPEM(t testing.TB) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "siem ca"}, NotBefore: t0, NotAfter: t0.Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// wantInvalid checks err is a ValidationError naming field with a
// message containing msg.
func wantInvalid(t *testing.T, err error, field, msg string) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("%v, want a ValidationError of %s", err, field)
	}
	for _, p := range ve.Problems {
		if p.Field == field && strings.Contains(p.Message, msg) {
			return
		}
	}
	t.Fatalf("%v: no problem %s: %q", err, field, msg)
}

// TestValidation: every bad input is refused with the field named.
func TestValidation(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b)
			_, mainCtl, _ := exampleControls(f)
			avm := must[Resource](t)(f.svc.CreateResource(f.ctx, admin, ResourceInput{ID: "avm1", Name: "avm1", ResourceType: ResourceAutonomousVMC, CompartmentID: "tenancy", Hosts: []Host{{Name: "vm1", Layer: "GUESTVM"}}}))
			ca := caPEM(t)
			ctl := func(mod func(*ControlInput)) error {
				in := ControlInput{OperatorControlName: "c", CompartmentID: "tenancy", ResourceType: ResourceExaCC, ApprovalRequiredOpActions: []string{"INFRA_DIAG"}}
				mod(&in)
				_, err := f.svc.CreateControl(f.ctx, admin, in)
				return err
			}
			asg := func(res string, w AssignmentWindow) error {
				_, err := f.svc.CreateAssignment(f.ctx, admin, AssignmentInput{OperatorControlID: mainCtl.ID, ResourceID: res, AssignmentWindow: w})
				return err
			}
			req := func(mod func(*RequestInput)) error {
				in := RequestInput{ResourceID: "exa-main", ActionRequests: []string{"INFRA_UPDATE_RESTART"}, Reason: "r", Severity: SeverityS1, DurationHours: 2}
				mod(&in)
				_, err := f.svc.CreateRequest(f.ctx, operator, in)
				return err
			}
			fwd := AssignmentWindow{IsEnforcedAlways: true, IsLogForwarded: true, RemoteSyslogServerAddress: "siem.example", RemoteSyslogServerPort: 6514, RemoteSyslogServerCACert: ca}
			f.resource("exa-free")
			must[Resource](t)(f.svc.CreateResource(f.ctx, admin, ResourceInput{ID: "cps-only", Name: "cps", ResourceType: ResourceExaCC, CompartmentID: "tenancy", Hosts: []Host{{Name: "cps9", Layer: "CPS"}}}))
			f.control("cps-only", ControlInput{OperatorControlName: "hyp", ApprovalRequiredOpActions: []string{"INFRA_HYPERVISOR"}})
			tests := []struct {
				name, field, msg string
				err              error
			}{
				{"compartment id", "id", "is not letters", second(f.svc.CreateCompartment(f.ctx, admin, CompartmentInput{ID: "a b", Name: "x"}))},
				{"compartment name", "name", "required", second(f.svc.CreateCompartment(f.ctx, admin, CompartmentInput{}))},
				{"compartment parent", "parent_id", "no compartment", second(f.svc.CreateCompartment(f.ctx, admin, CompartmentInput{Name: "x", ParentID: "nope"}))},
				{"compartment cycle", "parent_id", "cycle", second(f.svc.UpdateCompartment(f.ctx, admin, "tenancy", 0, CompartmentUpdate{ParentID: ptr(must[Compartment](t)(f.svc.CreateCompartment(f.ctx, admin, CompartmentInput{ID: "child", Name: "child", ParentID: "tenancy"})).ID)}))},
				{"resource type", "resource_type", "is not one of", second(f.svc.CreateResource(f.ctx, admin, ResourceInput{ID: "r", Name: "r", ResourceType: "MAINFRAME", CompartmentID: "tenancy", Hosts: exaHosts("r")}))},
				{"resource hosts", "hosts", "at least one", second(f.svc.CreateResource(f.ctx, admin, ResourceInput{ID: "r", Name: "r", ResourceType: ResourceExaCC, CompartmentID: "tenancy"}))},
				{"resource layer", "hosts[0].layer", "is not one of", second(f.svc.CreateResource(f.ctx, admin, ResourceInput{ID: "r", Name: "r", ResourceType: ResourceExaCC, CompartmentID: "tenancy", Hosts: []Host{{Name: "h", Layer: "MOON"}}}))},
				{"resource host twice", "hosts[1].name", "twice", second(f.svc.CreateResource(f.ctx, admin, ResourceInput{ID: "r", Name: "r", ResourceType: ResourceExaCC, CompartmentID: "tenancy", Hosts: []Host{{Name: "h", Layer: "CPS"}, {Name: "h", Layer: "HOST"}}}))},
				{"resource compartment", "compartment_id", "no compartment", second(f.svc.CreateResource(f.ctx, admin, ResourceInput{ID: "r", Name: "r", ResourceType: ResourceExaCC, CompartmentID: "nope", Hosts: exaHosts("r")}))},
				{"control unknown action", "pre_approved_op_action_list", "not an action", ctl(func(c *ControlInput) { c.PreApprovedOpActions = []string{"INFRA_X"} })},
				{"control action of another type", "approval_required_op_action_list", "does not apply to resource type EXACC", ctl(func(c *ControlInput) { c.ApprovalRequiredOpActions = []string{"AVM_FULL"} })},
				{"control action in both lists", "approval_required_op_action_list", "name it in one list", ctl(func(c *ControlInput) { c.PreApprovedOpActions = []string{"INFRA_DIAG"} })},
				{"control approvers", "number_of_approvers", "between 1 and", ctl(func(c *ControlInput) { c.NumberOfApprovers = 11 })},
				{"control email", "email_id_list[0]", "not an email", ctl(func(c *ControlInput) { c.EmailIDList = []string{"nobody"} })},
				{"control duration", "max_duration_hours", "between 1 and 336", ctl(func(c *ControlInput) { c.MaxDurationHours = 337 })},
				{"control extension", "max_extension_hours", "between 1 and 336", ctl(func(c *ControlInput) { c.MaxExtensionHours = -1 })},
				{"control type", "resource_type", "is not one of", ctl(func(c *ControlInput) { c.ResourceType = "X" })},
				{"control name", "operator_control_name", "required", ctl(func(c *ControlInput) { c.OperatorControlName = "" })},
				{"control compartment", "compartment_id", "no compartment", ctl(func(c *ControlInput) { c.CompartmentID = "nope" })},
				{"forwarding needs always", "is_log_forwarded", "always-enforced", asg("exa-free", AssignmentWindow{IsLogForwarded: true, TimeAssignmentFrom: t0, TimeAssignmentTo: t0.Add(time.Hour), RemoteSyslogServerAddress: "s", RemoteSyslogServerPort: 1, RemoteSyslogServerCACert: ca})},
				{"forwarding needs a CA", "remote_syslog_server_ca_cert", "required", asg("exa-free", AssignmentWindow{IsEnforcedAlways: true, IsLogForwarded: true, RemoteSyslogServerAddress: "s", RemoteSyslogServerPort: 1})},
				{"forwarding CA not PEM", "remote_syslog_server_ca_cert", "no PEM certificate", asg("exa-free", func() AssignmentWindow { w := fwd; w.RemoteSyslogServerCACert = "hello"; return w }())},
				{"forwarding port", "remote_syslog_server_port", "is not a port", asg("exa-free", func() AssignmentWindow { w := fwd; w.RemoteSyslogServerPort = 70000; return w }())},
				{"forwarding address", "remote_syslog_server_address", "not a host name", asg("exa-free", func() AssignmentWindow { w := fwd; w.RemoteSyslogServerAddress = "tcp://x"; return w }())},
				{"syslog without forwarding", "is_log_forwarded", "is not", asg("exa-free", AssignmentWindow{IsEnforcedAlways: true, RemoteSyslogServerPort: 514})},
				{"window inverted", "time_assignment_to", "is not after", asg("exa-free", AssignmentWindow{TimeAssignmentFrom: t0.Add(time.Hour), TimeAssignmentTo: t0})},
				{"window past", "time_assignment_to", "in the past", asg("exa-free", AssignmentWindow{TimeAssignmentFrom: t0.Add(-2 * time.Hour), TimeAssignmentTo: t0.Add(-time.Hour)})},
				{"window missing", "time_assignment_from", "required", asg("exa-free", AssignmentWindow{})},
				{"assignment type", "operator_control_id", "is for EXACC", asg(avm.ID, AssignmentWindow{IsEnforcedAlways: true})},
				{"assignment resource", "resource_id", "not found", asg("nope", AssignmentWindow{IsEnforcedAlways: true})},
				{"request unknown action", "action_requests_list", "not an action", req(func(r *RequestInput) { r.ActionRequests = []string{"INFRA_X"} })},
				{"request unlisted action", "action_requests_list", "neither pre-approved nor approval-required", req(func(r *RequestInput) { r.ActionRequests = []string{"INFRA_FULL"} })},
				{"request action of another type", "action_requests_list", "does not apply", req(func(r *RequestInput) { r.ActionRequests = []string{"AVM_SYS_DIAG"} })},
				{"request too long", "duration", "more than operator control system_main allows (24)", req(func(r *RequestInput) { r.DurationHours = 25 })},
				{"request no duration", "duration", "at least 1", req(func(r *RequestInput) { r.DurationHours = 0 })},
				{"request severity", "severity", "S1, S2", req(func(r *RequestInput) { r.Severity = "S5" })},
				{"request reason", "reason", "required", req(func(r *RequestInput) { r.Reason = " " })},
				{"request sub-resource", "sub_resource_list", "not a host", req(func(r *RequestInput) { r.SubResourceList = []string{"elsewhere"} })},
				{"request no host on the layers", "action_requests_list", "no host of resource cps-only", req(func(r *RequestInput) { r.ActionRequests = []string{"INFRA_HYPERVISOR"}; r.ResourceID = "cps-only" })},
				{"request future in the past", "time_requested_for_future_access", "in the future", req(func(r *RequestInput) { r.TimeRequestedForFutureAccess = t0.Add(-time.Minute) })},
				{"request resource", "resource_id", "not found", req(func(r *RequestInput) { r.ResourceID = "nope" })},
				{"request audit type", "audit_type", "is not", req(func(r *RequestInput) { r.AuditType = "NONE" })},
				{"request ssh key newline", "ssh_public_keys", "control character", req(func(r *RequestInput) {
					r.SSHPublicKeys = []string{"ssh-ed25519 AAAAC3Nza op\nssh-ed25519 AAAAC3Nzb attacker"}
				})},
				{"request ssh key shape", "ssh_public_keys", "not an authorized_keys line", req(func(r *RequestInput) { r.SSHPublicKeys = []string{"hello world"} })},
				{"request ssh key empty", "ssh_public_keys", "empty", req(func(r *RequestInput) { r.SSHPublicKeys = []string{" "} })},
				{"approve audit type", "audit_type", "is not", second(f.svc.Approve(f.ctx, explicit, f.request(operator, "exa-main", 2, "INFRA_UPDATE_RESTART").ID, ApproveInput{AuditType: "NONE"}))},
				{"approve lengthens", "duration", "shorten", second(f.svc.Approve(f.ctx, explicit, f.request(operator, "exa-main", 2, "INFRA_UPDATE_RESTART").ID, ApproveInput{DurationHours: 3}))},
				{"reject without comment", "approver_comment", "needs a comment", second(f.svc.Reject(f.ctx, explicit, f.request(operator, "exa-main", 2, "INFRA_UPDATE_RESTART").ID, "", 0))},
				{"extension too long", "extend_duration", "max_extension_hours (24)", second(f.svc.Extend(f.ctx, operator, f.request(operator, "exa-diag", 2, "INFRA_DIAG").ID, 25, "more", 0))},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) { wantInvalid(t, tt.err, tt.field, tt.msg) })
			}
			conflicts := []struct {
				name, msg string
				err       error
			}{
				{"second assignment", "one control per resource at a time", asg("exa-main", AssignmentWindow{IsEnforcedAlways: true})},
				{"overlapping window", "one control per resource at a time", asg("exa-main", AssignmentWindow{TimeAssignmentFrom: t0.Add(time.Hour), TimeAssignmentTo: t0.Add(2 * time.Hour)})},
				{"second default", "already the default", func() error {
					_ = ctl(func(c *ControlInput) { c.IsDefaultOperatorControl = true; c.OperatorControlName = "" })
					return ctl(func(c *ControlInput) { c.IsDefaultOperatorControl = true })
				}()},
				{"delete an assigned control", "unassign it first", second(f.svc.DeleteControl(f.ctx, admin, mainCtl.ID, 0))},
				{"delete a compartment in use", "holds", f.svc.DeleteCompartment(f.ctx, admin, "tenancy", 0)},
				{"delete a resource in use", "name it", f.svc.DeleteResource(f.ctx, admin, "exa-main", 0)},
				{"duplicate resource", "exists already", second(f.svc.CreateResource(f.ctx, admin, ResourceInput{ID: "exa-main", Name: "x", ResourceType: ResourceExaCC, CompartmentID: "tenancy", Hosts: exaHosts("x")}))},
				{"no control in force", "no operator control is in force", second(f.svc.CreateRequest(f.ctx, operator, RequestInput{ResourceID: avm.ID, ActionRequests: []string{"AVM_SYS_DIAG"}, Reason: "r", Severity: SeverityS1, DurationHours: 1}))},
			}
			for _, c := range conflicts {
				t.Run(c.name, func(t *testing.T) {
					var ce *ConflictError
					if !errors.As(c.err, &ce) || !errors.Is(c.err, ErrConflict) || !strings.Contains(c.err.Error(), c.msg) {
						t.Fatalf("%v, want a conflict saying %q", c.err, c.msg)
					}
				})
			}
		})
	}
}

func second[T any](_ T, err error) error { return err }

func ptr[T any](v T) *T { return &v }

// TestVersions: every update takes the version the caller read
// (If-Match) and refuses a stale one with a *VersionError; the version
// grows by one per change.
func TestVersions(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b)
			_, mainCtl, _ := exampleControls(f)
			in := ControlInput{OperatorControlName: "system_main", CompartmentID: "tenancy", ApproverGroupsList: []string{"EXPLICIT_APPROVED_POLICY_USERS"}, ApprovalRequiredOpActions: []string{"INFRA_UPDATE_RESTART"}}
			cur := must[Control](t)(f.svc.GetControl(f.ctx, mainCtl.ID))
			up := must[Control](t)(f.svc.UpdateControl(f.ctx, admin, mainCtl.ID, cur.Version, in))
			if up.Version != cur.Version+1 {
				t.Fatalf("version %d after %d", up.Version, cur.Version)
			}
			stale := func(err error, object string) {
				t.Helper()
				var ve *VersionError
				if !errors.As(err, &ve) || !errors.Is(err, ErrVersion) || ve.Object != object || !strings.Contains(err.Error(), "is at version") {
					t.Fatalf("%v, want a VersionError of %s", err, object)
				}
			}
			stale(second(f.svc.UpdateControl(f.ctx, admin, mainCtl.ID, cur.Version, in)), ObjectControl)
			stale(second(f.svc.DeleteControl(f.ctx, admin, mainCtl.ID, cur.Version)), ObjectControl)
			stale(second(f.svc.UpdateCompartment(f.ctx, admin, "tenancy", 99, CompartmentUpdate{Name: ptr("t")})), ObjectCompartment)
			stale(second(f.svc.UpdateResource(f.ctx, admin, "exa-main", 99, ResourceUpdate{Name: ptr("m")})), ObjectResource)
			r := f.request(operator, "exa-main", 2, "INFRA_UPDATE_RESTART")
			stale(second(f.svc.Approve(f.ctx, explicit, r.ID, ApproveInput{IfMatch: r.Version - 1})), ObjectAccessRequest)
			stale(second(f.svc.Revoke(f.ctx, admin, r.ID, "x", r.Version+1)), ObjectAccessRequest)
			as := must[[]Assignment](t)(first(f.svc.ListAssignments(f.ctx, AssignmentFilter{ResourceID: "exa-main"})))
			stale(second(f.svc.DeleteAssignment(f.ctx, admin, as[0].ID, as[0].Version+1, "")), ObjectAssignment)
			got := must[AccessRequest](t)(f.svc.Approve(f.ctx, explicit, r.ID, ApproveInput{IfMatch: r.Version}))
			if got.Version != r.Version+1 || got.LifecycleState != StateApproved {
				t.Fatalf("approved with the right version: %+v", got)
			}
			if _, err := f.svc.GetRequest(f.ctx, "nope"); !errors.Is(err, ErrNotFound) {
				t.Errorf("missing request: %v", err)
			}
		})
	}
}

func first[T any](v T, _ string, err error) (T, error) { return v, err }

// TestApprovalRules: N distinct approvers, one counts once, the shortest
// duration and the strictest audit type win, and extensions take the
// same path.
func TestApprovalRules(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b)
			exampleControls(f)
			f.resource("exa-two")
			f.control("exa-two", ControlInput{OperatorControlName: "two_man", ApproversList: []string{"dave"}, ApproverGroupsList: []string{"EXPLICIT_APPROVED_POLICY_USERS"}, ApprovalRequiredOpActions: []string{"INFRA_UPDATE_RESTART", "INFRA_HYPERVISOR"}, NumberOfApprovers: 2, MaxExtensionHours: 6})
			dave := stranger
			dave.Name = "dave"
			r := f.request(operator, "exa-two", 8, "INFRA_HYPERVISOR", "INFRA_UPDATE_RESTART")
			r = must[AccessRequest](t)(f.svc.Approve(f.ctx, explicit, r.ID, ApproveInput{DurationHours: 6}))
			if r.LifecycleState != StateApprovalWaiting || r.UserID != "" {
				t.Fatalf("after one of two: %+v", r)
			}
			if _, err := f.svc.Approve(f.ctx, explicit, r.ID, ApproveInput{}); !errors.Is(err, ErrConflict) {
				t.Fatalf("the same approver twice: %v", err)
			}
			if _, err := f.svc.Approve(f.ctx, stranger, r.ID, ApproveInput{}); !errors.Is(err, ErrForbidden) {
				t.Fatalf("a stranger: %v", err)
			}
			r = must[AccessRequest](t)(f.svc.Approve(f.ctx, dave, r.ID, ApproveInput{DurationHours: 5, AuditType: schemas.AuditCommandKeystroke}))
			if r.LifecycleState != StateApproved || r.DurationHours != 5 || r.AuditType != schemas.AuditCommandKeystroke || !r.TimeOfExpiry.Equal(t0.Add(5*time.Hour)) {
				t.Fatalf("after two of two: %+v", r)
			}
			g := must[Grant](t)(f.svc.GetGrant(f.ctx, r.UserID))
			if !slices.Equal(g.Hosts, []string{"exa-two-cps01", "exa-two-db01", "exa-two-cel01"}) || !slices.Contains(g.Privileges.SudoCommands, "/usr/bin/virsh") {
				t.Errorf("grant %s", jsonOf(g))
			}
			// An extension: the same approvers, the same count.
			p := f.outbox(nil)
			r = must[AccessRequest](t)(f.svc.Extend(f.ctx, operator, r.ID, 4, "not done", 0))
			if r.LifecycleState != StateExtending || r.ExtendDurationHours != 4 {
				t.Fatalf("extending %+v", r)
			}
			if _, err := f.svc.Extend(f.ctx, operator2, r.ID, 1, "x", 0); !errors.Is(err, ErrInvalidTransition) {
				t.Fatalf("extend while extending: %v", err)
			}
			r = must[AccessRequest](t)(f.svc.Approve(f.ctx, explicit2, r.ID, ApproveInput{DurationHours: 3}))
			if r.LifecycleState != StateExtending {
				t.Fatalf("after one extension approval: %s", r.LifecycleState)
			}
			r = must[AccessRequest](t)(f.svc.Approve(f.ctx, explicit, r.ID, ApproveInput{}))
			if r.LifecycleState != StateExtended || r.ExtendedHours != 3 || !r.TimeOfExpiry.Equal(t0.Add(8*time.Hour)) {
				t.Fatalf("extended %+v", r)
			}
			p = f.outbox(p)
			if len(p.grants) != 1 || !p.grants[0].Grant.Expires.Equal(t0.Add(8*time.Hour)) || p.grants[0].Grant.LoginID != r.UserID {
				t.Fatalf("extended grant %+v", p.grants)
			}
			// Only the requester extends; a rejected extension keeps the grant.
			if _, err := f.svc.Extend(f.ctx, operator2, r.ID, 1, "x", 0); !errors.Is(err, ErrForbidden) {
				t.Fatalf("another operator extends: %v", err)
			}
			r = must[AccessRequest](t)(f.svc.Extend(f.ctx, operator, r.ID, 6, "again", 0))
			r = must[AccessRequest](t)(f.svc.Reject(f.ctx, dave, r.ID, "enough", 0))
			if r.LifecycleState != StateExtensionRejected || !r.TimeOfExpiry.Equal(t0.Add(8*time.Hour)) {
				t.Fatalf("extension rejected %+v", r)
			}
			// Expiry at the extended time revokes the grant.
			if res, err := f.svc.Tick(f.ctx, t0.Add(8*time.Hour-time.Millisecond)); err != nil || res.Expired != 0 {
				t.Fatalf("tick before expiry %+v %v", res, err)
			}
			before := f.outbox(nil)
			if res, err := f.svc.Tick(f.ctx, t0.Add(8*time.Hour)); err != nil || res.Expired != 1 {
				t.Fatalf("tick at expiry %+v %v", res, err)
			}
			p = f.outbox(before)
			if len(p.grants) != 1 || !p.grants[0].Grant.Revoked || p.kinds(r.ID)[0] != "access_request.expired" {
				t.Fatalf("expiry published %+v %v", p.grants, p.kinds(r.ID))
			}
		})
	}
}

// TestMoreInfoFutureAndDeployment: the MOREINFO thread, a future access
// started by Tick, and the state following the agents' reports.
func TestMoreInfoFutureAndDeployment(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b)
			exampleControls(f)
			r := f.request(operator, "exa-main", 2, "INFRA_UPDATE_RESTART")
			if _, err := f.svc.Ask(f.ctx, operator, r.ID, "me?"); !errors.Is(err, ErrForbidden) {
				t.Fatalf("the requester asks: %v", err)
			}
			r = must[AccessRequest](t)(f.svc.Ask(f.ctx, explicit, r.ID, "Which cell needs the restart?"))
			if _, err := f.svc.Answer(f.ctx, operator2, r.ID, "not mine"); !errors.Is(err, ErrForbidden) {
				t.Fatalf("another operator answers: %v", err)
			}
			f.clock.Add(time.Minute)
			r = must[AccessRequest](t)(f.svc.Answer(f.ctx, operator, r.ID, "cel01"))
			if r.LifecycleState != StateApprovalWaiting {
				t.Fatalf("after the answer %s", r.LifecycleState)
			}
			thread := must[[]Interaction](t)(f.svc.Interactions(f.ctx, r.ID))
			if len(thread) != 2 || thread[0].UserType != UserCustomer || thread[0].UserID != "bob" || thread[1].Message != "cel01" || !thread[1].TimeOfConversation.Equal(t0.Add(time.Minute)) {
				t.Fatalf("thread %+v", thread)
			}

			// A future access: approved now, granted at its start.
			start := f.clock.Now().Add(24 * time.Hour)
			q := must[AccessRequest](t)(f.svc.CreateRequest(f.ctx, operator, RequestInput{ResourceID: "exa-diag", ActionRequests: []string{"INFRA_DIAG"}, SubResourceList: []string{"exa-diag-db01"}, Reason: "weekend", Severity: SeverityS3, DurationHours: 2, TimeRequestedForFutureAccess: start}))
			if q.LifecycleState != StateApprovedForFuture || q.UserID != "" || !q.TimeOfExpiry.Equal(start.Add(2*time.Hour)) {
				t.Fatalf("future %+v", q)
			}
			if res, _ := f.svc.Tick(f.ctx, start.Add(-time.Second)); res.Started != 0 {
				t.Fatal("started early")
			}
			before := f.outbox(nil)
			if res, err := f.svc.Tick(f.ctx, start); err != nil || res.Started != 1 {
				t.Fatalf("tick at start %+v %v", res, err)
			}
			q = must[AccessRequest](t)(f.svc.GetRequest(f.ctx, q.ID))
			p := f.outbox(before)
			if q.LifecycleState != StateApproved || len(p.grants) != 1 || !p.grants[0].Grant.Start.Equal(start) || !slices.Equal(p.grants[0].Grant.Hosts, []string{"exa-diag-db01"}) {
				t.Fatalf("started %+v, grants %+v", q, p.grants)
			}

			// Deployment: a report from a host the grant does not name is
			// refused; DEPLOYED once its only host reports.
			if _, err := f.svc.ReportDeployment(f.ctx, agentID, DeploymentReport{LoginID: q.UserID, Host: "exa-diag-cps01", State: StateDeployed}); !errors.Is(err, ErrForbidden) {
				t.Fatalf("report from another host: %v", err)
			}
			if _, err := f.svc.ReportDeployment(f.ctx, agentID, DeploymentReport{LoginID: q.UserID, Host: "exa-diag-db01", State: "GONE"}); !errors.Is(err, ErrInvalid) {
				t.Fatalf("report of an unknown state: %v", err)
			}
			q = must[AccessRequest](t)(f.svc.ReportDeployment(f.ctx, agentID, DeploymentReport{LoginID: q.UserID, Host: "exa-diag-db01", State: StateDeployed, Message: "user created"}))
			if q.LifecycleState != StateDeployed {
				t.Fatalf("deployed %s", q.LifecycleState)
			}
			// Three hosts: DEPLOYED only when all three say so.
			d := f.request(operator2, "exa-diag", 2, "INFRA_DIAG")
			g := must[Grant](t)(f.svc.GetGrant(f.ctx, d.UserID))
			for i, h := range g.Hosts {
				d = must[AccessRequest](t)(f.svc.ReportDeployment(f.ctx, agentID, DeploymentReport{LoginID: d.UserID, Host: h, State: StateDeployed}))
				if want := map[bool]RequestState{true: StateDeployed, false: StatePreApproved}[i == len(g.Hosts)-1]; d.LifecycleState != want {
					t.Fatalf("after %d of %d hosts: %s, want %s", i+1, len(g.Hosts), d.LifecycleState, want)
				}
			}
			// After a revocation the agent's confirmation is recorded; a
			// late deployment is refused.
			d = must[AccessRequest](t)(f.svc.Revoke(f.ctx, admin, d.ID, "end", 0))
			d = must[AccessRequest](t)(f.svc.ReportDeployment(f.ctx, agentID, DeploymentReport{LoginID: d.UserID, Host: g.Hosts[0], State: StateUndeployed}))
			if d.LifecycleState != StateRevoked || d.HostDeployments[g.Hosts[0]] != string(StateUndeployed) {
				t.Fatalf("undeployed after revoke %+v", d)
			}
			if _, err := f.svc.ReportDeployment(f.ctx, agentID, DeploymentReport{LoginID: d.UserID, Host: g.Hosts[1], State: StateDeployed}); !errors.Is(err, ErrInvalidTransition) {
				t.Fatalf("deployed after revoke: %v", err)
			}
			// Counts for the metrics.
			counts := must[map[RequestState]int](t)(f.store.RequestCounts(f.ctx))
			if counts[StateRevoked] != 1 || counts[StateDeployed] != 1 || counts[StateExpired] != 1 { // the waiting one lapsed at the tick a day later
				t.Errorf("counts %v", counts)
			}
		})
	}
}

// TestAssignmentWindows: a window's assignment is applied and ended by
// Tick, published signed each time; the control's state follows; with no
// assignment in force the default control decides.
func TestAssignmentWindows(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b)
			f.resource("exa-w")
			def := f.control("", ControlInput{IsDefaultOperatorControl: true, ApproverGroupsList: []string{"PRE_APPROVED_POLICY_USERS"}, ApprovalRequiredOpActions: []string{"INFRA_DIAG"}})
			if def.OperatorControlName != DefaultControlName {
				t.Fatalf("default control named %q", def.OperatorControlName)
			}
			win := f.control("", ControlInput{OperatorControlName: "weekend", PreApprovedOpActions: []string{"INFRA_DIAG"}})
			ca := caPEM(t)
			from, to := t0.Add(time.Hour), t0.Add(3*time.Hour)
			a := must[Assignment](t)(f.svc.CreateAssignment(f.ctx, admin, AssignmentInput{OperatorControlID: win.ID, ResourceID: "exa-w", AssignmentWindow: AssignmentWindow{TimeAssignmentFrom: from, TimeAssignmentTo: to}}))
			if a.LifecycleState != AssignmentCreated {
				t.Fatalf("window not begun: %s", a.LifecycleState)
			}
			if c := must[Control](t)(f.svc.GetControl(f.ctx, win.ID)); c.LifecycleState != ControlAssigned {
				t.Fatalf("control %s", c.LifecycleState)
			}
			// Before the window the default control decides: approval needed.
			if r := f.request(operator, "exa-w", 1, "INFRA_DIAG"); r.LifecycleState != StateApprovalWaiting || r.OpctlID != def.ID {
				t.Fatalf("under the default control: %+v", r)
			}
			// A permanent assignment with forwarding cannot overlap it.
			if _, err := f.svc.CreateAssignment(f.ctx, admin, AssignmentInput{OperatorControlID: def.ID, ResourceID: "exa-w", AssignmentWindow: AssignmentWindow{IsEnforcedAlways: true}}); !errors.Is(err, ErrConflict) {
				t.Fatalf("overlap: %v", err)
			}
			before := f.outbox(nil)
			if res, err := f.svc.Tick(f.ctx, from); err != nil || res.AssignmentsApplied != 1 {
				t.Fatalf("tick at from %+v %v", res, err)
			}
			f.clock.Add(time.Hour)
			if r := f.request(operator, "exa-w", 1, "INFRA_DIAG"); r.LifecycleState != StatePreApproved || r.OpctlID != win.ID {
				t.Fatalf("under the window's control: %+v", r)
			}
			if res, err := f.svc.Tick(f.ctx, to); err != nil || res.AssignmentsEnded != 1 {
				t.Fatalf("tick at to %+v %v", res, err)
			}
			p := f.outbox(before)
			if len(p.assignments) != 2 || p.assignments[0].Assignment.LifecycleState != string(AssignmentApplied) || p.assignments[1].Assignment.LifecycleState != "DELETED" {
				t.Fatalf("published %+v", p.assignments)
			}
			if got := p.kinds(a.ID); !slices.Equal(got, []string{"operator_control_assignment.applied", "operator_control_assignment.window_ended"}) {
				t.Errorf("assignment events %v", got)
			}
			if got := p.kinds(win.ID); !slices.Equal(got, []string{"operator_control.unassigned"}) {
				t.Errorf("control events %v", got)
			}
			// Then forwarding, always: the signed record carries the SIEM.
			fa := must[Assignment](t)(f.svc.CreateAssignment(f.ctx, admin, AssignmentInput{OperatorControlID: def.ID, ResourceID: "exa-w", AssignmentWindow: AssignmentWindow{IsEnforcedAlways: true, IsLogForwarded: true, RemoteSyslogServerAddress: "10.0.0.5", RemoteSyslogServerPort: 6514, RemoteSyslogServerCACert: ca}}))
			p = f.outbox(p)
			if len(p.assignments) != 1 || p.assignments[0].Assignment.SyslogAddress() != "10.0.0.5:6514" || p.assignments[0].Assignment.RemoteSyslogServerCACert != ca {
				t.Fatalf("forwarding published %+v", p.assignments)
			}
			must[Assignment](t)(f.svc.DeleteAssignment(f.ctx, admin, fa.ID, 0, "moved"))
			p = f.outbox(p)
			if len(p.assignments) != 1 || p.assignments[0].Assignment.LifecycleState != "DELETED" || p.assignments[0].Assignment.IsLogForwarded {
				t.Fatalf("removal %+v", p.assignments)
			}
			if c := must[Control](t)(f.svc.GetControl(f.ctx, def.ID)); c.LifecycleState != ControlUnassigned {
				t.Errorf("default control %s", c.LifecycleState)
			}
			if c := must[Control](t)(f.svc.DeleteControl(f.ctx, admin, win.ID, 0)); c.LifecycleState != ControlDeleted {
				t.Errorf("deleted %s", c.LifecycleState)
			}
		})
	}
}

// TestListsAndTree: pages follow each other without loss or repeat; the
// compartment filter is recursive.
func TestListsAndTree(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b)
			f.resource("root-res")
			must[Compartment](t)(f.svc.CreateCompartment(f.ctx, admin, CompartmentInput{ID: "prod", Name: "prod", ParentID: "tenancy"}))
			must[Compartment](t)(f.svc.CreateCompartment(f.ctx, admin, CompartmentInput{ID: "prod-db", Name: "prod-db", ParentID: "prod"}))
			for _, id := range []string{"a1", "a2", "a3", "a4", "a5"} {
				f.clock.Add(time.Millisecond * time.Duration(len(id)%2))
				must[Resource](t)(f.svc.CreateResource(f.ctx, admin, ResourceInput{ID: id, Name: id, ResourceType: ResourceExaCC, CompartmentID: "prod-db", Hosts: exaHosts(id)}))
			}
			sub := must[[]string](t)(f.svc.CompartmentSubtree(f.ctx, "prod"))
			slices.Sort(sub)
			if !slices.Equal(sub, []string{"prod", "prod-db"}) {
				t.Fatalf("subtree %v", sub)
			}
			var seen []string
			page := Page{Limit: 2}
			for i := 0; ; i++ {
				rs, next, err := f.svc.ListResources(f.ctx, ResourceFilter{CompartmentID: "prod", Recursive: true, Page: page})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range rs {
					seen = append(seen, r.ID)
				}
				if next == "" {
					break
				}
				page.After = next
				if i > 5 {
					t.Fatal("pages never end")
				}
			}
			slices.Sort(seen)
			if !slices.Equal(seen, []string{"a1", "a2", "a3", "a4", "a5"}) {
				t.Fatalf("paged %v", seen)
			}
			if rs, _, _ := f.svc.ListResources(f.ctx, ResourceFilter{CompartmentID: "prod"}); len(rs) != 0 {
				t.Errorf("not recursive: %d", len(rs))
			}
			if rs, _, _ := f.svc.ListResources(f.ctx, ResourceFilter{CompartmentID: "tenancy", Recursive: true}); len(rs) != 6 {
				t.Errorf("from the root: %d", len(rs))
			}
			if _, _, err := f.svc.ListResources(f.ctx, ResourceFilter{Page: Page{After: "junk"}}); !errors.Is(err, ErrInvalid) {
				t.Errorf("bad cursor: %v", err)
			}
			roots := must[[]Compartment](t)(first(f.svc.ListCompartments(f.ctx, CompartmentFilter{RootsOnly: true})))
			if len(roots) != 1 || roots[0].ID != "tenancy" {
				t.Errorf("roots %+v", roots)
			}
			// Moving a compartment, deleting an empty one.
			must[Compartment](t)(f.svc.CreateCompartment(f.ctx, admin, CompartmentInput{ID: "empty", Name: "empty", ParentID: "prod"}))
			if err := f.svc.DeleteCompartment(f.ctx, admin, "empty", 0); err != nil {
				t.Fatal(err)
			}
			if c := must[Compartment](t)(f.svc.UpdateCompartment(f.ctx, admin, "prod-db", 0, CompartmentUpdate{ParentID: ptr("tenancy")})); c.ParentID != "tenancy" || c.Version != 2 {
				t.Errorf("moved %+v", c)
			}
		})
	}
}

// TestRequestKeysAndAuditType: the requester's SSH public keys and the
// keystroke auditing they ask for travel with an auto-approved request
// into its published grant (the host agent installs the keys; the
// collector and agent record keystrokes).
func TestRequestKeysAndAuditType(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b)
			exampleControls(f)
			key := `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHh0ZXN0a2V5 op@laptop`
			ca := `cert-authority,principals="oracle-op-1" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGNhY2E op-ca`
			before := f.outbox(nil)
			r := must[AccessRequest](t)(f.svc.CreateRequest(f.ctx, operator, RequestInput{ResourceID: "exa-diag", ActionRequests: []string{"INFRA_DIAG"},
				Reason: "diag", Severity: SeverityS3, DurationHours: 1, AuditType: schemas.AuditCommandKeystroke, SSHPublicKeys: []string{key, ca}}))
			if r.LifecycleState != StatePreApproved || r.AuditType != schemas.AuditCommandKeystroke || !slices.Equal(r.SSHPublicKeys, []string{key, ca}) {
				t.Fatalf("request %s", jsonOf(r))
			}
			p := f.outbox(before)
			if len(p.grants) != 1 {
				t.Fatalf("%d grants published", len(p.grants))
			}
			g := p.grants[0].Grant
			if g.LoginID != r.UserID || g.AuditType != schemas.AuditCommandKeystroke || !slices.Equal(g.SSHAuthorizedKeys, []string{key, ca}) {
				t.Errorf("published grant %s", jsonOf(g))
			}
			// Without a choice the request audits commands (OCI's default).
			plain := f.request(operator, "exa-diag", 1, "INFRA_DIAG")
			if plain.AuditType != schemas.AuditCommand || len(plain.SSHPublicKeys) != 0 {
				t.Errorf("default request %s", jsonOf(plain))
			}
		})
	}
}
