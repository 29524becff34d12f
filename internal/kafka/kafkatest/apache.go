package kafkatest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/proctest"
	"github.com/auditpipe/auditpipe/internal/testenv"
	"github.com/auditpipe/auditpipe/internal/tlsconfig"
)

// ApacheVersion is the Apache Kafka release scripts/deps.d/30-kafka.sh
// installs.
const ApacheVersion = "4.4.0"

// Apache is a real Apache Kafka broker run by a test: one KRaft node that
// is both broker and controller, started with the machine's Java from the
// jars scripts/deps.d/30-kafka.sh installs. Kill and Start take it away and
// bring it back with its data, on the same port. It is secured as
// production would be: its one client listener is SASL_SSL with
// SCRAM-SHA-512 (a CA and certificate made for the test; the credentials
// set when the storage is formatted: a superuser, and one user per role
// named after it), StandardAuthorizer with the roles' ACLs (RoleACLs);
// the controller listener takes only the broker's own certificate (mutual
// TLS).
type Apache struct {
	// Config is the superuser's configuration (SASL_SSL): what topics
	// and ACLs are made with. Client gives each role's.
	Config kafka.Config

	passwords             map[kafka.Role]string
	aclsMade              bool
	java, lib, props, dir string
	logProps              string // the broker's log4j 2 configuration
	addr                  string
	topics                []string // whose leaders readiness waits for
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
// loopback ports, waits until it answers metadata, creates the pipeline
// topics (the audit topic with the given partitions) and waits until each
// of their partitions has a leader. It skips the test, saying why, when
// Java or the broker's jars are missing (`make deps` installs them), or
// fails it when AUDITPIPE_REQUIRE requires them (internal/testenv). The
// broker is killed when the test ends.
func StartApache(t testing.TB, partitions int) (kafka.Config, *Apache) {
	t.Helper()
	a := newApache(t)
	// The ports are free when chosen, not necessarily when the broker
	// binds them: when another process took one in between, the broker
	// exits with "Address already in use", and it starts again on others.
	for attempt := 1; ; attempt++ {
		err := a.prepare(t, partitions)
		if err == nil {
			err = a.launch()
		}
		if err == nil {
			break
		}
		if attempt < 3 && errors.Is(err, proctest.ErrExited) && bytes.Contains(proctest.Tail(a.log.Name()), []byte("Address already in use")) {
			t.Logf("kafkatest: a port was taken before the broker bound it; again on other ports: %v", err)
			continue
		}
		t.Fatalf("kafkatest: the Kafka broker: %v\n%s", err, proctest.Tail(a.log.Name()))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := a.EnsureACLs(ctx); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	topics := kafka.PipelineTopics(partitions)
	if err := a.Config.EnsureTopics(ctx, topics...); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	// From now on, ready means the pipeline's topics have their leaders.
	a.topics = kafka.TopicNames(topics)
	for {
		err := a.ready()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("kafkatest: the topics have no leaders after creation: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return a.Config, a
}

// NewApache is StartApache without starting the broker or creating any
// topic: a.Config names the address it will listen on once a.Start is
// called, so that a test can start a component before the broker. The
// roles' ACLs are created at the first Start.
func NewApache(t testing.TB, partitions int) *Apache {
	t.Helper()
	a := newApache(t)
	if err := a.prepare(t, partitions); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	return a
}

// newApache finds Java and the broker's jars (or skips, saying why) and
// makes the broker's directory and log; the broker is killed when the
// test ends.
func newApache(t testing.TB) *Apache {
	t.Helper()
	java, err := exec.LookPath("java")
	if err != nil {
		testenv.SkipOrFail(t, testenv.Java, "kafkatest: java not found; the real Kafka broker needs Java 17 (run `make deps`)")
	}
	lib := apacheLib()
	if _, err := os.Stat(filepath.Join(lib, "kafka_2.13-"+ApacheVersion+".jar")); err != nil {
		testenv.SkipOrFail(t, testenv.Kafka, "kafkatest: Apache Kafka %s not installed in %s; run `make deps`", ApacheVersion, lib)
	}
	// Not t.TempDir(): log.dirs is a comma-separated list, and a test's
	// name may hold a comma.
	dir, err := os.MkdirTemp("", "auditpipe-kafka-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	a := &Apache{java: java, lib: lib, dir: dir, props: filepath.Join(dir, "server.properties"), logProps: filepath.Join(dir, "log4j2.properties")}
	if err := os.WriteFile(a.logProps, []byte(apacheLogConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	a.log = proctest.LogFile(t, filepath.Join(dir, "kafka.log"), "the Kafka broker")
	t.Cleanup(func() { a.Kill(t) })
	return a
}

// launch starts the broker and waits until it is ready.
func (a *Apache) launch() error {
	p, err := proctest.Launch(a.command(), a.ready, 60*time.Second)
	if err != nil {
		return err
	}
	a.proc = p
	return nil
}

// prepare writes the broker's configuration for two fresh free ports and
// formats a fresh data directory, with the SCRAM credentials of the
// superuser and of each role.
func (a *Apache) prepare(t testing.TB, partitions int) error {
	t.Helper()
	ports := proctest.FreePorts(t, 2)
	port, cport := ports[0], ports[1]
	a.addr = "127.0.0.1:" + strconv.Itoa(port)
	ss, _, err := tlsconfig.EnsureSelfSigned(filepath.Join(a.dir, "tls"), apacheCN, []string{"127.0.0.1", "localhost"})
	if err != nil {
		return err
	}
	// Java's PEM key store: the private key and the certificate in one
	// file.
	keystore := filepath.Join(a.dir, "tls", "server.pem")
	key, err := os.ReadFile(ss.KeyFile)
	if err != nil {
		return err
	}
	cert, err := os.ReadFile(ss.CertFile)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keystore, append(key, cert...), 0o600); err != nil {
		return err
	}
	if a.passwords == nil {
		a.passwords = map[kafka.Role]string{apacheAdmin: randomPassword()}
		for _, r := range kafka.Roles() {
			a.passwords[r] = randomPassword()
		}
	}
	a.Config = kafka.Config{
		Brokers: []string{a.addr}, DialTimeout: 2 * time.Second,
		TLS:  tlsconfig.Config{Enabled: true, CAFile: ss.CAFile},
		SASL: kafka.SASLConfig{Mechanism: kafka.MechanismSCRAMSHA512, Username: string(apacheAdmin), Password: config.Secret(a.passwords[apacheAdmin])},
	}.WithDefaults()
	data := filepath.Join(a.dir, "data")
	if err := os.RemoveAll(data); err != nil {
		return fmt.Errorf("remove the data directory: %w", err)
	}
	props := fmt.Sprintf(`process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:%[2]d
listeners=SASL_SSL://127.0.0.1:%[1]d,CONTROLLER://127.0.0.1:%[2]d
advertised.listeners=SASL_SSL://127.0.0.1:%[1]d
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="%[5]s" password="%[6]s";
ssl.keystore.type=PEM
ssl.keystore.location=%[7]s
ssl.truststore.type=PEM
ssl.truststore.location=%[8]s
listener.name.controller.ssl.client.auth=required
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:%[5]s;User:CN=%[9]s,O=auditpipe
allow.everyone.if.no.acl.found=false
log.dirs=%[3]s
num.partitions=%[4]d
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
`, port, cport, data, partitions, apacheAdmin, a.passwords[apacheAdmin], keystore, ss.CAFile, apacheCN)
	if err := os.WriteFile(a.props, []byte(props), 0o600); err != nil {
		return err
	}
	// The cluster id: 16 random bytes, base64url without padding, not
	// starting with '-' (an option to the tool), as `kafka-storage
	// random-uuid` prints.
	id := "-"
	for strings.HasPrefix(id, "-") {
		var raw [16]byte
		_, _ = rand.Read(raw[:])
		id = base64.RawURLEncoding.EncodeToString(raw[:])
	}
	args := []string{"-cp", filepath.Join(a.lib, "*"), "kafka.tools.StorageTool", "format", "-t", id, "-c", a.props}
	for user, pw := range a.passwords {
		args = append(args, "--add-scram", fmt.Sprintf("SCRAM-SHA-512=[name=%s,password=%s]", user, pw))
	}
	format := exec.Command(a.java, args...)
	if out, err := format.CombinedOutput(); err != nil {
		return fmt.Errorf("format the broker's storage: %w\n%s", err, out)
	}
	return nil
}

// The superuser of the test broker, and the common name of its
// certificate (the controller listener's only principal, a superuser too).
const (
	apacheAdmin kafka.Role = "admin"
	apacheCN               = "kafka-broker"
)

func randomPassword() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Admin is the superuser's configuration (kafkatest.Secured).
func (a *Apache) Admin() kafka.Config { return a.Config }

// Client is the configuration of role's principal: the same TLS, its own
// SCRAM-SHA-512 user, limited by its ACLs.
func (a *Apache) Client(role kafka.Role) kafka.Config {
	c := a.Config
	c.SASL = kafka.SASLConfig{Mechanism: kafka.MechanismSCRAMSHA512, Username: string(role), Password: config.Secret(a.passwords[role])}
	return c
}

// EnsureACLs gives every role its ACLs (done by StartApache, and by the
// first Start of a broker from NewApache).
func (a *Apache) EnsureACLs(ctx context.Context) error {
	users := map[kafka.Role]string{}
	for _, r := range kafka.Roles() {
		users[r] = string(r)
	}
	if err := a.Config.EnsureACLs(ctx, users); err != nil {
		return err
	}
	a.aclsMade = true
	return nil
}

// apacheLogConfig is the broker's log4j 2 configuration: warnings and
// errors, and the line saying it started, to its output (the
// log file a failed test shows the end of). Without a configuration,
// log4j shows errors only.
const apacheLogConfig = `status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = out
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = info
`

// command is the broker's command line, its output to the log file.
func (a *Apache) command() *exec.Cmd {
	cmd := exec.Command(a.java, "-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-Dlog4j2.configurationFile="+a.logProps, "-cp", filepath.Join(a.lib, "*"), "kafka.Kafka", a.props)
	cmd.Stdout, cmd.Stderr = a.log, a.log
	return cmd
}

// ready reports whether the broker serves: it answers metadata, and every
// partition of the topics created so far has a leader.
func (a *Apache) ready() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return a.Config.CheckLeaders(ctx, a.topics...)
}

// Start starts the broker again, after Kill, on the same ports with its
// data, and waits until it is ready: every partition of the pipeline's
// topics has a leader. A broker that exits at start is started again, up
// to three times in all, as a service manager would restart it; each
// failed attempt is logged with the end of the broker's log.
func (a *Apache) Start(t testing.TB) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		err := a.launch()
		if err == nil {
			break
		}
		if attempt < 3 && errors.Is(err, proctest.ErrExited) {
			t.Logf("kafkatest: the Kafka broker exited at start (attempt %d); starting it again: %v\n%s", attempt, err, proctest.Tail(a.log.Name()))
			continue
		}
		t.Fatalf("kafkatest: the Kafka broker: %v\n%s", err, proctest.Tail(a.log.Name()))
	}
	if !a.aclsMade {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := a.EnsureACLs(ctx); err != nil {
			t.Fatalf("kafkatest: %v", err)
		}
	}
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

// Pid is the running broker's process id (the JVM), 0 when it is not
// running: the load harness reads its CPU and memory.
func (a *Apache) Pid() int {
	if a.proc == nil {
		return 0
	}
	return a.proc.Pid()
}
