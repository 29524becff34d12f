package collector

import (
	"bytes"
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

// graceHost is a decoder with a grant grace over a passwd file the test
// rewrites, and grants it adds, for the tests of what a held event is
// attributed to.
type graceHost struct {
	t      *testing.T
	passwd string
	grants builder.StaticGrants
	d      *Decoder
	got    []schemas.Event
	tag    uint64
}

func newGraceHost(t *testing.T, users map[int]string) *graceHost {
	t.Helper()
	dir := t.TempDir()
	h := &graceHost{t: t, passwd: filepath.Join(dir, "passwd"), grants: builder.StaticGrants{}}
	h.setUsers(users)
	group := filepath.Join(dir, "group")
	if err := os.WriteFile(group, []byte("root:x:0:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	names, err := builder.LoadNames(h.passwd, group)
	if err != nil {
		t.Fatal(err)
	}
	h.d = NewDecoder(builder.Config{Layer: "HOST", Host: "h", Names: names, Grants: h.grants}, assemble.Options{Timeout: time.Second},
		func(e *schemas.Event, _ *assemble.Event) { h.got = append(h.got, *e) }, func(r Reject) { t.Errorf("reject %v", r.Err) })
	h.d.SetGrantGrace(10 * time.Second)
	return h
}

// setUsers rewrites the passwd file (a new file renamed over it, as
// useradd and userdel do).
func (h *graceHost) setUsers(users map[int]string) {
	h.t.Helper()
	s := "root:x:0:0:root:/root:/bin/bash\n"
	for uid, name := range users {
		s += fmt.Sprintf("%s:x:%d:%d::/home/%s:/bin/bash\n", name, uid, uid, name)
	}
	tmp := h.passwd + ".new"
	if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Rename(tmp, h.passwd); err != nil {
		h.t.Fatal(err)
	}
}

// session writes a login or logout record of uid in audit session ses at
// t0+at (the decoder's clock follows the records).
func (h *graceHost) session(typ string, uid, ses int, at time.Duration) {
	h.tag++
	ts := graceT0.Add(at)
	line := fmt.Appendf(nil, "type=%s msg=audit(%d.%03d:%d): pid=900 uid=0 auid=%d ses=%d subj=unconfined "+
		"msg='op=login id=%d exe=\"/usr/sbin/sshd\" hostname=10.0.0.5 addr=10.0.0.5 terminal=/dev/pts/0 res=success'",
		typ, ts.Unix(), ts.Nanosecond()/1e6, 100+h.tag, uid, ses, uid)
	h.d.Line(line, h.tag, ts)
}

func (h *graceHost) tick(at time.Duration) { h.d.Tick(graceT0.Add(at)) }

// reqs lists the emitted events as "kind login req".
func (h *graceHost) reqs() []string {
	var out []string
	for _, e := range h.got {
		out = append(out, fmt.Sprintf("%s %s %s", e.Event, e.LoginID, e.ReqAuthID))
	}
	return out
}

var graceT0 = time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)

// TestGrantGraceIdentity (review of grant_grace): a held event was built
// again at each tick against the host's names of that moment, so when its
// user's uid was freed and given to another login within the grace, the
// event became the other login's, with the other grant's req_auth_id. A
// held event's login is now resolved once, when held (from its audit
// session when its user is already gone), and a grant found later for a
// uid that did not resolve must cover the event's own time.
func TestGrantGraceIdentity(t *testing.T) {
	const (
		loginA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		loginB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	)
	grantA := schemas.Grant{LoginID: loginA, ReqAuthID: "req-A"}
	grantB := schemas.Grant{LoginID: loginB, ReqAuthID: "req-B"}
	tests := []struct {
		name string
		// users is the passwd at start; nil: loginA as 1001.
		users            map[int]string
		run              func(h *graceHost)
		want             []string
		wantUnattributed map[string]uint64
	}{
		{
			name: "uid reused by another login within the grace",
			run: func(h *graceHost) {
				h.session("USER_LOGIN", 1001, 7, 0) // A, no grant yet: held
				h.setUsers(map[int]string{1001: loginB})
				h.grants[loginB] = grantB
				h.tick(time.Second)
				h.grants[loginA] = grantA
				h.tick(2 * time.Second)
			},
			want: []string{"login " + loginA + " req-A"},
		},
		{
			name: "uid reused, the grant of its first user never comes",
			run: func(h *graceHost) {
				h.session("USER_LOGIN", 1001, 7, 0)
				h.setUsers(map[int]string{1001: loginB})
				h.grants[loginB] = grantB
				h.tick(time.Second)
				h.tick(10 * time.Second)
			},
			wantUnattributed: map[string]uint64{UnattributedGraceOver: 1},
		},
		{
			name: "user gone before the end of its session, uid reused",
			run: func(h *graceHost) {
				h.grants[loginA] = grantA
				h.session("USER_LOGIN", 1001, 7, 0) // emitted: A has its grant
				h.setUsers(nil)                     // userdel A
				h.tick(500 * time.Millisecond)
				h.session("USER_LOGOUT", 1001, 7, time.Second) // unknown(1001): A's session
				h.setUsers(map[int]string{1001: loginB})       // useradd B, same uid
				h.grants[loginB] = grantB
				h.tick(1500 * time.Millisecond)
				h.session("USER_LOGIN", 1001, 9, 2*time.Second) // B's own session
				h.tick(12 * time.Second)
			},
			want: []string{"login " + loginA + " req-A", "logout " + loginA + " req-A", "login " + loginB + " req-B"},
		},
		{
			name: "user gone, its session's last event held for its grant",
			run: func(h *graceHost) {
				h.session("USER_LOGIN", 1001, 7, 0) // A, no grant yet: held
				h.setUsers(nil)
				h.tick(500 * time.Millisecond)
				h.session("USER_LOGOUT", 1001, 7, time.Second) // held as A's
				h.setUsers(map[int]string{1001: loginB})
				h.grants[loginB] = grantB
				h.tick(1500 * time.Millisecond)
				h.grants[loginA] = grantA
				h.tick(2 * time.Second)
			},
			want: []string{"login " + loginA + " req-A", "logout " + loginA + " req-A"},
		},
		{
			// A grant's login user is new for each grant: no other
			// user's grant can come under its name, and a policy
			// service's clock running ahead must not drop the events.
			name: "a login resolved when held: the grant's window is not checked",
			run: func(h *graceHost) {
				h.session("USER_LOGIN", 1001, 7, 0)
				g := grantA
				g.Start = graceT0.Add(2 * time.Second)
				h.grants[loginA] = g
				h.tick(time.Second)
			},
			want: []string{"login " + loginA + " req-A"},
		},
		{
			name:  "unresolved uid, the grant that comes starts after the event",
			users: map[int]string{},
			run: func(h *graceHost) {
				h.session("USER_LOGOUT", 1001, 8, 0) // unknown(1001), no session known: held
				h.setUsers(map[int]string{1001: loginB})
				g := grantB
				g.Start = graceT0.Add(500 * time.Millisecond)
				h.grants[loginB] = g
				h.tick(time.Second)
			},
			wantUnattributed: map[string]uint64{UnattributedOutsideGrant: 1},
		},
		{
			name:  "unresolved uid, the grant that comes expired before the event",
			users: map[int]string{},
			run: func(h *graceHost) {
				h.session("USER_LOGOUT", 1001, 8, 0)
				h.setUsers(map[int]string{1001: loginB})
				g := grantB
				g.Expires = graceT0.Add(-time.Second)
				h.grants[loginB] = g
				h.tick(time.Second)
			},
			wantUnattributed: map[string]uint64{UnattributedOutsideGrant: 1},
		},
		{
			name:  "unresolved uid resolved later, its grant covering the event",
			users: map[int]string{},
			run: func(h *graceHost) {
				h.session("USER_LOGIN", 1001, 8, 0)
				h.setUsers(map[int]string{1001: loginB})
				g := grantB
				g.Start = graceT0.Add(-time.Minute)
				g.Expires = graceT0.Add(time.Hour)
				h.grants[loginB] = g
				h.tick(time.Second)
			},
			want: []string{"login " + loginB + " req-B"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			users := tt.users
			if users == nil {
				users = map[int]string{1001: loginA}
			}
			h := newGraceHost(t, users)
			tt.run(h)
			if got := h.reqs(); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("emitted %q, want %q", got, tt.want)
			}
			for _, r := range unattributedReasons {
				if got := h.d.Stats().Unattributed[r]; got != tt.wantUnattributed[r] {
					t.Errorf("unattributed %s = %d, want %d", r, got, tt.wantUnattributed[r])
				}
			}
			if h.d.Held() != 0 {
				t.Errorf("%d still held", h.d.Held())
			}
		})
	}
}

// TestGrantGraceCaps: the hold was one queue of 4096 events for all
// users, so one busy login without a grant filled it and the first event
// of another login, whose grant was a moment late, was skipped at once. A
// login now holds at most maxHeldPerLogin events, and what is released so
// is counted.
func TestGrantGraceCaps(t *testing.T) {
	const busy, late = "cccccccccccccccccccccccccccccccc", "dddddddddddddddddddddddddddddddd"
	h := newGraceHost(t, map[int]string{1001: busy, 1002: late})
	for i := range maxHeld {
		h.session("USER_LOGIN", 1001, 10+i, time.Duration(i)*time.Microsecond)
	}
	h.session("USER_LOGIN", 1002, 9, time.Millisecond)
	if got, want := h.d.Held(), maxHeldPerLogin+1; got != want {
		t.Fatalf("held %d, want %d", got, want)
	}
	h.grants[late] = schemas.Grant{LoginID: late, ReqAuthID: "req-late"}
	h.tick(time.Second)
	if got, want := h.reqs(), []string{"login " + late + " req-late"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("emitted %q, want %q", got, want)
	}
	h.tick(11 * time.Second)
	st := h.d.Stats()
	if got, want := st.Unattributed[UnattributedLoginCap], uint64(maxHeld-maxHeldPerLogin); got != want {
		t.Errorf("login_cap %d, want %d", got, want)
	}
	if got, want := st.Unattributed[UnattributedGraceOver], uint64(maxHeldPerLogin); got != want {
		t.Errorf("grace_over %d, want %d", got, want)
	}
	if got, want := st.Outcomes[builder.NoGrant], uint64(maxHeld); got != want {
		t.Errorf("no_grant %d, want %d", got, want)
	}

	// The total bound still holds: with small bounds, the logins beyond
	// it are released at once.
	h = newGraceHost(t, map[int]string{1001: busy, 1002: late})
	h.d.maxHeld, h.d.maxHeldPerLogin = 3, 2
	for i, uid := range []int{1001, 1001, 1001, 1002, 1002} {
		h.session("USER_LOGIN", uid, 10+i, 0)
	}
	st = h.d.Stats()
	if h.d.Held() != 3 || st.Unattributed[UnattributedLoginCap] != 1 || st.Unattributed[UnattributedTotalCap] != 1 {
		t.Errorf("held %d, unattributed %v; want 3 held, one login_cap, one total_cap", h.d.Held(), st.Unattributed)
	}
}

// TestHeldEventRawDataInBuffer: with builder.Config.RawDataInBuffer the
// builder renders raw_data into a buffer that its next build overwrites; an
// event held for its grant keeps a copy, so that when it is emitted later
// its canonical bytes carry its own records, exactly as without the option.
func TestHeldEventRawDataInBuffer(t *testing.T) {
	const login = "830916abb78e4157b9e45b641e34fcf6"
	names := builder.NewNames(map[uint64]string{0: "root", 1001: login, 1002: "other"}, map[uint64]string{0: "root"})
	t0 := time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	lines := [][]byte{
		// Held: the grant is not there yet.
		[]byte(`type=USER_LOGIN msg=audit(1700000000.100:100): pid=900 uid=0 auid=1001 ses=7 msg='op=login id=1001 exe="/usr/sbin/sshd" hostname=10.0.0.5 addr=10.0.0.5 terminal=/dev/pts/0 res=success'`),
		// Built after it (with AllUsers off it is no grant's, and skipped).
		[]byte(`type=USER_LOGIN msg=audit(1700000000.200:101): pid=901 uid=0 auid=1002 ses=8 msg='op=login id=1002 exe="/usr/sbin/sshd" hostname=10.0.0.6 addr=10.0.0.6 terminal=/dev/pts/1 res=success'`),
	}
	run := func(inBuffer bool) [][]byte {
		grants := builder.StaticGrants{}
		var out [][]byte
		var d *Decoder
		d = NewDecoder(builder.Config{Layer: "HOST", Host: "h", Names: names, Grants: grants, RawDataInBuffer: inBuffer}, assemble.Options{Timeout: time.Second},
			func(e *schemas.Event, _ *assemble.Event) { out = append(out, bytes.Clone(d.Canonical())) }, func(r Reject) { t.Errorf("reject %v", r.Err) })
		d.SetGrantGrace(10 * time.Second)
		for i, l := range lines {
			d.Line(l, uint64(i+1), t0)
		}
		if d.Held() != 1 {
			t.Fatalf("held %d events, want 1", d.Held())
		}
		grants[login] = schemas.Grant{LoginID: login, ReqAuthID: "req-1"}
		d.Tick(t0.Add(time.Second))
		return out
	}
	want, got := run(false), run(true)
	if len(got) != 1 || len(want) != 1 {
		t.Fatalf("emitted %d events with RawDataInBuffer, %d without; want 1", len(got), len(want))
	}
	if !bytes.Equal(got[0], want[0]) {
		t.Errorf("canonical bytes with RawDataInBuffer\n%s\nwithout\n%s", got[0], want[0])
	}
	if !bytes.Contains(got[0], []byte("msg=audit(11/14/2023 22:13:20.100:100)")) || bytes.Contains(got[0], []byte(":101)")) {
		t.Errorf("the held event's raw_data is not its own: %s", got[0])
	}
}
