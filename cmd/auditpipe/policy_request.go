package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/policy/client"
)

func requestTable(o *output, v any, rs ...policy.AccessRequest) error {
	rows := make([][]string, len(rs))
	for i, r := range rs {
		rows[i] = []string{r.ID, string(r.LifecycleState), r.RequestorID, r.ResourceID, join(r.ActionRequests), strconv.Itoa(r.DurationHours) + "h",
			r.AuditType, when(r.TimeOfExpiry), r.UserID, strconv.FormatInt(r.Version, 10)}
	}
	return o.table(v, []string{"ID", "STATE", "OPERATOR", "RESOURCE", "ACTIONS", "DURATION", "AUDIT", "EXPIRES", "LOGIN", "ETAG"}, rows)
}

// policyRequestCommands are `auditpipe request …` but the report
// (request.go joins them).
func policyRequestCommands() map[string]command {
	var (
		in          policy.RequestInput
		actions     namesFlag
		subs        namesFlag
		sshKeys     filesFlag
		start       string
		state, res  string
		comp, opID  string
		subtree     bool
		lo          listOpts
		im          ifMatchFlag
		comment     string
		approve     policy.ApproveInput
		hours       int
		showRequest = func(ctx context.Context, c *client.Client, s *subEnv) error {
			r, err := c.GetRequest(ctx, s.args[0])
			if err != nil {
				return err
			}
			return s.out.object(r)
		}
	)
	// act is a request action with --if-match, or the version read.
	act := func(name, summary, synopsis string, flags func(*flag.FlagSet),
		do func(ctx context.Context, c *client.Client, id string, v int64) (policy.AccessRequest, error)) command {
		return policyCommand("request "+name, summary, sub{synopsis: synopsis, args: 1,
			flags: func(fs *flag.FlagSet) {
				if flags != nil {
					flags(fs)
				}
				im.register(fs)
			},
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				v, err := im.version(func() (int64, error) { r, err := c.GetRequest(ctx, s.args[0]); return r.Version, err })
				if err != nil {
					return err
				}
				r, err := do(ctx, c, s.args[0], v)
				if err != nil {
					return err
				}
				return s.out.object(r)
			}})
	}
	commentFlag := func(usage string) func(*flag.FlagSet) {
		return func(fs *flag.FlagSet) { fs.StringVar(&comment, "comment", "", usage) }
	}
	interact := func(name, summary string) command {
		return policyCommand("request "+name, summary, sub{synopsis: "ID MESSAGE", args: 2,
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				r, err := c.Interact(ctx, s.args[0], s.args[1])
				if err != nil {
					return err
				}
				return s.out.object(r)
			}})
	}
	return map[string]command{
		"create": policyCommand("request create", "ask for access: actions on a resource, for hours", sub{
			synopsis: "--resource ID --action ACTION [--action …] --reason TEXT --severity S1-S4 --duration HOURS [--sub-resource HOST …] [--start TIME] [--audit-type COMMAND_KEYSTROKE_AUDIT] [--ssh-key FILE …]",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&in.ResourceID, "resource", "", "resource `ID`")
				fs.Var(&actions, "action", "a catalog `ACTION` (repeat, or a comma list; see the catalog: GET /v1/actions)")
				fs.Var(&subs, "sub-resource", "only this `HOST` of the resource (repeat, or a comma list)")
				fs.StringVar(&in.Reason, "reason", "", "why, `TEXT` (a ticket, an SR)")
				fs.StringVar(&in.Severity, "severity", "", "`S1` (highest) to S4")
				fs.IntVar(&in.DurationHours, "duration", 0, "`HOURS` of access")
				fs.StringVar(&start, "start", "", "future access from this RFC 3339 `TIME` (within 30 days)")
				fs.StringVar(&in.AuditType, "audit-type", "", "ask for `TYPE` COMMAND_KEYSTROKE_AUDIT (default COMMAND_AUDIT; an approver may still raise it)")
				fs.Var(&sshKeys, "ssh-key", "your SSH public key `FILE` (authorized_keys lines; repeat): the login user's keys on the host")
			},
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				in.ActionRequests, in.SubResourceList = actions, subs
				var err error
				if in.SSHPublicKeys, err = readAuthorizedKeys(sshKeys); err != nil {
					return err
				}
				if in.TimeRequestedForFutureAccess, err = parseTime("start", start); err != nil {
					return err
				}
				r, err := c.CreateRequest(ctx, in)
				if err != nil {
					return err
				}
				return s.out.object(r)
			}}),
		"list": policyCommand("request list", "list the access requests you may see (newest first)", sub{
			synopsis: "[--state STATE] [--resource ID] [--compartment ID [--subtree]] [--operator NAME] [--limit N] [--page TOKEN | --all]",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&state, "state", "", "in this `STATE` (APPROVALWAITING, APPROVED, …)")
				fs.StringVar(&res, "resource", "", "on this resource `ID`")
				fs.StringVar(&comp, "compartment", "", "on the resources of this compartment `ID`")
				fs.BoolVar(&subtree, "subtree", false, "and the compartments under it")
				fs.StringVar(&opID, "operator", "", "made by this `NAME`")
				lo.register(fs)
			},
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				items, err := pages(ctx, &lo, s, map[string]string{"lifecycleState": state, "resourceId": res, "compartmentId": comp,
					"compartmentIdInSubtree": boolParam(subtree), "operatorId": opID}, c.ListRequests)
				if err != nil {
					return err
				}
				return requestTable(s.out, items, items...)
			}}),
		"show": policyCommand("request show", "show an access request", sub{synopsis: "ID", args: 1, run: showRequest}),
		"approve": act("approve", "approve a request (or its pending extension)", "ID [--comment TEXT] [--audit-type COMMAND_KEYSTROKE_AUDIT] [--duration HOURS] [--if-match ETAG]",
			func(fs *flag.FlagSet) {
				fs.StringVar(&approve.Comment, "comment", "", "`TEXT`")
				fs.StringVar(&approve.AuditType, "audit-type", "", "require `TYPE` COMMAND_KEYSTROKE_AUDIT (default COMMAND_AUDIT)")
				fs.IntVar(&approve.DurationHours, "duration", 0, "shorten the access to `HOURS`")
			},
			func(ctx context.Context, c *client.Client, id string, v int64) (policy.AccessRequest, error) {
				return c.Approve(ctx, id, v, approve)
			}),
		"reject": act("reject", "reject a request (or its pending extension), with a comment", "ID --comment TEXT [--if-match ETAG]", commentFlag("why, `TEXT` (required)"),
			func(ctx context.Context, c *client.Client, id string, v int64) (policy.AccessRequest, error) {
				return c.Reject(ctx, id, v, comment)
			}),
		"revoke": act("revoke", "end a request now (its grant is revoked)", "ID [--comment TEXT] [--if-match ETAG]", commentFlag("why, `TEXT`"),
			func(ctx context.Context, c *client.Client, id string, v int64) (policy.AccessRequest, error) {
				return c.Revoke(ctx, id, v, comment)
			}),
		"extend": act("extend", "ask for more hours (approved as the request was)", "ID --hours N [--comment REASON] [--if-match ETAG]",
			func(fs *flag.FlagSet) {
				fs.IntVar(&hours, "hours", 0, "`N` hours more")
				fs.StringVar(&comment, "comment", "", "why, `TEXT`")
			},
			func(ctx context.Context, c *client.Client, id string, v int64) (policy.AccessRequest, error) {
				return c.Extend(ctx, id, v, hours, comment)
			}),
		"complete": act("complete", "end your access early, or withdraw a waiting request", "ID [--comment TEXT] [--if-match ETAG]", commentFlag("`TEXT`"),
			func(ctx context.Context, c *client.Client, id string, v int64) (policy.AccessRequest, error) {
				return c.Complete(ctx, id, v, comment)
			}),
		"ask":    interact("ask", "ask the requester for more information (MOREINFO)"),
		"answer": interact("answer", "answer an approver's question (the request waits for approval again)"),
		"history": policyCommand("request history", "every transition of a request, with who and when; and its MOREINFO thread", sub{synopsis: "ID", args: 1,
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				h, err := c.History(ctx, s.args[0])
				if err != nil {
					return err
				}
				th, err := c.Interactions(ctx, s.args[0])
				if err != nil {
					return err
				}
				if s.out.format == outputJSON {
					return s.out.json(map[string]any{"history": h, "interactions": th})
				}
				rows := make([][]string, len(h))
				for i, e := range h {
					rows[i] = []string{e.Time.UTC().Format("2006-01-02 15:04:05Z"), e.Actor, e.Action, e.From, e.To, e.Comment}
				}
				if err := s.out.table(nil, []string{"TIME", "ACTOR", "ACTION", "FROM", "TO", "COMMENT"}, rows); err != nil {
					return err
				}
				if len(th) == 0 {
					return nil
				}
				fmt.Fprintln(s.out.w)
				rows = make([][]string, len(th))
				for i, m := range th {
					rows[i] = []string{m.TimeOfConversation.UTC().Format("2006-01-02 15:04:05Z"), m.UserID, m.UserType, m.Message}
				}
				return s.out.table(nil, []string{"TIME", "USER", "TYPE", "MESSAGE"}, rows)
			}}),
	}
}

// filesFlag is a repeatable file flag.
type filesFlag []string

func (l *filesFlag) String() string { return strings.Join(*l, ",") }

func (l *filesFlag) Set(v string) error { *l = append(*l, v); return nil }

// readAuthorizedKeys reads the authorized_keys lines of files (blank
// lines and # comments skipped).
func readAuthorizedKeys(files []string) ([]string, error) {
	var keys []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--ssh-key: %w", err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				keys = append(keys, l)
			}
		}
	}
	return keys, nil
}
