#!/usr/bin/env bash
# Where sip-edge's CPU per message goes beyond the floor: the same SIPp call load (uac -> proxy -> uas, 6 messages a
# call) through sip-edge (one worker, io_uring) and through perf/udp-relay.c (no SIP work), each sampled with
# `perf record -e cpu-clock` on its PID (kernel work done in its context included), then split into user and kernel
# time and the kernel's top functions. Issue #17: the gap to the relay, measured by function.
#
#   RATE=2000 CALLS=20000 perf/floor-split.sh
# ROUNDS=N alternates sip-edge and the relay N times and prints the medians; BASELINE=BINARY runs another sip-edge
# (the build before a change) in the same rounds; TOP_USER=N lists N user functions (default 8) of the last round;
# EDGE_EXTRA='YAML' adds settings to sip-edge's configuration (e.g. $'uring:\n  batch_wait_us: 200'), BASELINE_EXTRA
# to the baseline's (BASELINE=.build/release/sip-edge and EDGE_EXTRA compare two settings of one build).
#
# PIN=1 runs the two SIPp processes on CPU 0 and each contestant on CPU 1 (taskset), so the contestant's caches hold
# only its own code and the kernel's: what sharing the cores with the load generator costs.
#
# Needs perf (linux-perf), sipp, `swift build -c release`. Loopback only; every process started is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/release/sip-edge}
RATE=${RATE:-2000}
CALLS=${CALLS:-20000}
ROUNDS=${ROUNDS:-1}
BASE_PORT=${BASE_PORT:-19870}  # below the ephemeral range
PROXY=$BASE_PORT UAS=$((BASE_PORT + 1)) UAC=$((BASE_PORT + 2)) BACK=$((BASE_PORT + 3))
LOAD_CPU=() CONTESTANT_CPU=()
if [ "${PIN:-0}" = 1 ]; then LOAD_CPU=(taskset -c 0) CONTESTANT_CPU=(taskset -c 1); fi
# shellcheck source=perf/work-dir.sh
. perf/work-dir.sh
cc -O2 -Wall -Wextra -Werror -o "$WORK/udp-relay" perf/udp-relay.c
"${LOAD_CPU[@]}" sipp -sn uas -aa -i 127.0.0.1 -p "$UAS" -nostdin > "$WORK/uas.log" 2>&1 &
pids+=($!)

run() {  # NAME PID ROUND: the load through 127.0.0.1:$PROXY while perf samples PID
    local name=$1 pid=$2 round=$3
    perf record -q -e cpu-clock -F 4999 -p "$pid" -o "$WORK/$name.data" > /dev/null 2>&1 &
    local recorder=$!
    sleep 0.3
    "${LOAD_CPU[@]}" timeout $((CALLS / RATE + 60)) sipp -sn uac "127.0.0.1:$PROXY" -i 127.0.0.1 -p "$UAC" -m "$CALLS" -r "$RATE" \
        -timeout $((CALLS / RATE + 30))s -nostdin > "$WORK/uac-$name.log" 2>&1 || echo "$name: sipp reported failures"
    kill -INT "$recorder" 2>/dev/null || echo "$name: perf record had already ended (the process exited?)"
    wait "$recorder" 2>/dev/null || true
    local messages=$((CALLS * 6))
    perf report -i "$WORK/$name.data" --stdio --sort dso,sym 2>/dev/null | grep -E '^ +[0-9]' > "$WORK/$name.txt" || true
    local samples
    samples=$(perf script -i "$WORK/$name.data" -F ip 2>/dev/null | wc -l)
    awk -v n="$name" -v s="$samples" -v m="$messages" -v r="$round" -v out="$WORK/results" '
        { pct = $1; sub("%", "", pct); if ($2 == "[kernel.kallsyms]") k += pct; else u += pct }
        END { ms = s / 4.999; per = ms * 1000 / m
              printf "round %d %s: %d samples = %.0f ms CPU, %.2f ms per 1,000 messages (kernel %.1f%%, user %.1f%%)\n",
                     r, n, s, ms, per, k, u
              printf "%s %.3f %.3f %.3f\n", n, per, per * k / (k + u), per * u / (k + u) >> out }' "$WORK/$name.txt"
    (( round == ROUNDS )) || return 0
    echo "  top kernel functions:"
    grep '\[kernel.kallsyms\]' "$WORK/$name.txt" | head -12 | awk '{ printf "    %7s  %s\n", $1, $NF }' || true
    echo "  top user functions:"
    grep -v '\[kernel.kallsyms\]' "$WORK/$name.txt" | head -"${TOP_USER:-8}" | awk '{ printf "    %7s  %s %s\n", $1, $2, $NF }' || true
}

# shellcheck source=perf/udp-edge-config.sh
. perf/udp-edge-config.sh
udp_edge_config "$WORK/sip-edge.yaml" "$PROXY" "$UAS" "${EDGE_EXTRA:-}"
udp_edge_config "$WORK/baseline.yaml" "$PROXY" "$UAS" "${BASELINE_EXTRA:-}"

edge_round() {  # NAME BINARY ROUND
    "${CONTESTANT_CPU[@]}" "$2" --config "$WORK/$1.yaml" > "$WORK/$1.log" 2>&1 &
    local edge=$!
    pids+=($edge)
    sleep 2
    run "$1" "$edge" "$3"
    kill "$edge"
    wait "$edge" 2>/dev/null || true
    await_free_udp_port "$PROXY"
}

echo "sip-edge $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $CALLS calls at $RATE/s, 6 messages each, $ROUNDS round(s)${LOAD_CPU:+, load on CPU 0 and contestants on CPU 1}"
for round in $(seq 1 "$ROUNDS"); do
    [ -n "${BASELINE:-}" ] && edge_round baseline "$BASELINE" "$round"
    edge_round sip-edge "$BIN" "$round"
    "${CONTESTANT_CPU[@]}" "$WORK/udp-relay" "$PROXY" "$BACK" "$UAS" 3600 > "$WORK/relay.log" 2>&1 &
    relay=$!
    pids+=($relay)
    sleep 0.5
    run relay "$relay" "$round"
    kill "$relay"
    wait "$relay" 2>/dev/null || true
    await_free_udp_port "$PROXY"
done

# Medians over the rounds, ms per 1,000 messages, and each against the relay's median; then the per-round ratios
# (each contestant against the relay and the baseline of its own round: the machine's load drifts between rounds).
python3 - "$WORK/results" <<'PYTHON'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, total, kernel, user = line.split()
    rows.setdefault(name, []).append((float(total), float(kernel), float(user)))
relay = statistics.median(t for t, _, _ in rows["relay"]) if "relay" in rows else None
print("medians, ms per 1,000 messages: total, kernel, user; total / relay")
for name, values in rows.items():
    total, kernel, user = (statistics.median(v[i] for v in values) for i in range(3))
    ratio = f"{total / relay:.2f}" if relay else "-"
    print(f"  {name:9} {total:6.2f}  {kernel:6.2f}  {user:5.2f}   {ratio}   (rounds: {', '.join(f'{v[0]:.2f}' for v in values)})")
def paired(a, b):
    ratios = [x[0] / y[0] for x, y in zip(rows[a], rows[b])]
    return f"{statistics.median(ratios):.3f} (rounds: {', '.join(f'{r:.2f}' for r in ratios)})"
print("per-round ratios, median:")
for name in rows:
    if name != "relay" and "relay" in rows: print(f"  {name} / relay: {paired(name, 'relay')}")
if "baseline" in rows and "sip-edge" in rows: print(f"  sip-edge / baseline: {paired('sip-edge', 'baseline')}")
PYTHON
