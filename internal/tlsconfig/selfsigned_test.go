package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestEnsureSelfSigned: the first call makes a CA and a server certificate
// it signs for the hosts, every file 0600 in a 0700 directory; a second
// call keeps both; a host the certificate does not name gets a new server
// certificate from the same CA; a TLS client trusting the CA accepts the
// server.
func TestEnsureSelfSigned(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	s, created, err := EnsureSelfSigned(dir, "test broker", []string{"127.0.0.1", "localhost"})
	if err != nil || !created {
		t.Fatalf("first: %v %v", created, err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, s.CAFile: 0o600, s.CertFile: 0o600, s.KeyFile: 0o600, s.caKeyFile: 0o600} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want %v", path, fi.Mode().Perm(), err, want)
		}
	}
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	ca, cert := read(s.CAFile), read(s.CertFile)
	if _, created, err := EnsureSelfSigned(dir, "test broker", []string{"localhost", "127.0.0.1"}); err != nil || created {
		t.Fatalf("second: created %v, %v", created, err)
	}
	if read(s.CAFile) != ca || read(s.CertFile) != cert {
		t.Fatal("the second call replaced the CA or the certificate")
	}
	if _, created, err := EnsureSelfSigned(dir, "test broker", []string{"127.0.0.1", "broker.example"}); err != nil || !created {
		t.Fatalf("new host: created %v, %v", created, err)
	}
	if read(s.CAFile) != ca {
		t.Fatal("a new host replaced the CA")
	}
	if read(s.CertFile) == cert {
		t.Fatal("a new host kept the certificate that does not name it")
	}

	srv, err := Server(s.CertFile, s.KeyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	cc, err := Config{Enabled: true, CAFile: s.CAFile}.Build()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", ln.Addr().String(), cc)
	if err != nil {
		t.Fatalf("a client trusting the CA: %v", err)
	}
	leaf := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	if err := leaf.VerifyHostname("broker.example"); err != nil {
		t.Error(err)
	}
	if !leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("certificate %v %v", leaf.IPAddresses, leaf.ExtKeyUsage)
	}
}
