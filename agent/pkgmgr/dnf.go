package pkgmgr

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DnfConfig configures the dnf/rpm adapter.
type DnfConfig struct {
	// Root is the --installroot packages are installed under. "" or "/"
	// is the host itself (the host's dnf.conf and repositories). Any other
	// directory is a private root: dnf reads only ROOT/etc/dnf/dnf.conf
	// (--config) and the repositories of ROOT/etc/yum.repos.d
	// (--setopt=reposdir=), never the host's, and keeps its cache and
	// rpm database under ROOT. PrepareDnfRoot makes the skeleton.
	Root string
	// Releasever is passed as --releasever when set; a private root has
	// no system-release package for dnf to read it from, so it defaults
	// to "1" there.
	Releasever string
	// NoGPGCheck adds --nogpgcheck: only for a test's local, unsigned
	// repository.
	NoGPGCheck bool
	// RunConfig bounds and observes each package run.
	RunConfig
}

// Dnf is the dnf/rpm implementation of Manager. Update types and CVEs come
// from the repositories' updateinfo (dnf updateinfo list): an advisory of
// type security is SECURITY with the CVEs it references, bugfix is
// BUGFIX, enhancement is ENHANCEMENT, any other advisory type or an
// update no advisory names is OTHER. UpdateAll(SECURITY, BUGFIX,
// ENHANCEMENT) is dnf's own upgrade --security/--bugfix/--enhancement;
// UpdateAll(OTHER) upgrades the packages whose updates are OTHER.
//
// rpm treats a failing %post as a warning and dnf exits 0; the adapter
// reports the run FAILED, naming the package, when rpm logs that any
// scriptlet failed.
type Dnf struct {
	cfg DnfConfig
}

var _ Manager = (*Dnf)(nil)

// NewDnf returns the adapter cfg describes.
func NewDnf(cfg DnfConfig) (*Dnf, error) {
	if err := cfg.RunConfig.check(); err != nil {
		return nil, err
	}
	if cfg.Root != "" && cfg.Root != "/" {
		if !filepath.IsAbs(cfg.Root) {
			return nil, fmt.Errorf("pkgmgr: root %q: must be an absolute path", cfg.Root)
		}
		if _, err := os.Stat(filepath.Join(cfg.Root, "etc/dnf/dnf.conf")); err != nil {
			return nil, fmt.Errorf("pkgmgr: root %q has no etc/dnf/dnf.conf (see PrepareDnfRoot): %w", cfg.Root, err)
		}
		if cfg.Releasever == "" {
			cfg.Releasever = "1"
		}
	}
	return &Dnf{cfg: cfg}, nil
}

// PrepareDnfRoot makes the skeleton of a private root under root:
// etc/dnf/dnf.conf and etc/yum.repos.d/auditpipe.repo holding repos (the
// .repo file format).
func PrepareDnfRoot(root, repos string) error {
	for _, d := range []string{"etc/dnf", "etc/yum.repos.d", "var/cache/dnf", "var/lib/rpm"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return fmt.Errorf("pkgmgr: prepare root: %w", err)
		}
	}
	conf := "[main]\ngpgcheck=1\ninstallonly_limit=3\nclean_requirements_on_remove=True\nbest=True\nskip_if_unavailable=False\nmetadata_expire=0\n"
	if err := os.WriteFile(filepath.Join(root, "etc/dnf/dnf.conf"), []byte(conf), 0o644); err != nil {
		return fmt.Errorf("pkgmgr: prepare root: %w", err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/yum.repos.d/auditpipe.repo"), []byte(repos), 0o644); err != nil {
		return fmt.Errorf("pkgmgr: prepare root: %w", err)
	}
	return nil
}

func (d *Dnf) private() bool { return d.cfg.Root != "" && d.cfg.Root != "/" }

// base is the options of every dnf command.
func (d *Dnf) base() []string {
	args := []string{"-y", "--noplugins"}
	if d.private() {
		args = append(args, "--installroot="+d.cfg.Root,
			"--config="+filepath.Join(d.cfg.Root, "etc/dnf/dnf.conf"),
			"--setopt=reposdir="+filepath.Join(d.cfg.Root, "etc/yum.repos.d"))
	}
	if d.cfg.Releasever != "" {
		args = append(args, "--releasever="+d.cfg.Releasever)
	}
	if d.cfg.NoGPGCheck {
		args = append(args, "--nogpgcheck")
	}
	return args
}

