package forwarder

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"time"

	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/internal/tlsconfig"
	"github.com/auditpipe/auditpipe/schemas"
)

// Config is the forwarder's configuration.
type Config struct {
	// Kafka is where the events are read: the configuration file's
	// top-level kafka section, set by the composition root. Required.
	Kafka kafka.Config `yaml:"-"`
	// Destinations are the SIEMs, each with its own consumer group and
	// filter. At least one is required, unless assignments are followed.
	Destinations []Destination `yaml:"destinations"`
	// Assignments, when followed, name the destinations instead: one per
	// resource whose operator control assignment forwards logs, from
	// opctl.assignments.v1 (AssignmentSource). Default off.
	Assignments AssignmentsConfig `yaml:"assignments"`
	// AssignmentKeys are the public key files (PEM or base64, see
	// internal/sign) whose signatures on assignment records are trusted;
	// a record unsigned or signed by another key is refused. Default none,
	// which is an error while assignments.follow is on, except in target
	// all: the all-in-one trusts its own key (embedded.data_dir/grants.pub)
	// besides these.
	AssignmentKeys []string `yaml:"assignment_keys"`
	// OwnAssignmentKey is the all-in-one's public key file, trusted besides
	// AssignmentKeys: set by the composition root in target all, never in
	// a file.
	OwnAssignmentKey string `yaml:"-"`
	// DeadLetterTopic receives events that cannot be sent, and refused
	// assignment records, with the reason. Default "opctl.deadletter.v1".
	DeadLetterTopic string `yaml:"dead_letter_topic"`
}

// assignmentKeyring reads the trusted public keys of the assignments.
func (c Config) assignmentKeyring() (*sign.Keyring, error) {
	paths := c.AssignmentKeys
	if c.OwnAssignmentKey != "" {
		paths = append(paths[:len(paths):len(paths)], c.OwnAssignmentKey)
	}
	kr, err := sign.LoadKeyring(paths...)
	if err != nil {
		return nil, fmt.Errorf("forwarder.assignment_keys: %w", err)
	}
	return kr, nil
}

// AssignmentsConfig is the destinations followed from the assignments
// topic.
type AssignmentsConfig struct {
	// Follow turns it on; Destinations must then be empty. Default false.
	Follow bool `yaml:"follow"`
	// Topic is followed. Default opctl.assignments.v1.
	Topic string `yaml:"topic"`
	// Template gives every followed destination its settings besides the
	// name, address, CA certificate and hosts, which the assignment
	// gives (timeouts, sizes, priority, app name). Default: the defaults.
	Template Destination `yaml:"template"`
	// StateDir keeps the assignments' replay memory (AssignmentsStateFile:
	// per resource, the number and digest of the last record applied), so
	// that a restart refuses an old assignment written again even when
	// compaction left it as its resource's only record. Default
	// DefaultStateDir in the configuration file (DATA/forwarder in
	// target all); "" keeps the memory in memory only, rebuilt from the
	// topic at each start.
	StateDir string `yaml:"state_dir"`
}

// DefaultStateDir is forwarder.assignments.state_dir by default.
const DefaultStateDir = "/var/lib/auditpipe/forwarder"

// AssignmentsStateFile is the file of forwarder.assignments.state_dir that
// keeps the assignments' replay memory.
const AssignmentsStateFile = "assignments-seqs.json"

