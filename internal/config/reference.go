package config

import (
	"bytes"
	"encoding"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

const referenceNS = "config: Reference"

var (
	secretType = reflect.TypeFor[Secret]()
	marshalerT = reflect.TypeFor[yaml.Marshaler]()
	textMarshT = reflect.TypeFor[encoding.TextMarshaler]()
)

// Reference renders v, a configuration holding its defaults (a struct or
// a pointer to one), as a YAML file with every field present: the
// reference that "auditpipe config defaults" prints. A field's doc tag
// (`doc:"…"`) becomes the comment above it. Durations are written by
// FormatDuration, a Size in human units, types with MarshalYAML or
// MarshalText by those, a nil pointer as null, an empty map or list as {}
// or [], and a Secret always as "" (never its value). A $ in a value is
// written $$, so that Decode reads the value back and not an environment
// variable.
//
// Decode(Reference(c)) onto any configuration of the same type gives c
// back, for c without secrets.
func Reference(v any) ([]byte, error) {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil, fmt.Errorf("%s: nil %T", referenceNS, v)
		}
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%s: want a struct, not %T", referenceNS, v)
	}
	n, err := referenceNode("", rv)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, fmt.Errorf("%s: %w", referenceNS, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("%s: %w", referenceNS, err)
	}
	return buf.Bytes(), nil
}

func strNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: escapeDollars(s)}
}

func referenceNode(path string, v reflect.Value) (*yaml.Node, error) {
	t := v.Type()
	switch {
	case t == secretType:
		return strNode(""), nil
	case t.Kind() == reflect.Pointer:
		if v.IsNil() {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
		}
		return referenceNode(path, v.Elem())
	case t == durationType:
		return strNode(FormatDuration(time.Duration(v.Int()))), nil
	case t.Implements(marshalerT):
		out, err := v.Interface().(yaml.Marshaler).MarshalYAML()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", referenceNS, path, err)
		}
		var n yaml.Node
		if err := n.Encode(out); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", referenceNS, path, err)
		}
		escapeValues(&n)
		return &n, nil
	case t.Implements(textMarshT):
		b, err := v.Interface().(encoding.TextMarshaler).MarshalText()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", referenceNS, path, err)
		}
		return strNode(string(b)), nil
	}
	switch t.Kind() {
	case reflect.Struct:
		fields, err := structFields(t)
		if err != nil {
			return nil, err
		}
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for _, f := range fields {
			c, err := referenceNode(JoinPath(path, f.name), v.FieldByIndex(f.index))
			if err != nil {
				return nil, err
			}
			k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: f.name, HeadComment: f.doc}
			n.Content = append(n.Content, k, c)
		}
		if len(n.Content) == 0 {
			n.Style = yaml.FlowStyle
		}
		return n, nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("%s: %s: a map with %s keys cannot be written", referenceNS, path, t.Key().Kind())
		}
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			c, err := referenceNode(KeyPath(path, k.String()), v.MapIndex(k))
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k.String()}, c)
		}
		if len(keys) == 0 {
			n.Style = yaml.FlowStyle
		}
		return n, nil
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for i := range v.Len() {
			c, err := referenceNode(IndexPath(path, i), v.Index(i))
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, c)
		}
		if v.Len() == 0 {
			n.Style = yaml.FlowStyle
		}
		return n, nil
	case reflect.String:
		return strNode(v.String()), nil
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		var n yaml.Node
		if err := n.Encode(v.Interface()); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", referenceNS, path, err)
		}
		return &n, nil
	}
	return nil, fmt.Errorf("%s: %s: a %s cannot be written", referenceNS, path, t.Kind())
}

// escapeValues doubles the $ of every value scalar under n (not keys).
func escapeValues(n *yaml.Node) {
	switch n.Kind {
	case yaml.ScalarNode:
		n.Value = escapeDollars(n.Value)
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			escapeValues(n.Content[i])
		}
	default:
		for _, c := range n.Content {
			escapeValues(c)
		}
	}
}
