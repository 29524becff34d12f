package clickhouse_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/schemas"
)

// sampleEvents reads testdata/sample_events.jsonl: the bundled sample
// (deploy/sample/audit.log) as `auditpipe parse --all-users --host cell01
// --passwd deploy/sample/passwd --group deploy/sample/group` prints it.
func sampleEvents(t testing.TB) []schemas.Event {
	t.Helper()
	b, err := os.ReadFile("testdata/sample_events.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var evs []schemas.Event
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e schemas.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("sample event: %v", err)
		}
		evs = append(evs, e)
	}
	if len(evs) == 0 {
		t.Fatal("no sample event")
	}
	return evs
}

var auditStamp = regexp.MustCompile(`msg=audit\([^)]*:\d+\)`)

// replicate returns n events made of the sample's sessions replayed on
// hosts hosts, each copy at another time, with its own audit serials,
// pids, sequence numbers and event ids, as a fleet of hosts would send
// the same kind of operator work.
// With unique, every event also names a path of its own (in title, args
// and a PATH record of raw_data): the worst case for compression, where no
// two commands are alike. Each host's events are chained (prev_hash) as
// the collector chains them.
func replicate(sample []schemas.Event, n, hosts int, unique bool) []schemas.Event {
	out := make([]schemas.Event, 0, n)
	prev := make(map[string]string, hosts)
	rnd := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	for k := 0; len(out) < n; k++ {
		host := fmt.Sprintf("cell%03d", k%hosts)
		for i, e := range sample {
			if len(out) == n {
				break
			}
			t := base.Add(time.Duration(k)*37*time.Second + time.Duration(i)*time.Second + time.Duration(k%1000)*time.Millisecond)
			serial := uint64(100000 + k*len(sample) + i)
			pid := strconv.Itoa(3000 + (k*7+i)%60000)
			stamp := fmt.Sprintf("msg=audit(%s:%d)", t.Format("01/02/2006 15:04:05.000"), serial)
			e.Host = host
			e.Time = t.Format(schemas.CtimeLayout)
			e.TS = t.Format(schemas.TSLayout)
			e.RecID = strconv.FormatUint(serial, 10)
			e.Seq = uint64(k/hosts*len(sample) + i + 1)
			e.EventID = schemas.NewEventID(host, t.Unix(), t.Nanosecond()/1e6, serial)
			if e.PID != "" {
				e.RawData = regexp.MustCompile(`\bpid=`+regexp.QuoteMeta(e.PID)+`\b`).ReplaceAllString(e.RawData, "pid="+pid)
				e.PID = pid
			}
			e.RawData = auditStamp.ReplaceAllString(e.RawData, stamp)
			if unique {
				p := fmt.Sprintf("/var/tmp/%016x.log", rnd.Uint64())
				e.Args = append(append([]string{}, e.Args...), p)
				e.Title += "\x00" + p
				e.RawData = fmt.Sprintf("type=PATH %s : item=0 name=%s inode=%d dev=fd:00 mode=file,644 ouid=root ogid=root rdev=00:00 nametype=NORMAL \n", stamp, p, rnd.IntN(1<<24)) + e.RawData
			}
			e.PrevHash = prev[host]
			prev[host] = e.Hash()
			out = append(out, e)
		}
	}
	return out
}

// TestSizingBytesPerEvent measures what an audit event costs on disk with
// the codecs of 0002_audit_events.sql: it inserts the bundled sample
// replayed over many hosts (AUDITPIPE_SIZING_EVENTS, default 5000; the
// README's figures are from 100000), merges the parts, and reads the
// compressed bytes from system.parts and system.columns. Run
//
//	AUDITPIPE_SIZING_EVENTS=100000 go test -count=1 -v -run TestSizingBytesPerEvent ./clickhouse/
func TestSizingBytesPerEvent(t *testing.T) {
	n := 5000
	if s := os.Getenv("AUDITPIPE_SIZING_EVENTS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			t.Fatalf("AUDITPIPE_SIZING_EVENTS=%q: want a positive number", s)
		}
		n = v
	}
	for _, tc := range []struct {
		name   string
		unique bool
	}{{"sample replayed", false}, {"a path of its own per event", true}} {
		t.Run(tc.name, func(t *testing.T) { measureEvents(t, n, tc.unique) })
	}
}

