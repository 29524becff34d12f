package queryapi

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Limits are the resource limits forced on every reader's statement, as
// query-level ClickHouse settings after readonly = 1. A statement (or a URL
// parameter) may set the same settings only to a plain positive number no
// larger than the limit: lower, never higher, never 0 (which ClickHouse
// reads as "no limit"). A zero field forces and caps nothing.
type Limits struct {
	// MaxExecutionTime is max_execution_time: the query is stopped with
	// TIMEOUT_EXCEEDED (code 159) when it runs longer.
	MaxExecutionTime time.Duration
	// MaxMemoryUsage is max_memory_usage in bytes (MEMORY_LIMIT_EXCEEDED,
	// code 241).
	MaxMemoryUsage int64
	// MaxResultRows and MaxResultBytes are max_result_rows and
	// max_result_bytes (uncompressed, before formatting;
	// TOO_MANY_ROWS_OR_BYTES, code 396).
	MaxResultRows, MaxResultBytes int64
	// MaxThreads is max_threads: the threads one query may use, so that
	// a reader's scan leaves CPU to ingestion.
	MaxThreads int64
}

// caps returns the limits by setting name; absent when zero.
func (l Limits) caps() map[string]float64 {
	m := make(map[string]float64, 4)
	if l.MaxExecutionTime > 0 {
		m["max_execution_time"] = l.MaxExecutionTime.Seconds()
	}
	if l.MaxMemoryUsage > 0 {
		m["max_memory_usage"] = float64(l.MaxMemoryUsage)
	}
	if l.MaxResultRows > 0 {
		m["max_result_rows"] = float64(l.MaxResultRows)
	}
	if l.MaxResultBytes > 0 {
		m["max_result_bytes"] = float64(l.MaxResultBytes)
	}
	if l.MaxThreads > 0 {
		m["max_threads"] = float64(l.MaxThreads)
	}
	return m
}

// settings returns the forced settings as SQL items, in a stable order,
// but those named in except (lower-case).
func (l Limits) settings(except map[string]bool) []string {
	var s []string
	add := func(name, value string) {
		if !except[name] {
			s = append(s, name+" = "+value)
		}
	}
	if l.MaxExecutionTime > 0 {
		add("max_execution_time", strconv.FormatFloat(l.MaxExecutionTime.Seconds(), 'f', -1, 64))
	}
	if l.MaxMemoryUsage > 0 {
		add("max_memory_usage", strconv.FormatInt(l.MaxMemoryUsage, 10))
	}
	if l.MaxResultRows > 0 {
		add("max_result_rows", strconv.FormatInt(l.MaxResultRows, 10))
	}
	if l.MaxResultBytes > 0 {
		add("max_result_bytes", strconv.FormatInt(l.MaxResultBytes, 10))
	}
	if l.MaxThreads > 0 {
		add("max_threads", strconv.FormatInt(l.MaxThreads, 10))
	}
	return s
}

// check refuses value (the SQL text of a setting's value, or a URL
// parameter's value) for a setting that l caps unless it is a plain
// positive number within the cap.
func (l Limits) check(name, value string) error {
	limit, ok := l.caps()[strings.ToLower(name)]
	if !ok {
		return nil
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || !numberish(value) {
		return fmt.Errorf("%w: setting %s must be a plain number here (at most %s), not %q", errRefused, name, strconv.FormatFloat(limit, 'f', -1, 64), value)
	}
	if v <= 0 || v > limit {
		return fmt.Errorf("%w: setting %s = %s is outside this endpoint's limit (0 < value <= %s)", errRefused, name, value, strconv.FormatFloat(limit, 'f', -1, 64))
	}
	return nil
}

// clamp returns value for a URL setting, or the cap when l caps the
// setting and value is 0 (no limit) or above it: clients send their own
// timeouts (clickhouse-go: max_execution_time of its context's deadline
// plus a margin), which must not be refused but may not lift a limit. A
// value that is not a plain number is refused.
func (l Limits) clamp(name, value string) (string, error) {
	limit, ok := l.caps()[strings.ToLower(name)]
	if !ok {
		return value, nil
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
	if err != nil || math.IsNaN(v) || !numberish(value) {
		return "", fmt.Errorf("%w: setting %s must be a plain number here (at most %s), not %q", errRefused, name, strconv.FormatFloat(limit, 'f', -1, 64), value)
	}
	if v <= 0 || v > limit {
		return strconv.FormatFloat(limit, 'f', -1, 64), nil
	}
	return value, nil
}

// numberish reports whether s holds only digits, '.', and an exponent: no
// hexadecimal, no underscores, no words that ParseFloat also reads.
func numberish(s string) bool {
	s = strings.TrimSpace(s)
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '-' || c == '+') {
			return false
		}
	}
	return true
}
