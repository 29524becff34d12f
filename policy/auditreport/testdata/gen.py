#!/usr/bin/env python3
"""Writes second-session.log: a second login session of operator A (the
bundled sample's 830916abb78e4157b9e45b641e34fcf6, uid 2001, request req1)
on host cell02 (node= prefix), as auditd writes it (raw format). The report
tests feed deploy/sample/audit.log and then this file to the collector's
decoder. It holds: a sudo -u to celladmin and its child, a script run with
bash and the commands it ran (the seed's "bash then the script's
commands"), a pid reused after its process ended, two keystroke events,
and no logout (the session is still open). Run from this directory."""
import binascii

A, CELLADMIN = 2001, 1002
T0 = 1795600300  # five minutes after the sample's first line
serial = 50000
lines = []
NODE = "node=cell02 "

def hx(b):
    return binascii.hexlify(b).decode().upper()

def login(kind, sec, auid, ses, pid, host="10.20.30.41", tty="/dev/pts/4"):
    global serial
    serial += 1
    lines.append(f"{NODE}type={kind} msg=audit({sec}.100:{serial}): pid={pid} uid=0 auid={auid} ses={ses} "
                 f"subj=system_u:system_r:sshd_t:s0-s0:c0.c1023 msg='op=login id={auid} exe=\"/usr/sbin/sshd\" "
                 f"hostname={host} addr={host} terminal={tty} res=success'")

def cmd(sec, auid, uid, euid, ses, pid, ppid, argv, cwd="/home/op", tty="pts4", ok=True):
    global serial
    serial += 1
    m = f"msg=audit({sec}.250:{serial}):"
    exe = argv[0] if argv[0].startswith("/") else "/usr/bin/" + argv[0]
    lines.append(f"{NODE}type=SYSCALL {m} arch=c000003e syscall=59 success={'yes' if ok else 'no'} exit={0 if ok else -2} "
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
    lines.append(f"{NODE}type=EXECVE {m} argc={len(argv)} " + " ".join(args))
    lines.append(f"{NODE}type=CWD {m} cwd=\"{cwd}\"")
    lines.append(f"{NODE}type=PATH {m} item=0 name=\"{exe}\" inode={1180000 + len(exe)} dev=fd:00 mode=0100755 ouid=0 "
                 f"ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0")
    lines.append(f"{NODE}type=PROCTITLE {m} proctitle={hx(chr(0).join(argv).encode())}")
    lines.append(f"{NODE}type=EOE {m}")

def keys(sec, auid, ses, pid, data):
    global serial
    serial += 1
    lines.append(f"{NODE}type=TTY msg=audit({sec}.900:{serial}): tty pid={pid} uid={auid} auid={auid} ses={ses} "
                 f"major=136 minor=4 comm=\"bash\" data={hx(data.encode())}")

t = T0
login("USER_LOGIN", t, A, 733, 9001)
t += 3
keys(t, A, 733, 9005, "sudo -u celladmin cellcli -e 'list alerthistory'\r"); t += 1
cmd(t, A, A, 0, 733, 9010, 9005, ["sudo", "-u", "celladmin", "cellcli", "-e", "list alerthistory"]); t += 1
cmd(t, A, CELLADMIN, CELLADMIN, 733, 9011, 9010, ["/usr/bin/cellcli", "-e", "list alerthistory"], cwd="/home/celladmin"); t += 5
cmd(t, A, A, A, 733, 9020, 9005, ["/bin/bash", "./searchlog.sh", "--process", "cellservice"]); t += 1
cmd(t, A, A, A, 733, 9021, 9020, ["grep", "-c", "cellservice", "/var/log/messages"]); t += 1
cmd(t, A, A, A, 733, 9022, 9020, ["tail", "-n", "5", "/var/log/messages"]); t += 4
# pid 9011 (cellcli above) has ended; the shell's next child gets it again.
cmd(t, A, A, A, 733, 9011, 9005, ["uptime"]); t += 2
keys(t, A, 733, 9005, "exit\r")
# No logout: the session is still open when the log ends.

with open("second-session.log", "w", newline="\n") as f:
    f.write("\n".join(lines) + "\n")
