package forwarder

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/config"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/siemtest"
)

// errPaths returns the field paths a Validate error names, in its order
// (one per error: a path named twice is listed twice); nil for nil.
func errPaths(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var l config.ErrorList
	if !errors.As(err, &l) {
		t.Fatalf("error %v (%T) is not a config.ErrorList", err, err)
	}
	var paths []string
	for _, fe := range l {
		paths = append(paths, fe.Path)
	}
	return paths
}

// Mutation testing (issue 15) of config.go: each check of
// Destination.Validate is made to fail alone, on a destination with its
// defaults applied and then one field changed, and the error must name
// that field and no other; the values at the edge of what is accepted (1,
// 1ns, backoff_max == backoff_min, the lifecycle event kind) must pass.
// TestConfigValidate changes fields before the defaults are applied, so a
// zero there is replaced by the default and never reaches a "> 0" check.
// Mutants killed: config.go:318:12, 323:15, 325:65, 325:80, 325:94,
// 328:26, 334:13, 338:36, 343:8, 347:28, 350:16 (CONDITIONALS_NEGATION),
// 355:19, 358:24, 370:10, 374:18 (CONDITIONALS_BOUNDARY and NEGATION).
func TestDestinationValidate(t *testing.T) {
	ca := siemtest.NewCA(t, t.TempDir(), "ca")
	good := func() Destination {
		return Destination{Name: "siem", Address: "siem.example:6514", PlainTCP: true}.WithDefaults()
	}
	tests := []struct {
		name string
		edit func(*Destination)
		want []string // the paths named, nil for a valid destination
	}{
		{name: "good"},
		{name: "TLS with a CA", edit: func(d *Destination) { d.PlainTCP, d.TLS.CAFile = false, ca.CertPEM }},
		// tlsconfig's Validate names the field in its message, not as a
		// config.FieldError: the error is recorded at no path.
		{name: "TLS with a bad CA", edit: func(d *Destination) { d.PlainTCP, d.TLS.CAFile = false, "/etc/hosts" }, want: []string{""}},
		{name: "plain with TLS settings", edit: func(d *Destination) { d.TLS.CAFile = ca.CertPEM }, want: []string{"d.plain_tcp"}},
		{name: "no name", edit: func(d *Destination) { d.Name = "" }, want: []string{"d.name"}},
		{name: "bad name", edit: func(d *Destination) { d.Name = "a b" }, want: []string{"d.name"}},
		{name: "no address", edit: func(d *Destination) { d.Address = "" }, want: []string{"d.address"}},
		{name: "address without host:port", edit: func(d *Destination) { d.Address = "siem" }, want: []string{"d.address"}},
		{name: "address without host", edit: func(d *Destination) { d.Address = ":6514" }, want: []string{"d.address"}},
		{name: "address without port", edit: func(d *Destination) { d.Address = "siem:" }, want: []string{"d.address"}},
		{name: "no group", edit: func(d *Destination) { d.Group = "" }, want: []string{"d.group"}},
		{name: "lifecycle events", edit: func(d *Destination) { d.Filter.Events = []string{"lifecycle"} }},
		{name: "bad event kind", edit: func(d *Destination) { d.Filter.Events = []string{"login", "logon"} }, want: []string{"d.filter.events"}},
		{name: "resources", edit: func(d *Destination) { d.Filter.Resources = []string{"r1"} }},
		{name: "empty resource", edit: func(d *Destination) { d.Filter.Resources = []string{"r1", ""} }, want: []string{"d.filter.resources"}},
		{name: "lifecycle only, for hosts", edit: func(d *Destination) {
			d.Filter.Events, d.Filter.Hosts = []string{"lifecycle"}, []string{"h1"}
		}, want: []string{"d.filter"}},
		// Validate's documented input has defaults applied; a destination
		// built in code without them is checked without its formatter.
		{name: "no facility, no formatter check", edit: func(d *Destination) { d.Facility, d.AppName = nil, "" }},
		{name: "bad app name", edit: func(d *Destination) { d.AppName = "op ctl" }, want: []string{"d"}},
		{name: "max_in_flight 1", edit: func(d *Destination) { d.MaxInFlight = 1 }},
		{name: "max_in_flight 0", edit: func(d *Destination) { d.MaxInFlight = 0 }, want: []string{"d.max_in_flight"}},
		{name: "max_in_flight_bytes 1", edit: func(d *Destination) { d.MaxInFlightBytes = 1 }},
		{name: "max_in_flight_bytes 0", edit: func(d *Destination) { d.MaxInFlightBytes = 0 }, want: []string{"d.max_in_flight_bytes"}},
		{name: "durations of 1ns", edit: func(d *Destination) {
			d.Settle, d.DialTimeout, d.WriteTimeout, d.BackoffMin, d.BackoffMax, d.CommitInterval, d.CloseTimeout = 1, 1, 1, 1, 1, 1, 1
		}},
		{name: "durations of 0", edit: func(d *Destination) {
			d.Settle, d.DialTimeout, d.WriteTimeout, d.BackoffMin, d.BackoffMax, d.CommitInterval, d.CloseTimeout = 0, 0, 0, 0, 0, 0, 0
		}, want: []string{"d.backoff_max", "d.backoff_min", "d.close_timeout", "d.commit_interval", "d.dial_timeout", "d.settle", "d.write_timeout"}},
		{name: "backoff_max = backoff_min", edit: func(d *Destination) { d.BackoffMin, d.BackoffMax = time.Second, time.Second }},
		{name: "backoff_max < backoff_min", edit: func(d *Destination) { d.BackoffMin, d.BackoffMax = time.Second, time.Second-1 }, want: []string{"d.backoff_max"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := good()
			if tc.edit != nil {
				tc.edit(&d)
			}
			err := d.Validate("d")
			if got := errPaths(t, err); !slices.Equal(got, tc.want) {
				t.Fatalf("error names %q, want %q (%v)", got, tc.want, err)
			}
		})
	}
}

