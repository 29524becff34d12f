#!/usr/bin/env bash
# Installs rsyslog with its GnuTLS network stream driver: the real TLS
# syslog receiver (RFC 5425) that the forwarder's tests start on a loopback
# port; the tests run rsyslogd themselves. Idempotent.
set -euo pipefail
. "$(dirname "$0")/../lib/apt.sh"

apt_install rsyslog rsyslog-gnutls
need_cmds rsyslogd
