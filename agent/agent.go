package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/grants"
	"github.com/auditpipe/auditpipe/internal/sign"
	"github.com/auditpipe/auditpipe/schemas"
)

// Deps are what the composition root hands the agent.
type Deps struct {
	Log      *slog.Logger
	Registry prometheus.Registerer
	// Host, when set, replaces the host the configuration chooses (tests).
	Host Host
	// Now, when set, is the clock (tests).
	Now func() time.Time
}

// Agent is the host agent. Build it with New and call Run.
type Agent struct {
	cfg  Config
	host Host
	keys *sign.Keyring
	// dispatchKeys verify the dispatch (agent.work.dispatch_keys, else
	// the grant keys).
	dispatchKeys *sign.Keyring
	// signer is the host's own key (agent.key_file): it signs every
	// message the agent writes on opctl.agent.v1.
	signer *sign.Signer
	log    *slog.Logger
	m      *metrics
	now    func() time.Time

	updates chan update

	// owned by Run's loop
	grants  map[string]schemas.Grant // the latest grant of each login, revocations removed
	revoked map[string]time.Time     // logins revoked, when the revocation was read
	applied map[string]applied       // grants deployed on the host
	failed  map[string]failure       // grants whose deployment failed, until they change or reconcile retries
	pending map[string]removal       // removals that failed a step, retried
}

// removal is a removal to retry.
type removal struct {
	due    time.Time // when it became due
	why    string    // the UNDEPLOYED step; "" after a failed deployment (reported already)
	req    string
	report bool
}

// update is one verified message, with when it was read.
type update struct {
	m  grants.Message
	at time.Time
}

// applied is a grant as deployed.
type applied struct {
	grant schemas.Grant
	uid   int
}

type failure struct {
	grant  schemas.Grant
	step   string
	reason string
}

// GrantsStateFile keeps the agent's replay memory of the grants
// (grants.FollowConfig.StateFile), beside agent.key_file: a revoked
// login's grant written again, which compaction left as the login's only
// record, is refused after a restart instead of deploying the user again.
const GrantsStateFile = "grants-seqs.json"

// DispatchStateFile keeps the replay memory of the dispatches, in
// agent.work.state_dir.
const DispatchStateFile = "dispatch-seqs.json"

// New returns the agent of cfg: the live host with the live switch on
// (which needs root), else the rendering host under cfg.Root.
func New(cfg Config, deps Deps) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Host == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("agent.host: %w", err)
		}
		cfg.Host = h
	}
	paths := []string{}
	paths = append(paths, cfg.GrantKeys...)
	if cfg.OwnGrantKey != "" {
		paths = append(paths, cfg.OwnGrantKey)
	}
	keys, err := sign.LoadKeyring(paths...)
	if err != nil {
		return nil, fmt.Errorf("agent.grant_keys: %w", err)
	}
	dispatchKeys := keys
	if len(cfg.Work.DispatchKeys) > 0 {
		paths := slices.Clone(cfg.Work.DispatchKeys)
		if cfg.OwnGrantKey != "" {
			paths = append(paths, cfg.OwnGrantKey)
		}
		if dispatchKeys, err = sign.LoadKeyring(paths...); err != nil {
			return nil, fmt.Errorf("agent.work.dispatch_keys: %w", err)
		}
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "agent")
	host := deps.Host
	if host == nil {
		p := Paths{Passwd: cfg.Passwd, HomeDir: cfg.HomeDir, SudoersDir: cfg.SudoersDir, PAMFile: cfg.PAMFile}
		if cfg.Live {
			if os.Geteuid() != 0 {
				return nil, fmt.Errorf("agent.live: the live switch needs root (euid %d)", os.Geteuid())
			}
			host = NewLiveHost(p, cfg.Commands)
		} else if host, err = NewRenderHost(cfg.Root, p, cfg.Commands.Visudo); err != nil {
			return nil, err
		}
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	signer, err := hostKey(cfg, log)
	if err != nil {
		return nil, err
	}
	return &Agent{cfg: cfg, host: host, keys: keys, signer: signer, dispatchKeys: dispatchKeys, log: log, m: newMetrics(deps.Registry), now: now,
		updates: make(chan update, 64),
		grants:  map[string]schemas.Grant{}, revoked: map[string]time.Time{}, applied: map[string]applied{},
		failed: map[string]failure{}, pending: map[string]removal{}}, nil
}

