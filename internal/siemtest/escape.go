package siemtest

import "strings"

// EscapeRsyslog is what rsyslog does to a message at its defaults
// (parser.escapeControlCharactersOnReceive="on"): every control character
// below 0x20 becomes '#' and its three octal digits ("\n" is "#012").
func EscapeRsyslog(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 {
			b.WriteByte('#')
			b.WriteByte('0' + c>>6)
			b.WriteByte('0' + c>>3&7)
			b.WriteByte('0' + c&7)
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// UnescapeRsyslog undoes EscapeRsyslog: each '#' followed by three octal
// digits that name a control character below 0x20 becomes that character.
// It cannot tell such an escape from the same four characters in the
// original text: rsyslog does not escape '#' itself, so a message that
// held "#012" comes back with a newline there. This is rsyslog's default,
// lossy by design; the forwarder's split events carry a SHA-256 that shows
// when it happened.
func UnescapeRsyslog(s string) string {
	if !strings.Contains(s, "#0") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '#' && i+3 < len(s) && s[i+1] == '0' && isOctal(s[i+2]) && s[i+2] <= '3' && isOctal(s[i+3]) {
			b.WriteByte((s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
