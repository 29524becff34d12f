package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/policy/api"
	"github.com/auditpipe/auditpipe/policy/client"
)

func controlTable(o *output, v any, cs ...policy.Control) error {
	rows := make([][]string, len(cs))
	for i, c := range cs {
		pre := join(c.PreApprovedOpActions)
		if c.IsFullyPreApproved {
			pre = "(all)"
		}
		rows[i] = []string{c.ID, c.OperatorControlName, c.ResourceType, string(c.LifecycleState), pre, join(c.ApprovalRequiredOpActions),
			join(append(append([]string{}, c.ApproverGroupsList...), c.ApproversList...)), strconv.Itoa(c.NumberOfApprovers), strconv.FormatInt(c.Version, 10)}
	}
	return o.table(v, []string{"ID", "NAME", "TYPE", "STATE", "PRE-APPROVED", "APPROVAL-REQUIRED", "APPROVERS", "N", "ETAG"}, rows)
}

// controlFields are the flags of control create and update.
type controlFields struct {
	name, description, message         string
	groups, approvers, pre, req, email namesFlag
	fully, isDefault                   bool
	n, maxDuration, maxExtension       int
}

func (f *controlFields) register(fs *flag.FlagSet) {
	fs.StringVar(&f.name, "name", "", "the control's `NAME` (operator_control_name)")
	fs.StringVar(&f.description, "description", "", "`TEXT`")
	fs.StringVar(&f.message, "system-message", "", "`TEXT` shown to operators")
	fs.Var(&f.groups, "approver-group", "a `GROUP` whose members approve (repeat, or a comma list)")
	fs.Var(&f.approvers, "approver", "a `NAME` who approves (repeat, or a comma list)")
	fs.Var(&f.pre, "pre-approved", "an `ACTION` approved without an approver (repeat, or a comma list)")
	fs.Var(&f.req, "approval-required", "an `ACTION` that needs approval (repeat, or a comma list)")
	fs.Var(&f.email, "email", "an `ADDRESS` to notify (repeat, or a comma list)")
	fs.BoolVar(&f.fully, "fully-pre-approved", false, "pre-approve every action of the resource type")
	fs.BoolVar(&f.isDefault, "default", false, "the DEFAULT_OPERATOR_CONTROL of its resource type")
	fs.IntVar(&f.n, "number-of-approvers", 0, "`N` distinct approvals a request needs (default 1)")
	fs.IntVar(&f.maxDuration, "max-duration", 0, "longest access, in `HOURS` (default 24)")
	fs.IntVar(&f.maxExtension, "max-extension", 0, "longest extension, in `HOURS` (default --max-duration)")
}

// apply sets u's fields from the flags that were set.
func (f *controlFields) apply(u *api.UpdateControlDetails, set map[string]bool) {
	if set["name"] {
		u.OperatorControlName = f.name
	}
	if set["description"] {
		u.Description = f.description
	}
	if set["system-message"] {
		u.SystemMessage = f.message
	}
	lists := map[string]*[]string{"approver-group": &u.ApproverGroupsList, "approver": &u.ApproversList, "pre-approved": &u.PreApprovedOpActions,
		"approval-required": &u.ApprovalRequiredOpActions, "email": &u.EmailIDList}
	vals := map[string]namesFlag{"approver-group": f.groups, "approver": f.approvers, "pre-approved": f.pre, "approval-required": f.req, "email": f.email}
	for name, dst := range lists {
		if set[name] {
			*dst = vals[name]
		}
	}
	if set["fully-pre-approved"] {
		u.IsFullyPreApproved = f.fully
	}
	if set["default"] {
		u.IsDefaultOperatorControl = f.isDefault
	}
	if set["number-of-approvers"] {
		u.NumberOfApprovers = f.n
	}
	if set["max-duration"] {
		u.MaxDurationHours = f.maxDuration
	}
	if set["max-extension"] {
		u.MaxExtensionHours = f.maxExtension
	}
}

