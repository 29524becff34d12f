package collector

import (
	"time"

	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

// Input kinds.
const (
	InputFile    = "file"    // follow an audit log file
	InputStdin   = "stdin"   // read lines from stdin, as an auditd plugin
	InputNetlink = "netlink" // read from the kernel (root only)
)

// Config is the collector's configuration file. Every field has a default
// (DefaultConfig) and Validate names the field that is wrong.
type Config struct {
	// Layer is written to every event: CPS, HOST, CELL, GUESTVM, SWITCH or ILOM. Default HOST.
	Layer string `yaml:"layer"`
	// Host names events whose records carry no node= prefix. Default ""
	// (the hostname, looked up at start).
	Host string `yaml:"host"`
	// Input is where records come from.
	Input InputConfig `yaml:"input"`
	// StateDir holds the checkpoint and the spool. Default /var/lib/auditpipe/collector.
	StateDir string `yaml:"state_dir"`
	// Passwd and Group resolve ids to names. Defaults /etc/passwd, /etc/group.
	Passwd string `yaml:"passwd"`
	Group  string `yaml:"group"`
	// AllUsers emits events of users without a grant. Default false: only
	// sessions of operator users with a grant are audited, as the seed says.
	AllUsers bool `yaml:"all_users"`
	// LogoutFromSessionClose takes sshd's PAM session close (USER_END,
	// op=PAM:session_close, exe /usr/sbin/sshd) for the logout. Debian's
	// and Ubuntu's sshd write USER_LOGIN at login but no USER_LOGOUT (only
	// Red Hat's audit patch adds it): turn this on for them. Default
	// false: USER_LOGOUT is the logout (on a host writing both, on would
	// give two).
	LogoutFromSessionClose bool `yaml:"logout_from_session_close"`
	// Grants are static login → req_auth_id bindings, besides those followed
	// on the grants topic. Default none.
	Grants map[string]string `yaml:"grants"`
	// FollowGrants reads opctl.grants.v1 for login → req_auth_id. Default true.
	FollowGrants *bool `yaml:"follow_grants"`
	// GrantKeys are the public key files (PEM or base64, see internal/sign)
	// whose signatures on grant messages are trusted; a message unsigned or
	// signed by another key is refused. Default none, which is an error
	// while follow_grants is on, except in target all: the all-in-one
	// trusts its own key (embedded.data_dir/grants.pub) besides these.
	GrantKeys []string `yaml:"grant_keys"`
	// OwnGrantKey is the all-in-one's public key file, trusted besides
	// GrantKeys and created at its start: set by the composition root in
	// target all, never in a file.
	OwnGrantKey string `yaml:"-"`
	// Kafka is the broker connection: the configuration file's top-level
	// kafka section, set by the composition root.
	Kafka kafka.Config `yaml:"-"`
	// Topic receives the events. Default opctl.audit.v1.
	Topic string `yaml:"topic"`
	// DeadLetterTopic receives rejected input. Default opctl.deadletter.v1.
	DeadLetterTopic string `yaml:"dead_letter_topic"`
	// FlushInterval is the push cadence. Default 30s (the seed's).
	FlushInterval time.Duration `yaml:"flush_interval"`
	// BatchMaxEvents and BatchMaxBytes push a batch early when it is full.
	// Defaults 5000 events, 4MiB.
	BatchMaxEvents int         `yaml:"batch_max_events"`
	BatchMaxBytes  config.Size `yaml:"batch_max_bytes"`
	// MaxEventBytes bounds one event's JSON: a Kafka message must fit the
	// brokers' 1 MB default. A longer event (an EXECVE of megabytes of
	// arguments) goes to the dead-letter topic with reason
	// event_too_large, its first 256 KiB, length and SHA-256. Default
	// 900KB (900000 bytes).
	MaxEventBytes config.Size `yaml:"max_event_bytes"`
	// ProduceTimeout bounds one push to Kafka before the batch is spooled. Default 10s.
	ProduceTimeout time.Duration `yaml:"produce_timeout"`
	// SpoolMaxBytes and SpoolMaxAge bound the disk spool used while Kafka is
	// unreachable. Defaults 1GiB and 7d. When the spool is full the
	// collector stops reading (the audit log itself buffers); it never drops.
	SpoolMaxBytes config.Size   `yaml:"spool_max_bytes"`
	SpoolMaxAge   time.Duration `yaml:"spool_max_age"`
	// AssemblyTimeout flushes an event that never saw its EOE once the
	// input moved on by this much (in the records' time) or was idle this
	// long (see assemble.Assembler.Maintain). Default 3s.
	AssemblyTimeout time.Duration `yaml:"assembly_timeout"`
	// GrantGrace holds the events of a user that looks like a grant's
	// login user (32 hex digits, or a uid not resolved yet) but has no
	// grant yet, for this long: the grant may arrive a moment after the
	// user's first records. Default 10s; 0 skips them at once (no_grant).
	GrantGrace time.Duration `yaml:"grant_grace"`
	// ChainKeyFile is the Ed25519 private key (PKCS #8 PEM) that signs the
	// chain checkpoints emitted at every flush. Default "": checkpoints are
	// emitted unsigned (verify reports them as such). The all-in-one
	// creates one in its data directory.
	ChainKeyFile string `yaml:"chain_key_file"`
}

// InputConfig says where records come from.
type InputConfig struct {
	// Type is file, stdin or netlink. Default file.
	Type string `yaml:"type"`
	// Path is the audit log followed. Default /var/log/audit/audit.log.
	Path string `yaml:"path"`
	// PollInterval is how often the file is checked for new data. Default 250ms.
	PollInterval time.Duration `yaml:"poll_interval"`
	// MaxLineBytes rejects longer lines. Default 64KiB, at least 1KiB.
	MaxLineBytes config.Size `yaml:"max_line_bytes"`
}

// DefaultConfig returns the configuration with every default filled in.
func DefaultConfig() Config {
	follow := true
	return Config{
		Layer:           "HOST",
		Input:           InputConfig{Type: InputFile, Path: "/var/log/audit/audit.log", PollInterval: 250 * time.Millisecond, MaxLineBytes: DefaultMaxLineBytes},
		StateDir:        "/var/lib/auditpipe/collector",
		Passwd:          "/etc/passwd",
		Group:           "/etc/group",
		FollowGrants:    &follow,
		Kafka:           kafka.Config{Brokers: []string{"localhost:9092"}}.WithDefaults(),
		Topic:           schemas.TopicAudit,
		DeadLetterTopic: schemas.TopicDeadLetter,
		FlushInterval:   30 * time.Second,
		BatchMaxEvents:  5000,
		BatchMaxBytes:   4 << 20,
		MaxEventBytes:   900_000,
		ProduceTimeout:  10 * time.Second,
		SpoolMaxBytes:   1 << 30,
		SpoolMaxAge:     7 * 24 * time.Hour,
		AssemblyTimeout: 3 * time.Second,
		GrantGrace:      10 * time.Second,
	}
}

// Validate checks the configuration and reports every bad field at once,
// each named by its path under "collector".
func (c Config) Validate() error {
	var errs config.Errors
	switch c.Layer {
	case "CPS", "HOST", "CELL", "GUESTVM", "SWITCH", "ILOM":
	default:
		errs.Addf("collector.layer", "%q is not one of CPS, HOST, CELL, GUESTVM, SWITCH, ILOM", c.Layer)
	}
	switch c.Input.Type {
	case InputFile:
		if c.Input.Path == "" {
			errs.Addf("collector.input.path", "required for input type file")
		}
	case InputStdin, InputNetlink:
	default:
		errs.Addf("collector.input.type", "%q is not file, stdin or netlink", c.Input.Type)
	}
	if c.Input.MaxLineBytes < 1<<10 {
		errs.Addf("collector.input.max_line_bytes", "%s is below 1KiB", c.Input.MaxLineBytes)
	}
	if c.StateDir == "" {
		errs.Addf("collector.state_dir", "required")
	}
	if c.Topic == "" {
		errs.Addf("collector.topic", "required")
	}
	if c.DeadLetterTopic == "" {
		errs.Addf("collector.dead_letter_topic", "required")
	}
	positive := func(path string, d time.Duration) {
		if d <= 0 {
			errs.Addf(path, "%s must be positive", config.FormatDuration(d))
		}
	}
	positive("collector.flush_interval", c.FlushInterval)
	positive("collector.produce_timeout", c.ProduceTimeout)
	if c.GrantGrace < 0 {
		errs.Addf("collector.grant_grace", "%s must not be negative", config.FormatDuration(c.GrantGrace))
	}
	positive("collector.spool_max_age", c.SpoolMaxAge)
	if c.BatchMaxEvents <= 0 {
		errs.Addf("collector.batch_max_events", "%d must be positive", c.BatchMaxEvents)
	}
	if c.BatchMaxBytes <= 0 {
		errs.Addf("collector.batch_max_bytes", "%s must be positive", c.BatchMaxBytes)
	}
	if maxEvent := config.Size(kafka.MaxBatchBytes - 16<<10); c.MaxEventBytes < 64<<10 || c.MaxEventBytes > maxEvent {
		errs.Addf("collector.max_event_bytes", "%s is outside 64KiB..%s", c.MaxEventBytes, maxEvent)
	}
	if c.SpoolMaxBytes <= 0 {
		errs.Addf("collector.spool_max_bytes", "%s must be positive", c.SpoolMaxBytes)
	}
	following := c.FollowGrants == nil || *c.FollowGrants
	if following && len(c.GrantKeys) == 0 && c.OwnGrantKey == "" {
		errs.Addf("collector.grant_keys", "required while collector.follow_grants is on: the public keys whose grants are trusted (unsigned grants are never trusted); or set follow_grants: false to use the static grants only")
	}
	for i, path := range c.GrantKeys {
		if _, err := sign.LoadPublicKey(path); err != nil {
			errs.Add(config.IndexPath("collector.grant_keys", i), err)
		}
	}
	for login, id := range c.Grants {
		if login == "" || id == "" {
			errs.Addf(config.KeyPath("collector.grants", login), "%q: login and req_auth_id must not be empty", id)
		}
	}
	return errs.Err()
}