// Destination is one SIEM and what goes to it. The policy service builds
// one per resource assignment that forwards logs (the assignment's syslog
// address and CA certificate, Filter.Hosts = the resource's hosts) and runs
// it with Forwarder.RunDestination.
type Destination struct {
	// Name identifies the destination in logs, metrics and the default
	// consumer group. Default "siem" when there is one destination;
	// required when there are several.
	Name string `yaml:"name"`
	// Address is the SIEM's syslog-over-TLS listener, host:port (6514 is
	// the registered port). Required.
	Address string `yaml:"address"`
	// TLS is how the SIEM is verified and how the forwarder authenticates.
	// TLS is always on unless PlainTCP is set.
	TLS TLS `yaml:"tls"`
	// PlainTCP sends in clear, without TLS. Default false; it must be set
	// explicitly, and is logged as a warning.
	PlainTCP bool `yaml:"plain_tcp"`
	// Group is the Kafka consumer group. Default "auditpipe-forwarder-<name>".
	Group string `yaml:"group"`
	// Filter selects the events for this destination. Default: all.
	Filter Filter `yaml:"filter"`

	// AppName is the RFC 5424 APP-NAME (the seed's syslog tag). Default "opctl".
	AppName string `yaml:"app_name"`
	// SDName and EnterpriseID make the structured-data ID SDName@EnterpriseID.
	// Defaults "opctl" and 32473 (the private enterprise number reserved
	// for documentation: use your own).
	SDName       string `yaml:"sd_name"`
	EnterpriseID int    `yaml:"enterprise_id"`
	// Facility is the PRI's facility. Default 10 (authpriv), where stock
	// receiver configurations file security records.
	Facility *int `yaml:"facility"`
	// Severity, when set, is the severity of every event, whatever its
	// class. Default: by class (see Severities).
	Severity *int `yaml:"severity"`
	// Severities overrides the severity of event classes (login,
	// login_failed, logout, command, command_failed, sudo_refused, keys);
	// the others keep DefaultSeverities. Applied after Severity.
	Severities map[Class]int `yaml:"severities"`
	// MaxMessageSize is the largest syslog message (without the octet-count
	// frame) sent; a longer event is split into parts. Default 8192, which
	// RFC 5425 says receivers should accept (and rsyslog's default limit);
	// at least 480.
	MaxMessageSize config.Size `yaml:"max_message_size"`

	// MaxInFlight and MaxInFlightBytes bound the events written and not
	// settled yet; when either is reached, reading from Kafka pauses.
	// Defaults 100000 and 64MiB.
	MaxInFlight      int         `yaml:"max_in_flight"`
	MaxInFlightBytes config.Size `yaml:"max_in_flight_bytes"`
	// Settle is how long a connection must stay up after a message was
	// written (and its bytes acknowledged by the SIEM's TCP stack) before
	// its offset is committed. Messages not settled when a connection
	// breaks are sent again. Default 250ms.
	Settle time.Duration `yaml:"settle"`
	// DialTimeout bounds connecting plus the TLS handshake. Default 10s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// WriteTimeout bounds one write; a SIEM that stops reading for longer
	// is treated as a broken connection. Default 30s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// BackoffMin and BackoffMax bound the reconnect delay, which doubles
	// per failed attempt, with jitter. Defaults 100ms and 30s.
	BackoffMin time.Duration `yaml:"backoff_min"`
	BackoffMax time.Duration `yaml:"backoff_max"`
	// CommitInterval is how often settled offsets are committed. Default 1s.
	CommitInterval time.Duration `yaml:"commit_interval"`
	// CloseTimeout bounds the wait, when stopping, for the SIEM to confirm
	// it read everything. Default 5s.
	CloseTimeout time.Duration `yaml:"close_timeout"`
}

