package kafka

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/connlimit"
	"github.com/auditpipe/auditpipe/internal/privfile"
	"github.com/auditpipe/auditpipe/internal/tlsconfig"
)

// Embedded is an in-process Kafka-protocol broker (franz-go's kfake), the
// default broker of the all-in-one and of unit tests. With a data directory
// it persists its log, so a restarted all-in-one finds its topics, records
// and committed offsets again. Secured (EmbeddedConfig.CredentialsDir), it
// listens with TLS only, authenticates every connection with
// SASL/SCRAM-SHA-512 and checks every request against the ACLs of the
// principal's role (RoleACLs).
type Embedded struct {
	cluster *kfake.Cluster
	cfg     EmbeddedConfig
	tls     tlsconfig.SelfSigned
	admin   config.Secret
	ln      *guardListener // the broker's listener, made by kfake's ListenFn
}

// EmbeddedConfig is how an embedded broker is started.
type EmbeddedConfig struct {
	// Listen is host:port; port 0 picks a free one. Default
	// 127.0.0.1:0.
	Listen string
	// DataDir holds the broker's log and state; empty keeps them in
	// memory.
	DataDir string
	// Partitions of a topic created without a partition count.
	Partitions int
	// CredentialsDir turns security on: it holds one password file per
	// role (<role>.password, 0600; the SASL username is the role's
	// name), made on first start and kept after (delete one and restart
	// to rotate it). Empty: no TLS, no SASL, no ACLs (tests only).
	CredentialsDir string
	// TLSDir holds the broker's CA and certificate, made on first start
	// (tlsconfig.EnsureSelfSigned), unless CertFile and KeyFile are set.
	// Required when secured.
	TLSDir string
	// CertFile and KeyFile are a certificate for the broker from
	// elsewhere, CAFile what its clients trust (the system's pool when
	// empty). Default: TLSDir's.
	CertFile, KeyFile, CAFile string
	// MaxConnections is the most connections the broker keeps open at
	// once. At the limit a new connection closes the oldest one that has
	// not authenticated yet; it is refused (closed at once) only when
	// every open one has. Default DefaultEmbeddedMaxConnections (512),
	// and never more than a quarter of the process's RLIMIT_NOFILE
	// (connlimit.Cap).
	MaxConnections int
	// AuthTimeout is the time a new connection has to get through its
	// TLS handshake and SASL authentication, up to its first request
	// past them; it is closed otherwise. Default
	// DefaultEmbeddedAuthTimeout (10s).
	AuthTimeout time.Duration
	// IdleTimeout closes an authenticated connection that sends no
	// request for that long (Kafka's connections.max.idle.ms; clients
	// reconnect). Default DefaultEmbeddedIdleTimeout (10m).
	IdleTimeout time.Duration
	// Log receives the broker's warnings; nil discards them.
	Log *slog.Logger
}

// adminUser is the embedded broker's superuser: used only by the broker's
// own setup (ACLs, topics), with a password made anew at every start and
// kept in memory only.
const adminUser = "auditpipe-broker-admin"

// PasswordFileName is the file of a role's password in a credentials
// directory.
func PasswordFileName(role Role) string { return string(role) + ".password" }

// StartEmbedded starts an unsecured broker on a loopback port (0 = any
// free port). dataDir may be empty for a memory-only broker.
func StartEmbedded(port int, dataDir string, partitions int) (*Embedded, error) {
	return NewEmbedded(EmbeddedConfig{Listen: HostPort("127.0.0.1", port), DataDir: dataDir, Partitions: partitions})
}

