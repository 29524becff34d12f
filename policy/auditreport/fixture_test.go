package auditreport

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/collector"
	"github.com/auditpipe/auditpipe/collector/assemble"
	"github.com/auditpipe/auditpipe/collector/auditlog"
	"github.com/auditpipe/auditpipe/collector/builder"
	"github.com/auditpipe/auditpipe/indexer"
	"github.com/auditpipe/auditpipe/schemas"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// The bundled sample's operators and the requests the fixture grants them.
const (
	operatorA = "830916abb78e4157b9e45b641e34fcf6"
	operatorB = "5f1c0e9d2a7b4c3e8d6f0a1b2c3d4e5f"
)

// generatedAt is the fixed clock of the golden reports.
var generatedAt = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// fixtureEvents parses the bundled sample (deploy/sample/audit.log: operator
// A's session on cell01 with su, sudo, a keystroke event and a failed
// command; operator B's open session) and testdata/second-session.log
// (operator A's second session, on cell02) through the collector's
// decoder, as the collector would: A works for req1, B for req2.
func fixtureEvents(t testing.TB) []schemas.Event {
	t.Helper()
	names, err := builder.LoadNames("../../deploy/sample/passwd", "../../deploy/sample/group")
	if err != nil {
		t.Fatal(err)
	}
	cfg := builder.Config{
		Layer: "HOST", Host: "cell01", Names: names,
		Grants: builder.StaticGrants{
			operatorA: {LoginID: operatorA, ReqAuthID: "req1", AuditType: schemas.AuditCommandKeystroke},
			operatorB: {LoginID: operatorB, ReqAuthID: "req2", AuditType: schemas.AuditCommandKeystroke},
		},
	}
	var evs []schemas.Event
	var rejects []string
	d := collector.NewDecoder(cfg, assemble.Options{}, func(e *schemas.Event, _ *assemble.Event) {
		evs = append(evs, *e)
	}, func(r collector.Reject) {
		rejects = append(rejects, r.Reason+": "+r.Err.Error())
	})
	tag := uint64(0)
	for _, path := range []string{"../../deploy/sample/audit.log", "testdata/second-session.log"} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		err = collector.ReadLines(bytes.NewReader(b), collector.DefaultMaxLineBytes, func(line []byte, err error) error {
			tag++
			var tl *collector.LineTooLongError
			if errors.As(err, &tl) {
				d.RejectLine(auditlog.ReasonTooLong, err, tl.Prefix, tag)
				return nil
			}
			d.Line(line, tag, time.Unix(0, 0))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	d.Flush()
	if len(rejects) > 0 {
		t.Fatalf("the fixture has rejected lines: %v", rejects)
	}
	return evs
}

// loadFixture opens chDB with the fixture stored by the indexer's loader.
func loadFixture(t testing.TB) *clickhouse.Embedded {
	t.Helper()
	eng := clickhousetest.OpenEmbedded(t, "")
	loadEvents(t, eng, fixtureEvents(t))
	return eng
}

// loadEvents migrates eng and stores evs through indexer.Load (first
// write wins, as the indexer stores them).
func loadEvents(t testing.TB, eng clickhouse.Engine, evs []schemas.Event) {
	t.Helper()
	ctx := context.Background()
	if _, err := clickhouse.Migrate(ctx, eng, 0, nil); err != nil {
		t.Fatal(err)
	}
	var in strings.Builder
	for i := range evs {
		in.Write(evs[i].AppendJSON(nil))
		in.WriteByte('\n')
	}
	st, err := indexer.Load(ctx, eng, strings.NewReader(in.String()), indexer.LoadOptions{})
	if err != nil || st.Rejected > 0 {
		t.Fatalf("load: %+v %v", st, err)
	}
}

func fixedClock() time.Time { return generatedAt }
