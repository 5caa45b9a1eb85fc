#!/usr/bin/env bash
# Instructions sip-edge executes per proxied message, counted by callgrind: the user-time gap to the relay
# (perf/floor-split.sh) measured without the noise of this shared machine, so a change on the message path shows
# as a number that repeats to about 1% (receive batches vary with timing).
#
# Runs the release binary under callgrind (one worker, --data-path recvmmsg: valgrind does not emulate io_uring),
# with perf/load-generator.yaml (every validator rule and the rate limiter on), between SIPp uac and uas (6 messages
# per call through the edge), once with CALLS calls at 50 calls/s and once with twice the calls at twice the rate:
# both runs last as long, so start-up, shutdown and the timer work of those seconds (health probes, metric
# snapshots, table sweeps) cancel out, and the difference divided by the extra messages is the work per message.
# Then the functions that cost most, exclusive instructions per message from the difference of the two runs, and the
# code footprint: how many distinct cache lines of code a message runs.
# LOAD=options counts perf/udp-max-rate.sh's workload instead: UDP OPTIONS from one socket (perf/stream-load.c's udp
# mode) answered by its core, CALLS exchanges at CALLS/10 a second and twice both, two messages an exchange (its
# Via carries rport, so the edge fills in rport and received as for most phones).
# BASELINE=PATH counts another sip-edge binary (e.g. the build before a change) the same way, first; TOP=N lists N
# functions; PROFILE_DIR=DIR keeps the profiles; FUNCTIONS_OUT=FILE writes every function that runs per message
# (callgrind's names, costliest first).
#
# Usage: perf/proxy-instructions.sh [CALLS]    (default 200, 4 s per run; needs valgrind, sipp and `swift build -c release`)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CALLS=${1:-200}
if ! [[ $CALLS =~ ^[0-9]+$ ]] || (( CALLS < 10 )); then
    echo "usage: perf/proxy-instructions.sh [CALLS >= 10]" >&2
    exit 2
fi
for tool in valgrind sipp callgrind_annotate; do
    command -v "$tool" >/dev/null || { echo "proxy-instructions: $tool is not installed" >&2; exit 1; }
done
EDGE=${EDGE:-$ROOT/.build/release/sip-edge}
[ -x "$EDGE" ] || { echo "proxy-instructions: $EDGE missing: swift build -c release" >&2; exit 1; }
BASE_PORT=${BASE_PORT:-26100}
PROXY_PORT=$BASE_PORT UAS_PORT=$((BASE_PORT + 1)) UAC_PORT=$((BASE_PORT + 2))
RATE=50
MESSAGES_PER_CALL=6
LOAD=${LOAD:-calls}
case $LOAD in
    calls) ;;
    options) RATE=$(( CALLS / 10 )) MESSAGES_PER_CALL=2 ;;
    *) echo "proxy-instructions: LOAD is calls or options" >&2; exit 2 ;;
esac

# shellcheck source=perf/work-dir.sh
source "$ROOT/perf/work-dir.sh"

if [ "$LOAD" = options ]; then
    cc -O2 -Wall -Wextra -Werror -o "$WORK/stream-load" "$ROOT/perf/stream-load.c" -lssl -lcrypto
    "$WORK/stream-load" core 0 "$UAS_PORT" 1 0 3600 > "$WORK/core.log" 2>&1 &
else
    sipp -sn uas -aa -i 127.0.0.1 -p "$UAS_PORT" -nostdin > "$WORK/uas.log" 2>&1 &
fi
pids+=($!)

count() { # BINARY NAME CALLS RATE -> prints the instructions of the whole run; profile in $WORK/NAME.CALLS
    local binary=$1 name=$2 calls=$3 rate=$4 edge_pid
    # valgrind 3.19 cannot read the DWARF 5 the toolchain emits: count on a copy without debug information.
    cp "$binary" "$WORK/$name"
    strip -g "$WORK/$name"
    # Costs per instruction (absolute addresses) as well as per function: the code footprint below needs them.
    valgrind --tool=callgrind --dump-instr=yes --compress-pos=no --callgrind-out-file="$WORK/$name.$calls" "$WORK/$name" \
        --config "$ROOT/perf/load-generator.yaml" --listen "udp:127.0.0.1:$PROXY_PORT" \
        --upstream "sip:127.0.0.1:$UAS_PORT" --workers 1 --data-path recvmmsg > "$WORK/$name.$calls.log" 2>&1 &
    edge_pid=$!
    pids+=("$edge_pid")
    # Start-up under valgrind takes seconds: wait until the listener answers (an OPTIONS gets a reply) or give up.
    local ready=0
    for _ in $(seq 1 60); do
        if [ "$LOAD" = options ]; then
            if "$WORK/stream-load" udp "$PROXY_PORT" "$UAS_PORT" 1 1 2 > /dev/null 2>&1; then ready=1; break; fi
        elif sipp -sn uac "127.0.0.1:$PROXY_PORT" -i 127.0.0.1 -p "$UAC_PORT" -m 1 -timeout 1s -timeout_error \
            -nostdin > /dev/null 2>&1; then ready=1; break; fi
        kill -0 "$edge_pid" 2>/dev/null || break
        sleep 1
    done
    (( ready )) || { echo "proxy-instructions: $name did not start" >&2; tail "$WORK/$name.$calls.log" >&2; exit 1; }
    if [ "$LOAD" = options ]; then
        timeout $(( calls / rate + 60 )) "$WORK/stream-load" udp "$PROXY_PORT" "$UAS_PORT" "$rate" "$calls" \
            $(( calls / rate + 30 )) > "$WORK/uac.log" 2>&1 \
            || { echo "proxy-instructions: OPTIONS lost through $name" >&2; tail "$WORK/uac.log" >&2; exit 1; }
    else
        timeout $(( calls / rate + 60 )) sipp -sn uac "127.0.0.1:$PROXY_PORT" -i 127.0.0.1 -p "$UAC_PORT" -m "$calls" \
            -r "$rate" -timeout "$(( calls / rate + 30 ))s" -timeout_error -nostdin > "$WORK/uac.log" 2>&1 \
            || { echo "proxy-instructions: SIPp calls failed through $name" >&2; tail "$WORK/uac.log" >&2; exit 1; }
    fi
    kill -TERM "$edge_pid"
    wait "$edge_pid" 2>/dev/null || true
    grep -Eo 'Collected : [0-9]+' "$WORK/$name.$calls.log" | grep -Eo '[0-9]+'
}