// Run follows the grants and keeps the host matching them until ctx
// ends. The first reconcile waits until the grants that existed at start
// are read, so that no live grant's user is taken for an orphan.
func (a *Agent) Run(ctx context.Context) error {
	if a.cfg.Live {
		a.log.Warn("live: this host's users, sudoers, audit rules and PAM file are changed to match the grants", "host", a.cfg.Host)
	} else {
		a.log.Info("not live: the plan is rendered, nothing on this host is changed (agent.live: true to enforce)", "root", a.cfg.Root, "host", a.cfg.Host)
	}
	w, err := a.cfg.Kafka.NewWriter(a.cfg.ReportTopic)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	defer w.Close()
	rep := newReporter(w, a.signer, a.m, a.log)
	f, err := grants.NewFollower(grants.FollowConfig{
		Kafka: a.cfg.Kafka, Keys: a.keys, DeadLetterTopic: a.cfg.DeadLetterTopic,
		Component: "agent", Host: a.cfg.Host,
		Apply: func(m grants.Message) {
			select {
			case a.updates <- update{m: m, at: time.Now()}:
			case <-ctx.Done():
			}
		},
		Refused: a.m.refused, DeadLetters: a.m.deadLetters,
		Log:       a.log.With("follower", "grants"),
		StateFile: filepath.Join(filepath.Dir(a.cfg.KeyFile), GrantsStateFile),
	})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	followErr := make(chan error, 1)
	wg.Go(func() { followErr <- f.Run(ctx) })
	wg.Go(func() { rep.run(ctx, 5*time.Second) })
	workErr := make(chan error, 1)
	if a.cfg.Instance.ID != "" {
		wk := newWorker(a.cfg, a.log, a.m, a.dispatchKeys, a.host, a.now)
		wg.Go(func() { workErr <- wk.run(ctx, rep) })
	} else {
		a.log.Info("agent.instance.id not set: no work requests run and no inventory is reported here")
	}
	a.log.Info("following grants: only those signed by a trusted key apply", "topic", schemas.TopicGrants, "trusted_keys", a.keys.IDs(), "resources", a.cfg.Resources)

	caught := f.CaughtUp()
	reconcile := time.NewTicker(a.cfg.ReconcileInterval)
	defer reconcile.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	ready := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-followErr:
			if err != nil {
				return fmt.Errorf("agent: %w", err)
			}
			return nil
		case err := <-workErr:
			if err != nil {
				return fmt.Errorf("agent: work: %w", err)
			}
			return nil
		case <-caught:
			caught, ready = nil, true
			a.log.Info("grants known: reconciling the host")
			a.reconcile(ctx, rep)
		case u := <-a.updates:
			a.record(u)
			// Take what else is queued before acting: a burst of
			// grants (the topic at start) is applied once.
			for more := true; more; {
				select {
				case u := <-a.updates:
					a.record(u)
				default:
					more = false
				}
			}
			if ready {
				a.sync(ctx, rep)
			}
		case <-timer.C:
			if ready {
				a.sync(ctx, rep)
			}
		case <-reconcile.C:
			if ready {
				a.reconcile(ctx, rep)
			}
		}
		timer.Reset(a.nextDue())
	}
}

// record takes one verified message into the grant table.
func (a *Agent) record(u update) {
	g := u.m.Grant
	if g.Revoked {
		a.revoked[g.LoginID] = u.at
		delete(a.grants, g.LoginID)
		a.log.Info("grant revoked", "loginid", g.LoginID, "key_id", u.m.KeyID)
		return
	}
	a.grants[g.LoginID] = g
}

// forHost reports whether g names this host (and one of its resources).
func (a *Agent) forHost(g schemas.Grant) bool {
	if len(a.cfg.Resources) > 0 && !slices.Contains(a.cfg.Resources, g.Resource) {
		return false
	}
	return slices.Contains(g.Hosts, a.cfg.Host)
}

