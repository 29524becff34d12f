package pipeline_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/auditpipe/auditpipe/clickhouse/chdb"
	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/proctest"
	"github.com/auditpipe/auditpipe/internal/testenv"
)

// BenchmarkSplit is BenchmarkAllInOne with the pipeline as production runs
// it: the collector, indexer (into embedded chDB, serving the queries) and
// forwarder targets as three processes against a real Apache Kafka broker
// (kafkatest: SASL_SSL, SCRAM-SHA-512, the roles' ACLs, each target its
// own principal), the audit topic with AUDITPIPE_BENCH_PARTITIONS
// partitions (default 3). The report gives RSS and CPU per process,
// the broker's JVM included.
func BenchmarkSplit(b *testing.B) {
	s := loadSettings()
	if _, err := chdb.FindLibrary(""); err != nil {
		testenv.SkipOrFail(b, testenv.CHDB, "the indexer needs libchdb: %v", err)
	}
	for b.Loop() {
		runSplit(b, s)
	}
}

func runSplit(b *testing.B, s settings) {
	t := newTraffic(b, s)
	started := time.Now()
	_, a := kafkatest.StartApache(b, int(envFloat("AUDITPIPE_BENCH_PARTITIONS", 3)))
	tok, entry, err := auth.NewToken("bench", auth.RoleAdmin)
	if err != nil {
		b.Fatal(err)
	}
	tokens := filepath.Join(t.dir, "tokens.yaml")
	writeYAML(b, tokens, auth.File{Tokens: []auth.Token{entry}})
	ports := proctest.FreePorts(b, 3)
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	server := func(i int) map[string]any {
		return map[string]any{"http_addr": addr(i), "auth": map[string]any{"tokens_file": tokens}}
	}
	kafkaOf := func(role kafka.Role) map[string]any {
		c := a.Client(role)
		return map[string]any{"brokers": c.Brokers, "tls": map[string]any{"enabled": c.TLS.Enabled, "ca_file": c.TLS.CAFile},
			"sasl": map[string]any{"mechanism": c.SASL.Mechanism, "username": c.SASL.Username, "password": c.SASL.Password.Reveal()}}
	}
	run := func(name string, i int, cfg map[string]any) component {
		path := filepath.Join(t.dir, name+".yaml")
		writeYAML(b, path, cfg)
		return component{name: name, pid: startProc(b, t, name, addr(i), "run", "--config", path), metrics: addr(i)}
	}
	var comps []component
	comps = append(comps, run("indexer", 0, map[string]any{"target": "indexer", "server": server(0), "kafka": kafkaOf(kafka.RoleIndexer),
		"clickhouse": map[string]any{"embedded": map[string]any{"dir": filepath.Join(t.dir, "chdb")}, "retention_days": 0}}))
	if t.siem != nil {
		comps = append(comps, run("forwarder", 1, map[string]any{"target": "forwarder", "server": server(1), "kafka": kafkaOf(kafka.RoleForwarder),
			"forwarder": map[string]any{"destinations": []map[string]any{{"name": "siem", "address": t.siemAddr, "tls": map[string]any{"ca_file": t.siemCA}}}}}))
	}
	grants := map[string]string{}
	for _, g := range t.gen.Grants() {
		grants[g.LoginID] = g.ReqAuthID
	}
	comps = append(comps, run("collector", 2, map[string]any{"target": "collector", "server": server(2), "kafka": kafkaOf(kafka.RoleCollector),
		"collector": map[string]any{"layer": "CELL", "host": "loadgen", "input": map[string]any{"type": "file", "path": t.log},
			"state_dir": filepath.Join(t.dir, "state"), "passwd": t.pw, "group": t.gr, "grants": grants, "follow_grants": false,
			"flush_interval": s.flush.String()}}))
	comps = append(comps, component{name: "kafka (JVM)", pid: a.Pid()})
	ready := time.Now()
	q := &querier{base: "http://" + addr(0) + "/", token: tok, client: &http.Client{Timeout: time.Minute}}
	drive(b, t, q, comps, started, ready)
}

func writeYAML(b *testing.B, path string, v any) {
	out, err := yaml.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		b.Fatal(err)
	}
}