// NewEmbedded starts a broker as cfg says. Secured, it makes the data,
// TLS and credentials directories private (0700) and its files 0600, and
// gives every role its ACLs before it returns.
func NewEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	cfg = cfg.withDefaults()
	e := &Embedded{cfg: cfg}
	secure := cfg.CredentialsDir != ""
	var tc *tls.Config // set below when secured, before the listener is made
	listen := cfg.Listen
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		// TLS is terminated by the guard, not by kfake, so that the guard
		// sees when a connection is past SASL.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			ln, err := net.Listen(network, listen)
			if err != nil {
				return nil, err
			}
			e.ln = &guardListener{Listener: connlimit.New(ln, cfg.MaxConnections), tc: tc,
				authTimeout: cfg.AuthTimeout, idleTimeout: cfg.IdleTimeout, log: cfg.Log}
			return e.ln, nil
		}),
		kfake.DefaultNumPartitions(cfg.Partitions),
	}
	if !secure {
		// A secured broker creates topics only when asked to by its
		// setup: a client cannot bring a topic into being with a
		// metadata request.
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}
	if cfg.DataDir != "" {
		if secure {
			if err := privfile.Dir(cfg.DataDir); err != nil {
				return nil, fmt.Errorf("kafka: embedded broker: %w", err)
			}
		}
		opts = append(opts, kfake.DataDir(cfg.DataDir), kfake.SyncWrites())
	}
	if secure {
		var err error
		if tc, err = e.serverTLS(); err != nil {
			return nil, fmt.Errorf("kafka: embedded broker: %w", err)
		}
		sec, err := e.security()
		if err != nil {
			return nil, fmt.Errorf("kafka: embedded broker: %w", err)
		}
		opts = append(opts, sec...)
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: start embedded broker: %w", err)
	}
	e.cluster = c
	if secure {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.Admin().EnsureACLs(ctx, e.users()); err != nil {
			c.Close()
			return nil, fmt.Errorf("kafka: embedded broker: %w", err)
		}
	}
	return e, nil
}

// withDefaults fills in the listen address and the connection bounds,
// the limit lowered to connlimit.Cap of the file limit.
func (cfg EmbeddedConfig) withDefaults() EmbeddedConfig {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = DefaultEmbeddedMaxConnections
	}
	if cfg.AuthTimeout <= 0 {
		cfg.AuthTimeout = DefaultEmbeddedAuthTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultEmbeddedIdleTimeout
	}
	if nofile, err := connlimit.FileLimit(); err != nil {
		cfg.Log.Warn("kafka: embedded broker: cannot read the file limit; the connection limit is not checked against it", "err", err)
	} else if c := connlimit.Cap(nofile); cfg.MaxConnections > c {
		cfg.Log.Warn("kafka: embedded broker: connection limit lowered to a quarter of RLIMIT_NOFILE",
			"configured", cfg.MaxConnections, "limit", c, "rlimit_nofile", nofile)
		cfg.MaxConnections = c
	}
	return cfg
}