// controlCommands are `auditpipe control …`.
func controlCommands() map[string]command {
	var (
		cf      controlFields
		comp    string
		rtype   string
		state   string
		subtree bool
		lo      listOpts
		im      ifMatchFlag
	)
	read := func(ctx context.Context, c *client.Client, id string) func() (int64, error) {
		return func() (int64, error) { x, err := c.GetControl(ctx, id); return x.Version, err }
	}
	return map[string]command{
		"create": policyCommand("control create", "create an operator control: who approves which actions", sub{
			synopsis: "--name NAME --compartment ID --type TYPE [--approver-group G …] [--pre-approved A …] [--approval-required A …] [--number-of-approvers N] …",
			flags: func(fs *flag.FlagSet) {
				cf.register(fs)
				fs.StringVar(&comp, "compartment", "", "compartment `ID`")
				fs.StringVar(&rtype, "type", "", "resource `TYPE`: "+strings.Join(policy.ResourceTypes(), ", "))
			},
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				var u api.UpdateControlDetails
				cf.apply(&u, s.set)
				in := policy.ControlInput{OperatorControlName: u.OperatorControlName, Description: u.Description, CompartmentID: comp, ResourceType: rtype,
					ApproversList: u.ApproversList, ApproverGroupsList: u.ApproverGroupsList, PreApprovedOpActions: u.PreApprovedOpActions,
					ApprovalRequiredOpActions: u.ApprovalRequiredOpActions, IsFullyPreApproved: u.IsFullyPreApproved, NumberOfApprovers: u.NumberOfApprovers,
					EmailIDList: u.EmailIDList, SystemMessage: u.SystemMessage, IsDefaultOperatorControl: u.IsDefaultOperatorControl,
					MaxDurationHours: u.MaxDurationHours, MaxExtensionHours: u.MaxExtensionHours}
				x, err := c.CreateControl(ctx, in)
				if err != nil {
					return err
				}
				return s.out.object(x)
			}}),
		"list": policyCommand("control list", "list operator controls (newest first)", sub{synopsis: "[--compartment ID [--subtree]] [--type TYPE] [--state STATE] [--limit N] [--page TOKEN | --all]",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&comp, "compartment", "", "in this compartment `ID`")
				fs.BoolVar(&subtree, "subtree", false, "and the compartments under it")
				fs.StringVar(&rtype, "type", "", "for this resource `TYPE`")
				fs.StringVar(&state, "state", "", "in this `STATE`: CREATED, ASSIGNED, UNASSIGNED, DELETED")
				lo.register(fs)
			},
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				items, err := pages(ctx, &lo, s, map[string]string{"compartmentId": comp, "compartmentIdInSubtree": boolParam(subtree), "resourceType": rtype, "lifecycleState": state}, c.ListControls)
				if err != nil {
					return err
				}
				return controlTable(s.out, items, items...)
			}}),
		"show": policyCommand("control show", "show an operator control", sub{synopsis: "ID", args: 1,
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				x, err := c.GetControl(ctx, s.args[0])
				if err != nil {
					return err
				}
				return s.out.object(x)
			}}),
		"update": policyCommand("control update", "change an operator control: the flags given, the rest as it is", sub{
			synopsis: "ID [--name NAME] [--approver-group G …] [--pre-approved A …] [--approval-required A …] [--number-of-approvers N] … [--if-match ETAG]", args: 1,
			flags: func(fs *flag.FlagSet) { cf.register(fs); im.register(fs) },
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				// The update replaces the whole control: read it, change
				// what the flags say, send it with the etag read.
				cur, err := c.GetControl(ctx, s.args[0])
				if err != nil {
					return err
				}
				u := api.ControlUpdate(cur)
				cf.apply(&u, s.set)
				v, err := im.version(func() (int64, error) { return cur.Version, nil })
				if err != nil {
					return err
				}
				x, err := c.UpdateControl(ctx, s.args[0], v, u)
				if err != nil {
					return err
				}
				return s.out.object(x)
			}}),
		"delete": policyCommand("control delete", "delete an unassigned operator control (it stays readable, DELETED)", sub{synopsis: "ID [--if-match ETAG]", args: 1,
			flags: im.register,
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				v, err := im.version(read(ctx, c, s.args[0]))
				if err != nil {
					return err
				}
				if err := c.DeleteControl(ctx, s.args[0], v); err != nil {
					return err
				}
				fmt.Fprintf(s.out.w, "deleted operator control %s\n", s.args[0])
				return nil
			}}),
	}
}

func assignmentTable(o *output, v any, as ...policy.Assignment) error {
	rows := make([][]string, len(as))
	for i, a := range as {
		window := "always"
		if !a.IsEnforcedAlways {
			window = when(a.TimeAssignmentFrom) + " – " + when(a.TimeAssignmentTo)
		}
		siem := ""
		if a.IsLogForwarded {
			siem = net.JoinHostPort(a.RemoteSyslogServerAddress, strconv.Itoa(a.RemoteSyslogServerPort))
		}
		rows[i] = []string{a.ID, a.OpControlName, a.ResourceID, string(a.LifecycleState), window, siem, strconv.FormatInt(a.Version, 10)}
	}
	return o.table(v, []string{"ID", "CONTROL", "RESOURCE", "STATE", "WINDOW", "SIEM", "ETAG"}, rows)
}

