package config

import (
	"encoding"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxValues bounds the values one document may decode into, aliases
// expanded, so that a few lines of nested aliases cannot take the process.
const maxValues = 100_000

var (
	durationType = reflect.TypeFor[time.Duration]()
	unmarshalerT = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshT = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// decoder walks a yaml.Node tree and a reflect.Value together, recording
// every error with its field path instead of stopping at the first.
type decoder struct {
	lookupEnv func(string) (string, bool)
	errs      Errors
	values    int
	active    map[*yaml.Node]bool // anchored nodes being decoded: an alias to one is a cycle
}

func (d *decoder) fail(path string, n *yaml.Node, format string, args ...any) {
	d.errs.list = append(d.errs.list, &FieldError{Path: path, Line: n.Line, Err: fmt.Errorf(format, args...)})
}

func (d *decoder) failErr(path string, n *yaml.Node, err error) {
	d.errs.list = append(d.errs.list, &FieldError{Path: path, Line: n.Line, Err: err})
}

// value decodes n into v, which is settable and addressable and holds the
// default.
func (d *decoder) value(path string, n *yaml.Node, v reflect.Value) {
	if d.values++; d.values > maxValues {
		if d.values == maxValues+1 {
			d.fail(path, n, "the document expands to more than %d values (aliases?)", maxValues)
		}
		return
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) > 0 {
			d.value(path, n.Content[0], v)
		}
		return
	case yaml.AliasNode:
		if d.active[n.Alias] {
			d.fail(path, n, "alias *%s refers to a value that contains it", n.Value)
			return
		}
		d.value(path, n.Alias, v)
		return
	}
	if n.Anchor != "" {
		d.active[n] = true
		defer delete(d.active, n)
	}
	if isNull(n) {
		return // null keeps the default
	}
	t := v.Type()
	if t.Kind() == reflect.Pointer {
		// Decode into a fresh copy, so that a default shared between two
		// configurations is never changed behind their back.
		p := reflect.New(t.Elem())
		if !v.IsNil() {
			p.Elem().Set(v.Elem())
		}
		d.value(path, n, p.Elem())
		v.Set(p)
		return
	}
	switch {
	case reflect.PointerTo(t).Implements(unmarshalerT):
		d.unmarshaler(path, n, v.Addr().Interface().(yaml.Unmarshaler))
		return
	case reflect.PointerTo(t).Implements(textUnmarshT):
		s, ok := d.scalarText(path, n, "a single value")
		if !ok {
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			d.failErr(path, n, err)
		}
		return
	case t == durationType:
		s, ok := d.scalarText(path, n, "a duration (like 30s, 5m, 7d)")
		if !ok {
			return
		}
		dur, err := ParseDuration(s)
		if err != nil {
			d.failErr(path, n, err)
			return
		}
		v.SetInt(int64(dur))
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		d.structure(path, n, v)
	case reflect.Map:
		d.mapping(path, n, v)
	case reflect.Slice:
		d.sequence(path, n, v)
	default:
		d.scalar(path, n, v)
	}
}

// unmarshaler hands n, its values expanded, to a yaml.Unmarshaler.
func (d *decoder) unmarshaler(path string, n *yaml.Node, u yaml.Unmarshaler) {
	c, ok := d.expandNode(path, n, map[*yaml.Node]*yaml.Node{})
	if !ok {
		return
	}
	if err := u.UnmarshalYAML(c); err != nil {
		d.failErr(path, n, err)
	}
}

// expandNode returns a deep copy of n with aliases resolved and scalar
// values expanded (keys stay as written).
func (d *decoder) expandNode(path string, n *yaml.Node, seen map[*yaml.Node]*yaml.Node) (*yaml.Node, bool) {
	if n.Kind == yaml.AliasNode {
		if d.active[n.Alias] || seen[n.Alias] != nil {
			d.fail(path, n, "alias *%s refers to a value that contains it", n.Value)
			return nil, false
		}
		n = n.Alias
	}
	c := *n
	seen[n] = &c
	defer delete(seen, n)
	if n.Kind == yaml.ScalarNode {
		if isNull(n) {
			return &c, true
		}
		s, err := Expand(n.Value, d.lookupEnv)
		if err != nil {
			d.failErr(path, n, err)
			return nil, false
		}
		if s != n.Value && n.Style&yaml.TaggedStyle == 0 && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
			c.Tag = "" // let yaml resolve the substituted text
		}
		c.Value = s
		return &c, true
	}
	c.Content = make([]*yaml.Node, len(n.Content))
	ok := true
	for i, x := range n.Content {
		if n.Kind == yaml.MappingNode && i%2 == 0 {
			c.Content[i] = x
			continue
		}
		var good bool
		if c.Content[i], good = d.expandNode(path, x, seen); !good {
			ok = false
		}
	}
	return &c, ok
}

