package forwarder

import (
	"slices"
	"testing"

	"github.com/auditpipe/auditpipe/schemas"
)

// filterEvent names an event by the fields a Filter looks at.
type filterEvent struct {
	kind  schemas.Kind
	layer string
	host  string
}

// cross returns every event with a kind, layer and host from the lists.
func cross(kinds []schemas.Kind, layers, hosts []string) []filterEvent {
	var out []filterEvent
	for _, k := range kinds {
		for _, l := range layers {
			for _, h := range hosts {
				out = append(out, filterEvent{k, l, h})
			}
		}
	}
	return out
}

// Bug (issue 15, mutant): a Filter that checks only the hosts passed every
// test, since every test event was a command of layer HOST. Each field is
// checked here alone and together, with one-element and longer lists,
// against events of every kind (login, logout, command, keys), of two
// layers and two hosts.
func TestFilterMatch(t *testing.T) {
	layers, hosts := []string{"CPS", "HOST"}, []string{"h1", "h2"}
	all := cross(schemas.Kinds, layers, hosts)
	tests := []struct {
		name   string
		filter Filter
		want   []filterEvent
	}{
		{"empty matches everything", Filter{}, all},
		{"layer", Filter{Layers: []string{"CPS"}}, cross(schemas.Kinds, []string{"CPS"}, hosts)},
		{"layers", Filter{Layers: []string{"CELL", "HOST"}}, cross(schemas.Kinds, []string{"HOST"}, hosts)},
		{"no such layer", Filter{Layers: []string{"ILOM"}}, nil},
		{"login", Filter{Events: []string{"login"}}, cross([]schemas.Kind{schemas.KindLogin}, layers, hosts)},
		{"logout", Filter{Events: []string{"logout"}}, cross([]schemas.Kind{schemas.KindLogout}, layers, hosts)},
		{"command", Filter{Events: []string{"command"}}, cross([]schemas.Kind{schemas.KindCommand}, layers, hosts)},
		{"keys", Filter{Events: []string{"keys"}}, cross([]schemas.Kind{schemas.KindKeys}, layers, hosts)},
		{"sessions", Filter{Events: []string{"login", "logout"}}, cross([]schemas.Kind{schemas.KindLogin, schemas.KindLogout}, layers, hosts)},
		{"host", Filter{Hosts: []string{"h2"}}, cross(schemas.Kinds, layers, []string{"h2"})},
		{"hosts", Filter{Hosts: []string{"h1", "h3"}}, cross(schemas.Kinds, layers, []string{"h1"})},
		{"every field", Filter{Layers: []string{"HOST"}, Events: []string{"keys", "command"}, Hosts: []string{"h1"}},
			cross([]schemas.Kind{schemas.KindCommand, schemas.KindKeys}, []string{"HOST"}, []string{"h1"})},
		{"layer and kind", Filter{Layers: []string{"CPS"}, Events: []string{"logout"}},
			cross([]schemas.Kind{schemas.KindLogout}, []string{"CPS"}, hosts)},
		{"kind and host", Filter{Events: []string{"login"}, Hosts: []string{"h2"}},
			cross([]schemas.Kind{schemas.KindLogin}, layers, []string{"h2"})},
		{"layer and host", Filter{Layers: []string{"HOST"}, Hosts: []string{"h2"}},
			cross(schemas.Kinds, []string{"HOST"}, []string{"h2"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, e := range all {
				ev := &schemas.Event{Event: e.kind, Layer: e.layer, Host: e.host}
				if got, want := tt.filter.Match(ev), slices.Contains(tt.want, e); got != want {
					t.Errorf("%+v.Match(%s %s %s) = %v, want %v", tt.filter, e.kind, e.layer, e.host, got, want)
				}
			}
		})
	}
}