// nextDue is how long until the next grant starts or expires, or a
// failed removal is retried.
func (a *Agent) nextDue() time.Duration {
	now := a.now()
	next := time.Hour
	consider := func(t time.Time) {
		if !t.IsZero() && t.After(now) && t.Sub(now) < next {
			next = t.Sub(now)
		}
	}
	for _, g := range a.grants {
		if a.forHost(g) {
			consider(g.Start)
			consider(g.Expires)
		}
	}
	if len(a.pending) > 0 {
		next = min(next, time.Second)
	}
	return max(next, time.Millisecond)
}

// sync makes the host match the grant table: removals first (a
// revocation is never delayed by a deployment), then deployments.
func (a *Agent) sync(ctx context.Context, rep *reporter) { a.syncRetrying(ctx, rep, false) }

// syncRetrying is sync; with retry, failed deployments are tried again
// too (reconcile).
func (a *Agent) syncRetrying(ctx context.Context, rep *reporter, retry bool) {
	now := a.now()
	for _, login := range slices.Sorted(maps.Keys(a.applied)) {
		g, ok := a.grants[login]
		why := ""
		due := now
		switch {
		case !ok:
			why = WhyRevoked
			if at, ok := a.revoked[login]; ok {
				due = at
			}
		case !a.forHost(g):
			why = WhyNotForHost
		case !liveAt(g, now):
			why = WhyExpired
			if !g.Expires.IsZero() && g.Expires.Before(now) {
				due = g.Expires
			}
		}
		if why == "" {
			continue
		}
		a.undeploy(ctx, rep, removal{due: due, why: why, req: a.applied[login].grant.ReqAuthID, report: true}, login)
	}
	for _, login := range slices.Sorted(maps.Keys(a.pending)) {
		if _, ok := a.applied[login]; !ok {
			a.undeploy(ctx, rep, a.pending[login], login)
		}
	}
	for _, login := range slices.Sorted(maps.Keys(a.grants)) {
		g := a.grants[login]
		if !a.forHost(g) || !liveAt(g, now) {
			continue
		}
		if ap, ok := a.applied[login]; ok && reflect.DeepEqual(ap.grant, g) {
			continue
		}
		if f, ok := a.failed[login]; ok && !retry && reflect.DeepEqual(f.grant, g) {
			continue // retried by the next reconcile, or when the grant changes
		}
		a.deploy(ctx, rep, g)
	}
	a.m.grants.Set(float64(len(a.applied)))
}

// stepError is a failed step of a deployment.
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

// deploy makes the host match g, or, when a step fails, takes off
// everything of g's login that the agent put there and reports
// DEPLOYFAILED with the step and the reason.
func (a *Agent) deploy(ctx context.Context, rep *reporter, g schemas.Grant) {
	start := time.Now()
	log := a.log.With("loginid", g.LoginID, "req_auth_id", g.ReqAuthID)
	uid, err := a.apply(g)
	if err != nil {
		var se *stepError
		step := "user"
		if errors.As(err, &se) {
			step = se.step
		}
		log.Error("deployment failed: rolling back", "step", step, "err", err)
		delete(a.applied, g.LoginID)
		// A login refused for its form: nothing was looked at, nothing
		// to take back.
		if validLogin(g.LoginID) {
			if rerr := a.remove(ctx, g.LoginID); rerr != nil {
				log.Error("rollback incomplete; retried", "err", rerr)
				a.pending[g.LoginID] = removal{due: a.now(), req: g.ReqAuthID}
			}
		}
		a.m.deployFailures.WithLabelValues(step).Inc()
		prev, seen := a.failed[g.LoginID]
		a.failed[g.LoginID] = failure{grant: g, step: step, reason: err.Error()}
		if !seen || prev.reason != err.Error() || !reflect.DeepEqual(prev.grant, g) {
			a.report(rep, g.LoginID, g.ReqAuthID, schemas.AgentDeployFailed, step, err.Error())
		}
		return
	}
	delete(a.failed, g.LoginID)
	a.applied[g.LoginID] = applied{grant: g, uid: uid}
	a.m.deploys.Inc()
	a.m.applySeconds.Observe(time.Since(start).Seconds())
	log.Info("grant deployed", "uid", uid, "expires", g.Expires, "keystrokes", g.Keystrokes(), "duration", time.Since(start))
	a.report(rep, g.LoginID, g.ReqAuthID, schemas.AgentDeployed, "", "")
}

