package forwarder

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// Explain returns a one-line explanation of a connection error for an
// operator: what failed and what to check, followed by the error itself.
func Explain(err error) string {
	if err == nil {
		return ""
	}
	var (
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invalid   x509.CertificateInvalidError
		verifyErr *tls.CertificateVerificationError
		dnsErr    *net.DNSError
		recErr    tls.RecordHeaderError
		alert     tls.AlertError
	)
	var hint string
	switch {
	case errors.As(err, &unknownCA):
		hint = "the SIEM's certificate is not signed by a CA in the configured CA file (check ca_file / --ca)"
	case errors.As(err, &hostErr):
		hint = fmt.Sprintf("the SIEM's certificate is not valid for the name %q (set server_name / --server-name, or reissue the certificate)", hostErr.Host)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		hint = "the SIEM's certificate has expired or is not valid yet (check its validity dates and this machine's clock)"
		if invalid.Cert != nil {
			hint = fmt.Sprintf("the SIEM's certificate is valid from %s to %s, not now (%s): renew it or check this machine's clock",
				invalid.Cert.NotBefore.UTC().Format(time.RFC3339), invalid.Cert.NotAfter.UTC().Format(time.RFC3339), time.Now().UTC().Format(time.RFC3339))
		}
	case errors.As(err, &invalid):
		hint = "the SIEM's certificate was rejected: " + invalid.Error()
	case errors.As(err, &verifyErr):
		hint = "the SIEM's certificate could not be verified"
	case errors.As(err, &recErr):
		hint = "the peer did not answer with TLS: it is probably a plain TCP or UDP syslog port (use the TLS port, usually 6514)"
	case errors.Is(err, ErrRejected):
		hint = "the SIEM closed the connection right after the TLS handshake: it probably requires a client certificate (cert_file and key_file, --cert and --key) or does not trust the one given"
	case errors.As(err, &alert) || strings.Contains(err.Error(), "remote error: tls:"):
		hint = "the SIEM refused the TLS handshake: if it requires a client certificate, give cert_file and key_file (--cert, --key) signed by a CA it trusts"
	case errors.As(err, &dnsErr):
		hint = "the SIEM's host name does not resolve (check the address and DNS)"
	case errors.Is(err, syscall.ECONNREFUSED):
		hint = "nothing listens on that address and port (is the syslog server running, is the port right?)"
	case errors.Is(err, os.ErrDeadlineExceeded) || isTimeout(err):
		hint = "no answer in time: a firewall may drop the traffic (check the egress rule for the syslog port), or the SIEM is overloaded"
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, ErrPeerClosed):
		hint = "the SIEM closed the connection (restart, overload, or it rejected the client)"
	case errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH):
		hint = "no network route to the SIEM"
	default:
		return err.Error()
	}
	return hint + ": " + err.Error()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
