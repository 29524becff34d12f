// Package stockpath is go-libaudit v2.6.2's stock decoding path
// (auparse.ParseLogLine, its Reassembler, aucoalesce.CoalesceMessages,
// json.Marshal): the baseline the collector's benchmarks
// (collector/bench_test.go) and the load harness (bench/pipeline) measure
// the collector against. Only benchmarks import it.
package stockpath

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/elastic/go-libaudit/v2"
	"github.com/elastic/go-libaudit/v2/aucoalesce"
	"github.com/elastic/go-libaudit/v2/auparse"
)

type stream struct{ events int }

func (s *stream) ReassemblyComplete(msgs []*auparse.AuditMessage) {
	ev, err := aucoalesce.CoalesceMessages(msgs)
	if err != nil {
		return
	}
	if _, err := json.Marshal(ev); err == nil {
		s.events++
	}
}

func (s *stream) EventsLost(int) {}

// Pass runs the stock path over lines (each without its newline) and
// returns the events it emitted: lines it cannot parse (node= prefixes,
// among others) and events it cannot coalesce are dropped, as the stock
// path drops them.
func Pass(lines []string) (int, error) {
	st := &stream{}
	r, err := libaudit.NewReassembler(1024, 2*time.Second, st)
	if err != nil {
		return 0, fmt.Errorf("stockpath: %w", err)
	}
	for _, s := range lines {
		msg, err := auparse.ParseLogLine(s)
		if err != nil {
			continue
		}
		r.PushMessage(msg)
	}
	if err := r.Close(); err != nil {
		return st.events, fmt.Errorf("stockpath: %w", err)
	}
	return st.events, nil
}
