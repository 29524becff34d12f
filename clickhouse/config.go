package clickhouse

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/tlsconfig"
	chschema "github.com/auditpipe/auditpipe/schemas/clickhouse"
)

// StoreConfig chooses and configures a ClickHouse: a server when
// ClickHouse.Addr is set, else embedded chDB. Open opens it.
type StoreConfig struct {
	// ClickHouse is a server; used when Addr is set.
	ClickHouse ServerConfig `yaml:"server"`
	// Embedded is chDB; used when no server is configured.
	Embedded EmbeddedConfig `yaml:"embedded"`
	// RetentionDays is the TTL of audit_events, lifecycle_events,
	// pipeline_messages and event_ids; 0 keeps rows forever. Default 365.
	RetentionDays int `yaml:"retention_days"`
	// Cluster, when its name is set, lays the schema out for a replicated,
	// sharded ClickHouse cluster (the server engine only). Default none:
	// one server.
	Cluster ClusterConfig `yaml:"cluster"`
}

// ClusterConfig names the ClickHouse cluster the schema is laid out on:
// every table ON CLUSTER, Replicated engines, and the sharded tables as
// T_local on every node behind a Distributed T (see README, "Beyond one
// server"). The database is server.database on every node.
type ClusterConfig struct {
	// Name is the cluster of the servers' remote_servers configuration
	// (internal_replication must be true). Default "": one server.
	Name string `yaml:"name"`
	// ZooKeeperPrefix is the Keeper path prefix of the replicated tables.
	// Default "/clickhouse/tables".
	ZooKeeperPrefix string `yaml:"zookeeper_prefix"`
	// Replica is the replica name, usually the servers' macro. Default
	// "{replica}".
	Replica string `yaml:"replica"`
}

// Layout returns how the migrations are rendered for this store: one
// server unless a cluster is named.
func (s StoreConfig) Layout() chschema.Layout {
	if s.Cluster.Name == "" {
		return chschema.Layout{}
	}
	return chschema.Layout{Cluster: s.Cluster.Name, Database: s.ClickHouse.Database,
		ZooKeeperPrefix: s.Cluster.ZooKeeperPrefix, Replica: s.Cluster.Replica}
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
		Cluster:       ClusterConfig{ZooKeeperPrefix: "/clickhouse/tables", Replica: "{replica}"},
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
	if s.Cluster.Name != "" {
		if len(s.ClickHouse.Addr) == 0 {
			errs = append(errs, fmt.Errorf("%s.cluster.name: %q: a cluster needs server.addr (embedded chDB is one server)", prefix, s.Cluster.Name))
		}
		if !strings.HasPrefix(s.Cluster.ZooKeeperPrefix, "/") {
			errs = append(errs, fmt.Errorf("%s.cluster.zookeeper_prefix: %q: want an absolute Keeper path", prefix, s.Cluster.ZooKeeperPrefix))
		}
		if s.Cluster.Replica == "" {
			errs = append(errs, fmt.Errorf("%s.cluster.replica: must not be empty", prefix))
		}
	}
	return errors.Join(errs...)
}
