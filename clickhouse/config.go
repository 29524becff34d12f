package clickhouse

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/tlsconfig"
)

// StoreConfig chooses and configures a ClickHouse: a server when
// ClickHouse.Addr is set, else embedded chDB. Open opens it.
type StoreConfig struct {
	// ClickHouse is a server; used when Addr is set.
	ClickHouse ServerConfig `yaml:"server"`
	// Embedded is chDB; used when no server is configured.
	Embedded EmbeddedConfig `yaml:"embedded"`
	// RetentionDays is the TTL of audit_events, lifecycle_events and
	// pipeline_messages; 0 keeps rows forever. Default 365.
	RetentionDays int `yaml:"retention_days"`
}

// EmbeddedConfig configures chDB.
type EmbeddedConfig struct {
	// Dir is the data directory. Default "data/chdb".
	Dir string `yaml:"dir"`
	// Lib is the path of libchdb.so. Default: $AUDITPIPE_CHDB_LIB, else
	// $AUDITPIPE_CACHE/chdb/libchdb.so, else ~/.cache/auditpipe/chdb/libchdb.so.
	Lib string `yaml:"lib"`
}

// ServerConfig configures a ClickHouse server connection (clickhouse-go/v2,
// servers 25.8 and later).
type ServerConfig struct {
	// Addr lists host:port of the servers. Default none (embedded).
	Addr []string `yaml:"addr"`
	// Protocol is "native" (port 9000/9440) or "http" (8123/8443). Default "native".
	Protocol string `yaml:"protocol"`
	// Database holds the tables; it must exist unless it is "default".
	// Default "default".
	Database string `yaml:"database"`
	// Username and Password authenticate. Default "default" and empty.
	Username string        `yaml:"username"`
	Password config.Secret `yaml:"password"`
	// TLS for the connection. Default off.
	TLS tlsconfig.Config `yaml:"tls"`
	// DialTimeout bounds a connection attempt. Default 10s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
}

// DefaultStoreConfig returns the store configuration with every default
// set: embedded chDB in data/chdb, 365 days of retention, and the server
// defaults (native protocol, database and user "default", 10s dial
// timeout) for when an address is set.
func DefaultStoreConfig() StoreConfig {
	return StoreConfig{
		ClickHouse:    ServerConfig{Protocol: "native", Database: "default", Username: "default", DialTimeout: 10 * time.Second},
		Embedded:      EmbeddedConfig{Dir: "data/chdb"},
		RetentionDays: 365,
	}
}

// Validate checks the store configuration; prefix names the enclosing field.
func (s StoreConfig) Validate(prefix string) error {
	var errs []error
	if s.RetentionDays < 0 {
		errs = append(errs, fmt.Errorf("%s.retention_days: %d: must be 0 (forever) or positive", prefix, s.RetentionDays))
	}
	if len(s.ClickHouse.Addr) > 0 {
		for _, a := range s.ClickHouse.Addr {
			if _, _, err := net.SplitHostPort(a); err != nil {
				errs = append(errs, fmt.Errorf("%s.server.addr: %q: %w", prefix, a, err))
			}
		}
		switch s.ClickHouse.Protocol {
		case "native", "http":
		default:
			errs = append(errs, fmt.Errorf("%s.server.protocol: %q: want native or http", prefix, s.ClickHouse.Protocol))
		}
		if s.ClickHouse.Database == "" {
			errs = append(errs, fmt.Errorf("%s.server.database: must not be empty", prefix))
		}
		if err := s.ClickHouse.TLS.Validate(prefix + ".server.tls"); err != nil {
			errs = append(errs, err)
		}
	} else if s.Embedded.Dir == "" {
		errs = append(errs, fmt.Errorf("%s.embedded.dir: must not be empty when no server.addr is set", prefix))
	}
	return errors.Join(errs...)
}
