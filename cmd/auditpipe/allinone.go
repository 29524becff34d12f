package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/auditpipe/auditpipe/internal/allinone"
)

// cmdAllInOne runs the embedded pipeline in one process.
func cmdAllInOne(ctx context.Context, e env) error {
	fs := newFlagSet("all-in-one", "all-in-one --data DIR [--audit-log FILE] [--flush-interval D] [--grant LOGIN=REQ_AUTH_ID]... [--siem HOST:PORT --siem-ca FILE [--siem-cert FILE --siem-key FILE]]", e.stderr)
	hostname, _ := os.Hostname()
	var cfg allinone.Config
	fs.StringVar(&cfg.DataDir, "data", "", "data directory: broker log, chDB store, collector state (required)")
	fs.StringVar(&cfg.AuditLog, "audit-log", "/var/log/audit/audit.log", "audit log to follow")
	fs.DurationVar(&cfg.FlushInterval, "flush-interval", 30*time.Second, "collector push cadence")
	fs.StringVar(&cfg.Layer, "layer", "HOST", "layer written to every event (CPS, HOST, CELL, GUESTVM, SWITCH, ILOM)")
	fs.StringVar(&cfg.Host, "host", hostname, "host of records without a node= prefix")
	fs.StringVar(&cfg.Passwd, "passwd", "/etc/passwd", "passwd file for uid → name")
	fs.StringVar(&cfg.Group, "group", "/etc/group", "group file for gid → name")
	fs.BoolVar(&cfg.AllUsers, "all-users", false, "audit every user, not only those with a grant")
	fs.StringVar(&cfg.HTTPAddr, "http", "127.0.0.1:9464", "query endpoint and /metrics address")
	fs.StringVar(&cfg.ChDBLib, "chdb-lib", "", "path of libchdb.so (default: $AUDITPIPE_CHDB_LIB, then the make deps cache)")
	fs.IntVar(&cfg.RetentionDays, "retention-days", 365, "how long audit events are kept, in days; 0 keeps them for ever")
	grants := grantFlags{}
	fs.Var(grants, "grant", "LOGIN=REQ_AUTH_ID: the login user's access request (repeatable)")
	var siem siemFlags
	siem.register(fs, "siem-")
	if err := parseFlags(fs, e.args); err != nil {
		return err
	}
	if cfg.DataDir == "" || fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	cfg.Grants = map[string]string{}
	for login, g := range grants {
		cfg.Grants[login] = g.ReqAuthID
	}
	if siem.set() {
		cfg.SIEM = siem.destination()
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return allinone.Run(ctx, cfg, allinone.Deps{Log: e.log, Registry: reg, Ready: func(a net.Addr) {
		fmt.Fprintf(e.stderr, "auditpipe all-in-one: queries at http://%s/ (auditpipe query --server http://%s/ --all)\n", a, a)
	}})
}
