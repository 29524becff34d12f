package backoff

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestIsRetryable(t *testing.T) {
	base := errors.New("broker away")
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"plain", base, false},
		{"retryable", Retryable(base), true},
		{"wrapped retryable", fmt.Errorf("write: %w", Retryable(base)), true},
		{"permanent", Permanent(base), false},
		{"permanent around retryable", Permanent(Retryable(base)), false},
		{"retryable around permanent", Retryable(Permanent(base)), false},
		{"nil", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsRetryable(tc.err); got != tc.want {
				t.Errorf("IsRetryable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
	if Retryable(nil) != nil || Permanent(nil) != nil {
		t.Error("marking nil made an error")
	}
}

// logged returns a logger writing text lines to the returned buffer.
func logged() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(slog.NewTextHandler(&buf, nil)), &buf
}

func TestRetry(t *testing.T) {
	fast := Policy{Min: time.Millisecond, Max: 2 * time.Millisecond}
	away := errors.New("broker away")
	for _, tc := range []struct {
		name      string
		fails     int   // failures before success
		failWith  error // what each failure returns
		policy    Policy
		wantCalls int
		wantErr   error // nil: success
	}{
		{"first try", 0, Retryable(away), fast, 1, nil},
		{"retryable until success", 5, Retryable(away), fast, 6, nil},
		{"plain error returned at once", 5, away, fast, 1, away},
		{"permanent returned at once", 5, Permanent(Retryable(away)), fast, 1, away},
		{"gives up after MaxElapsed", 1 << 30, Retryable(away), Policy{Min: 5 * time.Millisecond, Max: 5 * time.Millisecond, MaxElapsed: 30 * time.Millisecond}, -1, away},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := Retry(context.Background(), tc.policy, func(context.Context) error {
				calls++
				if calls <= tc.fails {
					return tc.failWith
				}
				return nil
			})
			if tc.wantErr == nil && err != nil {
				t.Fatalf("Retry = %v, want success", err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Retry = %v, want %v", err, tc.wantErr)
			}
			if tc.wantCalls >= 0 && calls != tc.wantCalls {
				t.Errorf("fn called %d times, want %d", calls, tc.wantCalls)
			}
			if tc.wantCalls < 0 && calls < 2 {
				t.Errorf("fn called %d times before giving up, want several", calls)
			}
		})
	}
}

func TestRetryStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := Retry(ctx, Policy{Min: 10 * time.Millisecond, Max: 10 * time.Millisecond}, func(context.Context) error {
		return Retryable(errors.New("away"))
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Retry = %v, want the context's end", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("Retry went on %s after its context ended", time.Since(start))
	}
}

// An outage of many failed attempts is two log lines: the first failure
// and the recovery.
func TestOutageLogsOnceEach(t *testing.T) {
	log, buf := logged()
	o := NewOutage(log, "writing to Kafka", "topic", "t")
	calls := 0
	err := Retry(context.Background(), Policy{Min: time.Millisecond, Max: time.Millisecond, Outage: o}, func(context.Context) error {
		calls++
		if calls <= 20 {
			return Retryable(errors.New("connection refused"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d log lines, want 2 (failure, recovery):\n%s", len(lines), buf)
	}
	if !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "connection refused") {
		t.Errorf("first line is not the failure: %s", lines[0])
	}
	if !strings.Contains(lines[1], "level=INFO") || !strings.Contains(lines[1], "recovered") || !strings.Contains(lines[1], "failures=20") {
		t.Errorf("second line is not the recovery after 20 failures: %s", lines[1])
	}
	if o.Down() {
		t.Error("Down after the recovery")
	}
	// A success with no failure before it logs nothing.
	o.OK()
	if n := strings.Count(buf.String(), "\n"); n != 2 {
		t.Errorf("a success without an outage logged: %s", buf)
	}
	// A permanent error is logged each time, at error level.
	o.Fail(Permanent(errors.New("not authorized")))
	o.Fail(Permanent(errors.New("not authorized")))
	if n := strings.Count(buf.String(), "level=ERROR"); n != 2 {
		t.Errorf("permanent errors logged %d times, want 2:\n%s", n, buf)
	}
}
