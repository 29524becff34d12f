package builder

import (
	"testing"

	"github.com/auditpipe/auditpipe/collector/assemble"
	"github.com/auditpipe/auditpipe/collector/auditlog"
	"github.com/auditpipe/auditpipe/schemas"
)

// Regression (issue 11, live session): Debian's sshd writes USER_LOGIN at
// login but no USER_LOGOUT, so a real session's end was never an event.
// With LogoutFromSessionClose sshd's PAM session close is the logout;
// sudo's session close is not, and without the option nothing changes.
// The records are as the live session test captured them.
func TestLogoutFromSessionClose(t *testing.T) {
	const (
		sshdEnd = `type=USER_END msg=audit(1796178864.786:202): pid=13109 uid=0 auid=1001 ses=31 msg='op=PAM:session_close grantors=pam_loginuid,pam_tty_audit,pam_unix acct="op" exe="/usr/sbin/sshd" hostname=127.0.0.1 addr=127.0.0.1 terminal=ssh res=success'`
		sudoEnd = `type=USER_END msg=audit(1796178864.578:194): pid=13159 uid=1001 auid=1001 ses=31 msg='op=PAM:session_close grantors=pam_limits,pam_permit,pam_unix acct="root" exe="/usr/bin/sudo" hostname=? addr=? terminal=/dev/pts/1 res=success'`
	)
	for _, c := range []struct {
		name   string
		line   string
		option bool
		want   Outcome
	}{
		{"sshd's session close, option on", sshdEnd, true, Emitted},
		{"sshd's session close, option off", sshdEnd, false, NotAudited},
		{"sudo's session close, option on", sudoEnd, true, NotAudited},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := New(Config{AllUsers: true, LogoutFromSessionClose: c.option, Names: NewNames(map[uint64]string{0: "root", 1001: "op"}, nil)})
			var r auditlog.Record
			if err := auditlog.NewTypes().Parse([]byte(c.line), &r); err != nil {
				t.Fatal(err)
			}
			var out schemas.Event
			got := b.Build(&assemble.Event{Records: []auditlog.Record{r}, Complete: true}, &out)
			if got != c.want {
				t.Fatalf("outcome %v, want %v", got, c.want)
			}
			if got != Emitted {
				return
			}
			if out.Event != schemas.KindLogout || out.LoginID != "op" || out.Res != "success" || out.Ses != "31" || out.SrcHost != "127.0.0.1" || out.TTY != "ssh" {
				t.Errorf("event %+v", out)
			}
		})
	}
}
