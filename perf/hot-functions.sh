#!/usr/bin/env bash
# Writes perf/hot-functions.order: the functions a forwarded message runs, hottest first, which the release build
# links next to each other at the start of the text (Package.swift: every function in its own section, gold's
# --section-ordering-file). At 2,000 calls/s the worker sleeps between datagrams and every wake-up starts with cold
# caches and TLBs: ~140 hot functions (118 KB) were spread over 2.2 MB of text and 80 pages, packed they take 32.
# Issue #17, README "Session 15".
#
# Two sources, merged: the io_uring path sampled by `perf record -e cpu-clock` (RATE calls/s, CALLS calls, SIPp
# uac and uas around one worker), then every function callgrind counts per message on the recvmmsg path
# (perf/proxy-instructions.sh, which also catches the functions too short to be sampled). Functions that later
# change their names (signature changes) just fall back to their default place: run this again after a change to
# the message path, from a release build.
#
#   perf/hot-functions.sh    env: BIN (.build/release/sip-edge), RATE (2000), CALLS (10000), OUT (perf/hot-functions.order)
# Needs perf (linux-perf), valgrind, sipp. Loopback only; every process started is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${BIN:-.build/release/sip-edge}")
RATE=${RATE:-2000}
CALLS=${CALLS:-10000}
OUT=${OUT:-perf/hot-functions.order}
BASE_PORT=${BASE_PORT:-19880}
PROXY=$BASE_PORT UAS=$((BASE_PORT + 1)) UAC=$((BASE_PORT + 2))
# shellcheck source=perf/work-dir.sh
. perf/work-dir.sh

# The io_uring path, sampled, with the load configuration (every validator rule and the rate limiter on).
cp "$BIN" "$WORK/sip-edge"
sipp -sn uas -aa -i 127.0.0.1 -p "$UAS" -nostdin > "$WORK/uas.log" 2>&1 &
pids+=($!)
"$WORK/sip-edge" --config perf/load-generator.yaml --listen "udp:127.0.0.1:$PROXY" --upstream "sip:127.0.0.1:$UAS" \
    --workers 1 > "$WORK/edge.log" 2>&1 &
edge=$!
pids+=($edge)
sleep 2
perf record -q -e cpu-clock -F 4999 -p "$edge" -o "$WORK/edge.data" > /dev/null 2>&1 &
recorder=$!
sleep 0.3
timeout $((CALLS / RATE + 60)) sipp -sn uac "127.0.0.1:$PROXY" -i 127.0.0.1 -p "$UAC" -m "$CALLS" -r "$RATE" \
    -timeout $((CALLS / RATE + 30))s -nostdin > "$WORK/uac.log" 2>&1 || echo "hot-functions: sipp reported failures"
kill -INT "$recorder"
wait "$recorder" 2>/dev/null || true
perf report -i "$WORK/edge.data" --stdio --sort dso,sym 2>/dev/null \
    | awk '$2 == "sip-edge" { print $NF }' > "$WORK/sampled.txt"

# Every function per message, as callgrind counts it (its own ports, after the sampled run has stopped).
kill "$edge"
wait "$edge" 2>/dev/null || true
FUNCTIONS_OUT="$WORK/counted.txt" TOP=1 EDGE="$BIN" perf/proxy-instructions.sh 300 > /dev/null

python3 - "$WORK/sampled.txt" "$WORK/counted.txt" "$BIN" "$OUT" <<'PYTHON'
import subprocess, sys
sampled, counted, binary, out = sys.argv[1:5]
defined = set()
for line in subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True, check=True).stdout.splitlines():
    parts = line.split()
    if len(parts) == 3 and parts[1] in "tT":
        defined.add(parts[2])
names = open(sampled).read().split() + open(counted).read().split()
order = list(dict.fromkeys(name for name in names if name in defined))  # first mention kept
# Section names only, one a line: the file has no comment syntax.
open(out, "w").write("".join(f".text.{name}\n" for name in order))
print(f"hot-functions: {len(order)} functions in {out}")
PYTHON
