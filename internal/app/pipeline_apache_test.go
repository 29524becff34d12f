package app

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse/chdb"
	"github.com/auditpipe/auditpipe/forwarder"
	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/siemtest"
	"github.com/auditpipe/auditpipe/internal/testenv"
	"github.com/auditpipe/auditpipe/queryapi"
)

// The whole pipeline as separate processes would run it against a real
// Apache Kafka secured for production: SASL_SSL only, SCRAM-SHA-512,
// StandardAuthorizer with the roles' ACLs. The collector, indexer and
// forwarder targets each connect as their own principal (the collector
// may only write the audit and dead-letter topics and read the grants;
// the indexer and forwarder only read, in their own groups). Every event
// of the sample reaches ClickHouse and the SIEM, and no target logs an
// authorization failure.
func TestPipelineOverSecuredApacheKafka(t *testing.T) {
	if _, err := chdb.FindLibrary(""); err != nil {
		testenv.SkipOrFail(t, testenv.CHDB, "needs libchdb.so (run 'make deps'): %v", err)
	}
	_, a := kafkatest.StartApache(t, 1)
	dir := t.TempDir()

	ix, tok := securedIndexerConfig(t, a, dir)
	indexer := startTarget(t, ix)
	fw, rs := securedForwarderConfig(t, a, dir)
	fwd := startTarget(t, fw)

	logPath := filepath.Join(dir, "audit.log")
	first, second := sampleHalves(t)
	appendTo(t, logPath, first+second)
	col := sampleConfig(dir, logPath)
	col.Target = TargetCollector
	col.Server.Auth.OpenMetrics = true
	col.Kafka = a.Client(kafka.RoleCollector)
	col.Collector.StateDir = filepath.Join(dir, "state")
	col.Collector.FlushInterval = 200 * time.Millisecond
	col.Collector.GrantKeys = []string{grantKeyFile(t, dir)}
	collector := startTarget(t, col)

	q := &queryapi.HTTPClient{URL: indexer.url, Token: config.Secret(tok[auth.RoleAuditor])}
	const events = "SELECT count() FROM audit_events WHERE event != 'chain'"
	deadline := time.Now().Add(90 * time.Second)
	for {
		res, err := q.Query(t.Context(), events)
		if err == nil && len(res.Rows) == 1 && strings.TrimSpace(fmt.Sprintln(res.Rows[0]...)) == "18" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v %v after 90s, want 18", events, res, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	rs.WaitMessages(t, 18, 60*time.Second)
	waitLag(t, a.Config, ix.Indexer.Group, 60*time.Second)
	for name, r := range map[string]*targetRun{"collector": collector, "indexer": indexer, "forwarder": fwd} {
		r.running(t, "with its own principal")
		if n := r.logs.matching(authFailure); len(n) > 0 {
			t.Errorf("%s: %d authorization or authentication failures: %s", name, len(n), n[0])
		}
	}
}

// securedIndexerConfig is the indexer target on a, as its own principal:
// embedded chDB under dir, its query endpoint on a free port for the
// auditor whose token it returns.
func securedIndexerConfig(t *testing.T, a *kafkatest.Apache, dir string) (Config, map[string]string) {
	t.Helper()
	tokens, tok := writeTokens(t, dir, auth.RoleAuditor)
	ix := DefaultConfig()
	ix.Target = TargetIndexer
	ix.Server.HTTPAddr = "127.0.0.1:0"
	ix.Server.Auth.TokensFile = tokens
	ix.Kafka = a.Client(kafka.RoleIndexer)
	ix.ClickHouse.Embedded.Dir = filepath.Join(dir, "chdb")
	ix.ClickHouse.RetentionDays = 0
	ix.Indexer.Batch.MaxWait = 100 * time.Millisecond
	return ix, tok
}

// securedForwarderConfig starts an rsyslog receiving over TLS (a CA made
// for the test, under dir) and returns it and the forwarder target on a,
// as its own principal, sending to it; its metrics are open.
func securedForwarderConfig(t *testing.T, a *kafkatest.Apache, dir string) (Config, *siemtest.Rsyslog) {
	t.Helper()
	ca := siemtest.NewCA(t, dir, "siem-ca")
	cert, key := ca.Issue(t, dir, "siem", siemtest.CertOptions{})
	rs := siemtest.StartRsyslog(t, siemtest.RsyslogOptions{CA: ca, CertFile: cert, KeyFile: key})
	fw := DefaultConfig()
	fw.Target = TargetForwarder
	fw.Server.HTTPAddr = "127.0.0.1:0"
	fw.Server.Auth.OpenMetrics = true
	fw.Kafka = a.Client(kafka.RoleForwarder)
	fw.Forwarder.Destinations = []forwarder.Destination{{Name: "siem", Address: rs.Addr, TLS: forwarder.TLS{CAFile: ca.CertPEM}}}
	return fw, rs
}

// authFailure is a log line of a refused principal.
var authFailure = regexp.MustCompile(`(?i)authorization failed|authentication failed|AUTHORIZATION_FAILED`)
