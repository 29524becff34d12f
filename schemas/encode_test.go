package schemas

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzAppendString checks the JSON string encoder against encoding/json:
// what it writes is valid JSON that decodes to the input (invalid UTF-8
// becoming U+FFFD, as encoding/json does).
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain text of more than eight bytes", "quote\"back\\slash", "ctl\x01\x1f\x7f",
		"caf\xe9", "ü漢字 \u2028\u2029", strings.Repeat("a", 7) + "\"", strings.Repeat("b", 16) + "\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendString(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("invalid JSON %q for %q: %v", b, s, err)
		}
		want := strings.ToValidUTF8(s, "\uFFFD")
		if !utf8.ValidString(s) {
			// encoding/json replaces each invalid byte; ToValidUTF8 runs of them.
			var sb strings.Builder
			for i := 0; i < len(s); {
				r, n := utf8.DecodeRuneInString(s[i:])
				sb.WriteRune(r)
				i += n
			}
			want = sb.String()
		}
		if back != want {
			t.Fatalf("round trip of %q gave %q", s, back)
		}
	})
}

func BenchmarkAppendString(b *testing.B) {
	s := strings.Repeat("type=PATH msg=audit(10/29/2020 03:20:29.418:10777424) : item=1 name=/lib64/ld-linux-x86-64.so.2 \n", 10)
	buf := make([]byte, 0, 2*len(s))
	b.SetBytes(int64(len(s)))
	for range b.N {
		buf = appendString(buf[:0], s)
	}
}