func measureEvents(t *testing.T, n int, unique bool) {
	e := clickhousetest.OpenEmbedded(t, "")
	ctx := context.Background()
	if _, err := clickhouse.Migrate(ctx, e, 0, nil); err != nil {
		t.Fatal(err)
	}
	evs := replicate(sampleEvents(t), n, 50, unique)
	var jsonBytes int
	rows := make([]clickhouse.EventRow, len(evs))
	for i := range evs {
		js := evs[i].AppendJSON(nil)
		jsonBytes += len(js) + 1
		ts, err := time.Parse(time.RFC3339Nano, evs[i].TS)
		if err != nil {
			t.Fatal(err)
		}
		rows[i] = clickhouse.EventRow{Event: evs[i], TS: ts, JSON: js, ContentHash: evs[i].Hash(), Partition: int32(i % 12), Offset: int64(i / 12)}
	}
	for start := 0; start < len(rows); start += 5000 {
		b := rows[start:min(start+5000, len(rows))]
		if err := e.InsertEvents(ctx, clickhouse.EventsToken(b), b); err != nil {
			t.Fatal(err)
		}
	}
	for _, table := range []string{"audit_events", "event_ids"} {
		if err := e.Exec(ctx, "OPTIMIZE TABLE "+table+" FINAL"); err != nil {
			t.Fatal(err)
		}
	}
	if got := clickhousetest.QueryInt(t, e, "SELECT count() FROM audit_events"); got != n {
		t.Fatalf("%d rows, want %d (the replayed events must all be distinct)", got, n)
	}
	disk := clickhousetest.QueryInt(t, e, "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = currentDatabase() AND table = 'audit_events' AND active")
	comp := clickhousetest.QueryInt(t, e, "SELECT sum(data_compressed_bytes) FROM system.parts WHERE database = currentDatabase() AND table = 'audit_events' AND active")
	raw := clickhousetest.QueryInt(t, e, "SELECT sum(data_uncompressed_bytes) FROM system.parts WHERE database = currentDatabase() AND table = 'audit_events' AND active")
	if disk <= 0 || comp <= 0 || comp >= raw {
		t.Fatalf("bytes on disk %d, compressed %d, uncompressed %d", disk, comp, raw)
	}
	t.Logf("%d events: JSON %.0f B/event; on disk %.1f B/event (parts, indexes and marks included), columns compressed %.1f B/event, uncompressed %.1f B/event (ratio %.1f)",
		n, float64(jsonBytes)/float64(n), float64(disk)/float64(n), float64(comp)/float64(n), float64(raw)/float64(n), float64(raw)/float64(comp))
	// The first-write-wins lookup's keys (migration 0010), beside the rows.
	if ids := clickhousetest.QueryInt(t, e, "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = currentDatabase() AND table = 'event_ids' AND active"); ids > 0 {
		t.Logf("event_ids: on disk %.1f B/event", float64(ids)/float64(n))
	} else {
		t.Errorf("event_ids: %d bytes on disk", ids)
	}
	res, err := e.Query(ctx, "SELECT name, data_compressed_bytes, data_uncompressed_bytes FROM system.columns WHERE database = currentDatabase() AND table = 'audit_events' ORDER BY data_compressed_bytes DESC LIMIT 10")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Rows {
		c, _ := strconv.ParseFloat(clickhouse.ValueString(r[1]), 64)
		u, _ := strconv.ParseFloat(clickhouse.ValueString(r[2]), 64)
		t.Logf("  %-12s compressed %6.1f B/event, uncompressed %7.1f B/event", clickhouse.ValueString(r[0]), c/float64(n), u/float64(n))
	}
}
