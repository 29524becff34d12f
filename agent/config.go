package agent

import (
	"path/filepath"
	"slices"
	"time"

	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

// Config is the agent's section of the configuration file. Every field
// has a default (DefaultConfig) and Validate names the field that is
// wrong.
type Config struct {
	// Live lets the agent change this host: create and delete users,
	// install sudoers fragments, add audit rules, end sessions. Default
	// false: the plan is rendered under Root instead, and nothing else is
	// touched. Live needs root.
	Live bool `yaml:"live"`
	// Root is where the plan is rendered without the live switch
	// (etc/passwd, etc/shadow, home/, etc/sudoers.d/, audit.rules,
	// etc/pam.d/, plan.log). Default /var/lib/auditpipe/agent/plan.
	Root string `yaml:"root"`
	// Host is this host's name as grants list it (grant.hosts). Default
	// "": the hostname, looked up at start.
	Host string `yaml:"host"`
	// Resources are the ids of the resources this host belongs to; a
	// grant of another resource is ignored even when it names this host.
	// Default none: any resource.
	Resources []string `yaml:"resources"`
	// GrantKeys are the public key files whose signatures on grants are
	// trusted (see collector.grant_keys). Required, except in target all.
	GrantKeys []string `yaml:"grant_keys"`
	// OwnGrantKey is the all-in-one's public key, set by the composition
	// root, never in a file.
	OwnGrantKey string `yaml:"-"`
	// KeyFile is this host's own signing key (Ed25519, PEM, 0600): every
	// report, work progress and inventory the agent writes on
	// opctl.agent.v1 is signed with it, and the control plane accepts
	// only what the key enrolled for the host it names signed. Created at
	// the first start when missing, its public half beside it
	// (KeyFile+".pub"), which an administrator enrolls: `auditpipe agent
	// enroll --host HOST --key KEYFILE.pub` (see README, "Security
	// model"). Default /var/lib/auditpipe/agent/agent.key; the
	// all-in-one's agent: embedded.data_dir/agent.key, enrolled by it.
	KeyFile string `yaml:"key_file"`
	// Kafka is the broker connection: the file's top-level kafka
	// section, set by the composition root.
	Kafka kafka.Config `yaml:"-"`
	// ReportTopic receives the DEPLOYED, DEPLOYFAILED and UNDEPLOYED
	// reports, key = host. Default opctl.agent.v1.
	ReportTopic string `yaml:"report_topic"`
	// DeadLetterTopic receives refused grant records. Default
	// opctl.deadletter.v1.
	DeadLetterTopic string `yaml:"dead_letter_topic"`
	// ReconcileInterval is how often the host is compared with the live
	// grants (and failed deployments retried); also at start. Default 1m.
	ReconcileInterval time.Duration `yaml:"reconcile_interval"`
	// KillGrace is how long a session's processes have between SIGTERM
	// and SIGKILL on revocation; below 1s, so that the sessions are gone
	// within 2s. Default 300ms.
	KillGrace time.Duration `yaml:"kill_grace"`
	// Shell is the login users' shell. Default /bin/bash.
	Shell string `yaml:"shell"`
	// HomeDir holds the login users' homes. Default /home.
	HomeDir string `yaml:"home_dir"`
	// SudoersDir holds the fragments (auditpipe-LOGIN, mode 0440).
	// Default /etc/sudoers.d.
	SudoersDir string `yaml:"sudoers_dir"`
	// PAMFile is the agent's PAM file enabling pam_tty_audit for the
	// users of keystroke grants; include it in sshd's session stack.
	// Default /etc/pam.d/auditpipe-tty-audit.
	PAMFile string `yaml:"pam_file"`
	// Passwd is read to find users. Default /etc/passwd.
	Passwd string `yaml:"passwd"`
	// SuPath is su, as the sudoers rules of su privileges name it.
	// Default /usr/bin/su.
	SuPath string `yaml:"su_path"`
	// Commands are the programs the live host runs.
	Commands Commands `yaml:"commands"`
	// Instance names the managed instance this host is, as the scheduler
	// knows it. With Instance.ID set the agent runs the work requests
	// dispatched to it and reports its inventory; without, it does
	// neither.
	Instance InstanceConfig `yaml:"instance"`
	// Work configures the runs of work requests and the inventory.
	Work WorkConfig `yaml:"work"`
}

// InstanceConfig is the managed instance the host is. The agent is the
// one place that knows which instance it is, so its inventory carries
// the instance's name, compartment path and groups from here, and the
// compliance report reads them with the packages.
type InstanceConfig struct {
	// ID is the instance's id (the scheduler's managed instance id, the
	// key of its dispatch). Default "": no work, no inventory.
	ID string `yaml:"id"`
	// Name is its display name. Default: agent.host.
	Name string `yaml:"name"`
	// CompartmentPath is its compartment and the compartment's ancestors,
	// the root first (a recursive compliance report of any of them
	// includes it). Default none.
	CompartmentPath []string `yaml:"compartment_path"`
	// GroupIDs are the instance groups it belongs to. Default none.
	GroupIDs []string `yaml:"group_ids"`
}

// WorkConfig configures how work requests run.
type WorkConfig struct {
	// DispatchTopic is the scheduler's signed work. Default
	// opctl.dispatch.v1.
	DispatchTopic string `yaml:"dispatch_topic"`
	// DispatchKeys are the public key files whose signatures on
	// dispatches are trusted. Default: agent.grant_keys (the policy
	// service signs both).
	DispatchKeys []string `yaml:"dispatch_keys"`
	// StateDir keeps the state of each work request (written before each
	// report, atomically), so that a redelivered dispatch never runs
	// twice and a run the agent crashed in is reported FAILED at the next
	// start. It holds a lock: one agent per state directory. Default
	// /var/lib/auditpipe/agent/work.
	StateDir string `yaml:"state_dir"`
	// PackageManager is the adapter runs and inventories use: "apt"
	// (apt-get/dpkg, pkgmgr.Apt) or "dnf" (dnf/rpm, pkgmgr.Dnf). Default
	// apt.
	PackageManager string `yaml:"package_manager"`
	// PackageRoot is the root directory packages are installed under:
	// "" is the host; any other directory is a private root (tests,
	// images; see pkgmgr.AptConfig.Root, and pkgmgr.DnfConfig.Root, the
	// --installroot, for dnf).
	PackageRoot string `yaml:"package_root"`
	// Release is the distribution release the security feed is read for
	// (apt); with dnf, when set, it is dnf's --releasever.
	// Default: VERSION_CODENAME of PackageRoot's etc/os-release, else the
	// host's.
	Release string `yaml:"release"`
	// SecurityTracker is a file of the Debian security tracker's JSON
	// feed, read at each inventory and UPDATEALL run (fetching it is left
	// to a timer of the host). Default "": every update is OTHER.
	SecurityTracker string `yaml:"security_tracker"`
	// MaxRunTime bounds a run when its deadline is further. Default 2h.
	MaxRunTime time.Duration `yaml:"max_run_time"`
	// ProgressInterval is how often a running work request reports its
	// new log lines and percent. Default 2s.
	ProgressInterval time.Duration `yaml:"progress_interval"`
	// InventoryInterval is how often the inventory is reported besides at
	// start and after every run. Default 6h.
	InventoryInterval time.Duration `yaml:"inventory_interval"`
	// LoginUID runs apt-get with the kernel loginuid of the dispatch's
	// grant login, so that the audit records of the run carry that auid
	// and are tied to the access request like an operator's commands.
	// It applies with agent.live on (it needs root); the run of a
	// dispatch naming a login waits for the grant's user to be on the host
	// and FAILS at the cutoff when it never is. Default true.
	LoginUID bool `yaml:"login_uid"`
}

// DefaultConfig returns the configuration with every default filled in.
func DefaultConfig() Config {
	return Config{
		Root:              "/var/lib/auditpipe/agent/plan",
		KeyFile:           "/var/lib/auditpipe/agent/agent.key",
		Kafka:             kafka.Config{Brokers: []string{"localhost:9092"}}.WithDefaults(),
		ReportTopic:       schemas.TopicAgent,
		DeadLetterTopic:   schemas.TopicDeadLetter,
		ReconcileInterval: time.Minute,
		KillGrace:         300 * time.Millisecond,
		Shell:             "/bin/bash",
		HomeDir:           "/home",
		SudoersDir:        "/etc/sudoers.d",
		PAMFile:           "/etc/pam.d/auditpipe-tty-audit",
		Passwd:            "/etc/passwd",
		SuPath:            "/usr/bin/su",
		Work: WorkConfig{
			DispatchTopic:     schemas.TopicDispatch,
			PackageManager:    "apt",
			StateDir:          "/var/lib/auditpipe/agent/work",
			MaxRunTime:        2 * time.Hour,
			ProgressInterval:  2 * time.Second,
			InventoryInterval: 6 * time.Hour,
			LoginUID:          true,
		},
		Commands: Commands{
			Useradd:  "/usr/sbin/useradd",
			Usermod:  "/usr/sbin/usermod",
			Userdel:  "/usr/sbin/userdel",
			Visudo:   "/usr/sbin/visudo",
			Auditctl: "/usr/sbin/auditctl",
		},
	}
}

// Validate checks the configuration and reports every bad field at once,
// each named by its path under "agent".
func (c Config) Validate() error {
	var errs config.Errors
	if !c.Live && c.Root == "" {
		errs.Addf("agent.root", "required unless agent.live is on (the plan is rendered there)")
	}
	if len(c.GrantKeys) == 0 && c.OwnGrantKey == "" {
		errs.Addf("agent.grant_keys", "required: the public keys whose grants are trusted (unsigned grants are never applied)")
	}
	for i, path := range c.GrantKeys {
		if _, err := sign.LoadPublicKey(path); err != nil {
			errs.Add(config.IndexPath("agent.grant_keys", i), err)
		}
	}
	if !filepath.IsAbs(c.KeyFile) {
		errs.Addf("agent.key_file", "%q is not an absolute path (the host's signing key, created at the first start)", c.KeyFile)
	}
	for i, r := range c.Resources {
		if r == "" {
			errs.Addf(config.IndexPath("agent.resources", i), "empty")
		}
	}
	if c.ReportTopic == "" {
		errs.Addf("agent.report_topic", "required")
	}
	if c.DeadLetterTopic == "" {
		errs.Addf("agent.dead_letter_topic", "required")
	}
	if c.ReconcileInterval <= 0 {
		errs.Addf("agent.reconcile_interval", "%s must be positive", config.FormatDuration(c.ReconcileInterval))
	}
	if c.KillGrace <= 0 || c.KillGrace >= time.Second {
		errs.Addf("agent.kill_grace", "%s is outside (0, 1s): sessions must end within 2s of a revocation", config.FormatDuration(c.KillGrace))
	}
	for _, p := range []struct{ field, path string }{
		{"agent.shell", c.Shell}, {"agent.home_dir", c.HomeDir}, {"agent.sudoers_dir", c.SudoersDir},
		{"agent.pam_file", c.PAMFile}, {"agent.passwd", c.Passwd}, {"agent.su_path", c.SuPath},
		{"agent.commands.useradd", c.Commands.Useradd}, {"agent.commands.usermod", c.Commands.Usermod},
		{"agent.commands.userdel", c.Commands.Userdel}, {"agent.commands.visudo", c.Commands.Visudo},
		{"agent.commands.auditctl", c.Commands.Auditctl},
	} {
		if !filepath.IsAbs(p.path) {
			errs.Addf(p.field, "%q is not an absolute path", p.path)
		}
	}
	if c.Instance.ID != "" {
		c.Work.validate(&errs)
	}
	for i, id := range append(slices.Clone(c.Instance.CompartmentPath), c.Instance.GroupIDs...) {
		if id == "" {
			field := config.IndexPath("agent.instance.compartment_path", i)
			if i >= len(c.Instance.CompartmentPath) {
				field = config.IndexPath("agent.instance.group_ids", i-len(c.Instance.CompartmentPath))
			}
			errs.Addf(field, "empty")
		}
	}
	return errs.Err()
}

func (w WorkConfig) validate(errs *config.Errors) {
	if w.DispatchTopic == "" {
		errs.Addf("agent.work.dispatch_topic", "required")
	}
	for i, path := range w.DispatchKeys {
		if _, err := sign.LoadPublicKey(path); err != nil {
			errs.Add(config.IndexPath("agent.work.dispatch_keys", i), err)
		}
	}
	if !filepath.IsAbs(w.StateDir) {
		errs.Addf("agent.work.state_dir", "%q is not an absolute path", w.StateDir)
	}
	if w.PackageManager != "apt" && w.PackageManager != "dnf" {
		errs.Addf("agent.work.package_manager", "%q: want apt or dnf", w.PackageManager)
	}
	if w.PackageRoot != "" && !filepath.IsAbs(w.PackageRoot) {
		errs.Addf("agent.work.package_root", "%q is not an absolute path", w.PackageRoot)
	}
	if w.SecurityTracker != "" && !filepath.IsAbs(w.SecurityTracker) {
		errs.Addf("agent.work.security_tracker", "%q is not an absolute path", w.SecurityTracker)
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"agent.work.max_run_time", w.MaxRunTime}, {"agent.work.progress_interval", w.ProgressInterval},
		{"agent.work.inventory_interval", w.InventoryInterval},
	} {
		if d.v <= 0 {
			errs.Addf(d.field, "%s must be positive", config.FormatDuration(d.v))
		}
	}
}

// loginUID reports whether runs take the grant login's loginuid.
func (w WorkConfig) loginUID() bool { return w.LoginUID }
