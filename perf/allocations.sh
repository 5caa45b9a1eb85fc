#!/usr/bin/env bash
# perf/allocations.sh: heap allocations per call through sip-edge, stateless and transaction mode, counted by
# jemalloc (the process allocator) itself: `MALLOC_CONF=stats_print:true` prints its counters at exit, and
# `nrequests` on the "small:" line counts every small allocation, thread-cache hits included (large ones are on
# the "large:" line). Each mode runs FEW then MANY SIPp calls (uac/uas, 1 worker) over the same MANY / RATE seconds
# (the FEW at a proportionally lower rate), so start-up and work that ticks with wall time (the 10 Hz metrics
# snapshot, health probes) cancel out: the difference divided by MANY - FEW is what one call costs.
# Tunables: FEW=1000 MANY=5000 RATE=1000 BASE_PORT=26160. Needs sipp and `swift build -c release`.
set -euo pipefail
cd "$(dirname "$0")/.."
FEW=${FEW:-1000}
MANY=${MANY:-5000}
RATE=${RATE:-1000}
BASE_PORT=${BASE_PORT:-26160}
EDGE=.build/release/sip-edge
WORK=$(mktemp -d /tmp/sipedge-alloc.XXXXXX)
[ -x "$EDGE" ] || { echo "allocations: build first: swift build -c release"; exit 1; }
started_pids=()
cleanup() { for pid in "${started_pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

requests() { # $1 mode, $2 calls, $3 rate: jemalloc's small + large nrequests at exit
    sipp -sn uas -aa -i 127.0.0.1 -p $((BASE_PORT + 1)) -nostdin > "$WORK/uas.log" 2>&1 &
    local uas=$!
    started_pids+=("$uas")
    MALLOC_CONF=stats_print:true "$EDGE" --config perf/load-generator.yaml --mode "$1" \
        --listen "udp:127.0.0.1:$BASE_PORT" --upstream "sip:127.0.0.1:$((BASE_PORT + 1))" --workers 1 --admin off \
        > "$WORK/stats-$1-$2.txt" 2>&1 &
    local edge=$!
    started_pids+=("$edge")
    sleep 1
    timeout $(( $2 / $3 + 60 )) sipp -sn uac "127.0.0.1:$BASE_PORT" -i 127.0.0.1 -p $((BASE_PORT + 2)) -m "$2" \
        -r "$3" -nostdin > "$WORK/uac.log" 2>&1 || { echo "allocations: SIPp failed calls ($1, $2)"; exit 1; }
    kill -INT "$edge"
    wait "$edge" || true
    kill "$uas"
    wait "$uas" 2>/dev/null || true
    # Columns after the label: allocated nmalloc rate ndalloc rate nrequests ...
    awk '$1 == "small:" || $1 == "large:" {sum += $7} END {print sum}' "$WORK/stats-$1-$2.txt"
}

for mode in stateless transaction; do
    few=$(requests "$mode" "$FEW" $((RATE * FEW / MANY)))
    many=$(requests "$mode" "$MANY" "$RATE")
    printf '%-12s %d calls: %d allocations, %d calls: %d; per call: %.3f\n' "$mode" "$FEW" "$few" "$MANY" "$many" \
        "$(echo "($many - $few) / ($MANY - $FEW)" | bc -l)"
done
