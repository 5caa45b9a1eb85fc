#!/usr/bin/env bash
# Installs sip-edge: binary, systemd unit, sysusers entry, /etc/default file, configuration (the embedded defaults,
# never overwriting an existing file) and the README. Usage (as root for a real install):
#   scripts/install.sh [BINARY]        BINARY defaults to .build/release/sip-edge
# Environment: PREFIX=/usr/local DESTDIR= (stage into a directory instead of /)
# Then: systemd-sysusers && systemctl daemon-reload && systemctl enable --now sip-edge
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-.build/release/sip-edge}
prefix=${PREFIX:-/usr/local}
root=${DESTDIR:-}
[ -x "$binary" ] || { echo "install: $binary not built (swift build -c release)"; exit 1; }

install -D -m 0755 "$binary" "$root$prefix/bin/sip-edge"
install -d -m 0755 "$root/etc/systemd/system" "$root/usr/lib/sysusers.d" "$root/etc/default" \
    "$root/etc/sip-edge" "$root$prefix/share/doc/sip-edge"
sed "s|/usr/local|$prefix|g" systemd/sip-edge.service > "$root/etc/systemd/system/sip-edge.service"
chmod 0644 "$root/etc/systemd/system/sip-edge.service"
install -m 0644 systemd/sip-edge.sysusers "$root/usr/lib/sysusers.d/sip-edge.conf"
[ -e "$root/etc/default/sip-edge" ] || install -m 0644 systemd/sip-edge.default "$root/etc/default/sip-edge"
if [ ! -e "$root/etc/sip-edge/sip-edge.yaml" ]; then
    "$binary" config --defaults > "$root/etc/sip-edge/sip-edge.yaml"
    chmod 0644 "$root/etc/sip-edge/sip-edge.yaml"
fi
install -m 0644 README.md "$root$prefix/share/doc/sip-edge/README.md"
echo "installed sip-edge into ${root:-/} (prefix $prefix)"
