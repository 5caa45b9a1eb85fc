#!/usr/bin/env bash
# Memory per idle connection: sip-edge's RSS with 0, 10,000 and 50,000 idle TCP connections (issue #17: target
# <= 8 KiB each). perf/stream-load.c opens the connections (from 127.0.0.1, and 127.0.0.2... past 20,000) and holds
# them without a byte; RSS is read from /proc once they are all accepted (sip_active_connections on /metrics).
#
#   perf/connection-memory.sh [COUNTS...]        (default: 10000 50000)
#   TRANSPORT=tls perf/connection-memory.sh 10000 (idle TLS connections, each with its handshake done: target
#                                                 <= 40 KiB each)
#
# One worker; the connection limit and the idle timeout raised for the run. Loopback only; every process it
# starts is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/release/sip-edge}
BASE_PORT=${BASE_PORT:-19830}  # below the ephemeral range (32768-60999): the load's own client sockets take ports there
COUNTS=("${@:-10000 50000}")
# shellcheck disable=SC2206 # the default is one word list
COUNTS=(${COUNTS[*]})
TRANSPORT=${TRANSPORT:-tcp}
[ -x "$BIN" ] || { echo "build it first: swift build -c release" >&2; exit 2; }
# Each connection is a descriptor in sip-edge and one in the client: both need the limit raised.
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
# shellcheck source=perf/stream-common.sh
. perf/stream-common.sh
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=memory.sipedge.test" \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
cat > "$WORK/edge.yaml" <<YAML
listen: udp:127.0.0.1:$BASE_PORT
upstreams: [sip:127.0.0.1:$((BASE_PORT + 1))]
workers: 1
admin:
  listen: 127.0.0.1:$((BASE_PORT + 2))
rate_limit:
  enabled: false
tcp:
  max_connections: 65535
  idle_timeout_s: 3600
flow:
  key: connection-memory-flow-key-0123456789
tls:
  listen: tls:127.0.0.1:$((BASE_PORT + 3))
  certificate: $WORK/cert.pem
  private_key: $WORK/key.pem
  handshake_timeout_ms: 600000
YAML
"$BIN" --config "$WORK/edge.yaml" > "$WORK/edge.log" 2>&1 &
edge=$!
pids+=("$edge")
sleep 1
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$edge/status"; }
open_connections() {
    curl -s "http://127.0.0.1:$((BASE_PORT + 2))/metrics" | awk -v t="$TRANSPORT" '$1 == "sip_active_connections{transport=\"" t "\"}" { print $2 }'
}
baseline=$(rss_kib)
echo "sip-edge $(git rev-parse --short HEAD 2>/dev/null || echo '?'), 1 worker: RSS with no connection ${baseline} KiB"
for count in "${COUNTS[@]}"; do
    if [ "$(ulimit -n)" -lt $((count + 100)) ]; then
        echo "$count idle $TRANSPORT connections: skipped, this process may open $(ulimit -n) files (hard limit $(ulimit -Hn))"
        continue
    fi
    if [ "$TRANSPORT" = tls ]; then
        "$WORK/stream-load" holdtls "$((BASE_PORT + 3))" 0 "$count" 0 600 > "$WORK/hold.log" 2>&1 &
    else
        "$WORK/stream-load" hold "$BASE_PORT" 0 "$count" 0 600 > "$WORK/hold.log" 2>&1 &
    fi
    holder=$!
    pids+=("$holder")
    deadline=$((SECONDS + 300))
    until [ "$(open_connections)" = "$count" ] || [ $SECONDS -gt $deadline ]; do sleep 1; done
    sleep 2
    rss=$(rss_kib)
    printf '%6d idle %s connections: RSS %7d KiB, %6.2f KiB per connection over the empty edge\n' \
        "$count" "$TRANSPORT" "$rss" "$(echo "($rss - $baseline) / $count" | bc -l)"
    kill "$holder" 2>/dev/null || true
    wait "$holder" 2>/dev/null || true
    deadline=$((SECONDS + 60))
    until [ "$(open_connections)" = 0 ] || [ $SECONDS -gt $deadline ]; do sleep 1; done
    printf '       after they closed: RSS %7d KiB\n' "$(rss_kib)"
done
