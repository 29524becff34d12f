package tlsconfig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/auditpipe/auditpipe/internal/privfile"
)

// SelfSigned names the files of a private CA and of a server certificate
// it signed, as EnsureSelfSigned keeps them.
type SelfSigned struct {
	// CAFile is the CA's certificate (PEM): what clients trust.
	CAFile string
	// CertFile and KeyFile are the server's certificate and its private
	// key (PEM; the key in PKCS #8, as Java's PEM key stores read it).
	CertFile, KeyFile string
	caKeyFile         string
}

// The files EnsureSelfSigned keeps in its directory.
const (
	caCertName     = "ca.crt"
	caKeyName      = "ca.key"
	serverCertName = "server.crt"
	serverKeyName  = "server.key"
)

// Validity of what EnsureSelfSigned makes, and how long before its end a
// server certificate is issued anew.
const (
	caValidity     = 10 * 365 * 24 * time.Hour
	serverValidity = 2 * 365 * 24 * time.Hour
	renewBefore    = 30 * 24 * time.Hour
)

// EnsureSelfSigned makes dir private (0700) and, on first use, a CA and a
// server certificate it signs for hosts (IP addresses or DNS names), every
// file 0600. Later calls keep them, and issue a new server certificate from
// the same CA when the one there does not name every host or ends within
// 30 days: clients that trust the CA go on trusting the server. It
// reports whether anything was created.
func EnsureSelfSigned(dir, name string, hosts []string) (SelfSigned, bool, error) {
	s := SelfSigned{
		CAFile: filepath.Join(dir, caCertName), caKeyFile: filepath.Join(dir, caKeyName),
		CertFile: filepath.Join(dir, serverCertName), KeyFile: filepath.Join(dir, serverKeyName),
	}
	if err := privfile.Dir(dir); err != nil {
		return s, false, fmt.Errorf("tls: %w", err)
	}
	created := false
	ca, caKey, err := loadPair(s.CAFile, s.caKeyFile)
	if errors.Is(err, fs.ErrNotExist) {
		ca, caKey, err = newCA(s, name)
		created = true
	}
	if err != nil {
		return s, false, fmt.Errorf("tls: CA in %s: %w", dir, err)
	}
	cert, _, err := loadPair(s.CertFile, s.KeyFile)
	switch {
	case errors.Is(err, fs.ErrNotExist) || err == nil && !fits(cert, ca, hosts):
		if err := issue(s, name, ca, caKey, hosts); err != nil {
			return s, false, fmt.Errorf("tls: server certificate in %s: %w", dir, err)
		}
		created = true
	case err != nil:
		return s, false, fmt.Errorf("tls: server certificate in %s: %w", dir, err)
	}
	return s, created, nil
}

// fits reports whether cert was signed by ca, names every host and has
// more than renewBefore to go.
func fits(cert, ca *x509.Certificate, hosts []string) bool {
	if cert.CheckSignatureFrom(ca) != nil || time.Until(cert.NotAfter) < renewBefore {
		return false
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
				return false
			}
		} else if !slices.Contains(cert.DNSNames, h) {
			return false
		}
	}
	return true
}

func newCA(s SelfSigned, name string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	sn, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: name + " CA", Organization: []string{"auditpipe"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(caValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	if err := writePair(s.CAFile, s.caKeyFile, der, key); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func issue(s SelfSigned, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, hosts []string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	sn, err := serialNumber()
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"auditpipe"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(serverValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		// A server, and a client of another server of the same CA (a
		// broker's connections to its controller).
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	return writePair(s.CertFile, s.KeyFile, der, key)
}

func serialNumber() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// loadPair reads a certificate and its ECDSA key (either missing:
// fs.ErrNotExist).
func loadPair(certFile, keyFile string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		if _, serr := os.Stat(certFile); errors.Is(serr, fs.ErrNotExist) {
			return nil, nil, serr
		}
		if _, serr := os.Stat(keyFile); errors.Is(serr, fs.ErrNotExist) {
			return nil, nil, serr
		}
		return nil, nil, err
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("%s: not an ECDSA key", keyFile)
	}
	return pair.Leaf, key, nil
}

// writePair writes a certificate and its key, each 0600, atomically.
func writePair(certFile, keyFile string, der []byte, key *ecdsa.PrivateKey) error {
	k, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := privfile.Write(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k})); err != nil {
		return err
	}
	return privfile.Write(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
