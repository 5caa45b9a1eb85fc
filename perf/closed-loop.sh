#!/usr/bin/env bash
# Closed-loop clients through sip-edge with and without the batch wait (issue #17): CLIENTS_LIST sets of UDP clients,
# each with one OPTIONS in flight, sending the next when the answer comes (perf/closed-loop-client.py), through one
# worker to SIPp's uas. Such clients send less when the edge holds their answers, so batching completions must not
# apply to them (BatchWait compares the completion rate with and without it). Prints exchanges/s and round trips for
# uring.batch_wait_us 0 and the default (or WINDOW_US), alternating in each round.
#
#   ROUNDS=4 SECONDS_EACH=5 CLIENTS_LIST="1 4 16" perf/closed-loop.sh
#
# Needs sipp, python3 and `swift build -c release`. Loopback only; every process started is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/release/sip-edge}
ROUNDS=${ROUNDS:-4}
SECONDS_EACH=${SECONDS_EACH:-5}
CLIENTS_LIST=${CLIENTS_LIST:-"1 4 16"}
WINDOW_US=${WINDOW_US:-300}
BASE_PORT=${BASE_PORT:-19930}  # below the ephemeral range; clients take BASE_PORT+10 onwards
PROXY=$BASE_PORT CORE=$((BASE_PORT + 1)) CLIENTS_FROM=$((BASE_PORT + 10))
# shellcheck source=perf/work-dir.sh
. perf/work-dir.sh
# shellcheck source=perf/udp-edge-config.sh
. perf/udp-edge-config.sh
for window in 0 "$WINDOW_US"; do
    udp_edge_config "$WORK/edge-$window.yaml" "$PROXY" "$CORE" $'uring:\n  batch_wait_us: '"$window"
done

echo "sip-edge $(git rev-parse --short HEAD 2>/dev/null || echo '?'): closed-loop clients, ${SECONDS_EACH} s each, $ROUNDS round(s)"
echo "clients window_us round exchanges/s median_rtt_us p90_rtt_us lost" > "$WORK/results"
for round in $(seq 1 "$ROUNDS"); do
    for clients in $CLIENTS_LIST; do
        for window in 0 "$WINDOW_US"; do
            # A fresh core (SIPp's uas) and edge for every run.
            sipp -sn uas -aa -i 127.0.0.1 -p "$CORE" -nostdin > "$WORK/uas.log" 2>&1 &
            uas=$!
            pids+=($uas)
            "$BIN" --config "$WORK/edge-$window.yaml" > "$WORK/edge.log" 2>&1 &
            edge=$!
            pids+=($edge)
            sleep 2  # the health probe marks the core up
            result=$(timeout $((SECONDS_EACH + 30)) python3 perf/closed-loop-client.py "$SECONDS_EACH" "$clients" "$PROXY" \
                "$CORE" "$CLIENTS_FROM") || { echo "closed-loop: no result; the edge said:"; cat "$WORK/edge.log"; exit 1; }
            echo "round $round, $clients client(s), batch_wait_us $window: $result (exchanges/s, median and p90 round trip in us, lost)"
            echo "$clients $window $round $result" >> "$WORK/results"
            kill "$edge" "$uas"
            wait "$edge" "$uas" 2>/dev/null || true
            await_free_udp_port "$PROXY"
        done
    done
done

python3 - "$WORK/results" "$WINDOW_US" <<'PYTHON'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1]).readlines()[1:]]
window = sys.argv[2]
print("medians: clients, exchanges/s unbatched -> with the window (median per-round ratio), median round trip")
for clients in dict.fromkeys(r[0] for r in rows):
    off = [r for r in rows if r[0] == clients and r[1] == "0"]
    on = [r for r in rows if r[0] == clients and r[1] == window]
    ratios = [float(b[3]) / float(a[3]) for a, b in zip(off, on)]
    print(f"  {clients:>3}: {statistics.median(float(r[3]) for r in off):8.0f} -> {statistics.median(float(r[3]) for r in on):8.0f}"
          f"  ({statistics.median(ratios):.2f}; rounds {', '.join(f'{x:.2f}' for x in ratios)}),"
          f"  rtt {statistics.median(float(r[4]) for r in off):.0f} -> {statistics.median(float(r[4]) for r in on):.0f} us")
PYTHON
