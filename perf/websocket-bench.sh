#!/usr/bin/env bash
# SIP over WebSocket against SIP over TCP through the same edge, in alternating rounds of one run: sip-edge's CPU
# per 1,000 SIP messages (user + system, from /proc) and the exchanges per second, each transport's median, and
# the ratio WS/TCP (issue #16's target: at most 1.2).
#
#   ROUNDS=5 CONNECTIONS=10 EXCHANGES=50000 perf/websocket-bench.sh
#
# perf/stream-load.c (built here with the system compiler) keeps CONNECTIONS connections with one OPTIONS in
# flight on each (WS frames masked once when built) and is also the UDP core answering 200, so the edge's CPU is
# the only SIP work measured. One exchange is two messages through the edge (request in, response back).
# One worker; the rate limiter and every validator rule on (the limit raised past the load from one address).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/release/sip-edge}
ROUNDS=${ROUNDS:-5}
CONNECTIONS=${CONNECTIONS:-10}
EXCHANGES=${EXCHANGES:-50000}
BASE_PORT=${BASE_PORT:-47300}
[ -x "$BIN" ] || { echo "build it first: swift build -c release" >&2; exit 2; }
WORK=$(mktemp -d)
EDGE_PID=
cleanup() {
    [ -n "$EDGE_PID" ] && kill "$EDGE_PID" 2>/dev/null && wait "$EDGE_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
cc -O2 -Wall -Wextra -Werror -o "$WORK/stream-load" perf/stream-load.c
cat > "$WORK/edge.yaml" <<YAML
listen: udp:127.0.0.1:$BASE_PORT
upstreams: [sip:127.0.0.1:$((BASE_PORT + 1))]
workers: 1
admin:
  listen: "off"
rate_limit:
  requests_per_window: 10000000
websocket:
  listen: [ws:127.0.0.1:$((BASE_PORT + 2))]
flow:
  key: websocket-bench-flow-key-0123456789
security:
  audit_log: "off"
YAML
"$BIN" --config "$WORK/edge.yaml" > "$WORK/edge.log" 2>&1 &
EDGE_PID=$!
sleep 1
kill -0 "$EDGE_PID" || { cat "$WORK/edge.log"; exit 1; }
ticks_per_second=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$EDGE_PID/stat"; }

echo "sip-edge $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $CONNECTIONS connections, $EXCHANGES exchanges per round, $ROUNDS rounds"
printf '%-6s %-4s %14s %12s\n' round kind "CPU ms/1000" "exchanges/s"
for round in $(seq 1 "$ROUNDS"); do
    for kind in tcp ws; do
        port=$BASE_PORT
        [ "$kind" = ws ] && port=$((BASE_PORT + 2))
        before=$(cpu_ticks)
        line=$("$WORK/stream-load" "$kind" "$port" $((BASE_PORT + 1)) "$CONNECTIONS" "$EXCHANGES" 60)
        after=$(cpu_ticks)
        rate=$(echo "$line" | sed -E 's/.*\(([0-9]+)\/s\).*/\1/')
        cpu=$(awk -v t=$((after - before)) -v hz="$ticks_per_second" -v n="$EXCHANGES" \
            'BEGIN { printf "%.3f", t * 1000 / hz * 1000 / (2 * n) }')
        printf '%-6s %-4s %14s %12s\n' "$round" "$kind" "$cpu" "$rate"
        echo "$kind $cpu $rate" >> "$WORK/results"
    done
done
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
tcp_cpu=$(awk '$1 == "tcp" { print $2 }' "$WORK/results" | median)
ws_cpu=$(awk '$1 == "ws" { print $2 }' "$WORK/results" | median)
tcp_rate=$(awk '$1 == "tcp" { print $3 }' "$WORK/results" | median)
ws_rate=$(awk '$1 == "ws" { print $3 }' "$WORK/results" | median)
echo "median CPU ms per 1000 messages: tcp $tcp_cpu, ws $ws_cpu; exchanges/s: tcp $tcp_rate, ws $ws_rate"
awk -v w="$ws_cpu" -v t="$tcp_cpu" 'BEGIN { printf "ws/tcp CPU per message: %.2fx\n", w / t }'
