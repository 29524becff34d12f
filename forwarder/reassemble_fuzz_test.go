package forwarder

import (
	"strings"
	"testing"
)

// FuzzReassemble feeds Reassemble two messages with arbitrary parameters
// and MSGs: it must never panic, and whatever it accepts as a split event
// has the announced length (the SHA-256 check is then what makes it exact).
func FuzzReassemble(f *testing.F) {
	f.Add("1", "2", "0", "6", "", "", "\ufeffab", "2", "3", "\ufeffcd\n")
	f.Add("", "", "", "", "rn0", "", "\ufeffx", "", "", "")
	f.Add("1", "1", "0", "3", "", "base64", "\ufeffAAo=", "", "", "")
	f.Fuzz(func(t *testing.T, part, parts, offset, length, eol, enc, msg1, part2, offset2, msg2 string) {
		params := func(part, offset, enc string) map[string]string {
			p := map[string]string{"event_id": "e", "sha256": "-"}
			for k, v := range map[string]string{"part": part, "parts": parts, "offset": offset, "length": length, "eol": eol, "encoding": enc} {
				if v != "" {
					p[k] = v
				}
			}
			return p
		}
		msgs := []Received{{Params: params(part, offset, enc), MSG: msg1}}
		if part2 != "" {
			msgs = append(msgs, Received{Params: params(part2, offset2, ""), MSG: msg2})
		}
		raw, err := Reassemble(msgs)
		if err != nil {
			if !strings.HasPrefix(err.Error(), ErrReassemble.Error()) {
				t.Fatalf("error %v does not wrap ErrReassemble", err)
			}
			return
		}
		if _, split := msgs[0].Params["parts"]; split {
			t.Fatalf("split event accepted with a wrong SHA-256: %q", raw)
		}
	})
}
