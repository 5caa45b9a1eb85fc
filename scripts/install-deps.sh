#!/usr/bin/env bash
# Installs the Debian packages SIPEdge builds and tests against, only those missing (idempotent).
# Build: liburing-dev (io_uring), libssl-dev (TLS), libc-ares-dev (DNS), libjemalloc-dev (allocator), pkg-config.
# Tests: sip-tester (SIPp), kamailio, redis-server, openssl, procps, dnsmasq-base (a DNS server with SRV records),
# socat (Debian's SIPp has no TLS: socat TCP-LISTEN,fork -> OPENSSL bridges a SIPp -t t1 UA to a TLS listener, one
# TLS connection per TCP connection).
set -euo pipefail
packages=(liburing-dev libssl-dev libc-ares-dev libjemalloc-dev pkg-config sip-tester kamailio kamailio-tls-modules sngrep
          redis-server openssl procps dnsmasq-base socat curl)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
