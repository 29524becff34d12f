package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/app"
	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

const grantUsage = "usage: auditpipe grant publish|revoke|keygen [flags] (-h for each)"

// cmdGrant is `auditpipe grant publish|revoke|keygen`: besides the policy
// service, it signs grants and their revocations (package grants) by hand
// and publishes them on opctl.grants.v1, and makes signing keys (the
// policy service's policy.key_file too).
func cmdGrant(ctx context.Context, e env) error {
	if len(e.args) == 0 {
		fmt.Fprintln(e.stderr, grantUsage)
		return errUsage
	}
	switch e.args[0] {
	case "publish", "revoke":
		return grantPublish(ctx, e, e.args[0] == "revoke")
	case "keygen":
		return grantKeygen(e)
	case "-h", "--help", "help":
		fmt.Fprintln(e.stderr, grantUsage)
		return errHelp
	default:
		fmt.Fprintln(e.stderr, grantUsage)
		return errUsage
	}
}

// grantPublish signs one grant (or, with revoke, its revocation) with the
// key file and publishes it to the brokers of the configuration file.
func grantPublish(ctx context.Context, e env, revoke bool) error {
	name, synopsis := "grant publish", "grant publish --config FILE --key FILE --login L --req-auth-id R [--audit-type T] [--resource R] [--action A]... [--expires TIME|DURATION] [--timeout D]"
	if revoke {
		name, synopsis = "grant revoke", "grant revoke --config FILE --key FILE --login L [--timeout D]"
	}
	fs := newFlagSet(name, synopsis, e.stderr)
	file := fs.String("config", "", "YAML configuration `FILE` whose kafka section names the brokers")
	keyFile := fs.String("key", "", "private signing key `FILE` (PEM or base64, mode 0600; the all-in-one's is DATA/"+app.GrantsKeyName+")")
	login := fs.String("login", "", "the login user the grant is for")
	timeout := fs.Duration("timeout", time.Minute, "give up after `D` while the brokers are away")
	seq := fs.Int64("seq", 0, "the record's publish_seq, above every earlier record of the login (default: the time in microseconds since 1970, so that a later publish of the login outnumbers an earlier one)")
	var reqAuthID, auditType, resource, expires *string
	var actions listFlag
	if !revoke {
		reqAuthID = fs.String("req-auth-id", "", "the access request the login user works for")
		auditType = fs.String("audit-type", schemas.AuditCommandKeystroke, "COMMAND_AUDIT or COMMAND_KEYSTROKE_AUDIT")
		resource = fs.String("resource", "", "the resource the grant is for")
		fs.Var(&actions, "action", "an action granted (repeatable)")
		expires = fs.String("expires", "", "when the grant ends: RFC 3339 time, or a duration from now (8h, 2d)")
	}
	if err := parseFlags(fs, e.args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 || *file == "" || *keyFile == "" || *login == "" || (!revoke && *reqAuthID == "") {
		fs.Usage()
		return errUsage
	}
	key, err := sign.LoadPrivateKey(*keyFile)
	if err != nil {
		return err
	}
	signer, err := sign.NewSigner(key)
	if err != nil {
		return err
	}
	now := time.Now().UnixMicro()
	if *seq == 0 {
		*seq = now
	}
	// A number above the clock's freezes the login: every later publish,
	// numbered by the clock, is refused as replayed by every consumer
	// (policy's applied_seqs keeps it for good), the revocation included.
	if maxSeq := now + grants.MaxSeqAhead.Microseconds(); *seq < 0 || *seq > maxSeq {
		return fmt.Errorf("--seq %d: want from 1 to %d (the clock in microseconds, plus %s): a larger number would refuse every later publish of %s", *seq, maxSeq, grants.MaxSeqAhead, *login)
	}
	var rec kafka.Record
	if revoke {
		rec, err = grants.Revocation(signer, *login, *seq)
	} else {
		g := schemas.Grant{LoginID: *login, ReqAuthID: *reqAuthID, AuditType: *auditType, Resource: *resource, Actions: actions, PublishSeq: *seq}
		if g.Expires, err = parseExpires(*expires, time.Now()); err != nil {
			return fmt.Errorf("--expires: %w", err)
		}
		rec, err = grants.Record(signer, g)
	}
	if err != nil {
		return err
	}
	kc, err := loadKafka(*file)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if kc.Topics.Creates() {
		if err := kc.EnsureTopicsRetry(ctx, e.log, kc.Topics.TopicsNamed(schemas.TopicGrants)...); err != nil {
			return err
		}
	}
	if err := grants.Publish(ctx, kc, rec); err != nil {
		return err
	}
	what := "grant"
	if revoke {
		what = "revocation"
	}
	fmt.Fprintf(e.stdout, "published the %s of %s on %s (publish_seq %d), signed by key %s\n", what, *login, schemas.TopicGrants, *seq, signer.KeyID())
	return nil
}

// parseExpires reads an RFC 3339 time or a duration after now; "" is no
// expiry.
func parseExpires(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	d, err := config.ParseDuration(s)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a positive duration", s)
	}
	return now.Add(d).UTC().Truncate(time.Second), nil
}

// grantKeygen writes a new signing key (0600) and its public key, whose
// file collectors name in collector.grant_keys.
func grantKeygen(e env) error {
	fs := newFlagSet("grant keygen", "grant keygen --key FILE --pub FILE", e.stderr)
	keyFile := fs.String("key", "", "private key `FILE` to create (PEM, mode 0600; never replaced)")
	pubFile := fs.String("pub", "", "public key `FILE` to create, for collector.grant_keys")
	if err := parseFlags(fs, e.args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 || *keyFile == "" || *pubFile == "" {
		fs.Usage()
		return errUsage
	}
	key, err := sign.GenerateKey()
	if err != nil {
		return err
	}
	if err := sign.SavePrivateKey(*keyFile, key); err != nil {
		return err
	}
	pub := key.Public().(ed25519.PublicKey)
	if err := sign.SavePublicKey(*pubFile, pub); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "key %s: private %s, public %s\n", sign.KeyID(pub), *keyFile, *pubFile)
	return nil
}

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	*l = append(*l, s)
	return nil
}
