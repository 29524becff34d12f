package agent

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/kafka"
	"github.com/auditpipe/auditpipe/internal/kafka/kafkatest"
	"github.com/auditpipe/auditpipe/internal/testenv"
	"github.com/auditpipe/auditpipe/schemas"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// observations is the number of values h observed.
func observations(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// plan is what the rendering host left under root for login.
type plan struct {
	passwd, shadow, keys, sudoers, rules, pam, log string
	home                                           bool
}

func readPlan(t *testing.T, root, login string) plan {
	t.Helper()
	opt := func(p string) string {
		b, _ := os.ReadFile(filepath.Join(root, p))
		return string(b)
	}
	return plan{
		passwd: opt(RenderPasswd), shadow: opt(RenderShadow),
		keys:    opt("home/" + login + "/.ssh/authorized_keys"),
		sudoers: opt("etc/sudoers.d/auditpipe-" + login), rules: opt(RenderAuditRules),
		pam: opt("etc/pam.d/auditpipe-tty-audit"), log: opt(RenderPlanLog),
		home: exists(filepath.Join(root, "home", login)),
	}
}

// nothingOf fails unless root holds nothing of login but the plan log.
func nothingOf(t *testing.T, root, login string) {
	t.Helper()
	p := readPlan(t, root, login)
	for what, s := range map[string]string{"passwd": p.passwd, "shadow": p.shadow, "sudoers": p.sudoers, "audit rules": p.rules, "pam": p.pam} {
		if strings.Contains(s, login) {
			t.Errorf("%s still names %s:\n%s", what, login, s)
		}
	}
	if p.home {
		t.Errorf("home of %s still there", login)
	}
}

// TestRenderDeployRevoke: without the live switch a signed grant for
// this host is rendered under the root (user with marker, locked
// password and expiry, keys, a checked sudoers fragment, both arches'
// rules, keystroke capture), reported DEPLOYED; its revocation ends the
// sessions (in the plan), removes it all and is reported UNDEPLOYED.
func TestRenderDeployRevoke(t *testing.T) {
	h := newHarness(t)
	login := newLogin(t)
	g := diagGrant(login)
	h.grant(g)
	_, a := h.startAgent(nil)
	rep := h.waitReport(login, schemas.AgentDeployed)
	if rep.Host != testHost || rep.ReqAuthID != g.ReqAuthID {
		t.Errorf("report %+v", rep)
	}
	p := readPlan(t, h.cfg.Root, login)
	if !strings.Contains(p.passwd, login+":x:60000:60000:auditpipe-agent "+g.ReqAuthID+":/home/"+login+":/bin/bash\n") {
		t.Errorf("passwd:\n%s", p.passwd)
	}
	if want := login + ":!:"; !strings.HasPrefix(p.shadow, want) || !strings.Contains(p.shadow, ":"+strconvDays(expiryDay(g.Expires))+":") {
		t.Errorf("shadow (locked, expiry day %s):\n%s", expiryDay(g.Expires), p.shadow)
	}
	if p.keys != g.SSHAuthorizedKeys[0]+"\n" {
		t.Errorf("authorized_keys: %q", p.keys)
	}
	frag, _ := renderSudoers(g, "/usr/bin/su")
	if p.sudoers != string(frag) {
		t.Errorf("sudoers:\n%s\nwant\n%s", p.sudoers, frag)
	}
	for _, arch := range []string{"arch=b64", "arch=b32"} {
		if !strings.Contains(p.rules, "-F "+arch+" -S execve,execveat -F auid=60000 -k auditpipe-agent-"+login) {
			t.Errorf("no %s rule:\n%s", arch, p.rules)
		}
	}
	if !strings.Contains(p.pam, "pam_tty_audit.so enable="+login+"\n") {
		t.Errorf("pam:\n%s", p.pam)
	}
	if got := testutil.ToFloat64(a.m.grants); got != 1 {
		t.Errorf("auditpipe_agent_grants = %v", got)
	}

	h.revoke(login)
	rep = h.waitReport(login, schemas.AgentUndeployed)
	if rep.Step != WhyRevoked || rep.ReqAuthID != g.ReqAuthID {
		t.Errorf("report %+v", rep)
	}
	nothingOf(t, h.cfg.Root, login)
	if log := readPlan(t, h.cfg.Root, login).log; !strings.Contains(log, "end sessions loginuid=60000") || !strings.Contains(log, "userdel --remove name="+login) {
		t.Errorf("plan log:\n%s", log)
	}
	if got := testutil.ToFloat64(a.m.undeploys.WithLabelValues(WhyRevoked)); got != 1 {
		t.Errorf("undeploys{revoked} = %v", got)
	}
	if got := observations(t, a.m.removeSeconds); got != 1 {
		t.Errorf("undeploy duration observations = %v", got)
	}
}

func strconvDays(d time.Time) string {
	b, _ := json.Marshal(d.Unix() / 86400)
	return string(b)
}

// TestRenderSelection: only live grants for this host and its resources
// are deployed; one that starts later is deployed at its start, and one
// that expires is removed at its expiry (UNDEPLOYED, expired); a command
// audit grant gets no keystroke capture.
func TestRenderSelection(t *testing.T) {
	h := newHarness(t)
	h.cfg.Resources = []string{"exacc-main"}
	other, otherRes, later, soon, cmdOnly := newLogin(t), newLogin(t), newLogin(t), newLogin(t), newLogin(t)
	g := diagGrant(other)
	g.Hosts = []string{"cps01"}
	h.grant(g)
	g = diagGrant(otherRes)
	g.Resource = "exacc-other"
	h.grant(g)
	now := time.Now().UTC()
	g = diagGrant(later)
	g.Start = now.Add(1500 * time.Millisecond)
	h.grant(g)
	g = diagGrant(soon)
	g.Expires = now.Add(1500 * time.Millisecond)
	h.grant(g)
	g = diagGrant(cmdOnly)
	g.AuditType = schemas.AuditCommand
	h.grant(g)
	h.start(nil)

	h.waitReport(cmdOnly, schemas.AgentDeployed)
	h.waitReport(soon, schemas.AgentDeployed)
	if r := h.waitReport(later, schemas.AgentDeployed); r.Time.Before(now.Add(1500 * time.Millisecond)) {
		t.Errorf("deployed at %s, before its start", r.Time)
	}
	if r := h.waitReport(soon, schemas.AgentUndeployed); r.Step != WhyExpired || r.Time.Before(now.Add(1500*time.Millisecond)) {
		t.Errorf("expiry report %+v", r)
	}
	nothingOf(t, h.cfg.Root, soon)
	nothingOf(t, h.cfg.Root, other)
	nothingOf(t, h.cfg.Root, otherRes)
	for _, r := range h.seen {
		if r.LoginID == other || r.LoginID == otherRes {
			t.Errorf("report on a grant for another host or resource: %+v", r)
		}
	}
	if p := readPlan(t, h.cfg.Root, cmdOnly); strings.Contains(p.pam, cmdOnly) || !strings.Contains(p.pam, later) {
		t.Errorf("pam file (keystrokes for %s only):\n%s", later, p.pam)
	}
}

// TestRenderRefusesForgedGrants: an unsigned grant, one signed by an
// unknown key and a grant replayed after its revocation change nothing on
// the host; each is counted and dead-lettered (reason grant_…), as the
// collector does with the same follower.
func TestRenderRefusesForgedGrants(t *testing.T) {
	h := newHarness(t)
	forged, replayed := newLogin(t), newLogin(t)
	plain, _ := json.Marshal(diagGrant(forged))
	h.publish(kafka.Record{Key: []byte(forged), Value: plain})
	stranger := newHarness(t).signer
	g := diagGrant(forged)
	g.PublishSeq = 1
	r, err := grants.Record(stranger, g)
	if err != nil {
		t.Fatal(err)
	}
	h.publish(r)
	h.grant(diagGrant(replayed))
	h.revoke(replayed)
	h.grant(diagGrant(replayed))
	marker := newLogin(t)
	h.grant(diagGrant(marker))
	_, a := h.startAgent(nil)
	h.waitReport(marker, schemas.AgentDeployed)
	deadline := time.After(30 * time.Second)
	var reasons []string
	for len(reasons) < 3 {
		select {
		case d := <-h.dead:
			var l schemas.DeadLetter
			if err := json.Unmarshal(d.Value, &l); err != nil {
				t.Fatal(err)
			}
			if l.Component != "agent" || l.Host != testHost {
				t.Errorf("dead letter %+v", l)
			}
			reasons = append(reasons, l.Reason)
		case <-deadline:
			t.Fatalf("dead letters: %v", reasons)
		}
	}
	if strings.Join(reasons, ",") != "grant_unsigned,grant_unknown_key,grant_replayed" {
		t.Errorf("dead letters %v", reasons)
	}
	for _, reason := range []string{grants.ReasonUnsigned, grants.ReasonUnknownKey, grants.ReasonReplayed} {
		if got := testutil.ToFloat64(a.m.refused.WithLabelValues(reason)); got != 1 {
			t.Errorf("refused{%s} = %v", reason, got)
		}
	}
	nothingOf(t, h.cfg.Root, forged)
	nothingOf(t, h.cfg.Root, replayed)
}

// requireVisudo skips or fails without visudo.
func requireVisudo(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("visudo")
	if err != nil {
		if _, err := os.Stat("/usr/sbin/visudo"); err != nil {
			testenv.SkipOrFail(t, testenv.HostTools, "visudo not found (scripts/deps.d/50-host-agent.sh installs sudo)")
		}
		p = "/usr/sbin/visudo"
	}
	return p
}

// TestRenderStepFailures: a step that fails leaves nothing of the grant
// behind and is reported DEPLOYFAILED with the step and the reason: a
// login taken by a user the agent did not create (left as it was), a
// sudo command visudo refuses (a relative path), audit rules that cannot
// be written. A login that is not 32 hex digits (root) is refused before
// anything is looked at.
func TestRenderStepFailures(t *testing.T) {
	requireVisudo(t)
	h := newHarness(t)
	taken, badSudo, badRules, root := newLogin(t), newLogin(t), newLogin(t), "root"
	passwd := filepath.Join(h.cfg.Root, RenderPasswd)
	if err := os.MkdirAll(filepath.Dir(passwd), 0o755); err != nil {
		t.Fatal(err)
	}
	existing := taken + ":x:1500:1500:a person:/home/" + taken + ":/bin/sh\n"
	if err := os.WriteFile(passwd, []byte(existing), 0o644); err != nil {
		t.Fatal(err)
	}
	stop := h.start(nil)
	h.grant(diagGrant(taken))
	r := h.waitReport(taken, schemas.AgentDeployFailed)
	if r.Step != StepUser || !strings.Contains(r.Reason, "not created by the agent") {
		t.Errorf("report %+v", r)
	}
	if got := readFile(t, passwd); got != existing {
		t.Errorf("the existing user was changed:\n%s", got)
	}

	g := diagGrant(badSudo)
	g.Privileges.SudoCommands = append(g.Privileges.SudoCommands, "reboot")
	h.grant(g)
	r = h.waitReport(badSudo, schemas.AgentDeployFailed)
	if r.Step != StepSudoers || !strings.Contains(r.Reason, "fully-qualified") {
		t.Errorf("report %+v", r)
	}
	nothingOf(t, h.cfg.Root, badSudo)
	if ents, _ := os.ReadDir(filepath.Join(h.cfg.Root, "etc/sudoers.d")); len(ents) != 0 {
		t.Errorf("sudoers.d holds %v", ents)
	}

	rules := filepath.Join(h.cfg.Root, RenderAuditRules)
	if err := os.RemoveAll(rules); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(rules, 0o755); err != nil { // not a file: writes fail
		t.Fatal(err)
	}
	h.grant(diagGrant(badRules))
	r = h.waitReport(badRules, schemas.AgentDeployFailed)
	if r.Step != StepAuditRules {
		t.Errorf("report %+v", r)
	}
	stop()
	if err := os.Remove(rules); err != nil {
		t.Fatal(err)
	}
	nothingOf(t, h.cfg.Root, badRules)

	h.start(nil)
	g = diagGrant(root)
	g.LoginID = root
	h.grant(g)
	r = h.waitReport(root, schemas.AgentDeployFailed)
	if r.Step != StepUser || !strings.Contains(r.Reason, "32 lowercase hex") {
		t.Errorf("report %+v", r)
	}
	h.waitReport(badRules, schemas.AgentDeployed) // the reconcile at start retried it
}

// TestRenderReconcile: what the agent left for a login whose revocation
// came while it was not running (a user, its fragment, rules, keystroke
// entry), and a fragment alone, are removed at start and reported
// UNDEPLOYED (reconcile); a live grant's user is kept, and one removed by
// hand is deployed again by the next reconcile.
func TestRenderReconcile(t *testing.T) {
	h := newHarness(t)
	h.cfg.ReconcileInterval = 300 * time.Millisecond
	gone, kept, stray := newLogin(t), newLogin(t), newLogin(t)
	h.grant(diagGrant(gone))
	h.grant(diagGrant(kept))
	stop := h.start(nil)
	h.waitReport(gone, schemas.AgentDeployed)
	h.waitReport(kept, schemas.AgentDeployed)
	stop()
	h.revoke(gone)
	if err := os.WriteFile(filepath.Join(h.cfg.Root, "etc/sudoers.d", sudoersPrefix+stray), []byte("# stray\n"), 0o440); err != nil {
		t.Fatal(err)
	}
	_, a := h.startAgent(nil)
	if r := h.waitReport(gone, schemas.AgentUndeployed); r.Step != WhyReconcile || r.ReqAuthID != diagGrant(gone).ReqAuthID {
		t.Errorf("report %+v", r)
	}
	if r := h.waitReport(stray, schemas.AgentUndeployed); r.Step != WhyReconcile {
		t.Errorf("report %+v", r)
	}
	nothingOf(t, h.cfg.Root, gone)
	nothingOf(t, h.cfg.Root, stray)
	if p := readPlan(t, h.cfg.Root, kept); !strings.Contains(p.passwd, kept) || p.sudoers == "" {
		t.Errorf("the live grant's user or fragment is gone")
	}
	for kind, want := range map[string]float64{"user": 1, "sudoers": 2, "audit_rules": 1, "tty_audit": 1} {
		if got := testutil.ToFloat64(a.m.orphans.WithLabelValues(kind)); got != want {
			t.Errorf("orphans{%s} = %v, want %v", kind, got, want)
		}
	}
	// The user removed by hand: deployed again.
	edited := time.Now()
	if err := editLines(filepath.Join(h.cfg.Root, RenderPasswd), kept, ""); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(30 * time.Second)
	for again := false; !again; {
		select {
		case r := <-h.reports:
			h.seen = append(h.seen, r)
			again = r.LoginID == kept && r.State == schemas.AgentDeployed && r.Time.After(edited)
		case <-deadline:
			t.Fatalf("not deployed again: %+v", h.seen)
		}
	}
	if p := readPlan(t, h.cfg.Root, kept); !strings.Contains(p.passwd, kept) {
		t.Errorf("user not back:\n%s", p.passwd)
	}
}

// TestRenderReplayAfterCompaction: issue 9, replay protection that
// survives compaction. The agent's memory of the grants it applied
// (grants.Seqs, and the revoked logins) lived in memory only: a revoked
// login's grant written again after its revocation, and left by
// compaction as the login's only record, was the first record of the
// login a restarted agent saw, and it deployed the user again. The memory
// is now kept beside agent.key_file (GrantsStateFile): the restarted agent
// refuses the replay as replayed, dead-letters it, and the user stays
// removed.
func TestRenderReplayAfterCompaction(t *testing.T) {
	h := newHarness(t)
	login := newLogin(t)
	g := diagGrant(login)
	g.PublishSeq = testSeqs.Next()
	grant, err := grants.Record(h.signer, g)
	if err != nil {
		t.Fatal(err)
	}
	stop, _ := h.startAgent(nil)
	h.publish(grant)
	h.waitReport(login, schemas.AgentDeployed)
	h.revoke(login)
	h.waitReport(login, schemas.AgentUndeployed)
	stop()

	// While the agent is stopped: the grant written again, then another
	// login's grant, and the topic compacted.
	h.publish(grant)
	marker := newLogin(t)
	h.grant(diagGrant(marker))
	h.broker.Compact()
	left := kafkatest.ReadAll(t, h.kcfg, schemas.TopicGrants, 20*time.Second)
	if len(left) != 2 || string(left[0].Value) != string(grant.Value) {
		t.Fatalf("after compaction %d records, want the replay and the other login's grant", len(left))
	}

	_, a := h.startAgent(nil)
	h.waitReport(marker, schemas.AgentDeployed)
	if got := testutil.ToFloat64(a.m.refused.WithLabelValues(grants.ReasonReplayed)); got != 1 {
		t.Errorf("refused{replayed} after the restart = %v, want 1", got)
	}
	select {
	case d := <-h.dead:
		var l schemas.DeadLetter
		if err := json.Unmarshal(d.Value, &l); err != nil || l.Reason != "grant_"+grants.ReasonReplayed || l.Raw != string(grant.Value) {
			t.Errorf("dead letter %+v %v, want the replay as grant_%s", l, err, grants.ReasonReplayed)
		}
	case <-time.After(30 * time.Second):
		t.Error("no dead letter for the replay")
	}
	nothingOf(t, h.cfg.Root, login)
	deployed := 0
	for _, r := range h.seen {
		if r.LoginID == login && r.State == schemas.AgentDeployed {
			deployed++
		}
	}
	if deployed != 1 {
		t.Errorf("%s deployed %d times, want once (before its revocation)", login, deployed)
	}
}
