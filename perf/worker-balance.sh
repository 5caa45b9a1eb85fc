#!/usr/bin/env bash
# Two workers against one on this machine, and how evenly the source-address steering spreads clients over the
# workers (issue #17). sip-edge over TCP behind perf/stream-load.c (1,000 connections taking turns, at most 256
# requests in flight, another stream-load process as the UDP core):
#   1. --workers 1 and --workers 2, 100 client addresses: exchanges/s and CPU per 1,000 messages (all threads);
#   2. --workers 2 with the connections from 1, 10 and 1,000 client addresses (127.0.0.x): each worker's share of
#      the messages, from sip_worker_messages_total on /metrics.
#
#   ROUNDS=3 EXCHANGES=100000 perf/worker-balance.sh
#
# Loopback only (127.0.0.0/8 addresses need no set-up); every process started is stopped by PID; each load run is
# bounded (EXCHANGES, and 120 s).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/release/sip-edge}
ROUNDS=${ROUNDS:-3}
EXCHANGES=${EXCHANGES:-100000}
CONNECTIONS=${CONNECTIONS:-1000}
BASE_PORT=${BASE_PORT:-19850}  # below the ephemeral range (32768-60999): the load's own client sockets take ports there
[ -x "$BIN" ] || { echo "build it first: swift build -c release" >&2; exit 2; }
# shellcheck source=perf/stream-common.sh
. perf/stream-common.sh
"$WORK/stream-load" core 0 $((BASE_PORT + 1)) 1 0 3600 > "$WORK/core.log" 2>&1 &
pids+=("$!")

start_edge() { # $1 workers
    cat > "$WORK/edge.yaml" <<YAML
listen: udp:127.0.0.1:$BASE_PORT
upstreams: [sip:127.0.0.1:$((BASE_PORT + 1))]
workers: $1
admin:
  listen: 127.0.0.1:$((BASE_PORT + 2))
rate_limit:
  requests_per_window: 10000000
uring:
  receive_buffers: 1024
flow:
  key: worker-balance-flow-key-0123456789
security:
  audit_log: "off"
YAML
    "$BIN" --config "$WORK/edge.yaml" > "$WORK/edge.log" 2>&1 &
    edge=$!
    pids+=("$edge")
    sleep 1.5
    kill -0 "$edge" || { cat "$WORK/edge.log"; exit 1; }
}
stop_edge() { kill "$edge" 2>/dev/null || true; wait "$edge" 2>/dev/null || true; sleep 1; }
worker_messages() { # "w0 w1"
    curl -s "http://127.0.0.1:$((BASE_PORT + 2))/metrics" \
        | awk '/^sip_worker_messages_total\{worker="0"\}/ { a = $2 } /^sip_worker_messages_total\{worker="1"\}/ { b = $2 } END { print a + 0, b + 0 }'
}
# One load run from `$1` client addresses; prints "CPU_MS_PER_1000 EXCHANGES_PER_S SENT_AGAIN LOST".
load() {
    MEASURED_PID=$edge STREAM_LOAD_SOURCES=$1 measured_load tcp "$BASE_PORT" 0 "$CONNECTIONS" "$EXCHANGES" 120
}

echo "sip-edge $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $CONNECTIONS connections, $EXCHANGES exchanges per run, $ROUNDS rounds"
echo "1. one worker against two (100 client addresses):"
for round in $(seq 1 "$ROUNDS"); do
    for workers in 1 2; do
        start_edge "$workers"
        read -r cpu rate _ <<< "$(load 100)"
        stop_edge
        printf '   round %d, %d worker(s): %8s ms CPU per 1000 messages, %7s exchanges/s\n' "$round" "$workers" "$cpu" "$rate"
        echo "$workers $cpu $rate" >> "$WORK/workers"
    done
done
for workers in 1 2; do
    printf '   median, %d worker(s): %s ms per 1000 messages, %s exchanges/s\n' "$workers" \
        "$(awk -v w="$workers" '$1 == w { print $2 }' "$WORK/workers" | median)" \
        "$(awk -v w="$workers" '$1 == w { print $3 }' "$WORK/workers" | median)"
done
echo "2. two workers, share of the messages per worker by number of client addresses:"
start_edge 2
for sources in 1 10 1000; do
    read -r w0_before w1_before <<< "$(worker_messages)"
    load "$sources" > /dev/null
    sleep 0.5  # the workers publish their counters every 100 ms
    read -r w0_after w1_after <<< "$(worker_messages)"
    awk -v s="$sources" -v a=$((w0_after - w0_before)) -v b=$((w1_after - w1_before)) \
        'BEGIN { printf "   %4d address(es): worker 0 %5.1f%%, worker 1 %5.1f%% of %d messages\n", s, 100 * a / (a + b), 100 * b / (a + b), a + b }'
done
stop_edge
