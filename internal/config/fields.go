package config

import (
	"fmt"
	"reflect"
	"strings"
)

// field is one YAML key of a struct.
type field struct {
	name  string // the YAML name
	index []int  // for reflect.Value.FieldByIndex, through inline structs
	doc   string // the doc tag
}

// structFields lists the YAML keys of struct type t in field order, as
// yaml.v3 names them: the yaml tag's name, else the Go name in lower case;
// "-" skips a field, ",inline" lifts a struct's fields into its parent, and
// other options (omitempty, flow) do not matter when decoding.
func structFields(t reflect.Type) ([]field, error) {
	var out []field
	seen := map[string]bool{}
	var walk func(t reflect.Type, index []int) error
	walk = func(t reflect.Type, index []int) error {
		for i := range t.NumField() {
			sf := t.Field(i)
			tag := sf.Tag.Get("yaml")
			if tag == "-" || !sf.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			idx := append(append([]int(nil), index...), i)
			if hasOpt(opts, "inline") {
				if sf.Type.Kind() != reflect.Struct {
					return fmt.Errorf("config: %s.%s: only a struct can be inline", t, sf.Name)
				}
				if err := walk(sf.Type, idx); err != nil {
					return err
				}
				continue
			}
			if name == "" {
				name = strings.ToLower(sf.Name)
			}
			if seen[name] {
				return fmt.Errorf("config: %s: two fields are named %q", t, name)
			}
			seen[name] = true
			out = append(out, field{name: name, index: idx, doc: sf.Tag.Get("doc")})
		}
		return nil
	}
	if err := walk(t, nil); err != nil {
		return nil, err
	}
	return out, nil
}

func hasOpt(opts, want string) bool {
	for o := range strings.SplitSeq(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}
