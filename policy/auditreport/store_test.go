package auditreport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/clickhouse"
	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/indexer"
	"github.com/auditpipe/auditpipe/queryapi"
	"github.com/auditpipe/auditpipe/schemas"
)

// queriers returns the three ways to read the store of emb: chDB itself,
// a query endpoint through queryapi.HTTPClient, and clickhouse-go (the
// server engine, over HTTP) against that endpoint. Each binds the request
// id its own way: chDB's parameters, param_NAME in the URL, clickhouse-go's
// WithParameters.
func queriers(t *testing.T, emb *clickhouse.Embedded) map[string]clickhouse.ParamQuerier {
	t.Helper()
	srv := httptest.NewServer(queryapi.NewQueryHandler(emb, nil, queryapi.QueryHandlerOptions{}))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg := clickhouse.DefaultStoreConfig().ClickHouse
	cfg.Addr, cfg.Protocol, cfg.Username = []string{u.Host}, "http", ""
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := clickhouse.OpenServer(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return map[string]clickhouse.ParamQuerier{
		"chDB":                          emb,
		"query endpoint (HTTPClient)":   &queryapi.HTTPClient{URL: srv.URL},
		"server engine (clickhouse-go)": s,
	}
}

func jsonOf(t *testing.T, r *Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteJSON(&b, r); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestEnginesAgree: the report of the fixture is the same read from chDB,
// through the query endpoint (whose guard lets the report's statements
// through), and through clickhouse-go against the endpoint.
func TestEnginesAgree(t *testing.T) {
	emb := loadFixture(t)
	ctx := context.Background()
	want, err := Build(ctx, emb, "req1", Options{Keystrokes: true, Now: fixedClock})
	if err != nil {
		t.Fatal(err)
	}
	if want.Commands != 16 || len(want.Sessions) != 2 {
		t.Fatalf("fixture report: %d commands in %d sessions, want 16 in 2", want.Commands, len(want.Sessions))
	}
	for name, q := range queriers(t, emb) {
		t.Run(name, func(t *testing.T) {
			got, err := Build(ctx, q, "req1", Options{Keystrokes: true, Now: fixedClock})
			if err != nil {
				t.Fatal(err)
			}
			if g, w := jsonOf(t, got), jsonOf(t, want); g != w {
				t.Errorf("report differs from chDB's:\n%s", g)
			}
		})
	}
}

// commandOf returns a command event of request id on host h, serial n.
func commandOf(id, h string, n int, args ...string) schemas.Event {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(n) * time.Second)
	return schemas.Event{
		Layer: "HOST", ReqAuthID: id, Event: schemas.KindCommand, Title: strings.Join(args, "\x00"), Args: args,
		PID: fmt.Sprint(1000 + n), PPID: "999", EUID: "op", Exe: "/usr/bin/" + args[0], Cwd: "/", Res: "success",
		RecID: fmt.Sprint(n), TTY: "pts0", Host: h, Time: ts.Format(schemas.CtimeLayout), LoginID: "op", Ses: "1",
		RawData: fmt.Sprintf("type=SYSCALL msg=audit(%s:%d) : pid=%d uid=op \n", ts.Format("01/02/2006 15:04:05.000"), n, 1000+n),
		EventID: schemas.NewEventID(h, ts.Unix(), 0, uint64(n)), TS: ts.Format(schemas.TSLayout), Seq: uint64(n),
	}
}

// TestHostileRequestIDs: the request id is bound as a parameter on every
// engine: ids holding quotes, backslashes, control characters or a
// placeholder find exactly their own events, and an id written to widen
// the condition finds nothing.
func TestHostileRequestIDs(t *testing.T) {
	ids := []string{`x' OR '1'='1`, `back\slash`, "tab\there", "new\nline", "{req:String}", "ünï ‮ cødé", `quote"double`, `a\'b`, `\N`}
	var evs []schemas.Event
	n := 0
	for i, id := range ids {
		for range i + 1 {
			n++
			evs = append(evs, commandOf(id, "h1", n, "echo", id))
		}
	}
	emb := clickhousetest.OpenEmbedded(t, "")
	loadEvents(t, emb, evs)
	ctx := context.Background()
	for name, q := range queriers(t, emb) {
		t.Run(name, func(t *testing.T) {
			for i, id := range ids {
				rep, err := Build(ctx, q, id, Options{})
				if err != nil {
					t.Fatalf("%q: %v", id, err)
				}
				if rep.Commands != i+1 || rep.ReqAuthID != id {
					t.Errorf("%q: %d commands (request %q), want %d", id, rep.Commands, rep.ReqAuthID, i+1)
				}
				for _, s := range rep.Sessions {
					for _, p := range s.Processes {
						if len(p.Args) != 2 || p.Args[1] != id {
							t.Errorf("%q: a command of another request: %q", id, p.Args)
						}
					}
				}
			}
			for _, probe := range []string{`' OR 1=1 OR req_auth_id = '`, `x`, `back`, "tab"} {
				rep, err := Build(ctx, q, probe, Options{})
				if err != nil {
					t.Fatalf("%q: %v", probe, err)
				}
				if rep.Status != StatusNotAvailable || rep.Commands != 0 {
					t.Errorf("%q: %s with %d commands, want nothing", probe, rep.Status, rep.Commands)
				}
			}
			if _, err := Build(ctx, q, "", Options{}); !errors.Is(err, ErrNoRequest) {
				t.Errorf("empty id: %v, want ErrNoRequest (the unattributed events are no request's)", err)
			}
		})
	}
}

// TestFirstWriteWins: the report shows the first stored copy of each
// event, as verify and the indexer read the store, not what FINAL would
// show: a differing copy that the indexer kept apart is counted as a
// conflict; a copy that reached audit_events itself (two indexers racing)
// changes nothing, not even when it names another request.
func TestFirstWriteWins(t *testing.T) {
	emb := clickhousetest.OpenEmbedded(t, "")
	ctx := context.Background()
	evs := fixtureEvents(t)
	loadEvents(t, emb, evs)
	// Merges would fold copies with the same sorting key, keeping the last.
	if err := emb.Exec(ctx, "SYSTEM STOP MERGES audit_events"); err != nil {
		t.Fatal(err)
	}
	var ls, df schemas.Event
	for _, e := range evs {
		switch {
		case e.ReqAuthID == "req1" && e.Title == "ls\x00-l\x00/var/log":
			ls = e
		case e.ReqAuthID == "req2" && e.Title == "df\x00-h":
			df = e
		}
	}
	if ls.EventID == "" || df.EventID == "" {
		t.Fatal("the fixture lacks ls -l /var/log (req1) or df -h (req2)")
	}

	// Through the indexer: a differing copy goes to event_conflicts.
	forged := ls
	forged.Args, forged.Title = []string{"rm", "-rf", "/var/log"}, "rm\x00-rf\x00/var/log"
	var in bytes.Buffer
	in.Write(forged.AppendJSON(nil))
	in.WriteByte('\n')
	st, err := indexer.Load(ctx, emb, &in, indexer.LoadOptions{})
	if err != nil || st.Conflicts != 1 {
		t.Fatalf("load the forged copy: %+v %v; want one conflict", st, err)
	}

	// Straight into audit_events, written later: ls changed under req1, ls
	// copied under req2, df copied under req1.
	for _, sql := range []string{
		"INSERT INTO audit_events SELECT * REPLACE (['rm', '-rf', '/'] AS args, inserted_at + INTERVAL 1 SECOND AS inserted_at) FROM audit_events WHERE event_id = '" + ls.EventID + "' SETTINGS final = 0",
		"INSERT INTO audit_events SELECT * REPLACE ('req2' AS req_auth_id, inserted_at + INTERVAL 2 SECOND AS inserted_at) FROM audit_events WHERE event_id = '" + ls.EventID + "' AND args = ['ls', '-l', '/var/log'] SETTINGS final = 0",
		"INSERT INTO audit_events SELECT * REPLACE ('req1' AS req_auth_id, inserted_at + INTERVAL 3 SECOND AS inserted_at) FROM audit_events WHERE event_id = '" + df.EventID + "' SETTINGS final = 0",
	} {
		if err := emb.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if n := clickhousetest.QueryInt(t, emb, "SELECT count() FROM audit_events WHERE event_id IN ('"+ls.EventID+"', '"+df.EventID+"') SETTINGS final = 0"); n != 5 {
		t.Fatalf("%d stored copies of ls and df, want 5", n)
	}

	for name, q := range queriers(t, emb) {
		t.Run(name, func(t *testing.T) {
			r1, err := Build(ctx, q, "req1", Options{Now: fixedClock})
			if err != nil {
				t.Fatal(err)
			}
			r2, err := Build(ctx, q, "req2", Options{Now: fixedClock})
			if err != nil {
				t.Fatal(err)
			}
			if r1.Commands != 16 || r2.Commands != 4 {
				t.Errorf("req1 has %d commands, req2 %d; want 16 and 4, as stored first", r1.Commands, r2.Commands)
			}
			if r1.Conflicts != 1 || r2.Conflicts != 0 {
				t.Errorf("conflicts: req1 %d, req2 %d; want 1 and 0", r1.Conflicts, r2.Conflicts)
			}
			p := r1.Sessions[0].Processes[0]
			if p.EventID != ls.EventID || strings.Join(p.Args, " ") != "ls -l /var/log" {
				t.Errorf("req1's first command: %s %q, want the first copy of ls -l /var/log", p.EventID, p.Args)
			}
			var text bytes.Buffer
			if err := WriteText(&text, r1); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(text.String(), "1 conflicting copy kept apart") {
				t.Errorf("the text report does not mention the conflict:\n%s", text.String())
			}
		})
	}
}

// TestTruncated: a request with more rows than MaxEvents gets the first
// of them, marked truncated. req1 has 22 events.
func TestTruncated(t *testing.T) {
	emb := loadFixture(t)
	tests := []struct {
		max, commands, keys int
		truncated           bool
	}{
		{5, 3, 1, true}, // the login, ls, tail, grep, the keystrokes of su
		{21, 16, 2, true},
		{22, 16, 3, false},
		{0, 16, 3, false}, // DefaultMaxEvents
	}
	for _, tt := range tests {
		rep, err := Build(context.Background(), emb, "req1", Options{MaxEvents: tt.max, Now: fixedClock})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Truncated != tt.truncated || rep.Commands != tt.commands || rep.Keystrokes != tt.keys {
			t.Errorf("MaxEvents %d: truncated %v, %d commands, %d keystroke events; want %v, %d, %d",
				tt.max, rep.Truncated, rep.Commands, rep.Keystrokes, tt.truncated, tt.commands, tt.keys)
		}
		var text bytes.Buffer
		if err := WriteText(&text, rep); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(text.String(), "TRUNCATED") != tt.truncated {
			t.Errorf("MaxEvents %d: the text report says TRUNCATED: %v, want %v", tt.max, !tt.truncated, tt.truncated)
		}
	}
}
