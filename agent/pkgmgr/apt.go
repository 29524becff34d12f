package pkgmgr

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// lockTimeoutSeconds is how long a run waits for dpkg's lock.
const lockTimeoutSeconds = 300

// AptConfig configures the apt/dpkg adapter.
type AptConfig struct {
	// Root is the root directory packages are installed under. "" or "/"
	// is the host itself. Any other directory is a private root: apt-get
	// reads its sources, lists, cache and dpkg status there (Dir=ROOT
	// through an APT_CONFIG file the adapter writes, so that not even the
	// host's apt.conf.d is read), takes no locks (Debug::NoLocking), and
	// runs dpkg with --root=ROOT --force-script-chrootless (maintainer
	// scripts run unchrooted with DPKG_ROOT set, so ROOT needs no shell)
	// and --force-not-root. The root must hold etc/apt/sources.list and
	// var/lib/dpkg/status (PrepareRoot makes the skeleton).
	Root string
	// Release is the distribution release the security feed is read for
	// ("bookworm").
	Release string
	// Tracker is the security feed that classifies updates; nil classifies
	// every update as OTHER.
	Tracker Tracker
	// RunConfig bounds and observes each package run.
	RunConfig
}

// Apt is the apt-get/dpkg implementation of Manager. Debian's archive
// carries no bug-fix or enhancement classification, so an update is
// SECURITY when the security feed lists a CVE fixed in a version newer
// than the installed one and no newer than the candidate, and OTHER
// otherwise; UpdateAll(BUGFIX) and UpdateAll(ENHANCEMENT) find nothing.
type Apt struct {
	cfg AptConfig
}

var _ Manager = (*Apt)(nil)

// NewApt returns the adapter cfg describes.
func NewApt(cfg AptConfig) (*Apt, error) {
	if err := cfg.RunConfig.check(); err != nil {
		return nil, err
	}
	if cfg.Root != "" && cfg.Root != "/" {
		if !filepath.IsAbs(cfg.Root) {
			return nil, fmt.Errorf("pkgmgr: root %q: must be an absolute path", cfg.Root)
		}
		// The root is written into apt's configuration syntax (and into
		// dpkg's --root= there): a quote, a semicolon or a brace would add
		// options of its own (DPkg::Pre-Invoke runs a command as root).
		if strings.ContainsAny(cfg.Root, "\"';{}\n\r\\") {
			return nil, fmt.Errorf("pkgmgr: root %q: must not hold a quote, ';', a brace, a backslash or a line break", cfg.Root)
		}
		if _, err := os.Stat(filepath.Join(cfg.Root, "var/lib/dpkg/status")); err != nil {
			return nil, fmt.Errorf("pkgmgr: root %q has no dpkg status file (see PrepareRoot): %w", cfg.Root, err)
		}
	}
	return &Apt{cfg: cfg}, nil
}

// PrepareRoot makes the skeleton of a private root under root: the
// directories apt-get and dpkg expect, an empty dpkg status, and
// etc/apt/sources.list holding sources (one-line format).
func PrepareRoot(root, sources string) error {
	for _, d := range []string{
		"etc/apt/apt.conf.d", "etc/apt/preferences.d", "etc/apt/sources.list.d", "etc/apt/trusted.gpg.d",
		"var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/log/apt",
		"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers",
	} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return fmt.Errorf("pkgmgr: prepare root: %w", err)
		}
	}
	status := filepath.Join(root, "var/lib/dpkg/status")
	if _, err := os.Stat(status); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(status, nil, 0o644); err != nil {
			return fmt.Errorf("pkgmgr: prepare root: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc/apt/sources.list"), []byte(sources), 0o644); err != nil {
		return fmt.Errorf("pkgmgr: prepare root: %w", err)
	}
	return nil
}

func (a *Apt) private() bool { return a.cfg.Root != "" && a.cfg.Root != "/" }

// aptConf is the APT_CONFIG file of a private root. apt reads it before
// any other configuration, and Dir set here moves Dir::Etc::parts too.
func (a *Apt) aptConf() string {
	r := a.cfg.Root
	q := strconv.Quote
	return strings.Join([]string{
		"Dir " + q(r+"/") + ";",
		"Dir::State::status " + q(filepath.Join(r, "var/lib/dpkg/status")) + ";",
		"Debug::NoLocking \"true\";",
		"APT::Sandbox::User \"root\";",
		"DPkg::Options { \"--root=" + r + "\"; \"--force-script-chrootless\"; \"--force-not-root\"; };",
		"",
	}, "\n")
}

// env is the environment of apt-get and dpkg-query: the caller's, made
// non-interactive, with APT_CONFIG for a private root.
func (a *Apt) env() ([]string, func(), error) {
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C")
	if !a.private() {
		return env, func() {}, nil
	}
	f, err := os.CreateTemp("", "auditpipe-apt-*.conf")
	if err != nil {
		return nil, nil, fmt.Errorf("pkgmgr: write the apt configuration: %w", err)
	}
	_, werr := f.WriteString(a.aptConf())
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return nil, nil, fmt.Errorf("pkgmgr: write the apt configuration: %w", err)
	}
	return append(env, "APT_CONFIG="+f.Name()), func() { os.Remove(f.Name()) }, nil
}

