// Package ident checks the names and ids that callers choose and that end
// up in file names, SQL rows and log lines: host names as collectors and
// agents report them, and caller-chosen ids (compartments, resources,
// jobs). The checks are written by hand rather than as regexps: a
// regexp with a {0,252} repeat compiles to a program of hundreds of
// instructions, and internal/sign, policy and policy/scheduler compiled
// five of them at package init in every process, the short-lived client
// commands such as `auditpipe parse` included (bench/README.md,
// "Collector").
package ident

// MaxHostLen is the longest host name IsHost accepts, in bytes.
const MaxHostLen = 253

// MaxIDLen is the longest id IsID accepts, in bytes.
const MaxIDLen = 255

// IsHost reports whether s is a host name as auditpipe accepts one: 1 to
// MaxHostLen bytes of ASCII letters, digits, '.', '_' and '-', the first a
// letter or digit. It accepts what the regexp
// ^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$ matches, and nothing else: no slash
// and no leading dot, so a host name is never a path outside a directory.
func IsHost(s string) bool {
	return check(s, MaxHostLen, false)
}

// IsID reports whether s is a caller-chosen id: 1 to MaxIDLen bytes of
// ASCII letters, digits, '.', '_', ':' and '-', the first a letter or
// digit. It accepts what the regexp ^[A-Za-z0-9][A-Za-z0-9._:-]{0,254}$
// matches, and nothing else.
func IsID(s string) bool {
	return check(s, MaxIDLen, true)
}

// check is IsHost (colon false) and IsID (colon true).
func check(s string, maxLen int, colon bool) bool {
	if len(s) == 0 || len(s) > maxLen || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case isAlnum(c), c == '.', c == '_', c == '-':
		case c == ':' && colon:
		default:
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
