package config

import (
	"fmt"
	"log/slog"
	"strconv"
)

// redacted is what a non-empty Secret prints as.
const redacted = "REDACTED"

// Secret is a string (a password, a token, a key) that never prints: fmt
// with any verb, slog, JSON, YAML and text marshalling, and flag defaults
// all show "REDACTED", or "" for an empty secret so that "not set" stays
// visible. Reveal returns the value for the code that needs it.
//
// fmt cannot call methods on unexported struct fields: keep a Secret in an
// exported field, or it prints as the plain string in %v of its struct.
type Secret string

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// String returns "REDACTED", or "" for an empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString is String, for %#v.
func (s Secret) GoString() string { return s.String() }

// Format writes String for every verb; %q quotes it.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		_, _ = f.Write([]byte(strconv.Quote(s.String())))
		return
	}
	_, _ = f.Write([]byte(s.String()))
}

// LogValue is String, for slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText is String, for encoders that use encoding.TextMarshaler.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalJSON writes String as a JSON string.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(s.String())), nil }

// MarshalYAML writes String.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// Set sets the secret from a flag, so that a *Secret is a flag.Value whose
// default flag.PrintDefaults shows as REDACTED at most.
func (s *Secret) Set(v string) error {
	*s = Secret(v)
	return nil
}
