package pkgmgr

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// runCase is one package run of an adapter's table test.
type runCase struct {
	name    string
	setup   []string // installed first
	timeout time.Duration
	// cancelOn cancels the run when a log line contains it.
	cancelOn   string
	do         func(ctx context.Context, m Manager) (Result, error)
	wantStatus Status
	wantReason string
	wantLog    []string
	wantVer    map[string]string // package → version after ("" = not installed)
	// noProgress: a run that finds nothing to do reports no progress.
	noProgress bool
}

// installRun is the run that installs pkgs.
func installRun(pkgs ...string) func(ctx context.Context, m Manager) (Result, error) {
	return func(ctx context.Context, m Manager) (Result, error) { return m.Install(ctx, pkgs) }
}

// runCases runs each case on an adapter of its own, made by newManager
// with rec as its OnEvent; installed reads a package's version from the
// adapter's root. A successful run's progress rises and ends at 100, and
// every log line of the result came through the callback too.
func runCases(t *testing.T, tests []runCase, newManager func(t *testing.T, timeout time.Duration, rec *recorder) Manager,
	installed func(t *testing.T, m Manager, name string) string) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 5 * time.Minute
			}
			rec := &recorder{}
			m := newManager(t, timeout, rec)
			if len(tc.setup) > 0 {
				res, err := m.Install(context.Background(), tc.setup)
				if err != nil || res.Status != Succeeded {
					t.Fatalf("setup: %v %+v\n%s", err, res, logText(res))
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			rec.mu.Lock()
			rec.events = nil
			if tc.cancelOn != "" {
				rec.on = func(ev Event) {
					if strings.Contains(ev.Line, tc.cancelOn) {
						cancel()
					}
				}
			}
			rec.mu.Unlock()
			res, err := tc.do(ctx, m)
			if err != nil {
				t.Fatal(err)
			}
			log := logText(res)
			if res.Status != tc.wantStatus || !strings.Contains(res.Reason, tc.wantReason) {
				t.Fatalf("status %s reason %q, want %s with %q\n%s", res.Status, res.Reason, tc.wantStatus, tc.wantReason, log)
			}
			if tc.wantStatus == Succeeded && res.Reason != "" {
				t.Errorf("reason %q on success", res.Reason)
			}
			for _, w := range tc.wantLog {
				if !strings.Contains(log, w) {
					t.Errorf("log lacks %q:\n%s", w, log)
				}
			}
			rec.mu.Lock()
			var lines int
			for _, ev := range rec.events {
				if ev.Percent < 0 {
					lines++
				}
			}
			rec.mu.Unlock()
			if lines != len(res.Log) {
				t.Errorf("callback saw %d log lines, the result holds %d", lines, len(res.Log))
			}
			if tc.wantStatus == Succeeded && !tc.noProgress {
				p := rec.percents()
				if len(p) == 0 || p[len(p)-1] != 100 || !slices.IsSorted(p) {
					t.Errorf("progress %v: want a rising sequence ending at 100", p)
				}
			}
			for name, want := range tc.wantVer {
				if got := installed(t, m, name); got != want {
					t.Errorf("%s installed at %q, want %q", name, got, want)
				}
			}
		})
	}
}