// TLS is a destination's TLS settings.
type TLS struct {
	// CAFile is the SIEM's CA certificate bundle in PEM (.pem, .cer or
	// .crt). Default: the system's trusted CAs.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the forwarder's client certificate, for
	// SIEMs that require mutual TLS. Default: none.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name verified in the SIEM's certificate. Default:
	// the host part of Address.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any certificate. Default false; for tests.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Filter selects events; an empty list matches everything, and an event
// must match every non-empty list that applies to it. Audit events are
// matched by Layers, Events and Hosts (Match); lifecycle events by Events
// and Resources, and a destination with Hosts but no Resources gets none
// (MatchLifecycle).
type Filter struct {
	// Layers are event layers (CPS, HOST, CELL, GUESTVM, SWITCH, ILOM).
	Layers []string `yaml:"layers"`
	// Events are event kinds (login, logout, command, keys, chain), and
	// "lifecycle" for the policy service's lifecycle events.
	Events []string `yaml:"events"`
	// Hosts are event hosts: the hosts of the resources this destination
	// is for.
	Hosts []string `yaml:"hosts"`
	// Resources are the resource ids whose lifecycle events this
	// destination gets (an assignment's destination: its resource).
	Resources []string `yaml:"resources"`
}

// Match reports whether the audit event ev passes the filter.
func (f Filter) Match(ev *schemas.Event) bool {
	return matchList(f.Layers, ev.Layer) && matchList(f.Events, string(ev.Event)) && matchList(f.Hosts, ev.Host)
}

func matchList(list []string, v string) bool { return len(list) == 0 || slices.Contains(list, v) }

// Defaults.
const (
	DefaultAppName          = "opctl"
	DefaultSDName           = "opctl"
	DefaultEnterpriseID     = 32473
	DefaultFacility         = FacilityAuthpriv
	DefaultMaxMessageSize   = 8192
	DefaultMaxInFlight      = 100000
	DefaultMaxInFlightBytes = 64 << 20 // bytes
	DefaultSettle           = 250 * time.Millisecond
	DefaultDialTimeout      = 10 * time.Second
	DefaultWriteTimeout     = 30 * time.Second
	DefaultBackoffMin       = 100 * time.Millisecond
	DefaultBackoffMax       = 30 * time.Second
	DefaultCommitInterval   = time.Second
	DefaultCloseTimeout     = 5 * time.Second
)

// WithDefaults returns c with empty fields set to their defaults.
func (c Config) WithDefaults() Config {
	c.Kafka = c.Kafka.WithDefaults()
	if c.DeadLetterTopic == "" {
		c.DeadLetterTopic = schemas.TopicDeadLetter
	}
	ds := make([]Destination, len(c.Destinations))
	for i, d := range c.Destinations {
		if d.Name == "" && len(c.Destinations) == 1 {
			d.Name = "siem"
		}
		ds[i] = d.WithDefaults()
	}
	c.Destinations = ds
	return c
}

// WithDefaults returns d with empty fields set to their defaults.
func (d Destination) WithDefaults() Destination {
	if d.Group == "" && d.Name != "" {
		d.Group = "auditpipe-forwarder-" + d.Name
	}
	setStr(&d.AppName, DefaultAppName)
	setStr(&d.SDName, DefaultSDName)
	setInt(&d.EnterpriseID, DefaultEnterpriseID)
	if d.Facility == nil {
		v := DefaultFacility
		d.Facility = &v
	}
	setSize(&d.MaxMessageSize, DefaultMaxMessageSize)
	setInt(&d.MaxInFlight, DefaultMaxInFlight)
	setSize(&d.MaxInFlightBytes, DefaultMaxInFlightBytes)
	setDur(&d.Settle, DefaultSettle)
	setDur(&d.DialTimeout, DefaultDialTimeout)
	setDur(&d.WriteTimeout, DefaultWriteTimeout)
	setDur(&d.BackoffMin, DefaultBackoffMin)
	setDur(&d.BackoffMax, DefaultBackoffMax)
	setDur(&d.CommitInterval, DefaultCommitInterval)
	setDur(&d.CloseTimeout, DefaultCloseTimeout)
	return d
}

func setStr(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func setInt(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}

func setSize(p *config.Size, v config.Size) {
	if *p == 0 {
		*p = v
	}
}

func setDur(p *time.Duration, v time.Duration) {
	if *p == 0 {
		*p = v
	}
}

// Validate names every bad field at once, each by its path from the
// forwarder's section ("destinations[1].tls.ca_file"). Call it on a config
// with defaults applied.
func (c Config) Validate() error {
	var errs config.Errors
	switch {
	case c.Assignments.Follow && len(c.Destinations) > 0:
		errs.Addf("forwarder.destinations", "must be empty when forwarder.assignments.follow is on (the assignments name the destinations)")
	case !c.Assignments.Follow && len(c.Destinations) == 0:
		errs.Addf("forwarder.destinations", "at least one destination is required (or forwarder.assignments.follow)")
	}
	if c.Assignments.Follow && len(c.AssignmentKeys) == 0 && c.OwnAssignmentKey == "" {
		errs.Addf("forwarder.assignment_keys", "required while forwarder.assignments.follow is on: the public keys whose assignments are trusted (unsigned assignments are never trusted)")
	}
	for i, path := range c.AssignmentKeys {
		if _, err := sign.LoadPublicKey(path); err != nil {
			errs.Add(config.IndexPath("forwarder.assignment_keys", i), err)
		}
	}
	names := map[string]int{}
	groups := map[string]int{}
	for i, d := range c.Destinations {
		prefix := config.IndexPath("forwarder.destinations", i)
		errs.Merge("", d.Validate(prefix))
		if j, ok := names[d.Name]; ok && d.Name != "" {
			errs.Addf(prefix+".name", "%q is also the name of forwarder.destinations[%d]", d.Name, j)
		}
		names[d.Name] = i
		if j, ok := groups[d.Group]; ok && d.Group != "" {
			errs.Addf(prefix+".group", "%q is also the group of forwarder.destinations[%d]: each destination needs its own", d.Group, j)
		}
		groups[d.Group] = i
	}
	if c.DeadLetterTopic == "" {
		errs.Addf("forwarder.dead_letter_topic", "required")
	}
	return errs.Err()
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Validate names every bad field of d at once, each prefixed with prefix
// (the destination's path, "destinations[0]", or a name for a destination
// built in code).
func (d Destination) Validate(prefix string) error {
	var errs config.Errors
	bad := func(field, format string, args ...any) {
		errs.Addf(config.JoinPath(prefix, field), format, args...)
	}
	if d.Name == "" {
		bad("name", "required when there is more than one destination")
	} else if !nameRE.MatchString(d.Name) {
		bad("name", "%q: want letters, digits, '.', '_' or '-' (at most 63)", d.Name)
	}
	if d.Address == "" {
		bad("address", "required (host:port of the SIEM's syslog TLS listener)")
	} else if host, port, err := net.SplitHostPort(d.Address); err != nil || host == "" || port == "" {
		bad("address", "%q: want host:port", d.Address)
	}
	if d.PlainTCP && (d.TLS != TLS{}) {
		bad("plain_tcp", "TLS settings are given too: choose one")
	}
	if !d.PlainTCP {
		errs.Merge("", d.tlsConfig().Validate(prefix+".tls"))
	}
	if d.Group == "" {
		bad("group", "required")
	}
	for _, k := range d.Filter.Events {
		if !schemas.Kind(k).Valid() && k != EventLifecycle {
			bad("filter.events", "%q is not an event kind (want one of %v, or %s)", k, schemas.Kinds, EventLifecycle)
		}
	}
	for _, r := range d.Filter.Resources {
		if r == "" {
			bad("filter.resources", "an empty resource id")
		}
	}
	if len(d.Filter.topics()) == 0 {
		bad("filter", "selects no event: lifecycle events only, for hosts without resources (name the resources, or drop the hosts)")
	}
	if d.Facility != nil {
		if _, err := newFormatter(d.format()); err != nil {
			errs.Merge(prefix, err)
		}
	}
	if d.MaxInFlight <= 0 {
		bad("max_in_flight", "%d: want > 0", d.MaxInFlight)
	}
	if d.MaxInFlightBytes <= 0 {
		bad("max_in_flight_bytes", "%s: want > 0", d.MaxInFlightBytes)
	}
	durations := []struct {
		field string
		v     time.Duration
	}{
		{"settle", d.Settle}, {"dial_timeout", d.DialTimeout}, {"write_timeout", d.WriteTimeout},
		{"backoff_min", d.BackoffMin}, {"backoff_max", d.BackoffMax}, {"commit_interval", d.CommitInterval},
		{"close_timeout", d.CloseTimeout},
	}
	for _, x := range durations {
		if x.v <= 0 {
			bad(x.field, "%s: want > 0", config.FormatDuration(x.v))
		}
	}
	if d.BackoffMax < d.BackoffMin {
		bad("backoff_max", "%s is less than backoff_min %s", config.FormatDuration(d.BackoffMax), config.FormatDuration(d.BackoffMin))
	}
	return errs.Err()
}

func (d Destination) format() Format {
	f := Format{AppName: d.AppName, SDName: d.SDName, EnterpriseID: d.EnterpriseID, MaxSize: d.MaxMessageSize.Bytes()}
	if d.Facility != nil {
		f.Facility = *d.Facility
	}
	f.Severities = map[Class]int{}
	if d.Severity != nil {
		for _, c := range Classes() {
			f.Severities[c] = *d.Severity
		}
	}
	for c, v := range d.Severities {
		f.Severities[c] = v
	}
	return f
}

func (d Destination) tlsConfig() tlsconfig.Config {
	return tlsconfig.Config{
		Enabled:            !d.PlainTCP,
		CAFile:             d.TLS.CAFile,
		CertFile:           d.TLS.CertFile,
		KeyFile:            d.TLS.KeyFile,
		ServerName:         d.TLS.ServerName,
		InsecureSkipVerify: d.TLS.InsecureSkipVerify,
	}
}

// newDialer builds the dialer of a validated destination.
func (d Destination) newDialer() (*dialer, error) {
	tc, err := d.tlsConfig().Build()
	if err != nil {
		return nil, fmt.Errorf("destination %s: %w", d.Name, err)
	}
	return &dialer{addr: d.Address, tls: tlsFor(tc, d.Address), timeout: d.DialTimeout}, nil
}

func (d Destination) sinkConfig(dl *dialer) sinkConfig {
	return sinkConfig{
		name: d.Name, dialer: dl, settle: d.Settle, writeTimeout: d.WriteTimeout,
		backoffMin: d.BackoffMin, backoffMax: d.BackoffMax, closeTimeout: d.CloseTimeout,
	}
}
