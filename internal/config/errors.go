package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// FieldError is one bad field: Path names it from the root of the file
// with YAML names ("collector.input.path", "destinations[1].tls.ca_file").
// Callers can find one with errors.As.
type FieldError struct {
	// Path is the field's path; empty when the error is about the whole
	// document.
	Path string
	// Line is the line in the YAML file, 0 when the error does not come
	// from a file (Validate).
	Line int
	// Err says what is wrong, in words meant for the person editing the file.
	Err error
}

// Error returns "path: message".
func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Err.Error()
	}
	return e.Path + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *FieldError) Unwrap() error { return e.Err }

// ErrorList is every field error found at once, sorted by path. Its Error
// is one line per field error.
type ErrorList []*FieldError

// Error returns one line per error.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the field errors, for errors.As and errors.Is.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// Errors collects field errors, so that a Validate method reports every bad
// field at once. The zero value is ready to use.
type Errors struct {
	list []*FieldError
}

// Add records err for the field at path. A nil err is ignored, so
// Add(path, check(x)) needs no if around it.
func (e *Errors) Add(path string, err error) {
	if err != nil {
		e.list = append(e.list, &FieldError{Path: path, Err: err})
	}
}

// Addf records a formatted message for the field at path.
func (e *Errors) Addf(path, format string, args ...any) {
	e.list = append(e.list, &FieldError{Path: path, Err: fmt.Errorf(format, args...)})
}

// Merge records the errors of a child's Validate, each field error's path
// prefixed with prefix ("kafka" + "brokers" = "kafka.brokers"). err may be
// an ErrorList, a *FieldError, an errors.Join of them, or any other error,
// which is then recorded at prefix. A nil err is ignored.
func (e *Errors) Merge(prefix string, err error) {
	switch x := err.(type) {
	case nil:
	case ErrorList:
		for _, fe := range x {
			e.list = append(e.list, &FieldError{Path: JoinPath(prefix, fe.Path), Line: fe.Line, Err: fe.Err})
		}
	case *FieldError:
		e.list = append(e.list, &FieldError{Path: JoinPath(prefix, x.Path), Line: x.Line, Err: x.Err})
	case interface{ Unwrap() []error }:
		for _, c := range x.Unwrap() {
			e.Merge(prefix, c)
		}
	default:
		e.Add(prefix, err)
	}
}

// Len returns the number of errors recorded.
func (e *Errors) Len() int { return len(e.list) }

// Err returns nil when no error was recorded, else an ErrorList sorted by
// path (numbers in indexes compare as numbers, so [2] comes before [10]),
// errors at the same path in the order they were added.
func (e *Errors) Err() error {
	if len(e.list) == 0 {
		return nil
	}
	l := slices.Clone(e.list)
	slices.SortStableFunc(l, func(a, b *FieldError) int { return comparePaths(a.Path, b.Path) })
	return ErrorList(l)
}

// JoinPath appends child to the path prefix: JoinPath("kafka", "tls") is
// "kafka.tls", JoinPath("destinations", "[1]") is "destinations[1]", and an
// empty side returns the other.
func JoinPath(prefix, child string) string {
	switch {
	case prefix == "":
		return child
	case child == "":
		return prefix
	case child[0] == '[':
		return prefix + child
	}
	return prefix + "." + child
}

// IndexPath is the path of element i of the list at path: "destinations[1]".
func IndexPath(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// KeyPath is the path of the map entry key under path: "grants.alice", or
// grants["a.b"] when the key is not a plain name.
func KeyPath(path, key string) string {
	if isPlainName(key) {
		return JoinPath(path, key)
	}
	return path + "[" + strconv.Quote(key) + "]"
}

func isPlainName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// comparePaths orders paths as strings, except that runs of digits compare
// by their numeric value.
func comparePaths(a, b string) int {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := len(na) - len(nb); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return int(a[0]) - int(b[0])
		}
		a, b = a[1:], b[1:]
	}
	return len(a) - len(b)
}

func digitRun(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}
