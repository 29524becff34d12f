package grants

import (
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/testlog"
)

// TestRefusalLogIntervals: the burst is logged one by one in each
// interval, the rest in one summary line when the interval ends or at
// Summarize, naming the records and the counter that counts them all.
func TestRefusalLogIntervals(t *testing.T) {
	var logs testlog.Buffer
	l := NewRefusalLog(slog.New(slog.NewTextHandler(&logs, nil)), "assignment", "auditpipe_forwarder_assignments_refused_total")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		at                time.Duration // since t0
		refusals          int
		summarize         bool
		wantOne, wantSumm int // log lines so far
	}{
		{0, 3, false, 3, 0},
		{time.Second, 100, false, RefusalLogBurst, 0},
		{RefusalLogInterval - time.Second, 5, false, RefusalLogBurst, 0},
		{RefusalLogInterval, 2, false, RefusalLogBurst + 2, 1},
		{RefusalLogInterval + time.Second, RefusalLogBurst, true, 2 * RefusalLogBurst, 2},
		{3 * RefusalLogInterval, 1, true, 2*RefusalLogBurst + 1, 2}, // nothing skipped: no summary
	}
	for _, tt := range tests {
		now := t0.Add(tt.at)
		for range tt.refusals {
			l.Refused(now, ReasonUnsigned, errors.New("no signature"), "opctl.assignments.v1/0/1")
		}
		if tt.summarize {
			l.Summarize()
		}
		one, summ := logs.Count("msg=\"assignment record refused"), logs.Count("more assignment records refused")
		if one != tt.wantOne || summ != tt.wantSumm {
			t.Errorf("at %v: %d refusals logged one by one and %d summaries, want %d and %d", tt.at, one, summ, tt.wantOne, tt.wantSumm)
		}
	}
	if n := logs.Count("auditpipe_forwarder_assignments_refused_total"); n != 2 {
		t.Errorf("the summaries name the counter %d times, want 2", n)
	}
}

// TestReason: the reason of a refusal, wrapped or not; any other error is
// malformed.
func TestReason(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{&RefusedError{Reason: ReasonKeyMismatch, Err: errors.New("x")}, ReasonKeyMismatch},
		{fmt.Errorf("record key %q: %w", "r", &RefusedError{Reason: ReasonReplayed, Err: errors.New("x")}), ReasonReplayed},
		{errors.New("something else"), ReasonMalformed},
	} {
		if got := Reason(tt.err); got != tt.want {
			t.Errorf("Reason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
