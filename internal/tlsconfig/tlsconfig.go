// Package tlsconfig turns file paths from configuration into a *tls.Config:
// a PEM CA bundle (.pem, .cer or .crt), an optional client certificate, and
// server name verification, which is on unless explicitly turned off.
package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Config is the TLS part of a component's configuration.
type Config struct {
	// Enabled turns TLS on. Default false for Kafka, true for the SIEM.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of trusted CAs (.pem, .cer or .crt). Default:
	// the system pool.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the client certificate for mutual TLS. Default: none.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name verified in the server certificate.
	// Default: the host part of the address dialled.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify turns off certificate verification. Default false;
	// meant for tests only, and logged loudly by the components that use it.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Validate checks that the files named exist and fit together; prefix names
// the enclosing field, e.g. "forwarder.tls".
func (c Config) Validate(prefix string) error {
	if !c.Enabled {
		return nil
	}
	var errs []error
	if c.CAFile != "" {
		switch strings.ToLower(filepath.Ext(c.CAFile)) {
		case ".pem", ".cer", ".crt":
		default:
			errs = append(errs, fmt.Errorf("%s.ca_file %q: want a PEM file ending in .pem, .cer or .crt", prefix, c.CAFile))
		}
		if _, err := os.Stat(c.CAFile); err != nil {
			errs = append(errs, fmt.Errorf("%s.ca_file: %w", prefix, err))
		}
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, fmt.Errorf("%s: cert_file and key_file go together", prefix))
	}
	return errors.Join(errs...)
}

// Build returns the *tls.Config, or nil when TLS is not enabled.
func (c Config) Build() (*tls.Config, error) {
	if !c.Enabled {
		return nil, nil
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // explicit opt-in, tests only
	}
	if c.CAFile != "" {
		pool, err := loadPool(c.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Server returns the TLS configuration of a listener: its certificate
// and, when clientCAFile is set, client certificates verified against it
// when a client offers one (tls.VerifyClientCertIfGiven: a client may
// authenticate otherwise, with a token).
func Server(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: load server certificate: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCAFile != "" {
		pool, err := loadPool(clientCAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// loadPool reads a PEM bundle of CA certificates.
func loadPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tls: read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls: CA file %s: no PEM certificate found", path)
	}
	return pool, nil
}
