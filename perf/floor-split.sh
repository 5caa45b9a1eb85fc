#!/usr/bin/env bash
# Where sip-edge's CPU per message goes beyond the floor: the same SIPp call load (uac -> proxy -> uas, 6 messages a
# call) through sip-edge (one worker, io_uring) and through perf/udp-relay.c (no SIP work), each sampled with
# `perf record -e cpu-clock` on its PID (kernel work done in its context included), then split into user and kernel
# time and the kernel's top functions. Issue #17: the gap to the relay, measured by function.
#
#   RATE=2000 CALLS=20000 perf/floor-split.sh
# TOP_USER=N lists N user functions (default 8).
#
# Needs perf (linux-perf), sipp, `swift build -c release`. Loopback only; every process started is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/release/sip-edge}
RATE=${RATE:-2000}
CALLS=${CALLS:-20000}
BASE_PORT=${BASE_PORT:-19870}  # below the ephemeral range
PROXY=$BASE_PORT UAS=$((BASE_PORT + 1)) UAC=$((BASE_PORT + 2)) BACK=$((BASE_PORT + 3))
# shellcheck source=perf/work-dir.sh
. perf/work-dir.sh
cc -O2 -Wall -Wextra -Werror -o "$WORK/udp-relay" perf/udp-relay.c
sipp -sn uas -aa -i 127.0.0.1 -p "$UAS" -nostdin > "$WORK/uas.log" 2>&1 &
pids+=($!)

run() {  # NAME PID: the load through 127.0.0.1:$PROXY while perf samples PID
    local name=$1 pid=$2
    perf record -q -e cpu-clock -F 4999 -p "$pid" -o "$WORK/$name.data" > /dev/null 2>&1 &
    local recorder=$!
    sleep 0.3
    timeout $((CALLS / RATE + 60)) sipp -sn uac "127.0.0.1:$PROXY" -i 127.0.0.1 -p "$UAC" -m "$CALLS" -r "$RATE" \
        -timeout $((CALLS / RATE + 30))s -nostdin > "$WORK/uac-$name.log" 2>&1 || echo "$name: sipp reported failures"
    kill -INT "$recorder" 2>/dev/null || echo "$name: perf record had already ended (the process exited?)"
    wait "$recorder" 2>/dev/null || true
    local messages=$((CALLS * 6))
    perf report -i "$WORK/$name.data" --stdio --sort dso,sym 2>/dev/null | grep -E '^ +[0-9]' > "$WORK/$name.txt" || true
    local samples
    samples=$(perf script -i "$WORK/$name.data" -F ip 2>/dev/null | wc -l)
    awk -v n="$name" -v s="$samples" -v m="$messages" '
        { pct = $1; sub("%", "", pct); if ($2 == "[kernel.kallsyms]") k += pct; else u += pct }
        END { ms = s / 4.999; printf "%s: %d samples = %.0f ms CPU, %.2f ms per 1,000 messages (kernel %.1f%%, user %.1f%%)\n",
              n, s, ms, ms * 1000 / m, k, u }' "$WORK/$name.txt"
    echo "  top kernel functions:"
    grep '\[kernel.kallsyms\]' "$WORK/$name.txt" | head -12 | awk '{ printf "    %7s  %s\n", $1, $NF }' || true
    echo "  top user functions:"
    grep -v '\[kernel.kallsyms\]' "$WORK/$name.txt" | head -"${TOP_USER:-8}" | awk '{ printf "    %7s  %s %s\n", $1, $2, $NF }' || true
}

cat > "$WORK/edge.yaml" <<YAML
listen: udp:127.0.0.1:$PROXY
upstreams: [sip:127.0.0.1:$UAS]
workers: 1
admin:
  listen: "off"
rate_limit:
  requests_per_window: 10000000
  registers_per_window: 10000000
security:
  audit_log: "off"
tcp:
  enabled: false
YAML
"$BIN" --config "$WORK/edge.yaml" > "$WORK/edge.log" 2>&1 &
edge=$!
pids+=($edge)
sleep 2
echo "sip-edge $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $CALLS calls at $RATE/s, 6 messages each"
run sip-edge "$edge"
kill "$edge"
wait "$edge" 2>/dev/null || true
# The kernel tears an io_uring down after the process is gone, so sip-edge's socket may stay bound a moment.
for _ in $(seq 1 50); do [ -z "$(ss -Huan "sport = :$PROXY")" ] && break; sleep 0.1; done
"$WORK/udp-relay" "$PROXY" "$BACK" "$UAS" 3600 > "$WORK/relay.log" 2>&1 &
relay=$!
pids+=($relay)
sleep 0.5
run relay "$relay"