// serverTLS returns the TLS configuration of a secured broker, making
// its CA and certificate on first start unless they are given.
func (e *Embedded) serverTLS() (*tls.Config, error) {
	cfg := e.cfg
	if cfg.CertFile == "" {
		if cfg.TLSDir == "" {
			return nil, errors.New("a TLS directory or a certificate is required")
		}
		host, _, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("listen address %q: %w", cfg.Listen, err)
		}
		hosts := []string{"127.0.0.1", "::1", "localhost"}
		if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
			hosts = append(hosts, host)
		}
		ss, _, err := tlsconfig.EnsureSelfSigned(cfg.TLSDir, "auditpipe embedded Kafka", hosts)
		if err != nil {
			return nil, err
		}
		e.tls = ss
	} else {
		e.tls = tlsconfig.SelfSigned{CAFile: cfg.CAFile, CertFile: cfg.CertFile, KeyFile: cfg.KeyFile}
	}
	cert, err := tls.LoadX509KeyPair(e.tls.CertFile, e.tls.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("broker certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// security returns the options of a secured broker: SASL with the
// superuser and one SCRAM-SHA-512 user per role, ACLs on (TLS is the
// listener's, serverTLS).
func (e *Embedded) security() ([]kfake.Opt, error) {
	cfg := e.cfg
	if err := privfile.Dir(cfg.CredentialsDir); err != nil {
		return nil, err
	}
	pw, err := newPassword()
	if err != nil {
		return nil, err
	}
	e.admin = config.Secret(pw)
	opts := []kfake.Opt{
		kfake.EnableSASL(),
		kfake.EnableACLs(),
		kfake.Superuser(MechanismSCRAMSHA512, adminUser, pw),
	}
	for _, role := range Roles() {
		pw, err := ensurePassword(filepath.Join(cfg.CredentialsDir, PasswordFileName(role)))
		if err != nil {
			return nil, fmt.Errorf("the %s's Kafka credentials: %w", role, err)
		}
		opts = append(opts, kfake.User(MechanismSCRAMSHA512, string(role), pw))
	}
	if cfg.DataDir != "" {
		// kfake keeps the SCRAM credentials in its state too, and
		// prefers them to the ones it is started with: the password
		// files (and the superuser's password of this start) are the
		// only truth, so its copy goes before each start.
		if err := os.Remove(filepath.Join(cfg.DataDir, "sasl.json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return opts, nil
}

func (e *Embedded) users() map[Role]string {
	users := map[Role]string{}
	for _, r := range Roles() {
		users[r] = string(r)
	}
	return users
}

// ConnectionCollectors returns the metrics of the broker's listener:
// auditpipe_kafka_embedded_connections_{open,max,evicted_total,refused_total}.
func (e *Embedded) ConnectionCollectors() []prometheus.Collector {
	return e.ln.Collectors("auditpipe_kafka_embedded")
}

// Secured reports whether the broker authenticates and authorizes.
func (e *Embedded) Secured() bool { return e.cfg.CredentialsDir != "" }

// Client returns the configuration of a client of role: TLS trusting the
// broker's CA and SASL/SCRAM-SHA-512 with the role's password file. On an
// unsecured broker, only the brokers' address.
func (e *Embedded) Client(role Role) Config {
	c := Config{Brokers: e.Brokers()}
	if e.Secured() {
		c.TLS = tlsconfig.Config{Enabled: true, CAFile: e.tls.CAFile}
		c.SASL = SASLConfig{Mechanism: MechanismSCRAMSHA512, Username: string(role), PasswordFile: e.PasswordFile(role)}
	}
	return c.WithDefaults()
}

// Admin returns the configuration of the broker's superuser, for its
// setup (topics, ACLs); its password lasts as long as the broker.
func (e *Embedded) Admin() Config {
	c := Config{Brokers: e.Brokers()}
	if e.Secured() {
		c.TLS = tlsconfig.Config{Enabled: true, CAFile: e.tls.CAFile}
		c.SASL = SASLConfig{Mechanism: MechanismSCRAMSHA512, Username: adminUser, Password: e.admin}
	}
	return c.WithDefaults()
}

// PasswordFile is the file holding role's password.
func (e *Embedded) PasswordFile(role Role) string {
	return filepath.Join(e.cfg.CredentialsDir, PasswordFileName(role))
}

// CAFile is the file of the CA the broker's certificate is signed by
// ("" when unsecured).
func (e *Embedded) CAFile() string { return e.tls.CAFile }

// Brokers returns the broker's listen addresses.
func (e *Embedded) Brokers() []string { return e.cluster.ListenAddrs() }

// Compact compacts the compacted topics now, as Kafka's log cleaner
// does in its time: each key keeps its latest record, at its offset (the
// last batch of a partition is kept whole, as an active segment is). For
// tests: a replay written after its key's current record is then the
// key's only record.
func (e *Embedded) Compact() { e.cluster.Compact() }

// Close stops the broker.
func (e *Embedded) Close() { e.cluster.Close() }

// Port returns the broker's listen port: the one it chose when started on
// port 0, to start it again on after Close.
func (e *Embedded) Port() int {
	_, p, err := net.SplitHostPort(e.cluster.ListenAddrs()[0])
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// newPassword returns 32 random bytes, base64url.
func newPassword() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// ensurePassword returns the password in path, creating the file (0600)
// with a new one when it does not exist.
func ensurePassword(path string) (string, error) {
	pw, err := readPassword(path)
	if err == nil {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(path, 0o600); err != nil {
				return "", err
			}
		}
		return pw, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if pw, err = newPassword(); err != nil {
		return "", err
	}
	if err := privfile.Write(path, []byte(pw+"\n")); err != nil {
		return "", err
	}
	return pw, nil
}
