package scheduler

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/policy"
)

// TestTransitionTable walks every (status, action) pair: the allowed
// ones lead where this table says, every other is a *TransitionError
// that matches policy.ErrInvalidTransition; the final statuses allow
// nothing; every status is reachable from ACCEPTED.
func TestTransitionTable(t *testing.T) {
	want := map[Status]map[Action]Status{
		Accepted:   {ActDispatch: InProgress, ActFail: Failed, ActCancel: Canceled},
		InProgress: {ActProgress: InProgress, ActSucceed: Succeeded, ActFail: Failed, ActCancel: Canceling, ActReportCanceled: Canceled, ActTimeOut: Failed},
		Canceling:  {ActProgress: Canceling, ActSucceed: Succeeded, ActFail: Failed, ActReportCanceled: Canceled, ActTimeOut: Failed},
		Succeeded:  {},
		Failed:     {},
		Canceled:   {},
	}
	for _, s := range Statuses() {
		for _, a := range Actions() {
			to, err := Next("wr1", s, a)
			exp, ok := want[s][a]
			switch {
			case ok && (err != nil || to != exp):
				t.Errorf("%s + %s = %s, %v; want %s", s, a, to, err, exp)
			case !ok:
				var te *TransitionError
				if !errors.As(err, &te) || !errors.Is(err, policy.ErrInvalidTransition) || te.Status != s || te.Action != a {
					t.Errorf("%s + %s = %s, %v; want a transition error", s, a, to, err)
				}
			}
		}
		if s.Final() != (len(want[s]) == 0) {
			t.Errorf("%s: Final() = %v", s, s.Final())
		}
	}
	seen := []Status{Accepted}
	for i := 0; i < len(seen); i++ {
		for _, a := range Actions() {
			if to, err := Next("wr1", seen[i], a); err == nil && !slices.Contains(seen, to) {
				seen = append(seen, to)
			}
		}
	}
	if len(seen) != len(Statuses()) {
		t.Errorf("reachable %v, want all of %v", seen, Statuses())
	}
}

// TestREADMETransitionTable: README.md shows the table the code has.
func TestREADMETransitionTable(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), TransitionTableMarkdown()) {
		t.Errorf("README.md lacks the transition table; it is:\n%s", TransitionTableMarkdown())
	}
}
