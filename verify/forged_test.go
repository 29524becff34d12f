package verify

import (
	"crypto/ed25519"
	"crypto/rand"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/clickhouse/clickhousetest"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

func records(evs []schemas.Event) []Record {
	var recs []Record
	for _, e := range evs {
		recs = append(recs, Record{Event: e, Hash: e.Hash(), Claimed: e.Hash(), ContentChecked: true})
	}
	return recs
}

// checkSyslogLines reads lines as a SIEM's file and checks them with keys,
// in the file's order, the reading's findings added to the report.
func checkSyslogLines(t *testing.T, lines []string, keys map[string]ed25519.PublicKey) *Report {
	t.Helper()
	recs, finds, _, err := LoadSyslog(strings.NewReader(strings.Join(lines, "\n") + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	rep := Check(recs, nil, Options{Keys: keys, FileOrder: true})
	rep.AddFindings(finds)
	return rep
}

func hostReport(t *testing.T, rep *Report, host string) *HostReport {
	t.Helper()
	for _, h := range rep.Hosts {
		if h.Host == host {
			return h
		}
	}
	t.Fatalf("host %s not in the report", host)
	return nil
}

// TestForgedEventsAfterLastCheckpointAreFindings catches finding F1 of the
// issue 9 attack review: with --pubkey, verify called intact (exit 0) an
// event appended at a host's head (seq head+1, linked to the head's hash,
// which any auditor can compute) and the chain of a host that never had a
// collector, since the chain's links held and the events after the last
// checkpoint were only counted. The collector credential (or anyone who
// can write the store, or send to the SIEM) makes both. Now, with keys,
// an event is intact only when a signed checkpoint covers it.
func TestForgedEventsAfterLastCheckpointAreFindings(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	keys := map[string]ed25519.PublicKey{schemas.ChainKeyID(pub): pub}
	const n = 30
	for _, tc := range []struct {
		name          string
		keys          map[string]ed25519.PublicKey
		evs           func() []schemas.Event
		want          string
		wantUncovered int
	}{
		{name: "clean", keys: keys, evs: func() []schemas.Event { return clickhousetest.ChainedEvents(t, "cell01", n, 10, key) }},
		// Every flush's checkpoint is in the same Kafka batch as its
		// events, the last flush's (at shutdown) too: a clean run's last
		// events are covered, and so is a run of one event.
		{name: "clean, one event", keys: keys, evs: func() []schemas.Event { return clickhousetest.ChainedEvents(t, "cell01", 1, 10, key) }},
		{name: "forged head+1", keys: keys, evs: func() []schemas.Event {
			evs := clickhousetest.ChainedEvents(t, "cell01", n, 10, key)
			return append(evs, forgedNext(evs, "rm -rf /var/log/secure"))
		}, want: "31:uncovered", wantUncovered: 1},
		{name: "forged head+1..+3", keys: keys, evs: func() []schemas.Event {
			evs := clickhousetest.ChainedEvents(t, "cell01", n, 10, key)
			for range 3 {
				evs = append(evs, forgedNext(evs, "id"))
			}
			return evs
		}, want: "31:uncovered", wantUncovered: 3},
		{name: "forged host", keys: keys, evs: func() []schemas.Event {
			return withoutCheckpoints(clickhousetest.ChainedEvents(t, "cell01", 1, 10, nil))
		}, want: "1:no_signed_checkpoint", wantUncovered: 1},
		// The forger's own checkpoint is unsigned: it covers nothing.
		{name: "forged host, unsigned checkpoints", keys: keys, evs: func() []schemas.Event {
			return clickhousetest.ChainedEvents(t, "cell01", 5, 10, nil)
		}, want: "1:no_signed_checkpoint 5:unsigned", wantUncovered: 5},
		// A signed checkpoint whose head is not the event at its end
		// covers nothing either.
		{name: "forged head replacing the last batch's end", keys: keys, evs: func() []schemas.Event {
			evs := clickhousetest.ChainedEvents(t, "cell01", n, 10, key)
			var out []schemas.Event
			for _, e := range evs {
				if e.Event == schemas.KindChain || e.Seq != n {
					out = append(out, e)
				}
			}
			f := forgedNext(out, "id") // seq 30, after 29
			return append(out, f)
		}, want: "21:uncovered 30:checkpoint_head", wantUncovered: 10},
		// Without keys nothing tells a forged event from the collector's:
		// the limit the README states.
		{name: "forged head+1, no keys", evs: func() []schemas.Event {
			evs := clickhousetest.ChainedEvents(t, "cell01", n, 10, key)
			return append(evs, forgedNext(evs, "rm -rf /var/log/secure"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := Check(records(tc.evs()), nil, Options{Keys: tc.keys})
			h := hostReport(t, rep, "cell01")
			var out strings.Builder
			_ = rep.Write(&out)
			if got := kinds(h); got != tc.want {
				t.Errorf("findings %q, want %q\n%s", got, tc.want, out.String())
			}
			if h.Uncovered != tc.wantUncovered || rep.Intact() != (tc.want == "") {
				t.Errorf("%d uncovered, intact %v; want %d, %v\n%s", h.Uncovered, rep.Intact(), tc.wantUncovered, tc.want == "", out.String())
			}
			// Forged events are unproven, not changed (exit status 2); an
			// unsigned checkpoint with keys given, or a head that is not
			// what was signed, is a change.
			if wantChanged := strings.Contains(tc.want, "checkpoint_head") || strings.Contains(tc.want, "unsigned"); rep.Changed() != wantChanged {
				t.Errorf("Changed() %v, want %v", rep.Changed(), wantChanged)
			}
			if tc.keys != nil && !strings.Contains(out.String(), "not covered by a signed checkpoint") ||
				tc.keys == nil && !strings.Contains(out.String(), "signatures: not checked") {
				t.Errorf("report:\n%s", out.String())
			}
		})
	}
}

// TestSyslogForgedHostIsAFinding is F1 at the SIEM (issue 9 review,
// TestReviewSyslogForgedHost): anyone who can send syslog to the SIEM
// adds the chained, unsigned events of a host "db07" that has no
// collector; with the key given they were reported intact.
func TestSyslogForgedHostIsAFinding(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	keys := map[string]ed25519.PublicKey{schemas.ChainKeyID(pub): pub}
	evs := clickhousetest.ChainedEvents(t, "web01", 30, 10, key)
	forged := withoutCheckpoints(clickhousetest.ChainedEvents(t, "db07", 5, 10, nil))
	forged = append(forged, forgedNext(evs, "cat /etc/shadow")) // and web01's head+1
	l := syslogLines(t, syslogFormat, append(evs, forged...))
	rep := checkSyslogLines(t, l, keys)
	if got := kinds(hostReport(t, rep, "db07")); got != "1:no_signed_checkpoint" {
		t.Errorf("db07: findings %q, want no signed checkpoint", got)
	}
	if got := kinds(hostReport(t, rep, "web01")); got != "31:uncovered" {
		t.Errorf("web01: findings %q, want 31 uncovered", got)
	}
	var out strings.Builder
	_ = rep.Write(&out)
	for _, want := range []string{"db07 seq 1: no_signed_checkpoint: host db07 has no signed checkpoint: none of its 5 events (seq 1..5) is covered",
		"web01 seq 31: uncovered: unsigned tail: seq 31..31 (1 events) not covered by a signed checkpoint",
		"verify: 2 hosts, 0 intact, 2 with findings (2 of them only unproven"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// TestSyslogJSONRemovedIsAFinding catches finding F2 of the issue 9
// review: in a SIEM's file, removing an event's json parameter and
// rewriting its MSG (or its plain parameters, what SIEM rules read) was
// reported intact, since a message without json was linked through its
// hash parameter, taken as is. Its content cannot be recomputed, so it is
// now a finding (content_not_verified); and a checkpoint whose json was
// removed covers nothing.
func TestSyslogJSONRemovedIsAFinding(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	keys := map[string]ed25519.PublicKey{schemas.ChainKeyID(pub): pub}
	jsonRE := regexp.MustCompile(` json="(\\.|[^"\\])*"`)
	for _, tc := range []struct {
		name       string
		line       int // 0-based: line i is seq i+1 before the first checkpoint (line 10)
		tamper     func(string) string
		want       string
		wantDetail string
	}{
		{name: "json removed, MSG changed", line: 6, tamper: func(l string) string {
			return strings.Replace(l, "proctitle=ls", "proctitle=id", 1)
		}, want: "7:content_not_verified", wantDetail: "1 copies without the json parameter (seq 7)"},
		{name: "json removed, loginid changed", line: 6, tamper: func(l string) string {
			return regexp.MustCompile(`loginid="[^"]*"`).ReplaceAllString(l, `loginid="nobody"`)
		}, want: "7:content_not_verified"},
		{name: "json removed from a checkpoint", line: 10, want: "0:content_not_verified 1:uncovered", wantDetail: "(1 checkpoints)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := syslogLines(t, syslogFormat, clickhousetest.ChainedEvents(t, "web01", 30, 10, key))
			if !strings.Contains(l[tc.line], ` json="`) {
				t.Fatalf("line %d has no json: %s", tc.line, l[tc.line])
			}
			l[tc.line] = jsonRE.ReplaceAllString(l[tc.line], "")
			if tc.tamper != nil {
				l[tc.line] = tc.tamper(l[tc.line])
			}
			rep := checkSyslogLines(t, l, keys)
			h := hostReport(t, rep, "web01")
			var out strings.Builder
			_ = rep.Write(&out)
			if got := kinds(h); got != tc.want || rep.Intact() {
				t.Errorf("findings %q, want %q\n%s", got, tc.want, out.String())
			}
			if !strings.Contains(out.String(), tc.wantDetail) {
				t.Errorf("report lacks %q:\n%s", tc.wantDetail, out.String())
			}
		})
	}
}

// TestCheckpointSignedByAnotherHostsKey catches finding F8 of the issue 9
// review: verify --pubkey put every collector's key in one keyring and
// took a checkpoint of any host signed by any of them, so root on
// collector host A (who has A's chain.key) signed checkpoints for host B's
// forged or rewritten chain, and B was reported intact. With per-host keys
// (Options.HostKeys, a sign.KeyDir: DIR/<host>.pub) a host's checkpoints
// verify only against its own key.
func TestCheckpointSignedByAnotherHostsKey(t *testing.T) {
	pubA, keyA, _ := ed25519.GenerateKey(rand.Reader)
	pubB, keyB, _ := ed25519.GenerateKey(rand.Reader)
	dir := filepath.Join(t.TempDir(), "chain-keys")
	for host, pub := range map[string]ed25519.PublicKey{"web01-a": pubA, "web01-b": pubB} {
		if _, err := sign.Enroll(dir, host, pub); err != nil {
			t.Fatal(err)
		}
	}
	hostKeys := sign.NewKeyDir(dir)
	oneRing := map[string]ed25519.PublicKey{schemas.ChainKeyID(pubA): pubA, schemas.ChainKeyID(pubB): pubB}
	for _, tc := range []struct {
		name   string
		host   string
		signer ed25519.PrivateKey
		opt    Options
		want   string
		note   string // in the report
	}{
		{name: "own key, per-host keys", host: "web01-b", signer: keyB, opt: Options{HostKeys: hostKeys}, note: "signatures: each host's key enrolled in " + dir},
		{name: "A's key signs B's checkpoints, per-host keys", host: "web01-b", signer: keyA, opt: Options{HostKeys: hostKeys},
			want: "1:no_signed_checkpoint 10:wrong_host_key 20:wrong_host_key 30:wrong_host_key",
			note: "checkpoint 1..10 is signed by key " + schemas.ChainKeyID(pubA) + ", not by " + schemas.ChainKeyID(pubB) + ", the key enrolled for host web01-b"},
		{name: "a host not enrolled", host: "db07", signer: keyA, opt: Options{HostKeys: hostKeys}, want: "1:no_host_key",
			note: "host db07 has no key to check its checkpoints against"},
		// One keyring for every host: what the review found, now said in
		// the report (README, "Security model").
		{name: "A's key signs B's checkpoints, one keyring", host: "web01-b", signer: keyA, opt: Options{Keys: oneRing},
			note: "one keyring of 2 key(s) for every host: a checkpoint of any host signed by any of them is accepted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := Check(records(clickhousetest.ChainedEvents(t, tc.host, 30, 10, tc.signer)), nil, tc.opt)
			var out strings.Builder
			_ = rep.Write(&out)
			if got := kinds(hostReport(t, rep, tc.host)); got != tc.want {
				t.Errorf("findings %q, want %q\n%s", got, tc.want, out.String())
			}
			if !strings.Contains(out.String(), tc.note) {
				t.Errorf("report lacks %q:\n%s", tc.note, out.String())
			}
			if wantChanged := strings.Contains(tc.want, "wrong_host_key"); rep.Changed() != wantChanged {
				t.Errorf("Changed() %v, want %v", rep.Changed(), wantChanged)
			}
		})
	}
}

// TestRequestCommandsNotHiddenByAnotherHost: a row on another host that
// carries the event_id of one of the request's commands (anyone who can
// write the store can add one) does not take the command out of the
// request's report. Before the report was built host by host, the first
// copy of an event_id seen on any host was the only one counted, so a
// forged row of host "b" read before "a" hid a's command.
func TestRequestCommandsNotHiddenByAnotherHost(t *testing.T) {
	a := clickhousetest.ChainedEvents(t, "a", 5, 5, nil)
	forged := a[2] // a command of the request, seq 3
	forged.Host, forged.Event, forged.Title = "b", schemas.KindLogin, "x"
	recs := append(records([]schemas.Event{forged}), records(a)...) // b's row first
	rep := Check(recs, nil, Options{Request: "req-a"})
	var hostA *RequestHost
	for i := range rep.Request.Hosts {
		if rep.Request.Hosts[i].Host == "a" {
			hostA = &rep.Request.Hosts[i]
		}
	}
	if hostA == nil || len(hostA.Commands) != 5 {
		t.Fatalf("request report %+v, want host a with its 5 commands", rep.Request.Hosts)
	}
}
