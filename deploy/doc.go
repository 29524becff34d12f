// Package deploy holds no code: it is the operator's kit (systemd units,
// the auditd plugin file, SIEM receiver configurations, Prometheus scrape
// configuration and alert rules, example configurations), and its tests
// check every file with the real tool that reads it: systemd-analyze,
// auditd's plugin-file rules, rsyslog and syslog-ng receiving the
// forwarder's messages, promtool.
package deploy
