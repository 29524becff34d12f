package scheduler

import (
	"fmt"
	"strconv"
	"strings"
)

// Rate control of an execution, as AWS maintenance windows have it: a
// count ("2") or a percentage of the execution's targets ("20%").
//
//   - max_concurrency: at most this many work requests of an execution
//     are dispatched and not finished at once. A percentage rounds down,
//     and is at least 1. Default "100%" (every target at once, as OCI
//     runs a job).
//   - max_errors: the execution goes on while at most this many of its
//     work requests failed; the next failure cancels every work request
//     not yet dispatched (those running finish). 0 stops at the first
//     failure; a percentage rounds down (10% of 50 targets: the sixth
//     failure stops it, as AWS counts). Default "100%" (never stops).
const (
	DefaultMaxConcurrency = "100%"
	DefaultMaxErrors      = "100%"
)

// rate is a parsed count or percentage.
type rate struct {
	n   int
	pct bool
}

// maxRateCount bounds a count (no execution has more targets).
const maxRateCount = 100000

func parseRate(s string) (rate, error) {
	v, pct := strings.CutSuffix(strings.TrimSpace(s), "%")
	n, err := strconv.Atoi(v)
	switch {
	case err != nil || n < 0:
		return rate{}, fmt.Errorf("%q is not a count or a percentage (2, 20%%)", s)
	case pct && n > 100:
		return rate{}, fmt.Errorf("%q is more than 100%%", s)
	case !pct && n > maxRateCount:
		return rate{}, fmt.Errorf("%q is more than %d", s, maxRateCount)
	}
	return rate{n: n, pct: pct}, nil
}

// of resolves r for targets; atLeastOne for a concurrency, which may not
// be 0.
func (r rate) of(targets int, atLeastOne bool) int {
	n := r.n
	if r.pct {
		n = r.n * targets / 100
	}
	if atLeastOne {
		n = max(n, 1)
	}
	return n
}
