package config

import "fmt"

// suggest returns `; did you mean "name"?` for the known field nearest to
// key by edit distance, or "" when none is near enough to be a typo.
func suggest(key string, fields []field) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	best := Nearest(key, names)
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// Nearest returns the name among names nearest to s by edit distance, or
// "" when none is within a typo's reach (a quarter of s's length, plus
// one): the "did you mean" of config fields and of command flags.
func Nearest(s string, names []string) string {
	best, bestDist := "", 1+len(s)/4
	for _, n := range names {
		if d := editDistance(s, n); d <= bestDist && (best == "" || d < bestDist) {
			best, bestDist = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
