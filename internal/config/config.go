// Package config is the configuration library every component's config
// rests on. Decode and Load read YAML strictly onto a struct that holds the
// defaults, and report every problem at once, each with the field's path
// from the root in YAML names and words for humans:
//
//	collector.input.pathh: unknown field; did you mean "path"?
//	collector.flush_interval: "abc" is not a duration (like 30s, 5m, 7d)
//
// Values may use ${ENV} and ${ENV:-default}; durations may use days and
// weeks (ParseDuration); byte counts are a Size ("512MiB"); passwords and
// tokens are a Secret, which never prints. Components collect their
// Validate errors with Errors, and Reference renders a configuration with
// every default as a commented YAML file.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"

	"go.yaml.in/yaml/v3"
)

// ExitConfig is the exit status of a command that stops on a bad
// configuration: sysexits' EX_CONFIG, as Vector's "validate" uses it.
const ExitConfig = 78

// Load decodes the YAML file at path into v, which holds the defaults
// beforehand. An empty path leaves v as it is. The error of a bad file is
// the path followed by Decode's error.
func Load(path string, v any) error {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := Decode(b, v); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// Decode decodes one YAML document onto v, a non-nil pointer to the
// configuration holding its defaults, strictly:
//
//   - Struct fields are named by their yaml tag (",inline" lifts an inner
//     struct's fields, "-" hides a field), else by the lower-cased Go
//     name. A key that names no field is an error, with the nearest name
//     suggested.
//   - A null (an empty value, ~ or null) keeps the default. A scalar is
//     converted from its text whether quoted or not: "8080" sets an int.
//     Integers are range-checked for the field; booleans are true/false
//     (yes/no and on/off too); time.Duration takes ParseDuration's forms.
//   - A pointer is allocated (a copy of the default it held); a map adds
//     to (a copy of) the default map; a list replaces the default list.
//   - Types implementing yaml.Unmarshaler or encoding.TextUnmarshaler
//     decode themselves; their error is reported at the field's path.
//   - ${NAME} and ${NAME:-default} in values (never in keys) are
//     substituted from the environment before conversion, $$ is one $
//     (see Expand).
//   - Anchors and aliases resolve as yaml.v3 resolves them, and merge keys
//     (<<: *base, or <<: [*a, *b]) bring in the keys the mapping does not
//     set itself, the first source winning. A key set twice is an error.
//
// Every error is found in one pass: the result is an ErrorList of
// *FieldError sorted by path. A YAML syntax error stops decoding and is
// returned as yaml.v3 words it, with its line. An empty document leaves v
// as it is; a second document is an error.
func Decode(b []byte, v any) error {
	return decode(b, v, os.LookupEnv)
}

func decode(b []byte, v any, lookupEnv func(string) (string, bool)) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("config: Decode needs a non-nil pointer, not %T", v)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return fmt.Errorf("config: %w", err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return fmt.Errorf("config: line %d: a second YAML document; a configuration file holds one", next.Line)
	case !errors.Is(err, io.EOF):
		return fmt.Errorf("config: %w", err)
	}
	d := &decoder{lookupEnv: lookupEnv, active: map[*yaml.Node]bool{}}
	d.value("", &doc, rv.Elem())
	return d.errs.Err()
}
