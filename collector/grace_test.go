package collector

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/collector/assemble"
	"github.com/auditpipe/auditpipe/collector/builder"
	"github.com/auditpipe/auditpipe/schemas"
)

// TestGrantGrace (issue 11): the records of a fresh login user can reach
// the collector a moment before the user's grant does (the operator logs
// in as soon as the agent made the user). Such events of a user that
// looks like a grant's (32 hex digits, or a uid not resolved yet) are
// held for grant_grace and built again at each tick: emitted with the
// grant's req_auth_id once it came, skipped as no_grant once the grace ran
// out or the input ended; other users are skipped at once, and a held
// event keeps the checkpoint before its line.
func TestGrantGrace(t *testing.T) {
	const login = "830916abb78e4157b9e45b641e34fcf6"
	dir := t.TempDir()
	passwd, group := filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
	if err := os.WriteFile(passwd, []byte("root:x:0:0:root:/root:/bin/bash\n"+login+":x:1001:1001::/home/"+login+":/bin/bash\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(group, []byte("root:x:0:\n"+login+":x:1001:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	names, err := builder.LoadNames(passwd, group)
	if err != nil {
		t.Fatal(err)
	}
	loginLine := func(serial, auid int) []byte {
		return fmt.Appendf(nil, "type=USER_LOGIN msg=audit(1700000000.%03d:%d): pid=900 uid=0 auid=%d ses=7 subj=unconfined "+
			"msg='op=login id=%d exe=\"/usr/sbin/sshd\" hostname=10.0.0.5 addr=10.0.0.5 terminal=/dev/pts/0 res=success'", serial%1000, serial, auid, auid)
	}
	t0 := time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	grant := schemas.Grant{LoginID: login, ReqAuthID: "ocid1.accessrequest.late"}
	tests := []struct {
		name      string
		grace     time.Duration
		auid      int
		grantAt   time.Duration // when the grant arrives; 0: never
		flushAt   time.Duration // when the input ends; 0: never
		ticks     []time.Duration
		wantReq   string // the emitted event's req_auth_id; "" none
		wantSkips uint64 // no_grant
		wantHeld  int    // held after the last tick
	}{
		{"the grant arrives within the grace", 10 * time.Second, 1001, 1500 * time.Millisecond, 0, []time.Duration{time.Second, 2 * time.Second}, grant.ReqAuthID, 0, 0},
		{"still waiting", 10 * time.Second, 1001, 0, 0, []time.Duration{time.Second, 9 * time.Second}, "", 0, 1},
		{"the grace runs out", 10 * time.Second, 1001, 0, 0, []time.Duration{time.Second, 10 * time.Second}, "", 1, 0},
		{"a grant after the grace is too late", 10 * time.Second, 1001, 11 * time.Second, 0, []time.Duration{10 * time.Second, 12 * time.Second}, "", 1, 0},
		{"the input ends", 10 * time.Second, 1001, 0, 2 * time.Second, []time.Duration{time.Second}, "", 1, 0},
		{"an unresolved uid is held too", 10 * time.Second, 4242, 0, 0, []time.Duration{time.Second}, "", 0, 1},
		{"root is no grant's user", 10 * time.Second, 0, 0, 0, []time.Duration{time.Second}, "", 1, 0},
		{"no grace", 0, 1001, 500 * time.Millisecond, 0, []time.Duration{time.Second}, "", 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			grants := builder.StaticGrants{}
			var got []schemas.Event
			d := NewDecoder(builder.Config{Layer: "HOST", Host: "h", Names: names, Grants: grants}, assemble.Options{Timeout: time.Second},
				func(e *schemas.Event, _ *assemble.Event) { got = append(got, *e) }, func(r Reject) { t.Errorf("reject %v", r.Err) })
			d.SetGrantGrace(tt.grace)
			d.Line(loginLine(100, tt.auid), 7, t0)
			if len(got) != 0 {
				t.Fatalf("emitted before any grant: %+v", got)
			}
			if tag, ok := d.OldestOpenTag(); tt.wantHeld > 0 && (!ok || tag != 7) {
				t.Errorf("oldest open tag %d %v, want the held event's 7", tag, ok)
			}
			granted := false
			for _, at := range tt.ticks {
				if tt.grantAt > 0 && !granted && at >= tt.grantAt {
					grants[login] = grant
					granted = true
				}
				if tt.flushAt > 0 && at >= tt.flushAt {
					break
				}
				d.Tick(t0.Add(at))
			}
			if tt.flushAt > 0 {
				d.Flush()
			}
			switch {
			case tt.wantReq == "" && len(got) != 0:
				t.Errorf("emitted %+v", got)
			case tt.wantReq != "" && (len(got) != 1 || got[0].ReqAuthID != tt.wantReq || got[0].Event != schemas.KindLogin || got[0].Seq != 1):
				t.Errorf("emitted %+v, want one login of %s", got, tt.wantReq)
			}
			if n := d.Stats().Outcomes[builder.NoGrant]; n != tt.wantSkips {
				t.Errorf("no_grant %d, want %d", n, tt.wantSkips)
			}
			if d.Held() != tt.wantHeld {
				t.Errorf("held %d, want %d", d.Held(), tt.wantHeld)
			}
			if _, ok := d.OldestOpenTag(); ok != (tt.wantHeld > 0) {
				t.Errorf("an open tag %v with %d held", ok, tt.wantHeld)
			}
		})
	}
}
