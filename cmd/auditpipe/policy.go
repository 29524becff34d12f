package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/auditpipe/auditpipe/internal/app"
	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/policy"
)

const policyUsage = "usage: auditpipe policy [--config FILE]            (= run --target policy)\n" +
	"       auditpipe policy show|history|revoke …       (an access request, on the policy store itself; -h for each)"

// runPolicy is `auditpipe policy [--config FILE]`, the policy target, and
// `auditpipe policy show|history|revoke`: an access request read or
// revoked on the policy store directly, through the policy service (the
// rules, the history, the outbox), as `query --embedded` reads chDB. It
// is for the host that holds the store (the all-in-one's SQLite file, or
// the PostgreSQL of the file's policy.store); a running policy process
// publishes what it wrote (its relay polls the outbox). Elsewhere the
// policy API is the way.
func runPolicy(ctx context.Context, e env) error {
	if len(e.args) > 0 {
		switch e.args[0] {
		case "show", "history", "revoke":
			return policyRequest(ctx, e, e.args[0], e.args[1:])
		case "help":
			fmt.Fprintln(e.stderr, policyUsage)
			return errHelp
		}
	}
	return targetCommand(app.TargetPolicy)(ctx, e)
}

func policyRequest(ctx context.Context, e env, verb string, args []string) error {
	synopsis := "policy " + verb + " (--data DIR | --config FILE) [--output table|json] REQUEST_ID"
	if verb == "revoke" {
		synopsis = "policy revoke (--data DIR | --config FILE) [--comment TEXT] [--as NAME] [--output table|json] REQUEST_ID"
	}
	fs := newFlagSet("policy "+verb, synopsis, e.stderr)
	data := fs.String("data", "", "the all-in-one's data directory (its policy.db and grants.key)")
	file := fs.String("config", "", "configuration `FILE` whose policy section names the store and the key")
	output := fs.String("output", "table", "table or json")
	var comment, as *string
	if verb == "revoke" {
		comment = fs.String("comment", "", "why (the history's comment)")
		as = fs.String("as", "admin", "the admin `NAME` the history records")
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || (*data == "") == (*file == "") || (*output != "table" && *output != "json") {
		fs.Usage()
		return errUsage
	}
	id := fs.Arg(0)
	cfg := app.DefaultConfig()
	if *file != "" {
		if err := config.Load(*file, &cfg); err != nil {
			return err
		}
	} else {
		cfg.Target, cfg.Embedded.DataDir = app.TargetAll, *data
	}
	pc := cfg.PolicyConfig()
	if err := pc.Store.Validate(); err != nil {
		return err
	}
	st, err := policy.OpenStore(ctx, pc.Store, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	catalog, err := policy.DefaultCatalog()
	if pc.CatalogFile != "" {
		catalog, err = policy.LoadCatalog(pc.CatalogFile)
	}
	if err != nil {
		return err
	}
	signer, err := policySigner(verb, pc.KeyFile)
	if err != nil {
		return err
	}
	svc, err := policy.NewService(st, catalog, signer, policy.Options{})
	if err != nil {
		return err
	}
	switch verb {
	case "history":
		h, err := svc.History(ctx, policy.ObjectAccessRequest, id)
		if err != nil {
			return err
		}
		if len(h) == 0 {
			return fmt.Errorf("access request %q not found", id)
		}
		if *output == "json" {
			return writeJSON(e, h)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tACTOR\tACTION\tFROM\tTO\tCOMMENT")
		for _, x := range h {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", x.Time.Format(time.RFC3339), x.Actor, x.Action, dash(x.From), x.To, x.Comment)
		}
		return tw.Flush()
	case "revoke":
		r, err := svc.Revoke(ctx, auth.Identity{Name: *as, Role: auth.RoleAdmin}, id, *comment, 0)
		if err != nil {
			return err
		}
		return showRequest(e, r, *output)
	default:
		r, err := svc.GetRequest(ctx, id)
		if err != nil {
			return err
		}
		return showRequest(e, r, *output)
	}
}

// policySigner loads the signing key for revoke; reading needs none (a
// throwaway key, which signs nothing).
func policySigner(verb, keyFile string) (*sign.Signer, error) {
	if verb == "revoke" {
		if keyFile == "" {
			return nil, fmt.Errorf("policy.key_file: required to revoke (the revocation of the grant is signed)")
		}
		key, err := sign.LoadPrivateKey(keyFile)
		if err != nil {
			return nil, fmt.Errorf("policy.key_file: %w", err)
		}
		return sign.NewSigner(key)
	}
	key, err := sign.GenerateKey()
	if err != nil {
		return nil, err
	}
	return sign.NewSigner(key)
}

func showRequest(e env, r policy.AccessRequest, output string) error {
	if output == "json" {
		return writeJSON(e, r)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	for _, kv := range [][2]string{
		{"id", r.ID}, {"state", string(r.LifecycleState)}, {"requester", r.RequestorID},
		{"resource", r.ResourceID + " (" + r.ResourceName + ")"}, {"actions", strings.Join(r.ActionRequests, ", ")},
		{"operator control", r.OpctlName + " (" + r.OpctlID + ")"}, {"auto-approved", fmt.Sprint(r.IsAutoApproved)},
		{"reason", r.Reason}, {"severity", r.Severity}, {"audit type", r.AuditType},
		{"login user", dash(r.UserID)}, {"created", r.TimeOfCreation.Format(time.RFC3339)},
		{"expires", r.TimeOfExpiry.Format(time.RFC3339)}, {"closure comment", dash(r.ClosureComment)},
	} {
		fmt.Fprintf(tw, "%s\t%s\n", kv[0], kv[1])
	}
	return tw.Flush()
}

func writeJSON(e env, v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
