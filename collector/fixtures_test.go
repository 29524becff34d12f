package collector

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/collector/builder"
	"github.com/auditpipe/auditpipe/schemas"
)

func fixtureConfig(t *testing.T) builder.Config {
	cfg := seedConfig(t)
	cfg.Host = "fixture-host"
	cfg.Grants = builder.StaticGrants{
		"USERNAME": {LoginID: "USERNAME", ReqAuthID: "1"},
		"op1001":   {LoginID: "op1001", ReqAuthID: "2", AuditType: schemas.AuditCommand},
	}
	return cfg
}

func decodeEvents(t *testing.T, lines [][]byte) []schemas.Event {
	t.Helper()
	var out []schemas.Event
	for _, l := range lines {
		var e schemas.Event
		if err := json.Unmarshal(l, &e); err != nil {
			t.Fatalf("event does not decode: %v\n%s", err, l)
		}
		if err := e.Validate(); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// TestFixtures runs every fixture log through the decoder and compares the
// events and rejects with the golden file beside it; then checks what each
// fixture is about.
func TestFixtures(t *testing.T) {
	tests := []struct {
		name        string
		events      int
		rejects     []string // reasons, in order
		check       func(t *testing.T, ev []schemas.Event)
		wantMissing uint64
	}{
		{name: "enriched", events: 3, check: func(t *testing.T, ev []schemas.Event) {
			for _, e := range ev {
				if e.LoginID != "op1001" || e.ReqAuthID != "2" {
					t.Errorf("%s: loginid %q req_auth_id %q, want op1001 and 2 (names from the ENRICHED part)", e.Event, e.LoginID, e.ReqAuthID)
				}
			}
			if !strings.Contains(ev[1].RawData, "auid=op1001 uid=root") {
				t.Errorf("raw_data does not use the enriched names: %s", ev[1].RawData)
			}
		}},
		{name: "node", events: 2, check: func(t *testing.T, ev []schemas.Event) {
			hosts := map[string][]string{}
			for _, e := range ev {
				hosts[e.Host] = e.Args
			}
			if strings.Join(hosts["cell01"], " ") != "cat /etc/hosts" || strings.Join(hosts["cell02"], " ") != "uptime -p" {
				t.Errorf("events by node: %v", hosts)
			}
			if ev[0].EventID == ev[1].EventID {
				t.Error("two nodes, same serial: event ids must differ")
			}
		}},
		{name: "long-arg", events: 1, check: func(t *testing.T, ev []schemas.Event) {
			want := strings.Repeat(strings.Repeat("x", 63)+"\n", 256)
			if len(ev[0].Args) != 3 || ev[0].Args[1] != want || ev[0].Args[2] != "done" {
				t.Errorf("split argument not reassembled: %d args, len(a1)=%d", len(ev[0].Args), len(ev[0].Args[1]))
			}
		}},
		{name: "missing-args", events: 1, wantMissing: 1, check: func(t *testing.T, ev []schemas.Event) {
			if got := strings.Join(ev[0].Args, "|"); got != "grep|-r||/etc" {
				t.Errorf("args = %q, want grep|-r||/etc", got)
			}
		}},
		{name: "tty", events: 2, check: func(t *testing.T, ev []schemas.Event) {
			if ev[0].Event != schemas.KindKeys || ev[0].TTY != "pts0" || ev[0].Keys != "\x1b[Als -l\x7f\r" {
				t.Errorf("TTY event: %+v", ev[0])
			}
			if !strings.Contains(ev[0].RawData, "data=<up>,\"ls -l\",<backspace>,<ret>") {
				t.Errorf("TTY raw_data not interpreted: %s", ev[0].RawData)
			}
			if ev[1].Keys != "sudo su -" || ev[1].TTY != "pts/0" {
				t.Errorf("USER_TTY event: %+v", ev[1])
			}
		}},
		{name: "unknown", events: 1, check: func(t *testing.T, ev []schemas.Event) {
			for _, s := range []string{"type=UNKNOWN[1999]", "type=FROBNICATE", "level=9"} {
				if !strings.Contains(ev[0].RawData, s) {
					t.Errorf("raw_data lost %q", s)
				}
			}
		}},
		{name: "garbage", events: 2, rejects: []string{"no_type", "empty", "no_type", "bad_timestamp", "bad_timestamp", "no_type", "no_type"}},
		{name: "invalid-utf8", events: 1, check: func(t *testing.T, ev []schemas.Event) {
			e := ev[0]
			if strings.Join(e.Escaped, ",") != "title,raw_data,args" {
				t.Errorf("escaped = %v", e.Escaped)
			}
			if got := schemas.UnescapeInvalidUTF8(e.Args[1]); got != "caf\xe9 \\ ok" {
				t.Errorf("args[1] does not round-trip: %q", got)
			}
			if got := schemas.UnescapeInvalidUTF8(e.Args[2]); got != "\xff\xfe" {
				t.Errorf("args[2] does not round-trip: %q", got)
			}
			if got := schemas.UnescapeInvalidUTF8(e.Title); got != "echo\x00caf\xe9 \\ ok\x00\xff\xfe" {
				t.Errorf("title does not round-trip: %q", got)
			}
		}},
		{name: "ausearch", events: 4, check: func(t *testing.T, ev []schemas.Event) {
			// The classes TestAusearchDifferential compares with ausearch -i.
			for _, s := range []string{
				"key=opctl key=execs",
				"a1=a\\011b\\033c\\012",
				"cap_fp=net_bind_service,bpf cap_fi=kill",
				"fp=chown,net_bind_service fi=none",
			} {
				if !strings.Contains(ev[0].RawData, s) {
					t.Errorf("raw_data lacks %q: %s", s, ev[0].RawData)
				}
			}
			if want := "printf\x00a\tb\x1bc\n"; strings.Join(ev[0].Args, "\x00") != "printf\x00a\tb\x1bc\n" {
				t.Errorf("args = %q, want the bytes as they are (%q)", ev[0].Args, want)
			}
			for _, e := range ev[1:3] {
				if e.Event != schemas.KindCommand || !strings.Contains(e.RawData, ") : arch=x86_64 syscall=execve ") {
					t.Errorf("header without colon / extra spaces: %s", e.RawData)
				}
			}
			if !strings.Contains(ev[3].RawData, `data=<F1>,<F12>,<page-up>,<back-tab>,<^C>,"\034x\"\\",<ret>,<nl> `) {
				t.Errorf("TTY data: %s", ev[3].RawData)
			}
		}},
		// Regression (issue 11): a refused sudo was skipped as not
		// audited, so the store showed sudo's execve as success and
		// nothing failed.
		{name: "sudo", events: 2, check: func(t *testing.T, ev []schemas.Event) {
			want := []struct{ args, title, raw string }{
				{"cat|/etc/shadow", "cat\x00/etc/shadow", `cmd=cat /etc/shadow exe=/usr/bin/sudo terminal=pts/0 res=failed`},
				{"/usr/bin/su", "/usr/bin/su", `cmd=/usr/bin/su exe=/usr/bin/sudo terminal=pts/0 res=failed`},
			}
			for i, w := range want {
				e := ev[i]
				if e.Event != schemas.KindCommand || e.Res != "failed" || strings.Join(e.Args, "|") != w.args || e.Title != w.title ||
					e.EUID != "USERNAME" || e.LoginID != "USERNAME" || e.ReqAuthID != "1" || e.Exe != "/usr/bin/sudo" ||
					e.Cwd != "/home/USERNAME" || e.TTY != "pts/0" || e.PPID != "" {
					t.Errorf("refused sudo %d: %+v", i, e)
				}
				if !strings.Contains(e.RawData, w.raw) {
					t.Errorf("refused sudo %d raw_data: %s", i, e.RawData)
				}
			}
		}},
		{name: "long-line", events: 2, rejects: []string{"line_too_long"}},
		{name: "no-eoe", events: 2, check: func(t *testing.T, ev []schemas.Event) {
			// The logout is complete at once; the command without its EOE is
			// flushed at the end of input, not lost.
			if ev[0].Event != schemas.KindLogout || ev[0].Res != "failed" {
				t.Errorf("first event: %+v", ev[0])
			}
			if ev[1].Event != schemas.KindCommand || strings.Join(ev[1].Args, " ") != "sleep 1" {
				t.Errorf("event without EOE: %+v", ev[1])
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines, rejects, d := decodeFile(t, filepath.Join("testdata/fixtures", tt.name+".log"), fixtureConfig(t))
			if len(lines) != tt.events {
				t.Fatalf("got %d events, want %d:\n%s\nrejects: %v", len(lines), tt.events, lines, rejects)
			}
			var reasons []string
			for _, r := range rejects {
				reasons = append(reasons, strings.SplitN(r, ":", 2)[0])
			}
			if strings.Join(reasons, ",") != strings.Join(tt.rejects, ",") {
				t.Errorf("rejects %v, want reasons %v", rejects, tt.rejects)
			}
			if got := d.MissingArgs(); got != tt.wantMissing {
				t.Errorf("missing arguments counted %d, want %d", got, tt.wantMissing)
			}
			ev := decodeEvents(t, lines)
			if tt.check != nil {
				tt.check(t, ev)
			}
			checkGolden(t, filepath.Join("testdata/fixtures", tt.name+".golden.json"), lines)
			checkRejectsGolden(t, filepath.Join("testdata/fixtures", tt.name+".rejects.golden"), rejects)
		})
	}
}

func checkRejectsGolden(t *testing.T, golden string, rejects []string) {
	t.Helper()
	got := strings.Join(rejects, "\n")
	if got != "" {
		got += "\n"
	}
	if *update {
		if got == "" {
			os.Remove(golden)
			return
		}
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n--- got\n%s--- want\n%s", golden, got, want)
	}
}
