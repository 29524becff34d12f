package builder

import (
	"testing"

	"github.com/auditpipe/auditpipe/collector/auditlog"
)

func TestInterpretValues(t *testing.T) {
	b := New(Config{Names: NewNames(map[uint64]string{0: "root", 1001: "op"}, map[uint64]string{0: "root", 1001: "ops"})})
	tests := []struct {
		name, recType, body, want string
	}{
		{"mode file", "PATH", "mode=0100755", "mode=file,755"},
		{"mode dir sticky", "PATH", "mode=041777", "mode=dir,sticky,777"},
		{"mode suid", "PATH", "mode=0104755", "mode=file,suid,755"},
		{"mode char", "PATH", "mode=020620", "mode=character,620"},
		{"mode garbage", "PATH", "mode=zz", "mode=zz"},
		{"exit errno", "SYSCALL", "exit=-2", "exit=ENOENT(No such file or directory)"},
		{"exit positive", "SYSCALL", "exit=3", "exit=3"},
		{"arch and syscall", "SYSCALL", "arch=c000003e syscall=59", "arch=x86_64 syscall=execve"},
		{"aarch64 syscall", "SYSCALL", "arch=c00000b7 syscall=221", "arch=aarch64 syscall=execve"},
		{"unknown syscall", "SYSCALL", "arch=c000003e syscall=99999", "arch=x86_64 syscall=99999"},
		{"syscall args", "SYSCALL", "a0=fff6d0 a3=0x1", "a0=0xfff6d0 a3=0x1"},
		{"execve args not prefixed", "EXECVE", "argc=1 a0=\"ls\"", "argc=1 a0=ls"},
		{"ids", "SYSCALL", "auid=1001 uid=0 gid=1001 euid=4242 ses=4294967295 oauid=4294967295", "auid=op uid=root gid=ops euid=unknown(4242) ses=unset oauid=unset"},
		{"hex any case", "PATH", "name=2F746D702F6162 cwd=2f746d70", "name=/tmp/ab cwd=/tmp"},
		{"null and ?", "SYSCALL", "key=(null) comm=?", "key=(null) comm=?"},
		{"proctitle", "PROCTITLE", "proctitle=6C73002F00", "proctitle=ls /"},
		{"nested msg", "USER_LOGIN", "msg='op=login id=1001 exe=\"/usr/sbin/sshd\" res=1'", "msg='op=login id=op exe=/usr/sbin/sshd res=success'"},
		{"bare word", "TTY", "tty pid=1", "tty pid=1"},
		// The expected values below are what ausearch -i (auditd 3.0.9)
		// prints for the same fields.
		{"tty data", "TTY", "data=1B5B417072696E74660D7F03", `data=<up>,"printf",<ret>,<backspace>,<^C>`},
		{"tty keys and runs", "TTY", "data=1C1D1E1F7F611B5B337E22615C62", `data="\034\035\036\037",<backspace>,"a",<delete>,"\"a\\b"`},
		{"tty function keys", "TTY", "data=1B4F501B5B32347E1B5B357E1B5B5A0D0A1B61", `data=<F1>,<F12>,<page-up>,<back-tab>,<ret>,<nl>,<esc>,"a"`},
		{"tty non-ascii", "TTY", "data=00E3818261", `data="\000\343\201\202a"`},
		{"user tty data as it is", "USER_TTY", `msg='data="sudo su -" terminal=pts/0'`, `msg='data="sudo su -" terminal=pts/0'`},
		{"caps", "PATH", "cap_fp=8000000000 cap_fi=20 cap_fe=1 cap_fver=2", "cap_fp=bpf cap_fi=kill cap_fe=1 cap_fver=2"},
		{"caps none", "PATH", "cap_fp=0 cap_fi=0", "cap_fp=none cap_fi=none"},
		{"bprm fcaps", "BPRM_FCAPS", "fp=0000000000000401 fi=0 fe=1 old_pe=0000000000000004 pp=3", "fp=chown,net_bind_service fi=none fe=1 old_pe=dac_read_search pp=chown,dac_override"},
		{"control characters in an argument", "EXECVE", "argc=2 a0=6563686F a1=610A0962", `argc=2 a0=echo a1=a\012\011b`},
		{"multiple keys", "SYSCALL", "key=6F7063746C016578656373", "key=opctl key=execs"},
		{"key with a backslash", "SYSCALL", "key=615C30303120620162", `key=a\001 b key=b`},
		{"one key", "SYSCALL", `key="opctl"`, "key=opctl"},
		{"quoted uninterpreted field", "UNKNOWN[1999]", `frob=1 widget="x"`, `frob=1 widget="x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := recState{}
			got := string(b.appendFields(nil, []byte(tt.body), []byte(tt.recType), &st, roleNone))
			if got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestEnrichedNamesWin(t *testing.T) {
	b := New(Config{Names: NewNames(map[uint64]string{1001: "from-passwd"}, nil)})
	types := auditlog.NewTypes()
	var r auditlog.Record
	if err := types.Parse([]byte("type=SYSCALL msg=audit(1.000:1): auid=1001 uid=1001\x1dAUID=\"from-record\""), &r); err != nil {
		t.Fatal(err)
	}
	got := string(b.appendRecord(nil, &r, roleNone))
	want := "type=SYSCALL msg=audit(01/01/1970 00:00:01.000:1) : auid=from-record uid=from-passwd \n"
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

func TestTTYName(t *testing.T) {
	for _, tt := range []struct{ major, minor, want string }{
		{"136", "0", "pts0"}, {"137", "3", "pts259"}, {"4", "1", "tty1"}, {"5", "1", "5:1"}, {"x", "1", ""},
	} {
		if got := ttyName([]byte(tt.major), []byte(tt.minor)); got != tt.want {
			t.Errorf("ttyName(%s,%s) = %q, want %q", tt.major, tt.minor, got, tt.want)
		}
	}
}