// Mutation testing (issue 15) of config.go: WithDefaults sets only the
// empty fields (a set one is kept), and the destination's name defaults to
// "siem" only when it is the only one. TestConfigValidate checks a few
// defaults of a destination with none set.
// Mutants killed: config.go:206:23, 211:13, 211:42, 222:13, 222:29, 228:16,
// 246:8, 252:8, 258:8, 264:8 (CONDITIONALS_NEGATION).
func TestWithDefaults(t *testing.T) {
	facility := 16
	set := Destination{
		Name: "a", Group: "g", AppName: "app", SDName: "sd", EnterpriseID: 1, Facility: &facility,
		MaxMessageSize: 1000, MaxInFlight: 2, MaxInFlightBytes: 3, Settle: 4, DialTimeout: 5, WriteTimeout: 6,
		BackoffMin: 7, BackoffMax: 8, CommitInterval: 9, CloseTimeout: 10,
	}
	if got := set.WithDefaults(); !equalDestinations(got, set) {
		t.Errorf("WithDefaults changed set fields:\n got %+v\nwant %+v", got, set)
	}
	def := DefaultFacility
	defaults := Destination{
		Name: "siem", Group: "auditpipe-forwarder-siem", AppName: DefaultAppName, SDName: DefaultSDName,
		EnterpriseID: DefaultEnterpriseID, Facility: &def, MaxMessageSize: DefaultMaxMessageSize,
		MaxInFlight: DefaultMaxInFlight, MaxInFlightBytes: DefaultMaxInFlightBytes, Settle: DefaultSettle,
		DialTimeout: DefaultDialTimeout, WriteTimeout: DefaultWriteTimeout, BackoffMin: DefaultBackoffMin,
		BackoffMax: DefaultBackoffMax, CommitInterval: DefaultCommitInterval, CloseTimeout: DefaultCloseTimeout,
	}
	if got := (Destination{Name: "siem"}).WithDefaults(); !equalDestinations(got, defaults) {
		t.Errorf("defaults:\n got %+v\nwant %+v", got, defaults)
	}
	if got := (Destination{}).WithDefaults(); got.Group != "" {
		t.Errorf("an unnamed destination got the group %q: it has no name to make it from", got.Group)
	}

	tests := []struct {
		name      string
		c         Config
		wantNames []string
		wantDLT   string
	}{
		{"one unnamed", Config{Destinations: []Destination{{}}}, []string{"siem"}, "opctl.deadletter.v1"},
		{"one named", Config{Destinations: []Destination{{Name: "x"}}, DeadLetterTopic: "dl"}, []string{"x"}, "dl"},
		{"two unnamed", Config{Destinations: []Destination{{}, {}}}, []string{"", ""}, "opctl.deadletter.v1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c.WithDefaults()
			var names []string
			for _, d := range c.Destinations {
				names = append(names, d.Name)
			}
			if !slices.Equal(names, tc.wantNames) || c.DeadLetterTopic != tc.wantDLT {
				t.Errorf("names %q, dead-letter topic %q; want %q, %q", names, c.DeadLetterTopic, tc.wantNames, tc.wantDLT)
			}
		})
	}
}

// equalDestinations compares the fields WithDefaults sets (the facility by
// value).
func equalDestinations(a, b Destination) bool {
	if (a.Facility == nil) != (b.Facility == nil) || a.Facility != nil && *a.Facility != *b.Facility {
		return false
	}
	a.Facility, b.Facility = nil, nil
	return a.Name == b.Name && a.Group == b.Group && a.AppName == b.AppName && a.SDName == b.SDName &&
		a.EnterpriseID == b.EnterpriseID && a.MaxMessageSize == b.MaxMessageSize && a.MaxInFlight == b.MaxInFlight &&
		a.MaxInFlightBytes == b.MaxInFlightBytes && a.Settle == b.Settle && a.DialTimeout == b.DialTimeout &&
		a.WriteTimeout == b.WriteTimeout && a.BackoffMin == b.BackoffMin && a.BackoffMax == b.BackoffMax &&
		a.CommitInterval == b.CommitInterval && a.CloseTimeout == b.CloseTimeout
}

