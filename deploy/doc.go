// Package deploy holds no code: it is the operator's kit (systemd units,
// the auditd plugin file, SIEM receiver configurations, Prometheus scrape
// configuration and alert rules, Grafana dashboards, the Debian package,
// a Helm chart, a compose file, example configurations), and its tests
// check every file with the real tool that reads it: systemd-analyze,
// auditd's plugin-file rules, rsyslog and syslog-ng receiving the
// forwarder's messages, promtool and a real Prometheus evaluating every
// alert and dashboard query, dpkg and lintian, helm; and where the tool
// cannot run here, its library (deploy/kitcheck: k8s.io/api for the chart's
// manifests, compose-go for the compose file).
package deploy
