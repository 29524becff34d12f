package forwarder

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe/schemas"
)

// Check tests the way to a SIEM step by step, as the seed's nc and ping
// advice meant to: resolve the name, connect, complete the TLS handshake
// (printing the certificate chain), send one test message, and close
// waiting for the SIEM to confirm it read it. It prints each step to w and
// returns an error whose text explains the first failure in one line.
func Check(ctx context.Context, d Destination, w io.Writer) error {
	if d.Name == "" {
		d.Name = "siem"
	}
	d = d.WithDefaults()
	if err := d.Validate("siem"); err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(d.Address)

	start := time.Now()
	addrs, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil {
		return fmt.Errorf("resolve %s: %s", host, Explain(err))
	}
	fmt.Fprintf(w, "resolve   %s -> %s (%s)\n", host, strings.Join(addrs, ", "), time.Since(start).Round(time.Microsecond))

	tc, err := d.tlsConfig().Build()
	if err != nil {
		return fmt.Errorf("TLS settings: %w", err)
	}
	tc = tlsFor(tc, d.Address)
	start = time.Now()
	dctx, cancel := context.WithTimeout(ctx, d.DialTimeout)
	defer cancel()
	var nd net.Dialer
	raw, err := nd.DialContext(dctx, "tcp", d.Address)
	if err != nil {
		return fmt.Errorf("connect %s: %s", d.Address, Explain(err))
	}
	defer raw.Close()
	fmt.Fprintf(w, "connect   %s -> %s (%s)\n", raw.LocalAddr(), raw.RemoteAddr(), time.Since(start).Round(time.Microsecond))

	counted := &countingConn{Conn: raw}
	var nc net.Conn = counted
	if d.PlainTCP {
		fmt.Fprintln(w, "tls       off: plain_tcp is set, messages travel in clear")
	} else {
		if tc.InsecureSkipVerify {
			fmt.Fprintln(w, "tls       WARNING: certificate verification is off (insecure_skip_verify)")
		}
		start = time.Now()
		tlsConn := tls.Client(counted, tc)
		herr := tlsConn.HandshakeContext(dctx)
		// Show the chain the SIEM presented even when verification failed.
		chain := tlsConn.ConnectionState().PeerCertificates
		if ve := (*tls.CertificateVerificationError)(nil); errors.As(herr, &ve) {
			chain = ve.UnverifiedCertificates
		}
		printChain(w, chain, herr)
		if herr != nil {
			return fmt.Errorf("TLS handshake with %s (server name %q): %s", d.Address, tc.ServerName, Explain(herr))
		}
		cs := tlsConn.ConnectionState()
		fmt.Fprintf(w, "tls       %s %s, server name %q verified, client certificate %s (%s)\n",
			tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite), tc.ServerName,
			yesNo(len(tc.Certificates) > 0, "sent", "none"), time.Since(start).Round(time.Microsecond))
		nc = tlsConn
	}
	c := newConn(nc, raw, counted)
	defer c.close()
	if err := c.probe(ctx); err != nil {
		return fmt.Errorf("after the TLS handshake with %s: %s", d.Address, Explain(err))
	}

	fm, err := newFormatter(d.format())
	if err != nil {
		return err
	}
	hostname, _ := os.Hostname()
	now := time.Now().UTC()
	ev := &schemas.Event{
		Event: "check", Host: hostname, TS: now.Format(schemas.TSLayout), EventID: "00000000000000000000000000000000",
		RawData: fmt.Sprintf("auditpipe forwarder check: connection test from %s to %s at %s", hostname, d.Address, now.Format(time.RFC3339)),
	}
	frames, err := fm.frames(ev)
	if err != nil {
		return fmt.Errorf("build test message: %w", err)
	}
	if err := c.write(frames, d.WriteTimeout); err != nil {
		return fmt.Errorf("send test message: %s", Explain(err))
	}
	if _, err := c.flush(d.WriteTimeout); err != nil {
		return fmt.Errorf("send test message: %s", Explain(err))
	}
	fmt.Fprintf(w, "send      %s", frames[0])
	if !strings.HasSuffix(string(frames[0]), "\n") {
		fmt.Fprintln(w)
	}
	if !c.closeGracefully(d.CloseTimeout) {
		return fmt.Errorf("the SIEM did not confirm reading the test message within %s (port %s): is it a syslog TLS listener?", d.CloseTimeout, port)
	}
	fmt.Fprintln(w, "ok        the SIEM read the test message and closed the connection cleanly")
	return nil
}

func printChain(w io.Writer, certs []*x509.Certificate, herr error) {
	for i, c := range certs {
		names := append([]string{}, c.DNSNames...)
		for _, ip := range c.IPAddresses {
			names = append(names, ip.String())
		}
		fmt.Fprintf(w, "cert[%d]   subject %q issuer %q valid %s..%s names [%s]\n", i,
			c.Subject.String(), c.Issuer.String(), c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339),
			strings.Join(names, " "))
	}
	if len(certs) == 0 && herr != nil {
		fmt.Fprintln(w, "cert      (the SIEM presented no certificate before the handshake failed)")
	}
}

func yesNo(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}
