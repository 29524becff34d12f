// Package testenv decides what a test does when something it depends on
// (a library, a daemon, a kernel feature, a privilege) is missing: skip,
// saying why, or fail. CI sets AUDITPIPE_REQUIRE=all so that it can never
// go green by skipping.
//
// AUDITPIPE_REQUIRE is a comma-separated list of dependency names, or
// "all" (every dependency of All). A test calls SkipOrFail when a
// dependency is missing: the test fails when the dependency is required,
// and is skipped otherwise. The skip message names the dependency, so
// `go test -v | grep 'testenv: missing'` lists what a run did not cover.
package testenv

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// EnvRequire is the environment variable naming the required
// dependencies.
const EnvRequire = "AUDITPIPE_REQUIRE"

// Dep names a dependency of the test suite.
type Dep string

// The dependencies. `make deps` installs chdb, rsyslog, kafka, syslog-ng,
// python-venv, postgres, the host tools, sshd and chromium; the tests run as root on
// the build machines.
const (
	// CHDB is libchdb.so (scripts/deps.d/10-chdb.sh).
	CHDB Dep = "chdb"
	// Rsyslog is rsyslogd with its GnuTLS driver (scripts/deps.d/20-rsyslog.sh).
	Rsyslog Dep = "rsyslog"
	// Kafka is the Apache Kafka broker's jars (scripts/deps.d/30-kafka.sh).
	Kafka Dep = "kafka"
	// Java runs the Apache Kafka broker.
	Java Dep = "java"
	// KernelAudit is the kernel's audit netlink socket, with auditing
	// that a test may enable.
	KernelAudit Dep = "kernel-audit"
	// Root is running as uid 0.
	Root Dep = "root"

	// ClickHouseServer is a ClickHouse server ≥ 25.8 named by
	// CLICKHOUSE_ADDR. None can be installed on the build machines, so
	// "all" does not include it: name it to require it.
	ClickHouseServer Dep = "clickhouse-server"
	// SyslogNG is syslog-ng unpacked from Debian's .deb by make deps
	// (scripts/deps.d/25-syslog-ng.sh).
	SyslogNG Dep = "syslog-ng"
	// PythonVenv is the venv with clickhouse-connect that make deps
	// creates (scripts/deps.d/40-python-venv.sh).
	PythonVenv Dep = "python-venv"
	// Postgres is the PostgreSQL server's binaries (initdb, postgres),
	// Debian's postgresql-15 (scripts/deps.d/50-postgres.sh); the tests
	// start their own cluster with internal/pgtest.
	Postgres Dep = "postgres"
	// HostTools are the programs the host agent drives: visudo and sudo,
	// auditctl (scripts/deps.d/50-host-agent.sh).
	HostTools Dep = "host-tools"
	// SSHD is OpenSSH's server, Debian's openssh-server, for the live
	// operator sessions (scripts/deps.d/55-sshd.sh; internal/sshdtest).
	SSHD Dep = "sshd"
	// Apt is apt-get, dpkg, dpkg-deb and dpkg-scanpackages (dpkg-dev), run
	// by the package-manager adapter's tests against a private root
	// (scripts/deps.d/55-apt.sh).
	Apt Dep = "apt"
	// Dnf is dnf, rpm (rpmbuild) and createrepo-c (createrepo_c,
	// modifyrepo_c), Debian's packages, run by the dnf adapter's tests
	// against a private --installroot as root (scripts/deps.d/56-dnf.sh).
	Dnf Dep = "dnf"
	// Ausearch is auditd's ausearch (Debian's auditd 3.0.9, installed by
	// scripts/deps.d/50-host-agent.sh), the reference for raw_data.
	Ausearch Dep = "ausearch"
	// Systemd is systemd-analyze, which checks the units of deploy/systemd
	// (Debian's systemd; scripts/deps.d/60-systemd.sh).
	Systemd Dep = "systemd"
	// Prometheus is promtool (and prometheus) unpacked from Debian's
	// prometheus package by scripts/deps.d/65-prometheus.sh, which check
	// and unit-test deploy/prometheus.
	Prometheus Dep = "prometheus"
	// Lintian is Debian's package checker, run on the .deb of scripts/deb.sh
	// (scripts/deps.d/66-lintian.sh).
	Lintian Dep = "lintian"
	// Chromium is Debian's chromium, driven headless by the web console's
	// browser tests (scripts/deps.d/60-chromium.sh).
	Chromium Dep = "chromium"
	// Helm is helm v3 built from the Go module proxy into the cache by
	// scripts/deps.d/67-helm.sh; it lints and renders deploy/helm.
	Helm Dep = "helm"
)

// All returns the dependencies AUDITPIPE_REQUIRE=all requires: every one
// the build machines provide.
func All() []Dep {
	return []Dep{CHDB, Rsyslog, SyslogNG, PythonVenv, Postgres, Kafka, Java, KernelAudit, Root, HostTools, SSHD, Apt, Dnf, Ausearch, Systemd, Prometheus, Lintian, Chromium, Helm}
}

// known returns every dependency name a list may hold.
func known() []Dep {
	return append(All(), ClickHouseServer)
}

// ParseRequire parses the value of AUDITPIPE_REQUIRE: "", "all", or a
// comma-separated list of names (which may include "all"). An unknown name
// is an error, so that a typo cannot silently require nothing.
func ParseRequire(v string) ([]Dep, error) {
	var out []Dep
	for _, f := range strings.Split(v, ",") {
		name := strings.TrimSpace(f)
		switch {
		case name == "":
		case name == "all":
			out = append(out, All()...)
		case slices.Contains(known(), Dep(name)):
			out = append(out, Dep(name))
		default:
			return nil, fmt.Errorf("testenv: %s names unknown dependency %q (known: all, %s)", EnvRequire, name, joinDeps(known()))
		}
	}
	return out, nil
}

func joinDeps(deps []Dep) string {
	s := make([]string, len(deps))
	for i, d := range deps {
		s[i] = string(d)
	}
	return strings.Join(s, ", ")
}

// Required reports whether AUDITPIPE_REQUIRE requires dep. It fails the
// test when the variable names an unknown dependency.
func Required(t testing.TB, dep Dep) bool {
	t.Helper()
	deps, err := ParseRequire(os.Getenv(EnvRequire))
	if err != nil {
		t.Fatal(err)
	}
	return slices.Contains(deps, dep)
}

// SkipOrFail reports that dep is missing: it fails the test when
// AUDITPIPE_REQUIRE requires dep, and skips it otherwise. The message,
// formatted from format and args, says what is missing and how to get it.
func SkipOrFail(t testing.TB, dep Dep, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required(t, dep) {
		t.Fatalf("testenv: missing %s, required by %s=%s: %s", dep, EnvRequire, os.Getenv(EnvRequire), msg)
	}
	t.Skipf("testenv: missing %s (%s=%s makes this a failure): %s", dep, EnvRequire, dep, msg)
}

// RequireRoot skips or fails (as SkipOrFail) unless the test runs as root.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, Root, "not running as root (euid %d): %s", os.Geteuid(), why)
	}
}