func (d *Dnf) env() []string { return append(os.Environ(), "LC_ALL=C") }

// Install implements Manager. A versioned name (name=version) becomes
// dnf's name-version.
func (d *Dnf) Install(ctx context.Context, pkgs []string) (Result, error) {
	if err := checkRPMNames(pkgs, true); err != nil {
		return Result{}, err
	}
	specs := make([]string, len(pkgs))
	for i, p := range pkgs {
		specs[i] = strings.Replace(p, "=", "-", 1)
	}
	return d.run(ctx, append([]string{"install"}, specs...)), nil
}

// Update implements Manager.
func (d *Dnf) Update(ctx context.Context, pkgs []string) (Result, error) {
	if err := checkRPMNames(pkgs, false); err != nil {
		return Result{}, err
	}
	return d.run(ctx, append([]string{"upgrade"}, pkgs...)), nil
}

// Remove implements Manager.
func (d *Dnf) Remove(ctx context.Context, pkgs []string) (Result, error) {
	if err := checkRPMNames(pkgs, false); err != nil {
		return Result{}, err
	}
	return d.run(ctx, append([]string{"remove"}, pkgs...)), nil
}

// UpdateAll implements Manager.
func (d *Dnf) UpdateAll(ctx context.Context, t UpdateType) (Result, error) {
	if _, err := ParseUpdateType(string(t)); err != nil {
		return Result{}, err
	}
	switch t {
	case All:
		return d.run(ctx, []string{"upgrade"}), nil
	case Security:
		return d.run(ctx, []string{"upgrade", "--security"}), nil
	case Bugfix:
		return d.run(ctx, []string{"upgrade", "--bugfix"}), nil
	case Enhancement:
		return d.run(ctx, []string{"upgrade", "--enhancement"}), nil
	}
	ctx, cancel := withTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	inv, err := d.Inventory(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return stopped(ctx, "dnf", nil), nil
		}
		return Result{Status: Failed, Reason: err.Error()}, nil
	}
	var names []string
	for _, u := range inv.Updates {
		if u.Type == t {
			names = append(names, u.Name)
		}
	}
	if len(names) == 0 {
		line := LogLine{Time: time.Now(), Text: fmt.Sprintf("no %s updates available", t)}
		d.emit(Event{Time: line.Time, Percent: -1, Line: line.Text})
		return Result{Status: Succeeded, Log: []LogLine{line}}, nil
	}
	return d.run(ctx, append([]string{"upgrade"}, names...)), nil
}

func (d *Dnf) emit(ev Event) {
	if d.cfg.OnEvent != nil {
		d.cfg.OnEvent(ev)
	}
}

var (
	// scriptletErr is rpm's line for a failed scriptlet.
	scriptletErr = regexp.MustCompile(`^Error in (\S+) scriptlet in rpm package (\S+)`)
	// stepLine is a transaction step: "  Installing : hello-1.0-1.noarch 1/2";
	// the verification steps after the transaction are not progress.
	stepLine = regexp.MustCompile(`^\s+\S.*\s(\d+)/(\d+)\s*$`)
)

// run runs dnf args under the adapter's timeout, dnf and rpm's scriptlets
// in one process group. The transaction's steps are the progress; a
// failed scriptlet fails the run even though dnf exits 0.
func (d *Dnf) run(ctx context.Context, args []string) Result {
	return process{
		prog: "dnf", args: append(d.base(), args...), env: d.env(), RunConfig: d.cfg.RunConfig,
		line: func(text string, now time.Time) (Event, bool, string) {
			var why string
			if m := scriptletErr.FindStringSubmatch(text); m != nil {
				why = fmt.Sprintf("%s scriptlet of %s failed", m[1], m[2])
			}
			if m := stepLine.FindStringSubmatch(text); m != nil && !strings.Contains(text, "Verifying") {
				n, _ := strconv.Atoi(m[1])
				total, _ := strconv.Atoi(m[2])
				if total > 0 && n <= total {
					return Event{Time: now, Percent: n * 99 / total, Line: strings.TrimSpace(text)}, true, why
				}
			}
			return Event{}, false, why
		},
		forwardOnly: true,
		reasonFails: true,
		lastError:   dnfError,
	}.run(ctx)
}

