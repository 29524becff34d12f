package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"

	"github.com/auditpipe/auditpipe/internal/app"
	"github.com/auditpipe/auditpipe/internal/auth"
)

// cmdAllInOne is `run --target all` on the embedded defaults, with flags
// for what a newcomer sets most.
func cmdAllInOne(ctx context.Context, e env) error {
	fs := newFlagSet("all-in-one", "all-in-one --data DIR [--audit-log FILE] [--flush-interval D] [--grant LOGIN=REQ_AUTH_ID]... [--siem HOST:PORT --siem-ca FILE [--siem-cert FILE --siem-key FILE]] [--policy-seed FILE] [--config FILE]", e.stderr)
	var f runFlags
	f.register(fs, app.TargetAll)
	def := app.DefaultConfig()
	var (
		data      = fs.String("data", "", "data directory: broker log, chDB store, collector state (required unless the file sets embedded.data_dir)")
		auditLog  = fs.String("audit-log", def.Collector.Input.Path, "audit log to follow")
		flush     = fs.Duration("flush-interval", def.Collector.FlushInterval, "collector push cadence")
		allUsers  = fs.Bool("all-users", false, "audit every user, not only those with a grant")
		httpAddr  = fs.String("http", "", "query endpoint and /metrics address (same as --http.addr; default "+app.DefaultHTTPAddr(app.TargetAll)+")")
		kafkaAddr = fs.String("kafka-listen", "", "the embedded Kafka broker's address, TLS and SASL/SCRAM-SHA-512 only (embedded.kafka_listen; default "+app.DefaultKafkaListen+"; port 0: any free port)")
		chdbLib   = fs.String("chdb-lib", "", "path of libchdb.so (default: $AUDITPIPE_CHDB_LIB, then the make deps cache)")
		retention = fs.Int("retention-days", def.ClickHouse.RetentionDays, "how long audit events are kept, in days; 0 keeps them for ever")
		seed      = fs.String("policy-seed", "", "policy objects to create at start when missing (`FILE`: compartments, resources, controls, assignments, requests; deploy/sample/policy.yaml)")
	)
	fs.String("layer", def.Collector.Layer, "layer written to every event (CPS, HOST, CELL, GUESTVM, SWITCH, ILOM)")
	fs.String("host", def.Collector.Host, "host of records without a node= prefix")
	fs.String("passwd", def.Collector.Passwd, "passwd file for uid → name")
	fs.String("group", def.Collector.Group, "group file for gid → name")
	grants := grantFlags{}
	fs.Var(grants, "grant", "LOGIN=REQ_AUTH_ID: the login user's access request (repeatable)")
	var siem siemFlags
	siem.register(fs, "siem-")
	if err := parseFlags(fs, e.args); err != nil {
		return err
	}
	if (*data == "" && f.config == "") || fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	load := func() (app.Config, error) {
		cfg, err := f.load()
		if err != nil {
			return cfg, err
		}
		set := map[string]bool{}
		fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
		if *data != "" {
			cfg.Embedded.DataDir = *data
		}
		if set["audit-log"] || f.config == "" {
			cfg.Collector.Input.Path = *auditLog
		}
		if set["flush-interval"] {
			cfg.Collector.FlushInterval = *flush
		}
		for name, dst := range map[string]*string{"layer": &cfg.Collector.Layer, "host": &cfg.Collector.Host, "passwd": &cfg.Collector.Passwd, "group": &cfg.Collector.Group} {
			if set[name] {
				*dst = fs.Lookup(name).Value.String()
			}
		}
		if set["all-users"] {
			cfg.Collector.AllUsers = *allUsers
		}
		if *httpAddr != "" {
			cfg.Server.HTTPAddr = *httpAddr
		}
		if *kafkaAddr != "" {
			cfg.Embedded.KafkaListen = *kafkaAddr
		}
		if *chdbLib != "" {
			cfg.ClickHouse.Embedded.Lib = *chdbLib
		}
		if set["retention-days"] {
			cfg.ClickHouse.RetentionDays = *retention
		}
		if *seed != "" {
			cfg.Policy.SeedFile = *seed
		}
		if len(grants) > 0 {
			if cfg.Collector.Grants == nil {
				cfg.Collector.Grants = map[string]string{}
			}
			for login, g := range grants {
				cfg.Collector.Grants[login] = g.ReqAuthID
			}
		}
		if siem.set() {
			cfg.Forwarder.Destinations = append(cfg.Forwarder.Destinations, siem.destination())
		}
		return cfg, nil
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	ready := e.ready
	e.ready = func(addr string) {
		tok := filepath.Join(cfg.Embedded.DataDir, auth.AdminTokenName)
		fmt.Fprintf(e.stderr, "auditpipe all-in-one: queries at http://%s/ (auditpipe query --server http://%s/ --token-file %s --all)\n", addr, addr, tok)
		ca := filepath.Join(cfg.Embedded.DataDir, app.KafkaTLSDir, "ca.crt")
		if cfg.Embedded.KafkaTLS.CertFile != "" {
			ca = cfg.Embedded.KafkaTLS.CAFile
		}
		fmt.Fprintf(e.stderr, "auditpipe all-in-one: Kafka at %s, TLS (CA %s) and SASL/SCRAM-SHA-512 only; one principal per role, username = role, password in %s\n",
			cfg.Embedded.KafkaListen, ca,
			filepath.Join(cfg.Embedded.DataDir, app.KafkaCredentialsDir, "ROLE.password"))
		if ready != nil {
			ready(addr)
		}
	}
	return runApp(ctx, e, cfg, load)
}