// assignmentCommands are `auditpipe assignment …`.
func assignmentCommands() map[string]command {
	var (
		in              policy.AssignmentInput
		from, to        string
		syslog, caFile  string
		comp, state     string
		subtree         bool
		lo              listOpts
		im              ifMatchFlag
		detachment      string
		control, resrcF string
	)
	return map[string]command{
		"create": policyCommand("assignment create", "assign an operator control to a resource, always or for a window", sub{
			synopsis: "--control ID --resource ID (--always | --from TIME --to TIME) [--syslog HOST:PORT --syslog-ca FILE] [--comment TEXT]",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&in.OperatorControlID, "control", "", "operator control `ID`")
				fs.StringVar(&in.ResourceID, "resource", "", "resource `ID`")
				fs.BoolVar(&in.IsEnforcedAlways, "always", false, "enforced always (else --from and --to)")
				fs.StringVar(&from, "from", "", "the window's start, RFC 3339 `TIME`")
				fs.StringVar(&to, "to", "", "the window's end (exclusive), RFC 3339 `TIME`")
				fs.StringVar(&syslog, "syslog", "", "forward the resource's events to this SIEM, `HOST:PORT` (RFC 5424 over TLS; needs --always)")
				fs.StringVar(&caFile, "syslog-ca", "", "the SIEM's CA certificate, PEM `FILE`")
				fs.StringVar(&in.Comment, "comment", "", "`TEXT`")
			},
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				var err error
				if in.TimeAssignmentFrom, err = parseTime("from", from); err != nil {
					return err
				}
				if in.TimeAssignmentTo, err = parseTime("to", to); err != nil {
					return err
				}
				if syslog != "" {
					host, port, err := net.SplitHostPort(syslog)
					if err != nil {
						return fmt.Errorf("--syslog %q: want HOST:PORT", syslog)
					}
					in.IsLogForwarded, in.RemoteSyslogServerAddress = true, host
					if in.RemoteSyslogServerPort, err = strconv.Atoi(port); err != nil {
						return fmt.Errorf("--syslog %q: want HOST:PORT", syslog)
					}
					if in.RemoteSyslogServerCACert, err = readFile(caFile); err != nil {
						return fmt.Errorf("--syslog-ca: %w", err)
					}
				}
				a, err := c.CreateAssignment(ctx, in)
				if err != nil {
					return err
				}
				return s.out.object(a)
			}}),
		"list": policyCommand("assignment list", "list assignments (newest first)", sub{synopsis: "[--resource ID] [--control ID] [--compartment ID [--subtree]] [--state STATE] [--limit N] [--page TOKEN | --all]",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&resrcF, "resource", "", "of this resource `ID`")
				fs.StringVar(&control, "control", "", "of this operator control `ID`")
				fs.StringVar(&comp, "compartment", "", "of the resources in this compartment `ID`")
				fs.BoolVar(&subtree, "subtree", false, "and the compartments under it")
				fs.StringVar(&state, "state", "", "in this `STATE`: CREATED, APPLIED, DELETED")
				lo.register(fs)
			},
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				items, err := pages(ctx, &lo, s, map[string]string{"resourceId": resrcF, "operatorControlId": control, "compartmentId": comp,
					"compartmentIdInSubtree": boolParam(subtree), "lifecycleState": state}, c.ListAssignments)
				if err != nil {
					return err
				}
				return assignmentTable(s.out, items, items...)
			}}),
		"show": policyCommand("assignment show", "show an assignment", sub{synopsis: "ID", args: 1,
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				a, err := c.GetAssignment(ctx, s.args[0])
				if err != nil {
					return err
				}
				return s.out.object(a)
			}}),
		"delete": policyCommand("assignment delete", "unassign (requests decided under it keep their grants)", sub{synopsis: "ID [--description TEXT] [--if-match ETAG]", args: 1,
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&detachment, "description", "", "why, `TEXT`")
				im.register(fs)
			},
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				v, err := im.version(func() (int64, error) { a, err := c.GetAssignment(ctx, s.args[0]); return a.Version, err })
				if err != nil {
					return err
				}
				if err := c.DeleteAssignment(ctx, s.args[0], v, detachment); err != nil {
					return err
				}
				fmt.Fprintf(s.out.w, "deleted assignment %s\n", s.args[0])
				return nil
			}}),
	}
}