// scalarText returns the expanded text of a scalar node, or records that
// n is not want.
func (d *decoder) scalarText(path string, n *yaml.Node, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(path, n, "%s is not %s", describeNode(n), want)
		return "", false
	}
	s, err := Expand(n.Value, d.lookupEnv)
	if err != nil {
		d.failErr(path, n, err)
		return "", false
	}
	return s, true
}

// scalar decodes a string, bool, integer or float.
func (d *decoder) scalar(path string, n *yaml.Node, v reflect.Value) {
	want := describeType(v.Type())
	if want == "" {
		d.fail(path, n, "cannot be set from a configuration file (a field of Go kind %s)", v.Kind())
		return
	}
	s, ok := d.scalarText(path, n, want)
	if !ok {
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, ok := parseBool(s)
		if !ok {
			d.fail(path, n, "%q is not true or false", s)
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		bits := v.Type().Bits()
		lo, hi := int64(-1)<<(bits-1), int64(1)<<(bits-1)-1
		i, err := strconv.ParseInt(s, 0, 64)
		if err == nil && (i < lo || i > hi) || errors.Is(err, strconv.ErrRange) {
			d.fail(path, n, "%s is out of range (%d to %d)", s, lo, hi)
			return
		}
		if err != nil {
			d.fail(path, n, "%q is not an integer", s)
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		hi := uint64(math.MaxUint64) >> (64 - v.Type().Bits())
		u, err := strconv.ParseUint(s, 0, 64)
		if _, ierr := strconv.ParseInt(s, 0, 64); err != nil && ierr == nil || err == nil && u > hi || errors.Is(err, strconv.ErrRange) {
			d.fail(path, n, "%s is out of range (0 to %d)", s, hi)
			return
		}
		if err != nil {
			d.fail(path, n, "%q is not an integer", s)
			return
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		f, err := parseFloat(s, v.Type().Bits())
		if errors.Is(err, strconv.ErrRange) {
			d.fail(path, n, "%s is out of range", s)
			return
		}
		if err != nil {
			d.fail(path, n, "%q is not a number", s)
			return
		}
		v.SetFloat(f)
	}
}

// structure decodes a mapping into a struct, field by field.
func (d *decoder) structure(path string, n *yaml.Node, v reflect.Value) {
	fields, err := structFields(v.Type())
	if err != nil {
		d.failErr(path, n, err)
		return
	}
	pairs, ok := d.pairs(path, n)
	if !ok {
		return
	}
	byName := make(map[string]field, len(fields))
	for _, f := range fields {
		byName[f.name] = f
	}
	for _, p := range pairs {
		f, ok := byName[p.key]
		if !ok {
			d.fail(KeyPath(path, p.key), p.keyNode, "unknown field%s", suggest(p.key, fields))
			continue
		}
		d.value(JoinPath(path, f.name), p.val, v.FieldByIndex(f.index))
	}
}

// mapping decodes a mapping into a map with string keys. Entries are added
// to the default map (a copy of it), and a key present in both starts from
// the default's value.
func (d *decoder) mapping(path string, n *yaml.Node, v reflect.Value) {
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.fail(path, n, "cannot be set from a configuration file (a map with %s keys)", t.Key().Kind())
		return
	}
	pairs, ok := d.pairs(path, n)
	if !ok || len(pairs) == 0 {
		return
	}
	m := reflect.MakeMapWithSize(t, v.Len()+len(pairs))
	for it := v.MapRange(); it.Next(); {
		m.SetMapIndex(it.Key(), it.Value())
	}
	for _, p := range pairs {
		k := reflect.ValueOf(p.key).Convert(t.Key())
		e := reflect.New(t.Elem()).Elem()
		if old := m.MapIndex(k); old.IsValid() {
			e.Set(old)
		}
		d.value(KeyPath(path, p.key), p.val, e)
		m.SetMapIndex(k, e)
	}
	v.Set(m)
}

// sequence decodes a list into a slice, which replaces the default. An
// empty list empties a default list and leaves a nil one nil.
func (d *decoder) sequence(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		d.fail(path, n, "%s is not a list", describeNode(n))
		return
	}
	if len(n.Content) == 0 && v.IsNil() {
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, c := range n.Content {
		d.value(IndexPath(path, i), c, s.Index(i))
	}
	v.Set(s)
}

// pair is one key and value of a mapping, merges resolved.
type pair struct {
	key          string
	keyNode, val *yaml.Node
}

// pairs returns the entries of mapping n: its own keys in order, then the
// keys of its merges (<<: *anchor, or a list of them, the first of which
// wins) that it does not set itself. A key written twice is an error.
func (d *decoder) pairs(path string, n *yaml.Node) ([]pair, bool) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, n, "%s is not a mapping", describeNode(n))
		return nil, false
	}
	var own, merged []pair
	ok := true
	line := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if isMergeKey(k) {
			m, good := d.merges(path, val)
			merged, ok = append(merged, m...), ok && good
			continue
		}
		if k.Kind == yaml.AliasNode {
			k = k.Alias
		}
		if k.Kind != yaml.ScalarNode {
			d.fail(path, k, "%s cannot be a key: want a name", describeNode(k))
			ok = false
			continue
		}
		if l, dup := line[k.Value]; dup {
			d.fail(KeyPath(path, k.Value), k, "set twice (lines %d and %d)", l, k.Line)
			ok = false
			continue
		}
		line[k.Value] = k.Line
		own = append(own, pair{key: k.Value, keyNode: k, val: val})
	}
	for _, p := range merged {
		if _, set := line[p.key]; !set {
			line[p.key] = p.keyNode.Line
			own = append(own, p)
		}
	}
	return own, ok
}