// dnfError is the first line dnf marked as an error ("Error: …", with
// the line after it when the mark stands alone) or, failing that, one a
// wrapper marked apt's way ("E: …").
func dnfError(log []LogLine) string {
	for i, l := range log {
		if t, ok := strings.CutPrefix(l.Text, "Error:"); ok {
			t = strings.TrimSpace(t)
			if t == "" && i+1 < len(log) {
				t = strings.TrimSpace(log[i+1].Text)
			}
			return t
		}
	}
	for _, l := range log {
		if t, ok := strings.CutPrefix(l.Text, "E: "); ok {
			return t
		}
	}
	return ""
}

// checkRPMNames rejects an empty list and anything that is not an rpm
// package name (with =version when versioned), so that no name can be
// taken by dnf as an option or a glob.
func checkRPMNames(pkgs []string, versioned bool) error {
	if len(pkgs) == 0 {
		return errors.New("pkgmgr: no package named")
	}
	for _, p := range pkgs {
		name, ver, hasVer := strings.Cut(p, "=")
		if hasVer && (!versioned || ver == "" || !validRPMPart(ver, "+.~:-^")) {
			return fmt.Errorf("pkgmgr: package %q: bad version", p)
		}
		if name == "" || !isAlnum(name[0]) || !validRPMPart(name, "+-._") {
			return fmt.Errorf("pkgmgr: package %q: not a package name", p)
		}
	}
	return nil
}

func validRPMPart(s, extra string) bool {
	if s == "" || !isAlnum(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && !strings.ContainsRune(extra, rune(c)) {
			return false
		}
	}
	return true
}

// Inventory implements Manager: the installed packages from rpm -qa, the
// upgrades dnf repoquery --upgrades finds (after refreshing the
// metadata), each classified by dnf updateinfo list.
func (d *Dnf) Inventory(ctx context.Context) (Inventory, error) {
	ctx, cancel := withTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	env := d.env()
	rpmArgs := []string{"-qa", "--qf", `%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\t%{ARCH}\t%{SOURCERPM}\n`}
	if d.private() {
		rpmArgs = append([]string{"--root=" + d.cfg.Root}, rpmArgs...)
	}
	out, err := output(ctx, env, "rpm", rpmArgs...)
	if err != nil {
		return Inventory{}, err
	}
	var inv Inventory
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 4 || f[0] == "gpg-pubkey" {
			continue
		}
		inv.Installed = append(inv.Installed, Package{Name: f[0], Version: trimEpoch(f[1]), Arch: f[2], Source: sourceName(f[3])})
	}
	installed := map[string]string{}
	for _, p := range inv.Installed {
		installed[p.Name] = p.Version
	}
	q := append(d.base(), "-q", "--refresh", "repoquery", "--upgrades", "--latest-limit=1", "--qf", `%{name}\t%{evr}\t%{arch}`)
	out, err = output(ctx, env, "dnf", q...)
	if err != nil {
		return Inventory{}, err
	}
	advisories, err := output(ctx, env, "dnf", append(d.base(), "-q", "updateinfo", "list", "--updates")...)
	if err != nil {
		return Inventory{}, err
	}
	cves, err := output(ctx, env, "dnf", append(d.base(), "-q", "updateinfo", "list", "--updates", "--with-cve")...)
	if err != nil {
		return Inventory{}, err
	}
	adv, err := ParseUpdateinfoList(advisories)
	if err != nil {
		return Inventory{}, err
	}
	cveList, err := ParseUpdateinfoList(cves)
	if err != nil {
		return Inventory{}, err
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			continue
		}
		u := Update{Name: f[0], Installed: installed[f[0]], Available: trimEpoch(f[1]), Type: Other}
		u.Type, u.CVEs = classify(u, adv, cveList)
		inv.Updates = append(inv.Updates, u)
	}
	return inv, nil
}