// Install implements Manager.
func (a *Apt) Install(ctx context.Context, pkgs []string) (Result, error) {
	if err := checkNames(pkgs, true); err != nil {
		return Result{}, err
	}
	return a.run(ctx, append([]string{"install"}, pkgs...)), nil
}

// Update implements Manager.
func (a *Apt) Update(ctx context.Context, pkgs []string) (Result, error) {
	if err := checkNames(pkgs, false); err != nil {
		return Result{}, err
	}
	return a.run(ctx, append([]string{"install", "--only-upgrade"}, pkgs...)), nil
}

// Remove implements Manager.
func (a *Apt) Remove(ctx context.Context, pkgs []string) (Result, error) {
	if err := checkNames(pkgs, false); err != nil {
		return Result{}, err
	}
	return a.run(ctx, append([]string{"remove"}, pkgs...)), nil
}

// UpdateAll implements Manager: it refreshes the inventory, selects the
// updates of type t and upgrades those packages.
func (a *Apt) UpdateAll(ctx context.Context, t UpdateType) (Result, error) {
	if _, err := ParseUpdateType(string(t)); err != nil {
		return Result{}, err
	}
	// One timeout covers the inventory and the upgrade.
	ctx, cancel := a.withTimeout(ctx)
	defer cancel()
	inv, err := a.Inventory(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return stopped(ctx, "apt-get", nil), nil
		}
		return Result{Status: Failed, Reason: err.Error()}, nil
	}
	var names []string
	for _, u := range inv.Updates {
		if t == All || u.Type == t {
			names = append(names, u.Name)
		}
	}
	if len(names) == 0 {
		line := LogLine{Time: time.Now(), Text: fmt.Sprintf("no %s updates available", t)}
		a.emit(Event{Time: line.Time, Percent: -1, Line: line.Text})
		return Result{Status: Succeeded, Log: []LogLine{line}}, nil
	}
	return a.run(ctx, append([]string{"install", "--only-upgrade"}, names...)), nil
}

func (a *Apt) emit(ev Event) {
	if a.cfg.OnEvent != nil {
		a.cfg.OnEvent(ev)
	}
}

// withTimeout bounds ctx by the adapter's timeout.
func (a *Apt) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return withTimeout(ctx, a.cfg.Timeout)
}

// run runs apt-get -y args under the adapter's timeout. Its output is
// the run's log; its status descriptor (APT::Status-Fd, fd 3) gives the
// progress, and dpkg's error there the reason of a failed run (it names
// the package and the script; apt-get's own "E:" line only says that
// dpkg failed).
func (a *Apt) run(ctx context.Context, args []string) Result {
	env, cleanup, err := a.env()
	if err != nil {
		return Result{Status: Failed, Reason: err.Error()}
	}
	defer cleanup()
	// DPkg::Lock::Timeout: on the host, wait for dpkg's lock held by
	// another package manager (unattended-upgrades, an apt-get left by an
	// agent that crashed) rather than fail at once.
	full := append([]string{"-y", "-q", "-o", "APT::Status-Fd=3", "-o", "Dpkg::Use-Pty=0", "-o", "DPkg::Lock::Timeout=" + strconv.Itoa(lockTimeoutSeconds),
		"-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"}, args...)
	return process{
		prog: "apt-get", args: full, env: env, RunConfig: a.cfg.RunConfig,
		status: func(text string, now time.Time) (Event, bool, string) {
			kind, pct, msg, ok := parseStatus(text)
			switch {
			case !ok:
				return Event{}, false, ""
			case kind == "pmerror":
				return Event{Time: now, Percent: -1, Line: "error: " + msg}, true, msg
			}
			return Event{Time: now, Percent: pct, Line: msg}, true, ""
		},
		lastError: lastError,
	}.run(ctx)
}

// parseStatus parses an APT::Status-Fd line of dpkg's phase,
// "pmstatus:PKG:PERCENT:MSG" or "pmerror:PKG:PERCENT:MSG". The download
// phase (dlstatus) runs its own 0–100 and is not reported.
func parseStatus(line string) (kind string, pct int, msg string, ok bool) {
	parts := strings.SplitN(line, ":", 4)
	if len(parts) != 4 {
		return "", 0, "", false
	}
	kind = parts[0]
	if kind != "pmstatus" && kind != "pmerror" {
		return "", 0, "", false
	}
	f, err := strconv.ParseFloat(parts[2], 64)
	if err != nil && kind != "pmerror" {
		return "", 0, "", false
	}
	if kind == "pmerror" {
		return kind, -1, parts[1] + ": " + parts[3], true
	}
	return kind, int(f), parts[3], true
}

