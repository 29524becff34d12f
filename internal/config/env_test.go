package config

import "testing"

func TestExpand(t *testing.T) {
	env := envOf(map[string]string{"A": "x", "EMPTY": "", "B_2": "y"})
	tests := []struct{ in, want, err string }{
		{in: "plain", want: "plain"},
		{in: "${A}", want: "x"},
		{in: "pre${A}post${B_2}", want: "prexposty"},
		{in: "${NOPE:-dflt}", want: "dflt"},
		{in: "${EMPTY:-dflt}", want: "dflt"},
		{in: "${EMPTY}", want: ""},
		{in: "${A:-dflt}", want: "x"},
		{in: "${NOPE:-}", want: ""},
		{in: "${NOPE:-a:-b}", want: "a:-b"},
		{in: "$$", want: "$"},
		{in: "$${A}", want: "${A}"},
		{in: "$$$${A}", want: "$${A}"},
		{in: "$A $ end$", want: "$A $ end$"},
		{in: "${NOPE}", err: "environment variable NOPE is not set (write ${NOPE:-default} for a default)"},
		{in: "${}", err: `${}: "" is not an environment variable name (letters, digits and _, not starting with a digit)`},
		{in: "${A-B}", err: `${A-B}: "A-B" is not an environment variable name (letters, digits and _, not starting with a digit)`},
		{in: "x${A", err: `"${A": ${ without a closing }`},
	}
	for _, tt := range tests {
		got, err := Expand(tt.in, env)
		switch {
		case tt.err != "" && (err == nil || err.Error() != tt.err):
			t.Errorf("Expand(%q) error %v, want %s", tt.in, err, tt.err)
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("Expand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestEscapeDollarsIsUndoneByExpand(t *testing.T) {
	for _, s := range []string{"", "$", "$$", "${A}", "a$b${c:-d}$"} {
		got, err := Expand(escapeDollars(s), noEnv)
		if err != nil || got != s {
			t.Errorf("Expand(escapeDollars(%q)) = %q, %v", s, got, err)
		}
	}
}