report() { # BINARY NAME
    local small large extra_messages
    small=$(count "$1" "$2" "$CALLS" "$RATE")
    large=$(count "$1" "$2" $(( 2 * CALLS )) $(( 2 * RATE )))
    extra_messages=$(( CALLS * MESSAGES_PER_CALL ))
    local unit=calls
    [ "$LOAD" = options ] && unit=exchanges
    echo "$2: $(( (large - small) / extra_messages )) instructions per message (callgrind, $CALLS $unit at $RATE" \
        "a second and $(( 2 * CALLS )) at $(( 2 * RATE )), $MESSAGES_PER_CALL messages each)"
    # Exclusive instructions per function, the larger run less the smaller, per extra message: the top TOP (default 15).
    callgrind_annotate --threshold=100 "$WORK/$2.$(( 2 * CALLS ))" > "$WORK/$2.large.txt" 2>/dev/null
    callgrind_annotate --threshold=100 "$WORK/$2.$CALLS" > "$WORK/$2.small.txt" 2>/dev/null
    python3 - "$WORK/$2.large.txt" "$WORK/$2.small.txt" "$extra_messages" "${TOP:-15}" "${FUNCTIONS_OUT:-}" <<'PYTHON' | swift demangle --simplified | cut -c1-150
import re, sys
def functions(path):
    counts = {}
    for line in open(path):
        match = re.match(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*?)(?: \[[^\]]*\])?$", line)
        if match and not match.group(2).startswith("PROGRAM TOTALS"):
            name = match.group(2).split(":", 1)[-1]
            counts[name] = counts.get(name, 0) + int(match.group(1).replace(",", ""))
    return counts
large, small, messages = functions(sys.argv[1]), functions(sys.argv[2]), int(sys.argv[3])
rows = sorted(((large[name] - small.get(name, 0)) / messages, name) for name in large)
if sys.argv[5]:  # every function a message runs, costliest first, as callgrind names it (perf/hot-functions.sh)
    open(sys.argv[5], "w").write("".join(f"{name}\n" for per_message, name in reversed(rows) if per_message >= 0.5))
for per_message, name in reversed(rows[-int(sys.argv[4]):]):
    print(f"{per_message:8.0f}  {name}")
PYTHON
    footprint "$WORK/$2.$(( 2 * CALLS ))" "$WORK/$2.$CALLS" "$extra_messages" "$2"
}

# The code a message runs, by place: the instructions executed at least once every other message (the larger run
# less the smaller, per extra message), the distinct 64-byte cache lines holding them, and how often each such
# instruction runs per message. When that is about once, the path is long straight code: its size, not loops, sets
# the instruction count, and a path larger than the L1 instruction cache runs from L2 on every message.
footprint() { # LARGE SMALL MESSAGES NAME
    python3 - "$@" <<'PYTHON'
import collections, sys
def per_instruction(path):  # {(object, address): instructions}; objects by name (their "(id)" differs per file)
    costs, skip, names, current = collections.Counter(), False, {}, ""
    for line in open(path):
        if line.startswith(("ob=", "cob=")):  # an object's "(id) name" comes with whichever line names it first
            ident, _, name = line.split("=", 1)[1].strip().partition(" ")
            if name: names[ident] = name
            if line.startswith("ob="): current = names.get(ident, ident)
        elif line.startswith("calls="):
            skip = True  # the next line is the call's inclusive cost, not an instruction's own
        elif skip:
            skip = False
        elif line.startswith("0x"):
            fields = line.split()
            costs[(current, int(fields[0], 16))] += int(fields[-1])
    return costs
large, small, messages = per_instruction(sys.argv[1]), per_instruction(sys.argv[2]), int(sys.argv[3])
hot = {address: (count - small.get(address, 0)) / messages for address, count in large.items()}
hot = {address: runs for address, runs in hot.items() if runs >= 0.5}
lines = {(where, address // 64) for where, address in hot}
print(f"{sys.argv[4]}: code footprint {len(lines) * 64 / 1024:.1f} KiB per message ({len(lines)} cache lines holding "
      f"{len(hot)} distinct instructions, each run {sum(hot.values()) / max(len(hot), 1):.2f} times a message)")
PYTHON
}

[ -n "${BASELINE:-}" ] && report "$BASELINE" baseline
report "$EDGE" sip-edge
# PROFILE_DIR=DIR keeps the callgrind profiles (NAME.CALLS) for callgrind_annotate --inclusive=yes and the like.
if [ -n "${PROFILE_DIR:-}" ]; then mkdir -p "$PROFILE_DIR" && cp "$WORK"/*.[0-9]* "$PROFILE_DIR"/; fi
