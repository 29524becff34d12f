package forwarder

import (
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/schemas"
)

// TestPriority is the README's priority table: facility authpriv (10) by
// default, the severity from what the event says happened, each overridable.
func TestPriority(t *testing.T) {
	login := func(res string) *schemas.Event {
		ev := loginEvent()
		ev.Res = res
		return ev
	}
	command := func(exe string, args []string, res string) *schemas.Event {
		ev := loginEvent()
		ev.Event, ev.Exe, ev.Args, ev.Res = schemas.KindCommand, exe, args, res
		return ev
	}
	kind := func(k schemas.Kind) *schemas.Event {
		ev := loginEvent()
		ev.Event = k
		return ev
	}
	tests := []struct {
		name       string
		ev         *schemas.Event
		severity   *int
		severities map[Class]int
		facility   int
		wantPRI    string
	}{
		{name: "login", ev: login("success"), wantPRI: "<86>"},
		{name: "failed login is a warning", ev: login("failed"), wantPRI: "<84>"},
		{name: "logout", ev: kind(schemas.KindLogout), wantPRI: "<86>"},
		{name: "command", ev: command("/usr/bin/ls", []string{"ls"}, "success"), wantPRI: "<86>"},
		{name: "failed command is a notice", ev: command("/usr/bin/cat", []string{"cat", "/etc/shadow"}, "failed"), wantPRI: "<85>"},
		{name: "refused sudo is a warning", ev: command("/usr/bin/sudo", []string{"sudo", "-i"}, "failed"), wantPRI: "<84>"},
		{name: "refused su by argv[0]", ev: command("", []string{"su", "-"}, "failed"), wantPRI: "<84>"},
		{name: "sudo that succeeded", ev: command("/usr/bin/sudo", []string{"sudo", "id"}, "success"), wantPRI: "<86>"},
		{name: "keys", ev: kind(schemas.KindKeys), wantPRI: "<86>"},
		{name: "facility local0", ev: login("failed"), facility: 16, wantPRI: "<132>"},
		{name: "one severity for all", ev: login("failed"), severity: ptr(6), wantPRI: "<86>"},
		{name: "per-class override", ev: command("/usr/bin/cat", nil, "failed"), severities: map[Class]int{ClassCommandFailed: 3}, wantPRI: "<83>"},
		{name: "override after severity", ev: login("failed"), severity: ptr(6), severities: map[Class]int{ClassLoginFailed: 2}, wantPRI: "<82>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Destination{Name: "siem", Address: "siem:6514", Severity: tc.severity, Severities: tc.severities}
			if tc.facility != 0 {
				d.Facility = &tc.facility
			}
			d = d.WithDefaults()
			if err := d.Validate("siem"); err != nil {
				t.Fatal(err)
			}
			fm, err := newFormatter(d.format())
			if err != nil {
				t.Fatal(err)
			}
			frames, err := fm.frames(tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			msg := string(unframe(t, frames[0]))
			if !strings.HasPrefix(msg, tc.wantPRI+"1 ") {
				t.Fatalf("message %q, want PRI %s", msg[:min(len(msg), 40)], tc.wantPRI)
			}
			parse(t, []byte(msg)) // and go-syslog agrees it is RFC 5424
		})
	}
}

func ptr(v int) *int { return &v }

// TestPriorityValidation: a bad class or severity names the field.
func TestPriorityValidation(t *testing.T) {
	tests := []struct {
		name string
		d    Destination
		want string
	}{
		{"unknown class", Destination{Severities: map[Class]int{"sudo": 4}}, `severities: "sudo" is not an event class`},
		{"severity 8", Destination{Severities: map[Class]int{ClassKeys: 8}}, "severities.keys 8: want 0..7"},
		{"facility 24", Destination{Facility: ptr(24)}, "facility 24: want 0..23"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.d.Name, tc.d.Address = "siem", "siem:6514"
			err := tc.d.WithDefaults().Validate("destinations[0]")
			if err == nil || !strings.Contains(err.Error(), "destinations[0]: "+tc.want) {
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
		})
	}
}
