package kafkatest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/proctest"
)

// ApacheVersion is the Apache Kafka release scripts/deps.d/30-kafka.sh
// installs.
const ApacheVersion = "4.4.0"

// Apache is a real Apache Kafka broker run by a test: one KRaft node that
// is both broker and controller, started with the machine's Java from the
// jars scripts/deps.d/30-kafka.sh installs. Kill and Start take it away and
// bring it back with its data, on the same port.
type Apache struct {
	Config kafka.Config

	java, lib, props, dir string
	addr                  string
	proc                  *proctest.Proc
	log                   *os.File
}

// apacheLib returns the directory of the broker's jars: AUDITPIPE_KAFKA_LIB,
// or the version's lib directory under AUDITPIPE_CACHE (default
// ~/.cache/auditpipe).
func apacheLib() string {
	if d := os.Getenv("AUDITPIPE_KAFKA_LIB"); d != "" {
		return d
	}
	cache := os.Getenv("AUDITPIPE_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "auditpipe")
	}
	return filepath.Join(cache, "kafka", ApacheVersion, "lib")
}

// StartApache formats a fresh data directory, starts the broker on free
// loopback ports, waits until it serves, and creates the pipeline topics
// (the audit topic with the given partitions). It skips the test, saying
// why, when Java or the broker's jars are missing (`make deps` installs
// them). The broker is killed when the test ends.
func StartApache(t testing.TB, partitions int) (kafka.Config, *Apache) {
	t.Helper()
	a := NewApache(t, partitions)
	a.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := a.Config.EnsureTopics(ctx, kafka.PipelineTopics(partitions)...); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	return a.Config, a
}

// NewApache is StartApache without starting the broker or creating any
// topic: a.Config names the address it will listen on once a.Start is
// called, so that a test can start a component before the broker.
func NewApache(t testing.TB, partitions int) *Apache {
	t.Helper()
	java, err := exec.LookPath("java")
	if err != nil {
		t.Skip("kafkatest: java not found; the real Kafka broker needs Java 17 (run `make deps`)")
	}
	lib := apacheLib()
	if _, err := os.Stat(filepath.Join(lib, "kafka_2.13-"+ApacheVersion+".jar")); err != nil {
		t.Skipf("kafkatest: Apache Kafka %s not installed in %s; run `make deps`", ApacheVersion, lib)
	}
	// Not t.TempDir(): log.dirs is a comma-separated list, and a test's
	// name may hold a comma.
	dir, err := os.MkdirTemp("", "auditpipe-kafka-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	a := &Apache{java: java, lib: lib, dir: dir, props: filepath.Join(dir, "server.properties")}
	port, cport := proctest.FreePort(t), proctest.FreePort(t)
	a.addr = "127.0.0.1:" + strconv.Itoa(port)
	props := fmt.Sprintf(`process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:%[2]d
listeners=PLAINTEXT://127.0.0.1:%[1]d,CONTROLLER://127.0.0.1:%[2]d
advertised.listeners=PLAINTEXT://127.0.0.1:%[1]d
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=%[3]s
num.partitions=%[4]d
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
`, port, cport, filepath.Join(dir, "data"), partitions)
	if err := os.WriteFile(a.props, []byte(props), 0o600); err != nil {
		t.Fatal(err)
	}
	a.log = proctest.LogFile(t, filepath.Join(dir, "kafka.log"), "the Kafka broker")
	t.Cleanup(func() { a.Kill(t) })
	// The cluster id: 16 random bytes, base64url without padding, not
	// starting with '-' (an option to the tool), as `kafka-storage
	// random-uuid` prints.
	id := "-"
	for strings.HasPrefix(id, "-") {
		var raw [16]byte
		_, _ = rand.Read(raw[:])
		id = base64.RawURLEncoding.EncodeToString(raw[:])
	}
	format := exec.Command(java, "-cp", filepath.Join(lib, "*"), "kafka.tools.StorageTool", "format", "-t", id, "-c", a.props)
	if out, err := format.CombinedOutput(); err != nil {
		t.Fatalf("kafkatest: format the broker's storage: %v\n%s", err, out)
	}
	a.Config = kafka.Config{Brokers: []string{a.addr}, DialTimeout: 2 * time.Second}.WithDefaults()
	return a
}

// Start starts the broker (again, after Kill) and waits until it accepts
// connections.
func (a *Apache) Start(t testing.TB) {
	t.Helper()
	cmd := exec.Command(a.java, "-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-cp", filepath.Join(a.lib, "*"), "kafka.Kafka", a.props)
	cmd.Stdout, cmd.Stderr = a.log, a.log
	a.proc = proctest.Start(t, "the Kafka broker", cmd, a.addr, 60*time.Second, a.log.Name())
}

// Kill stops the broker with SIGKILL, as a crash would, and waits for it.
func (a *Apache) Kill(t testing.TB) {
	t.Helper()
	if a.proc == nil {
		return
	}
	a.proc.Stop(syscall.SIGKILL, time.Minute)
	a.proc = nil
}
