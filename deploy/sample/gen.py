#!/usr/bin/env python3
"""Writes the bundled sample audit log that `make run` feeds the all-in-one:
two operators on two access requests, as auditd writes their sessions (raw
format), plus an automation user that is not audited. Run from this directory."""
import binascii

OPS = {  # login user (32 hex digits, as the policy service creates them): uid
    "830916abb78e4157b9e45b641e34fcf6": 2001,
    "5f1c0e9d2a7b4c3e8d6f0a1b2c3d4e5f": 2002,
}
CELLADMIN, AUTO = 1002, 1500
T0 = 1795600000  # 2026-11-25 09:46:40 UTC
serial = 40000
lines = []

def hx(b):
    return binascii.hexlify(b).decode().upper()

def ts(sec, ms):
    return f"{sec}.{ms:03d}"

def login(kind, sec, auid, ses, pid, host="10.20.30.41", tty="/dev/pts/1"):
    global serial
    serial += 1
    lines.append(f"type={kind} msg=audit({ts(sec, 100)}:{serial}): pid={pid} uid=0 auid={auid} ses={ses} "
                 f"subj=system_u:system_r:sshd_t:s0-s0:c0.c1023 msg='op=login id={auid} exe=\"/usr/sbin/sshd\" "
                 f"hostname={host} addr={host} terminal={tty} res=success'")

def cmd(sec, auid, euid, ses, pid, ppid, argv, cwd="/root", tty="pts1", ok=True):
    """A setuid program (su, sudo) runs as root but keeps its caller's uid."""
    global serial
    uid = auid if euid == 0 and argv[0] in ("su", "sudo") else euid
    serial += 1
    m = f"msg=audit({ts(sec, 250)}:{serial}):"
    exe = argv[0] if argv[0].startswith("/") else "/usr/bin/" + argv[0]
    lines.append(f"type=SYSCALL {m} arch=c000003e syscall=59 success={'yes' if ok else 'no'} exit={0 if ok else -2} "
                 f"a0=55d5a1e0 a1=55d5a2f0 a2=55d5a300 a3=0 items=2 ppid={ppid} pid={pid} auid={auid} uid={uid} "
                 f"gid={uid} euid={euid} suid={euid} fsuid={euid} egid={euid} sgid={euid} fsgid={euid} tty={tty} "
                 f"ses={ses} comm=\"{argv[0].split('/')[-1][:15]}\" exe=\"{exe}\" "
                 f"subj=unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023 key=\"opctl_cmd\"")
    args = []
    for i, a in enumerate(argv):
        if any(c in a for c in ' "\'') or not a.isprintable():
            args.append(f"a{i}={hx(a.encode())}")
        else:
            args.append(f'a{i}="{a}"')
    lines.append(f"type=EXECVE {m} argc={len(argv)} " + " ".join(args))
    lines.append(f"type=CWD {m} cwd=\"{cwd}\"")
    lines.append(f"type=PATH {m} item=0 name=\"{exe}\" inode={1180000 + len(exe)} dev=fd:00 mode=0100755 ouid=0 "
                 f"ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0")
    lines.append(f"type=PATH {m} item=1 name=\"/lib64/ld-linux-x86-64.so.2\" inode=1182648 dev=fd:00 mode=0100755 "
                 f"ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0")
    lines.append(f"type=PROCTITLE {m} proctitle={hx(chr(0).join(argv).encode())}")
    lines.append(f"type=EOE {m}")

def keys(sec, auid, ses, pid, data):
    global serial
    serial += 1
    lines.append(f"type=TTY msg=audit({ts(sec, 900)}:{serial}): tty pid={pid} uid={auid} auid={auid} ses={ses} "
                 f"major=136 minor=1 comm=\"bash\" data={hx(data.encode())}")

A, B = OPS["830916abb78e4157b9e45b641e34fcf6"], OPS["5f1c0e9d2a7b4c3e8d6f0a1b2c3d4e5f"]
t = T0
# Operator A, request 1: a diagnosis session with su to celladmin and a restart through sudo.
login("USER_LOGIN", t, A, 501, 7001)
t += 5
cmd(t, A, A, 501, 7010, 7005, ["ls", "-l", "/var/log"]); t += 3
cmd(t, A, A, 501, 7011, 7005, ["tail", "-n", "10", "/var/log/messages"]); t += 4
cmd(t, A, A, 501, 7012, 7005, ["grep", "-i", "error", "/var/log/messages"]); t += 2
keys(t, A, 501, 7005, "su - celladmin\r"); t += 1
cmd(t, A, 0, 501, 7013, 7005, ["su", "-", "celladmin"]); t += 2
cmd(t, A, CELLADMIN, 501, 7020, 7013, ["cellcli", "-e", "list cell detail"], cwd="/home/celladmin"); t += 6
cmd(t, A, CELLADMIN, 501, 7021, 7013, ["tail", "-n", "10", "/var/log/messages"], cwd="/home/celladmin"); t += 3
cmd(t, A, 0, 501, 7030, 7005, ["sudo", "systemctl", "restart", "cellsrv"]); t += 1
cmd(t, A, 0, 501, 7031, 7030, ["/usr/bin/systemctl", "restart", "cellsrv"]); t += 8
cmd(t, A, A, 501, 7032, 7005, ["netstat", "-an"]); t += 2
cmd(t, A, A, 501, 7033, 7005, ["cat", "/etc/shadow"], ok=False); t += 4
# An automation account works at the same time: not audited.
cmd(t, AUTO, AUTO, 900, 8001, 8000, ["/opt/oracle/dcs/bin/dcs-agent", "--health"], tty="(none)"); t += 1
login("USER_LOGOUT", t, A, 501, 7001)
t += 60
# Operator B, request 2: an update session, still open at the end of the log.
login("USER_LOGIN", t, B, 612, 7101, host="10.20.30.52", tty="/dev/pts/2")
t += 4
cmd(t, B, B, 612, 7110, 7105, ["uname", "-a"], tty="pts2"); t += 2
cmd(t, B, 0, 612, 7111, 7105, ["sudo", "yum", "check-update", "--security"], tty="pts2"); t += 9
cmd(t, B, 0, 612, 7112, 7111, ["/usr/bin/yum", "check-update", "--security"], tty="pts2"); t += 20
cmd(t, B, B, 612, 7113, 7105, ["df", "-h"], tty="pts2")

with open("audit.log", "w", newline="\n") as f:
    f.write("\n".join(lines) + "\n")
with open("passwd", "w") as f:
    f.write("root:x:0:0:root:/root:/bin/bash\n")
    f.write(f"celladmin:x:{CELLADMIN}:{CELLADMIN}::/home/celladmin:/bin/bash\n")
    f.write(f"oracle-auto:x:{AUTO}:{AUTO}:automation:/home/auto:/sbin/nologin\n")
    for name, uid in OPS.items():
        f.write(f"{name}:x:{uid}:{uid}:operator:/home/{name}:/bin/bash\n")
with open("group", "w") as f:
    f.write(f"root:x:0:\ncelladmin:x:{CELLADMIN}:\noracle-auto:x:{AUTO}:\n")
    for name, uid in OPS.items():
        f.write(f"{name}:x:{uid}:\n")