// Mutation testing (issue 15) of config.go: Config.Validate's checks
// across destinations and of the assignments, each alone, naming exactly
// its field. TestConfigValidate checks that a message contains a path,
// which a check adding a second, wrong error still passes.
// Mutants killed: config.go:275:51, 277:52, 280:51, 280:78, 284:46, 293:43,
// 297:46, 302:23 (CONDITIONALS_NEGATION).
func TestConfigValidateAcrossDestinations(t *testing.T) {
	dir := t.TempDir()
	_, pub := assignmentKey(t, dir)
	dest := func(name, group string) Destination {
		return Destination{Name: name, Group: group, Address: "siem.example:6514", PlainTCP: true}.WithDefaults()
	}
	good := func() Config {
		return Config{Kafka: kafka.Config{Brokers: []string{"127.0.0.1:9092"}}, Destinations: []Destination{dest("a", "")}}.WithDefaults()
	}
	tests := []struct {
		name string
		edit func(*Config)
		want []string
	}{
		{name: "good"},
		{name: "no destinations", edit: func(c *Config) { c.Destinations = nil }, want: []string{"forwarder.destinations"}},
		{name: "following", edit: func(c *Config) {
			c.Destinations, c.Assignments.Follow, c.AssignmentKeys = nil, true, []string{pub}
		}},
		{name: "following, the all-in-one's own key", edit: func(c *Config) {
			c.Destinations, c.Assignments.Follow, c.OwnAssignmentKey = nil, true, pub
		}},
		{name: "following without keys", edit: func(c *Config) {
			c.Destinations, c.Assignments.Follow = nil, true
		}, want: []string{"forwarder.assignment_keys"}},
		{name: "following and destinations", edit: func(c *Config) {
			c.Assignments.Follow, c.AssignmentKeys = true, []string{pub}
		}, want: []string{"forwarder.destinations"}},
		{name: "a bad key", edit: func(c *Config) { c.AssignmentKeys = []string{pub, dir + "/none.pub"} }, want: []string{"forwarder.assignment_keys[1]"}},
		{name: "two", edit: func(c *Config) { c.Destinations = []Destination{dest("a", "ga"), dest("b", "gb")} }},
		{name: "same name", edit: func(c *Config) {
			c.Destinations = []Destination{dest("a", "ga"), dest("a", "gb")}
		}, want: []string{"forwarder.destinations[1].name"}},
		{name: "same group", edit: func(c *Config) {
			c.Destinations = []Destination{dest("a", "g"), dest("b", "g")}
		}, want: []string{"forwarder.destinations[1].group"}},
		{name: "two unnamed, without groups", edit: func(c *Config) {
			c.Destinations = []Destination{dest("", ""), dest("", "")}
		}, want: []string{
			"forwarder.destinations[0].group", "forwarder.destinations[0].name",
			"forwarder.destinations[1].group", "forwarder.destinations[1].name",
		}},
		{name: "no dead-letter topic", edit: func(c *Config) { c.DeadLetterTopic = "" }, want: []string{"forwarder.dead_letter_topic"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			if tc.edit != nil {
				tc.edit(&c)
			}
			err := c.Validate()
			if got := errPaths(t, err); !slices.Equal(got, tc.want) {
				t.Fatalf("error names %q, want %q (%v)", got, tc.want, err)
			}
		})
	}
}

// Mutation testing (issue 15) of config.go: the assignments' keyring is
// the configured keys plus, in target all, the all-in-one's own; a key
// that cannot be read is an error naming forwarder.assignment_keys.
// Mutants killed: config.go:48:24, 52:9 (CONDITIONALS_NEGATION).
func TestAssignmentKeyring(t *testing.T) {
	dir := t.TempDir()
	s1, k1 := assignmentKey(t, dir)
	s2, k2 := assignmentKey(t, dir)
	tests := []struct {
		name    string
		c       Config
		wantIDs []string
	}{
		{"configured", Config{AssignmentKeys: []string{k1}}, []string{s1.KeyID()}},
		{"own", Config{OwnAssignmentKey: k2}, []string{s2.KeyID()}},
		{"both", Config{AssignmentKeys: []string{k1}, OwnAssignmentKey: k2}, []string{s1.KeyID(), s2.KeyID()}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kr, err := tc.c.assignmentKeyring()
			if err != nil {
				t.Fatal(err)
			}
			got, want := kr.IDs(), slices.Clone(tc.wantIDs)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("keyring %q, want %q", got, want)
			}
		})
	}
	if _, err := (Config{AssignmentKeys: []string{dir + "/none.pub"}}).assignmentKeyring(); err == nil {
		t.Error("a missing key file: no error")
	} else if !strings.HasPrefix(err.Error(), "forwarder.assignment_keys: ") {
		t.Errorf("error %v, want one naming forwarder.assignment_keys", err)
	}
}
