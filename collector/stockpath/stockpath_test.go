package stockpath

import "testing"

// TestPass: the stock path emits one event per complete event it can
// read, and none for what DESIGN.md says it cannot (node= prefixes).
func TestPass(t *testing.T) {
	cmd := []string{
		`type=SYSCALL msg=audit(1700000000.200:101): arch=c000003e syscall=59 success=yes exit=0 a0=55d1c2 a1=55d1d0 a2=55d1e8 a3=0 items=1 ppid=4000 pid=1101 auid=1001 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=7 comm="ls" exe="/usr/bin/ls" key="opctl"`,
		`type=EXECVE msg=audit(1700000000.200:101): argc=2 a0="ls" a1="-l"`,
		`type=CWD msg=audit(1700000000.200:101): cwd="/root"`,
		`type=EOE msg=audit(1700000000.200:101): `,
	}
	login := `type=USER_LOGIN msg=audit(1700000000.100:100): pid=900 uid=0 auid=1001 ses=7 msg='op=login id=1001 exe="/usr/sbin/sshd" hostname=10.0.0.5 addr=10.0.0.5 terminal=/dev/pts/0 res=success'`
	node := make([]string, len(cmd))
	for i, l := range cmd {
		node[i] = "node=cell01 " + l
	}
	tests := []struct {
		name  string
		lines []string
		want  int
	}{
		{"a command", cmd, 1},
		{"a login and a command", append([]string{login}, cmd...), 2},
		{"node= prefixes", node, 0},
		{"nothing", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Pass(tt.lines)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("%d events, want %d", got, tt.want)
			}
		})
	}
}
