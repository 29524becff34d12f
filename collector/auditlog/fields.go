package auditlog

import "iter"

// Field is one key=value pair of a record body. Value excludes its quotes;
// Quote is '"' or '\” when the value was quoted, else 0. A bare word (no
// '=') has a nil Value and Bare set.
type Field struct {
	Key   []byte
	Value []byte
	Quote byte
	Bare  bool
}

// NextField returns the first field of b and the rest of b after it.
// ok is false when b holds no more fields.
func NextField(b []byte) (f Field, rest []byte, ok bool) {
	i := skipSpaces(b, 0)
	if i == len(b) {
		return Field{}, nil, false
	}
	k := i
	for i < len(b) && b[i] != '=' && b[i] != ' ' {
		i++
	}
	f.Key = b[k:i]
	if i == len(b) || b[i] == ' ' {
		f.Bare = true
		return f, b[i:], true
	}
	i++ // '='
	if i < len(b) && (b[i] == '"' || b[i] == '\'') {
		q := b[i]
		v := i + 1
		end := indexByteFrom(b, v, q)
		if end < 0 {
			return Field{Key: f.Key, Value: b[v:], Quote: q}, nil, true
		}
		f.Value, f.Quote = b[v:end], q
		return f, b[end+1:], true
	}
	// Unquoted values are short: a plain loop beats IndexByte's call.
	end := i
	for end < len(b) && b[end] != ' ' {
		end++
	}
	f.Value = b[i:end]
	return f, b[end:], true
}

// Fields iterates over the fields of body.
func Fields(body []byte) iter.Seq[Field] {
	return func(yield func(Field) bool) {
		for {
			f, rest, ok := NextField(body)
			if !ok || !yield(f) {
				return
			}
			body = rest
		}
	}
}

// Lookup returns the unquoted value of the first field named key in body.
func Lookup(body []byte, key string) (Field, bool) {
	for f := range Fields(body) {
		if string(f.Key) == key {
			return f, true
		}
	}
	return Field{}, false
}

// IsHex reports whether b is a non-empty, even-length string of hex digits
// in either case: the form auditd gives untrusted strings it had to encode.
func IsHex(b []byte) bool {
	if len(b) == 0 || len(b)%2 != 0 {
		return false
	}
	for _, c := range b {
		if unhex(c) > 15 {
			return false
		}
	}
	return true
}

// AppendHexDecoded appends the bytes that the hex digits in src encode.
// src must satisfy IsHex.
func AppendHexDecoded(dst, src []byte) []byte {
	for i := 0; i+1 < len(src); i += 2 {
		dst = append(dst, unhex(src[i])<<4|unhex(src[i+1]))
	}
	return dst
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10
	}
	return 0xff
}
