package agent

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	libaudit "github.com/elastic/go-libaudit/v2"

	"github.com/auditpipe/auditpipe/agent/pkgmgr/pkgmgrtest"
	"github.com/auditpipe/auditpipe/internal/testenv"
	"github.com/auditpipe/auditpipe/schemas"
)

// TestLiveWorkLoginUID: on the live host, a governed run (the dispatch
// names the access request and its grant's login, deployed here) runs
// apt-get with the login's kernel loginuid: the maintainer script reads
// it from /proc/self/loginuid, and the kernel's audit records of apt-get
// and dpkg carry it as auid under the grant's audit rule key, which is
// how the collector ties them to the request like an operator's
// commands. A governed run whose login never comes fails at its cutoff
// with the reason.
func TestLiveWorkLoginUID(t *testing.T) {
	pkgmgrtest.RequireApt(t)
	login := newLogin(t)
	h := workOn(liveHarness(t, login), pkgmgrtest.BuildRepo(t, workPackages))
	h.kernel.Enable(t)
	h.start(nil)
	h.waitInventory(schemas.InventoryScheduled, "")
	g := diagGrant(login)
	h.grant(g)
	h.waitReport(login, schemas.AgentDeployed)
	uid, _ := strconv.Atoi(strings.Split(run(t, "getent", "passwd", login), ":")[2])

	t.Cleanup(func() { h.revoke(login); h.waitReport(login, schemas.AgentUndeployed) })

	// Read from now on: the socket's buffer holds only so much.
	mc, err := libaudit.NewMulticastAuditClient(nil)
	if err != nil {
		testenv.SkipOrFail(t, testenv.KernelAudit, "audit multicast socket: %v", err)
	}
	defer mc.Close()
	d := runOf("wr-governed", schemas.OperationInstall, "whoami")
	d.ReqAuthID, d.LoginID = g.ReqAuthID, login
	h.dispatch(d)
	reps := h.waitFinal(d.WorkRequestID)
	logs := logsOf(reps)
	if last := reps[len(reps)-1]; last.Status != schemas.WorkSucceeded {
		t.Fatalf("governed run: %s", h.dump())
	}
	for _, want := range []string{
		fmt.Sprintf("for access request %s as its grant's login %s (uid %d): apt-get runs with loginuid %d", g.ReqAuthID, login, uid, uid),
		fmt.Sprintf("whoami: loginuid=%d", uid),
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	// The kernel's records: apt-get's and dpkg's execve with the login's
	// auid, under the grant's rule key.
	key := fmt.Sprintf(`key="%s"`, auditKey(login))
	seen := map[string]bool{}
	deadline := time.Now().Add(30 * time.Second)
	for !seen["apt-get"] || !seen["dpkg"] {
		if time.Now().After(deadline) {
			t.Fatalf("no audit records of apt-get and dpkg with auid=%d and %s (seen %v)", uid, key, seen)
		}
		msg, err := mc.Receive(true)
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if errors.Is(err, syscall.ENOBUFS) {
			t.Log("audit multicast: the socket's buffer overflowed; records were lost, reading on")
			continue
		}
		if err != nil {
			t.Fatalf("audit receive: %v", err)
		}
		rec := string(msg.Data)
		if !strings.Contains(rec, fmt.Sprintf(" auid=%d ", uid)) || !strings.Contains(rec, key) {
			continue
		}
		for _, comm := range []string{"apt-get", "dpkg"} {
			if strings.Contains(rec, `comm="`+comm+`"`) {
				seen[comm] = true
			}
		}
	}

	// A login that is not on this host: the run waits for it, and fails at
	// its cutoff with the reason.
	other := runOf("wr-no-login", schemas.OperationInstall, "tool")
	other.ReqAuthID, other.LoginID = "ocid1.accessrequest.none", newLogin(t)
	other.NotAfter = time.Now().Add(2 * time.Second)
	h.dispatch(other)
	reps = h.waitFinal(other.WorkRequestID)
	if last := reps[len(reps)-1]; last.Status != schemas.WorkFailed || last.Errors[0].Code != CodeLoginMissing ||
		!strings.Contains(last.Errors[0].Message, "is not on this host") || len(reps) != 1 {
		t.Errorf("run without its login: %s", h.dump())
	}
}