// merges returns the entries that a merge key's value brings in.
func (d *decoder) merges(path string, n *yaml.Node) ([]pair, bool) {
	var sources []*yaml.Node
	switch n.Kind {
	case yaml.SequenceNode:
		sources = n.Content
	default:
		sources = []*yaml.Node{n}
	}
	var out []pair
	for _, s := range sources {
		if s.Kind == yaml.AliasNode {
			if d.active[s.Alias] {
				d.fail(path, s, "alias *%s refers to a value that contains it", s.Value)
				return nil, false
			}
			s = s.Alias
		}
		if s.Kind != yaml.MappingNode {
			d.fail(path, s, "<<: %s is not a mapping to merge", describeNode(s))
			return nil, false
		}
		d.active[s] = true
		p, ok := d.pairs(path, s)
		delete(d.active, s)
		if !ok {
			return nil, false
		}
		out = append(out, p...)
	}
	return out, true
}

func isMergeKey(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Value == "<<" && n.Style == 0 && (n.Tag == "" || n.Tag == "!!merge")
}

// isNull reports whether n is a null: an empty plain value, ~ or null.
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "true", "yes", "on":
		return true, true
	case "false", "no", "off":
		return false, true
	}
	return false, false
}

func parseFloat(s string, bits int) (float64, error) {
	switch strings.ToLower(s) {
	case ".inf", "+.inf":
		return math.Inf(1), nil
	case "-.inf":
		return math.Inf(-1), nil
	case ".nan":
		return math.NaN(), nil
	}
	if strings.ContainsAny(s, "xXpP_") { // no hex floats or digit separators in YAML
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseFloat(s, bits)
}

// describeNode says what a node is, for "X is not Y" messages: a scalar
// is quoted, a list or mapping is named.
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.AliasNode:
		if n.Alias != nil {
			return describeNode(n.Alias)
		}
	}
	return strconv.Quote(n.Value)
}

// describeType names what a scalar kind wants, or "" for kinds a
// configuration cannot hold.
func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return ""
}
