// Package clickhousetest opens embedded chDB for tests and holds the
// events that tests of the store, the indexer and the query endpoint insert.
package clickhousetest

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/chdb"
	"github.com/auditpipe/auditpipe/internal/testenv"
	"github.com/auditpipe/auditpipe/schemas"
)

// OpenEmbedded opens embedded chDB in dir (a new temporary directory when
// empty), or skips the test with the reason when libchdb.so is missing
// (chdb.FindLibrary). The engine is closed when the test ends.
func OpenEmbedded(t testing.TB, dir string) *clickhouse.Embedded {
	t.Helper()
	if _, err := chdb.FindLibrary(""); err != nil {
		testenv.SkipOrFail(t, testenv.CHDB, "needs libchdb.so (run 'make deps'): %v", err)
	}
	if dir == "" {
		dir = t.TempDir()
	}
	e, err := clickhouse.OpenEmbedded("", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// OpenMigrated is OpenEmbedded in a new temporary directory with every
// migration applied: the store the pipeline's tables are in.
func OpenMigrated(t testing.TB) *clickhouse.Embedded {
	t.Helper()
	e := OpenEmbedded(t, "")
	if _, err := clickhouse.Migrate(context.Background(), e, 0, nil); err != nil {
		t.Fatal(err)
	}
	return e
}

// InsertEvents inserts evs into eng's audit_events in batches of
// batchRows (all at once when batchRows <= 0), each with the deduplication
// token of its rows, as a backfill does (no Kafka position).
func InsertEvents(t testing.TB, eng clickhouse.Engine, evs []schemas.Event, batchRows int) {
	t.Helper()
	rows := make([]clickhouse.EventRow, len(evs))
	for i := range evs {
		ts, err := time.Parse(time.RFC3339Nano, evs[i].TS)
		if err != nil {
			t.Fatalf("clickhousetest: event %d: ts: %v", i, err)
		}
		rows[i] = clickhouse.EventRow{Event: evs[i], TS: ts.UTC(), JSON: evs[i].AppendJSON(nil), Partition: -1, Offset: -1}
	}
	if batchRows <= 0 {
		batchRows = max(len(rows), 1)
	}
	for len(rows) > 0 {
		n := min(len(rows), batchRows)
		if err := eng.InsertEvents(context.Background(), clickhouse.EventsToken(rows[:n]), rows[:n]); err != nil {
			t.Fatalf("clickhousetest: insert: %v", err)
		}
		rows = rows[n:]
	}
}

// QueryInt runs a query returning one number.
func QueryInt(t testing.TB, q clickhouse.Querier, sql string) int {
	t.Helper()
	r, err := q.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	if len(r.Rows) != 1 || len(r.Rows[0]) != 1 {
		t.Fatalf("%s: want one value, got %v", sql, r.Rows)
	}
	var n int
	fmt.Sscan(clickhouse.ValueString(r.Rows[0][0]), &n)
	return n
}

// SampleEvents returns a realistic set of events: two access requests on
// two hosts, logins, commands (one through sudo, one run as root after su),
// logouts, with one session left open. Times start at base.
func SampleEvents(base time.Time) []schemas.Event {
	type ev struct {
		kind              schemas.Kind
		req, login, host  string
		pid, ppid, euid   string
		args              []string
		ses               string
		res               string
		offsetMillisecond int
	}
	reqA, reqB := "ocid1.opctlaccessrequest.a", "ocid1.opctlaccessrequest.b"
	userA, userB := "4f1c9a2e6b3d4c5e8f7a9b0c1d2e3f40", "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b"
	evs := []ev{
		{kind: schemas.KindLogin, req: reqA, login: userA, host: "db01", pid: "1000", ses: "11", res: "success"},
		{kind: schemas.KindCommand, req: reqA, login: userA, host: "db01", pid: "1001", ppid: "1000", euid: userA, args: []string{"ls", "/"}, ses: "11"},
		{kind: schemas.KindCommand, req: reqA, login: userA, host: "db01", pid: "1002", ppid: "1000", euid: "root", args: []string{"sudo", "systemctl", "restart", "nginx"}, ses: "11"},
		{kind: schemas.KindCommand, req: reqA, login: userA, host: "db01", pid: "1003", ppid: "1002", euid: "root", args: []string{"systemctl", "restart", "nginx"}, ses: "11"},
		{kind: schemas.KindLogout, req: reqA, login: userA, host: "db01", pid: "1000", ses: "11", res: "success"},
		{kind: schemas.KindLogin, req: reqB, login: userB, host: "web01", pid: "2000", ses: "21", res: "success"},
		{kind: schemas.KindCommand, req: reqB, login: userB, host: "web01", pid: "2001", ppid: "2000", euid: userB, args: []string{"su", "-"}, ses: "21"},
		{kind: schemas.KindCommand, req: reqB, login: userB, host: "web01", pid: "2002", ppid: "2001", euid: "root", args: []string{"cat", "/etc/shadow"}, ses: "21"},
	}
	out := make([]schemas.Event, 0, len(evs))
	for i, e := range evs {
		t := base.Add(time.Duration(i) * time.Second)
		serial := uint64(5000 + i)
		x := schemas.Event{
			Layer: "HOST", ReqAuthID: e.req, Event: e.kind, PID: e.pid, RecID: fmt.Sprint(serial),
			TTY: "pts0", Host: e.host, Time: t.UTC().Format(schemas.CtimeLayout), LoginID: e.login,
			Ses: e.ses, EventID: schemas.NewEventID(e.host, t.Unix(), t.Nanosecond()/1e6, serial),
			TS: t.UTC().Format(schemas.TSLayout), Seq: uint64(i + 1), Res: e.res,
		}
		x.RawData = fmt.Sprintf("type=SYSCALL msg=audit(%s:%d) : pid=%s \n", t.Format("01/02/2006 15:04:05.000"), serial, e.pid)
		switch e.kind {
		case schemas.KindLogin, schemas.KindLogout:
			x.SrcHost, x.DestHost = "bastion", "10.0.0.5"
		case schemas.KindCommand:
			x.Args, x.PPID, x.EUID, x.Res = e.args, e.ppid, e.euid, "success"
			x.Exe, x.Cwd = "/usr/bin/"+e.args[0], "/home/"+e.login
			for j, a := range e.args {
				if j > 0 {
					x.Title += "\x00"
				}
				x.Title += a
			}
		}
		out = append(out, x)
	}
	return out
}

// ManyEvents returns n command events spread over hosts.
func ManyEvents(n int, base time.Time) []schemas.Event {
	out := make([]schemas.Event, n)
	for i := range out {
		host := fmt.Sprintf("host%02d", i%7)
		t := base.Add(time.Duration(i) * time.Millisecond)
		serial := uint64(i + 1)
		out[i] = schemas.Event{
			Layer: "HOST", ReqAuthID: fmt.Sprintf("req-%d", i%5), Event: schemas.KindCommand,
			Title: "ls\x00-l\x00/var/log", Args: []string{"ls", "-l", "/var/log"}, PID: fmt.Sprint(10000 + i), PPID: "9999",
			EUID: fmt.Sprintf("op%d", i%3), Exe: "/usr/bin/ls", Cwd: "/root", Res: "success", RecID: fmt.Sprint(serial), TTY: "pts1",
			Host: host, Time: t.UTC().Format(schemas.CtimeLayout), LoginID: fmt.Sprintf("op%d", i%3),
			RawData: fmt.Sprintf("type=PROCTITLE msg=audit(%s:%d) : proctitle=ls -l /var/log \ntype=EXECVE msg=audit(%s:%d) : argc=3 a0=ls a1=-l a2=/var/log \ntype=SYSCALL msg=audit(%s:%d) : arch=x86_64 syscall=execve success=yes exit=0 pid=%d ppid=9999 auid=op uid=root comm=ls exe=/usr/bin/ls \n",
				t.Format("01/02/2006 15:04:05.000"), serial, t.Format("01/02/2006 15:04:05.000"), serial, t.Format("01/02/2006 15:04:05.000"), serial, 10000+i),
			EventID: schemas.NewEventID(host, t.Unix(), t.Nanosecond()/1e6, serial),
			TS:      t.UTC().Format(schemas.TSLayout), Seq: serial,
		}
	}
	return out
}

// ManyLifecycle returns n lifecycle events of access requests, spread
// over resources, each with its own event id.
func ManyLifecycle(n int, base time.Time) []schemas.Lifecycle {
	out := make([]schemas.Lifecycle, n)
	states := []string{"CREATED", "APPROVALWAITING", "APPROVED", "DEPLOYED", "REVOKED"}
	for i := range out {
		to := states[i%len(states)]
		from := ""
		if i%len(states) > 0 {
			from = states[i%len(states)-1]
		}
		out[i] = schemas.Lifecycle{
			EventID: fmt.Sprintf("%032x", 0xa11ce000+i), Kind: "access_request." + strings.ToLower(to),
			ObjectType: schemas.ObjectAccessRequest, ObjectID: fmt.Sprintf("ocid1.accessrequest.%032x", i/len(states)),
			ResourceID: fmt.Sprintf("res-%d", i%3), CompartmentID: "tenancy", StateFrom: from, StateTo: to,
			Actor: fmt.Sprintf("user%d", i%4), Time: base.Add(time.Duration(i) * time.Millisecond).UTC(),
			Details: map[string]string{"comment": fmt.Sprintf("step %d: \"quoted\", tab\there", i)},
		}
	}
	return out
}

// ChainedEvents returns n command events of host, chained as the collector
// chains them (seq, prev_hash), and a checkpoint per batch of batch events,
// signed with key unless it is nil.
func ChainedEvents(t testing.TB, host string, n, batch int, key ed25519.PrivateKey) []schemas.Event {
	t.Helper()
	evs := ManyEvents(n*7, time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC))
	picked := make([]schemas.Event, n)
	for i := range picked {
		picked[i] = evs[i*7] // one of ManyEvents' hosts, renamed
	}
	return Chain(host, picked, batch, key)
}

// Chain returns evs as the events 1..len(evs) of host, chained as the
// collector chains them (seq, event_id, prev_hash; req_auth_id req-a),
// and a checkpoint per batch of batch events, signed with key unless it is
// nil.
func Chain(host string, evs []schemas.Event, batch int, key ed25519.PrivateKey) []schemas.Event {
	n := len(evs)
	var out []schemas.Event
	prev := ""
	var cp *schemas.Event
	for i := 0; i < n; i++ {
		e := evs[i]
		e.Host, e.Seq, e.PrevHash = host, uint64(i+1), prev
		e.EventID = schemas.NewEventID(host, int64(i), 0, uint64(i+1))
		e.ReqAuthID = "req-a"
		prev = e.Hash()
		if cp == nil {
			cp = &schemas.Event{Layer: e.Layer, Event: schemas.KindChain, Host: host, ChainFirst: e.Seq, PrevHash: e.PrevHash}
		}
		cp.ChainLast, cp.ChainHead, cp.TS, cp.Time = e.Seq, prev, e.TS, e.Time
		cp.ChainCount++
		out = append(out, e)
		if (i+1)%batch == 0 || i == n-1 {
			cp.EventID = schemas.NewChainEventID(host, cp.ChainFirst, cp.ChainLast)
			if key != nil {
				cp.SignChain(key)
			}
			out = append(out, *cp)
			cp = nil
		}
	}
	return out
}