// classify is the type of update u by the advisories dnf updateinfo list
// --updates names for its package (dnf lists only those newer than the
// installed version; the strongest type wins: security, bugfix,
// enhancement), with the CVEs of the security ones.
func classify(u Update, adv, cves []Advisory) (UpdateType, []string) {
	rank := map[UpdateType]int{Security: 3, Bugfix: 2, Enhancement: 1, Other: 0}
	t := Other
	for _, a := range adv {
		if a.Name == u.Name && rank[a.Type] > rank[t] {
			t = a.Type
		}
	}
	var out []string
	if t == Security {
		for _, c := range cves {
			if c.Name == u.Name && c.Type == Security && strings.HasPrefix(c.ID, "CVE-") && !slices.Contains(out, c.ID) {
				out = append(out, c.ID)
			}
		}
		slices.Sort(out)
	}
	return t, out
}

// trimEpoch drops a zero epoch ("0:1.0-1" → "1.0-1").
func trimEpoch(evr string) string { return strings.TrimPrefix(evr, "0:") }

// sourceName is the name of a source rpm ("hello-1.0-1.src.rpm" → "hello").
func sourceName(srpm string) string {
	n, _, err := splitNEVRA(strings.TrimSuffix(srpm, ".rpm"))
	if err != nil {
		return ""
	}
	return n
}

// Advisory is one line of dnf updateinfo list: an advisory (or, with
// --with-cve, a CVE) naming an update of one package.
type Advisory struct {
	// ID is the advisory's id, or a CVE.
	ID string
	// Type is the advisory's type; Severity is set for security ones.
	Type     UpdateType
	Severity string
	// Name and EVR are the package and the version it updates to.
	Name, EVR, Arch string
}

// ParseUpdateinfoList parses the output of dnf updateinfo list (with or
// without --with-cve; -q, so only the advisory lines), lines of
// "ID TYPE NEVRA" where TYPE is "bugfix", "enhancement", "newpackage",
// "unknown", or "SEVERITY/Sec." for a security advisory. Blank lines are
// skipped; any other line is an error naming it.
func ParseUpdateinfoList(out string) ([]Advisory, error) {
	var advs []Advisory
	for i, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("pkgmgr: updateinfo line %d %q: want ID TYPE PACKAGE", i+1, line)
		}
		a := Advisory{ID: f[0]}
		switch kind := f[1]; {
		case strings.HasSuffix(kind, "/Sec.") || kind == "security" || kind == "Sec.":
			a.Type = Security
			a.Severity, _, _ = strings.Cut(kind, "/")
			if a.Severity == "security" || a.Severity == "Sec." {
				a.Severity = ""
			}
		case kind == "bugfix":
			a.Type = Bugfix
		case kind == "enhancement":
			a.Type = Enhancement
		case kind == "newpackage" || kind == "unknown":
			a.Type = Other
		default:
			return nil, fmt.Errorf("pkgmgr: updateinfo line %d %q: unknown advisory type %q", i+1, line, kind)
		}
		nevr, arch, ok := cutLast(f[2], ".")
		if !ok || arch == "" {
			return nil, fmt.Errorf("pkgmgr: updateinfo line %d %q: package %q has no architecture", i+1, line, f[2])
		}
		name, evr, err := splitNEVRA(nevr)
		if err != nil {
			return nil, fmt.Errorf("pkgmgr: updateinfo line %d %q: %w", i+1, line, err)
		}
		a.Name, a.EVR, a.Arch = name, evr, arch
		advs = append(advs, a)
	}
	return advs, nil
}

// splitNEVRA splits "name-[epoch:]version-release" into the name and the
// rest.
func splitNEVRA(s string) (name, evr string, err error) {
	rest, rel, ok := cutLast(s, "-")
	if !ok {
		return "", "", fmt.Errorf("package %q has no release", s)
	}
	name, ver, ok := cutLast(rest, "-")
	if !ok || name == "" || ver == "" || rel == "" {
		return "", "", fmt.Errorf("package %q has no name-version-release", s)
	}
	return name, ver + "-" + rel, nil
}

func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}
