#!/usr/bin/env bash
# Builds the auditpipe .deb with dpkg-deb from a built binary and the files
# of deploy/:
#   scripts/deb.sh BINARY VERSION OUTDIR     → OUTDIR/auditpipe_VERSION_ARCH.deb
# Layout: /usr/bin/auditpipe; the units in /lib/systemd/system (none
# enabled); the auditd plugin file as a conffile in /etc/audit/plugins.d
# with active = no (auditd would start a collector that has no
# configuration yet: set active = yes once /etc/auditpipe/collector-stdin.yaml
# is written); an empty /etc/auditpipe; the example configurations, SIEM
# receiver files and Prometheus files under /usr/share/doc/auditpipe/examples;
# the maintainer scripts of deploy/deb (the auditpipe system user).
# `make deb` runs it on bin/auditpipe; deploy/deb_test.go checks the result.
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -eq 3 ] || { echo "usage: $0 BINARY VERSION OUTDIR" >&2; exit 2; }
bin=$1 version=$2 out=$3
[ -x "$bin" ] || { echo "deb: $bin is not an executable" >&2; exit 1; }
arch=$(dpkg --print-architecture)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pkg="$work/auditpipe"
doc="$pkg/usr/share/doc/auditpipe"
install -d -m 0755 "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/lib/systemd/system" \
	"$pkg/etc/audit/plugins.d" "$pkg/etc/auditpipe" "$doc/examples/config" \
	"$doc/examples/siem" "$doc/examples/prometheus"
install -m 0755 "$bin" "$pkg/usr/bin/auditpipe"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$pkg/usr/bin/auditpipe"
install -m 0644 deploy/systemd/*.service "$pkg/lib/systemd/system/"
sed 's/^active = yes$/active = no/' deploy/audit/plugins.d/auditpipe.conf >"$pkg/etc/audit/plugins.d/auditpipe.conf"
chmod 0640 "$pkg/etc/audit/plugins.d/auditpipe.conf"
install -m 0644 deploy/config/*.yaml "$doc/examples/config/"
install -m 0644 deploy/siem/*.conf "$doc/examples/siem/"
install -m 0644 deploy/prometheus/*.yml "$doc/examples/prometheus/"
install -m 0644 README.md "$doc/README.md"
install -m 0644 deploy/deb/changelog "$doc/changelog"
gzip -9n "$doc/README.md" "$doc/changelog"
install -m 0644 deploy/deb/copyright "$doc/copyright"
install -d -m 0755 "$pkg/usr/share/lintian/overrides"
install -m 0644 deploy/deb/lintian-overrides "$pkg/usr/share/lintian/overrides/auditpipe"

for s in postinst prerm postrm; do
	install -m 0755 "deploy/deb/$s" "$pkg/DEBIAN/$s"
done
echo /etc/audit/plugins.d/auditpipe.conf >"$pkg/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" deploy/deb/control.in >"$pkg/DEBIAN/control"

mkdir -p "$out"
deb="$out/auditpipe_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zgzip --build "$pkg" "$deb" >/dev/null
echo "$deb"