// lastError is the first line apt-get marked as an error ("E: …"),
// preferring one about a failed subprocess.
func lastError(log []LogLine) string {
	var errs []string
	for _, l := range log {
		if t, ok := strings.CutPrefix(l.Text, "E: "); ok {
			errs = append(errs, t)
		}
	}
	if len(errs) == 0 {
		return ""
	}
	for _, e := range errs {
		if strings.Contains(e, "subprocess") {
			return e
		}
	}
	return errs[0]
}

// checkNames rejects an empty list and anything that is not a Debian
// package name (with =version when versioned), so that no name can be
// taken by apt-get as an option.
func checkNames(pkgs []string, versioned bool) error {
	if len(pkgs) == 0 {
		return errors.New("pkgmgr: no package named")
	}
	for _, p := range pkgs {
		name, ver, hasVer := strings.Cut(p, "=")
		if hasVer && (!versioned || ver == "" || !validVersion(ver)) {
			return fmt.Errorf("pkgmgr: package %q: bad version", p)
		}
		if !validName(name) {
			return fmt.Errorf("pkgmgr: package %q: not a package name", p)
		}
	}
	return nil
}

func validName(s string) bool {
	if len(s) < 2 || !isAlnum(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '+' && c != '-' && c != '.' && !(c == ':' && i > 0) {
			return false
		}
	}
	return true
}

func validVersion(s string) bool {
	if !isAlnum(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && !strings.ContainsRune("+-.~:", rune(c)) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// Inventory implements Manager: apt-get update, the installed packages
// from dpkg-query, the upgrades apt-get -s upgrade would make, each
// classified by the security feed.
func (a *Apt) Inventory(ctx context.Context) (Inventory, error) {
	ctx, cancel := a.withTimeout(ctx)
	defer cancel()
	env, cleanup, err := a.env()
	if err != nil {
		return Inventory{}, err
	}
	defer cleanup()
	if _, err := output(ctx, env, "apt-get", "-q", "update"); err != nil {
		return Inventory{}, err
	}
	admin := "/var/lib/dpkg"
	if a.private() {
		admin = filepath.Join(a.cfg.Root, "var/lib/dpkg")
	}
	out, err := output(ctx, env, "dpkg-query", "--admindir="+admin, "-W",
		"-f=${Package}\t${Version}\t${Architecture}\t${source:Package}\t${db:Status-Abbrev}\n")
	if err != nil {
		return Inventory{}, err
	}
	var inv Inventory
	src := map[string]Package{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 5 || strings.TrimSpace(f[4]) != "ii" {
			continue
		}
		p := Package{Name: f[0], Version: f[1], Arch: f[2], Source: f[3]}
		inv.Installed = append(inv.Installed, p)
		src[p.Name] = p
	}
	out, err = output(ctx, env, "apt-get", "-s", "-q", "upgrade")
	if err != nil {
		return Inventory{}, err
	}
	for _, line := range strings.Split(out, "\n") {
		// Inst NAME [INSTALLED] (CANDIDATE SUITE [ARCH])
		rest, ok := strings.CutPrefix(line, "Inst ")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 3 || !strings.HasPrefix(f[1], "[") || !strings.HasPrefix(f[2], "(") {
			continue
		}
		u := Update{Name: f[0], Installed: strings.Trim(f[1], "[]"), Available: strings.TrimPrefix(f[2], "("), Type: Other}
		cves, err := a.fixedCVEs(ctx, src[u.Name], u)
		if err != nil {
			return Inventory{}, err
		}
		if len(cves) > 0 {
			u.Type, u.CVEs = Security, cves
		}
		inv.Updates = append(inv.Updates, u)
	}
	return inv, nil
}

// fixedCVEs are the CVEs the feed lists as fixed after u.Installed and no
// later than u.Available, for the source package p comes from.
func (a *Apt) fixedCVEs(ctx context.Context, p Package, u Update) ([]string, error) {
	if a.cfg.Tracker == nil {
		return nil, nil
	}
	name := p.Source
	if name == "" {
		name = u.Name
	}
	var cves []string
	for _, f := range a.cfg.Tracker.Fixes(name, a.cfg.Release) {
		after, err := versionLess(ctx, u.Installed, f.FixedVersion)
		if err != nil {
			return nil, err
		}
		upTo, err := versionLess(ctx, u.Available, f.FixedVersion)
		if err != nil {
			return nil, err
		}
		if after && !upTo {
			cves = append(cves, f.CVE)
		}
	}
	slices.Sort(cves)
	return cves, nil
}

// versionLess reports whether Debian version a sorts before b, as dpkg
// --compare-versions says.
func versionLess(ctx context.Context, a, b string) (bool, error) {
	err := exec.CommandContext(ctx, "dpkg", "--compare-versions", a, "lt", b).Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		return false, nil
	}
	return false, fmt.Errorf("pkgmgr: dpkg --compare-versions %s lt %s: %w", a, b, err)
}

// output runs a query command and returns its standard output.
func output(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("pkgmgr: %s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}
