package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/auditpipe/auditpipe/forwarder"
	"github.com/auditpipe/auditpipe/internal/app"
	"github.com/auditpipe/auditpipe/internal/config"
)

// siemFlags are the flags that name a SIEM destination. The all-in-one
// registers them with prefix "siem-" (--siem-ca, --siem-cert, --siem-key);
// forward and forwarder check with no prefix (--ca, --cert, --key).
type siemFlags struct {
	addr, ca, cert, key, serverName string
	plainTCP                        bool
	appName                         string
	maxSize                         int
	sdName                          string
	enterpriseID                    int
	facility                        int
	severity                        int // -1: by event class
}

func (s *siemFlags) register(fs *flag.FlagSet, prefix string) {
	fs.StringVar(&s.addr, "siem", "", "SIEM syslog TLS listener, `HOST:PORT` (6514 is the registered port)")
	fs.StringVar(&s.ca, prefix+"ca", "", "SIEM's CA certificate `FILE`, PEM (.pem, .cer, .crt); default: the system's CAs")
	fs.StringVar(&s.cert, prefix+"cert", "", "client certificate `FILE` for mutual TLS (PEM)")
	fs.StringVar(&s.key, prefix+"key", "", "client key `FILE` for mutual TLS (PEM)")
	fs.StringVar(&s.serverName, prefix+"server-name", "", "name to verify in the SIEM's certificate (default: the host of --siem)")
	fs.BoolVar(&s.plainTCP, prefix+"plain-tcp", false, "send in clear over TCP, without TLS (never the default)")
	fs.StringVar(&s.appName, prefix+"app-name", forwarder.DefaultAppName, "RFC 5424 APP-NAME")
	fs.IntVar(&s.maxSize, prefix+"max-message-size", forwarder.DefaultMaxMessageSize, "largest message in bytes; longer events are split into parts")
	fs.StringVar(&s.sdName, prefix+"sd-name", forwarder.DefaultSDName, "SD-NAME of the structured data: SD-ID is NAME@ENTERPRISE-ID")
	fs.IntVar(&s.enterpriseID, prefix+"enterprise-id", forwarder.DefaultEnterpriseID,
		"your organisation's IANA private enterprise `NUMBER` in the SD-ID (the default, 32473, is reserved for documentation)")
	fs.IntVar(&s.facility, prefix+"facility", forwarder.DefaultFacility, "syslog facility `0..23` (default 10, authpriv)")
	fs.IntVar(&s.severity, prefix+"severity", -1, "syslog severity `0..7` of every event (default: by event class, see forwarder/README.md)")
}

// set reports whether --siem was given.
func (s *siemFlags) set() bool { return s.addr != "" }

func (s *siemFlags) destination() forwarder.Destination {
	var severity *int
	if s.severity != -1 { // out of range values are refused by validation
		severity = &s.severity
	}
	return forwarder.Destination{
		Name:           "siem",
		Address:        s.addr,
		PlainTCP:       s.plainTCP,
		TLS:            forwarder.TLS{CAFile: s.ca, CertFile: s.cert, KeyFile: s.key, ServerName: s.serverName},
		AppName:        s.appName,
		MaxMessageSize: config.Size(s.maxSize),
		SDName:         s.sdName,
		EnterpriseID:   s.enterpriseID,
		Facility:       &s.facility,
		Severity:       severity,
	}
}

// runForward sends contract events (JSON lines) from a file or stdin to a
// SIEM and exits once the SIEM confirmed it read them all.
func runForward(ctx context.Context, e env) error {
	var s siemFlags
	fs := newFlagSet("forward", "forward --siem HOST:PORT --ca FILE [--cert FILE --key FILE] [FILE|-]", e.stderr)
	s.register(fs, "")
	if err := parseFlags(fs, e.args); err != nil {
		return err
	}
	if !s.set() || fs.NArg() > 1 {
		fs.Usage()
		return errUsage
	}
	in := e.stdin
	if name := fs.Arg(0); name != "" && name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("input: %w", err)
		}
		defer f.Close()
		in = f
	}
	st, err := forwarder.Send(ctx, s.destination(), in, forwarder.SendOptions{Log: e.log})
	fmt.Fprintf(e.stderr, "forward: %d events sent as %d messages, %d lines rejected\n", st.Events, st.Messages, st.Rejected)
	return err
}

// runForwarder is the long-running forwarder (run --target forwarder) or,
// with "check", a step-by-step connection test.
func runForwarder(ctx context.Context, e env) error {
	if len(e.args) > 0 && e.args[0] == "check" {
		return runForwarderCheck(ctx, e, e.args[1:])
	}
	return targetCommand(app.TargetForwarder)(ctx, e)
}

func runForwarderCheck(ctx context.Context, e env, args []string) error {
	var s siemFlags
	fs := newFlagSet("forwarder check", "forwarder check --siem HOST:PORT --ca FILE [--cert FILE --key FILE]", e.stderr)
	s.register(fs, "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if !s.set() || fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	return forwarder.Check(ctx, s.destination(), e.stdout)
}
