package config

import "fmt"

// suggest returns `; did you mean "name"?` for the known field nearest to
// key by edit distance, or "" when none is near enough to be a typo.
func suggest(key string, fields []field) string {
	best, bestDist := "", 1+len(key)/4
	for _, f := range fields {
		if d := editDistance(key, f.name); d <= bestDist && (best == "" || d < bestDist) {
			best, bestDist = f.name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
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