// apply runs g's steps in order; it returns the user's uid.
func (a *Agent) apply(g schemas.Grant) (int, error) {
	login := g.LoginID
	if !validLogin(login) {
		return 0, &stepError{StepUser, fmt.Errorf("login %q is not 32 lowercase hex digits: the agent manages no other user", login)}
	}
	u, exists, err := a.host.LookupUser(login)
	if err != nil {
		return 0, &stepError{StepUser, err}
	}
	exp := expiryDay(g.Expires)
	switch {
	case exists && !managed(u):
		return 0, &stepError{StepUser, fmt.Errorf("user %s exists and was not created by the agent (GECOS %q): left alone", login, u.Gecos)}
	case exists:
		if err := a.host.SetExpiry(login, exp); err != nil {
			return 0, &stepError{StepUser, err}
		}
	default:
		spec := UserSpec{Name: login, Gecos: marker(g.ReqAuthID), Home: filepath.Join(a.cfg.HomeDir, login), Shell: a.cfg.Shell, Expires: exp}
		if err := a.host.AddUser(spec); err != nil {
			return 0, &stepError{StepUser, err}
		}
		if u, exists, err = a.host.LookupUser(login); err != nil || !exists {
			return 0, &stepError{StepUser, fmt.Errorf("user %s not found after it was added: %v", login, err)}
		}
	}
	if err := a.host.WriteAuthorizedKeys(u, g.SSHAuthorizedKeys); err != nil {
		return 0, &stepError{StepSSHKeys, err}
	}
	frag, err := renderSudoers(g, a.cfg.SuPath)
	if err == nil {
		if frag == nil {
			err = a.host.RemoveSudoers(sudoersName(login))
		} else {
			err = a.host.InstallSudoers(sudoersName(login), frag)
		}
	}
	if err != nil {
		return 0, &stepError{StepSudoers, err}
	}
	key := auditKey(login)
	if err := a.host.DeleteAuditRules(key); err != nil {
		return 0, &stepError{StepAuditRules, err}
	}
	if err := a.host.AddAuditRules(key, auditRules(u.UID, key)); err != nil {
		return 0, &stepError{StepAuditRules, err}
	}
	users, err := a.host.TTYAudit()
	if err == nil {
		want := slices.DeleteFunc(slices.Clone(users), func(s string) bool { return s == login })
		if g.Keystrokes() {
			want = append(want, login)
		}
		slices.Sort(want)
		if !slices.Equal(want, sortedCopy(users)) {
			err = a.host.SetTTYAudit(want)
		}
	}
	if err != nil {
		return 0, &stepError{StepTTYAudit, err}
	}
	return u.UID, nil
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// undeploy takes login's grant off the host and reports UNDEPLOYED
// (unless r says it was reported otherwise); r.due is when the removal
// became due (the revocation read, the expiry). A removal that fails a
// step is retried every second.
func (a *Agent) undeploy(ctx context.Context, rep *reporter, r removal, login string) {
	if err := a.remove(ctx, login); err != nil {
		a.m.undeployErrors.Inc()
		a.log.Error("removal failed a step; retried", "loginid", login, "reason", r.why, "err", err)
		if p, ok := a.pending[login]; ok {
			r.due = p.due
		}
		a.pending[login] = r
		return
	}
	if p, ok := a.pending[login]; ok {
		r.due = p.due
	}
	took := a.now().Sub(r.due)
	delete(a.pending, login)
	delete(a.applied, login)
	if !r.report {
		a.log.Info("rollback completed", "loginid", login)
		return
	}
	a.m.undeploys.WithLabelValues(r.why).Inc()
	a.m.removeSeconds.Observe(took.Seconds())
	a.log.Info("grant removed: sessions ended, user deleted", "loginid", login, "req_auth_id", r.req, "reason", r.why, "since_due", took)
	a.report(rep, login, r.req, schemas.AgentUndeployed, r.why, "")
}

// remove takes everything of login the agent puts on a host off it, in
// the order that closes the door first: the account expired (no new
// login), the sudoers fragment and keystroke entry removed, every
// session process ended, the user and home deleted, and the audit rules
// last (so that everything up to the end is audited). A user the agent
// did not create is never touched. Every step is tried; the error joins
// those that failed.
func (a *Agent) remove(ctx context.Context, login string) error {
	var errs []error
	u, exists, err := a.host.LookupUser(login)
	if err != nil {
		errs = append(errs, err)
	}
	ours := exists && managed(u)
	if ours {
		if err := a.host.SetExpiry(login, time.Unix(86400, 0)); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, a.host.RemoveSudoers(sudoersName(login)))
	if users, err := a.host.TTYAudit(); err != nil {
		errs = append(errs, err)
	} else if slices.Contains(users, login) {
		errs = append(errs, a.host.SetTTYAudit(slices.DeleteFunc(users, func(s string) bool { return s == login })))
	}
	if ours {
		n, err := a.host.EndSessions(ctx, u.UID, a.cfg.KillGrace)
		a.m.sessionsEnded.Add(float64(n))
		if n > 0 {
			a.log.Info("session processes ended", "loginid", login, "uid", u.UID, "processes", n)
		}
		errs = append(errs, err)
		if err == nil {
			errs = append(errs, a.host.DeleteUser(login))
		}
	}
	errs = append(errs, a.host.DeleteAuditRules(auditKey(login)))
	return errors.Join(errs...)
}

// reconcile retries failed deployments and removals, re-deploys grants
// whose user went missing, and removes what the agent put on the host
// that no live grant explains: its users, fragments, rule keys and
// keystroke entries, each counted and reported.
func (a *Agent) reconcile(ctx context.Context, rep *reporter) {
	a.m.reconciles.Inc()
	users, err := a.host.Users()
	if err != nil {
		a.log.Error("reconcile: listing users", "err", err)
		return
	}
	for login := range a.applied {
		if u, ok := lookupIn(users, login); !ok || !managed(u) {
			a.log.Warn("reconcile: a deployed grant's user is gone; deploying it again", "loginid", login)
			delete(a.applied, login)
		}
	}
	a.syncRetrying(ctx, rep, true)
	orphans := map[string]string{} // login → req_auth_id, when known
	if users, err = a.host.Users(); err != nil {
		a.log.Error("reconcile: listing users", "err", err)
		return
	}
	for _, u := range users {
		if managed(u) && !a.explained(u.Name) {
			orphans[u.Name] = reqFromMarker(u.Gecos)
			a.m.orphans.WithLabelValues("user").Inc()
		}
	}
	if frags, err := a.host.Sudoers(sudoersPrefix); err != nil {
		a.log.Error("reconcile: listing sudoers fragments", "err", err)
	} else {
		for _, f := range frags {
			if login := strings.TrimPrefix(f, sudoersPrefix); validLogin(login) && !a.explained(login) {
				orphans[login] += ""
				a.m.orphans.WithLabelValues("sudoers").Inc()
			}
		}
	}
	if keys, err := a.host.AuditKeys(); err != nil {
		a.log.Error("reconcile: listing audit rules", "err", err)
	} else {
		for _, k := range keys {
			if login, ok := strings.CutPrefix(k, auditKeyPrefix); ok && validLogin(login) && !a.explained(login) {
				orphans[login] += ""
				a.m.orphans.WithLabelValues("audit_rules").Inc()
			}
		}
	}
	if tty, err := a.host.TTYAudit(); err != nil {
		a.log.Error("reconcile: reading the PAM file", "err", err)
	} else {
		for _, login := range tty {
			if !a.explained(login) {
				orphans[login] += ""
				a.m.orphans.WithLabelValues("tty_audit").Inc()
			}
		}
	}
	for _, login := range slices.Sorted(maps.Keys(orphans)) {
		a.log.Warn("reconcile: no live grant explains what the agent left for this login; removing it", "loginid", login)
		a.undeploy(ctx, rep, removal{due: a.now(), why: WhyReconcile, req: orphans[login], report: true}, login)
	}
}

// explained reports whether login is deployed, or being removed.
func (a *Agent) explained(login string) bool {
	_, ok := a.applied[login]
	_, removing := a.pending[login]
	return ok || removing
}

func (a *Agent) report(rep *reporter, login, req, state, step, reason string) {
	rep.add(schemas.AgentReport{Host: a.cfg.Host, LoginID: login, ReqAuthID: req, State: state, Step: step, Reason: reason, Time: a.now().UTC()})
}
