#!/usr/bin/env bash
# CPU per message at rates SIPp cannot reach on this machine, and where loss starts: UDP OPTIONS through the relay
# (perf/udp-relay.c, no SIP work), sip-edge and Kamailio, open loop at each rate in RATES (issue #17's max-rate half).
#
#   ROUNDS=3 RATES="10000 20000 40000 60000" SECONDS_PER_STEP=3 perf/udp-max-rate.sh
#
# perf/stream-load.c sends OPTIONS from one UDP socket at RATE a second (sendmmsg, a burst every millisecond) and a
# core process answers each with 200 (recvmmsg/sendmmsg), so the load side spends little per message: SIPp, one
# process per call leg with its own call state, stops being clean at ~4,000-6,000 calls/s here with a contestant on
# the same two cores, well below where a proxy runs out. One exchange is two messages through the contestant.
# The load and the core run on CPU 0 and the contestant on CPU 1 (taskset; PIN=0 leaves all three to the
# scheduler), so a contestant has a core of its own and the load side the other: on two cores the load side then
# needs about as much kernel time per message as the contestant, which bounds every contestant's rate alike.
# Per step: CPU ticks (utime + stime from /proc) of the contestant per 1,000 messages, and the requests never
# answered; a rate with no loss in any round is clean. sip-edge: one worker, io_uring, perf/load-generator.yaml
# (every validator rule and the rate limiter on); Kamailio 5.6: perf/kamailio-stateless.cfg, one UDP worker, -x fm
# (left out when kamailio is not installed or KAMAILIO=0). RECVMMSG=1 adds sip-edge on its fallback data path
# (`--data-path recvmmsg`, where io_uring is refused) as "edge-recvmmsg". BIN=another sip-edge binary; BASELINE=BINARY
# runs another sip-edge (the build before a change) in the same rounds as "baseline". Loopback only; every process
# started is stopped by PID; each step is bounded in count (RATE x SECONDS_PER_STEP) and time (30 s).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/release/sip-edge}
ROUNDS=${ROUNDS:-3}
RATES=${RATES:-"10000 20000 40000 60000"}
SECONDS_PER_STEP=${SECONDS_PER_STEP:-3}
BASE_PORT=${BASE_PORT:-19840}  # below the ephemeral range
PROXY_PORT=$BASE_PORT CORE_PORT=$((BASE_PORT + 1)) RELAY_BACK_PORT=$((BASE_PORT + 2))
[ -x "$BIN" ] || { echo "build it first: swift build -c release" >&2; exit 2; }
# Pinned: this shell moves to CPU 0, so the load and the core it starts run there; contestants start on CPU 1.
CONTESTANT_CPU=()
if [ "${PIN:-1}" = 1 ]; then taskset -cp 0 $$ > /dev/null; CONTESTANT_CPU=(taskset -c 1); fi
CONTESTANTS="relay edge"
[ -n "${BASELINE:-}" ] && CONTESTANTS="$CONTESTANTS baseline"
[ "${RECVMMSG:-0}" = 1 ] && CONTESTANTS="$CONTESTANTS edge-recvmmsg"
if [ "${KAMAILIO:-1}" = 1 ] && command -v kamailio >/dev/null; then CONTESTANTS="$CONTESTANTS kamailio"; fi
# shellcheck source=perf/stream-common.sh
. perf/stream-common.sh
# shellcheck source=perf/udp-edge-config.sh
. perf/udp-edge-config.sh
cc -O2 -Wall -Wextra -Werror -o "$WORK/udp-relay" perf/udp-relay.c
sed -e "s/KAMAILIO_CHILDREN/1/; s/KAMAILIO_LISTEN/127.0.0.1:$PROXY_PORT/" \
    -e "s/KAMAILIO_UPSTREAM_HOST/127.0.0.1/; s/KAMAILIO_UPSTREAM_PORT/$CORE_PORT/" perf/kamailio-stateless.cfg \
    > "$WORK/kamailio.cfg"
mkdir -p "$WORK/kamailio-run"

# The core lives for the whole run (answering sip-edge's health probes between steps too).
"$WORK/stream-load" core 0 "$CORE_PORT" 1 0 3600 > "$WORK/core.log" 2>&1 &
pids+=("$!")

start_contestant() { # NAME: sets MEASURED_PID
    case $1 in
        relay) "${CONTESTANT_CPU[@]}" "$WORK/udp-relay" "$PROXY_PORT" "$RELAY_BACK_PORT" "$CORE_PORT" 3600 \
                   > "$WORK/relay.log" 2>&1 & ;;
        edge|edge-recvmmsg|baseline)
            local data_path=io-uring binary=$BIN
            [ "$1" = edge-recvmmsg ] && data_path=recvmmsg
            [ "$1" = baseline ] && binary=$BASELINE
            "${CONTESTANT_CPU[@]}" "$binary" --config perf/load-generator.yaml --listen "udp:127.0.0.1:$PROXY_PORT" \
                --upstream "sip:127.0.0.1:$CORE_PORT" --workers 1 --data-path "$data_path" > "$WORK/$1.log" 2>&1 & ;;
        kamailio) "${CONTESTANT_CPU[@]}" kamailio -f "$WORK/kamailio.cfg" -DD -E -x fm -m 256 -Y "$WORK/kamailio-run" \
                      > "$WORK/kamailio.log" 2>&1 & ;;
    esac
    MEASURED_PID=$!
    pids+=("$MEASURED_PID")
    sleep 1.5
    kill -0 "$MEASURED_PID" 2>/dev/null || { echo "udp-max-rate: $1 did not start" >&2; tail "$WORK/$1.log" >&2; exit 1; }
}
stop_contestant() {
    kill "$MEASURED_PID" 2>/dev/null || true
    wait "$MEASURED_PID" 2>/dev/null || true
    await_free_udp_port "$PROXY_PORT"
}

echo "sip-edge $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $SECONDS_PER_STEP s per step, $ROUNDS rounds, pinned: ${PIN:-1}"
printf '%-8s %-6s %-9s %12s %10s %8s\n' rate round contestant "CPU ms/1000" "sent/s" lost
: > "$WORK/results"
for round in $(seq 1 "$ROUNDS"); do
    for contestant in $CONTESTANTS; do
        start_contestant "$contestant"
        for rate in $RATES; do
            read -r cpu sent _ lost <<< "$(LOSS_ALLOWED=1 measured_load udp "$PROXY_PORT" "$CORE_PORT" "$rate" \
                                               $((rate * SECONDS_PER_STEP)) 30)"
            printf '%-8s %-6s %-9s %12s %10s %8s\n' "$rate" "$round" "$contestant" "$cpu" "$sent" "$lost"
            echo "$rate $contestant $cpu $lost" >> "$WORK/results"
            sleep 0.5
        done
        stop_contestant
    done
done

echo "medians, CPU ms per 1,000 messages (lost requests over all rounds):"
for rate in $RATES; do
    line="  $rate/s:"
    for contestant in $CONTESTANTS; do
        cpu=$(median_of "$WORK/results" "$rate" "$contestant" 3)
        lost=$(awk -v r="$rate" -v c="$contestant" '$1 == r && $2 == c { s += $4 } END { print s + 0 }' "$WORK/results")
        eval "cpu_${contestant//-/_}=$cpu"
        line+=" $contestant $cpu ($lost lost);"
    done
    line+=$(awk -v e="$cpu_edge" -v r="$cpu_relay" 'BEGIN { printf " sip-edge/relay %.2f", e / r }')
    [[ " $CONTESTANTS " == *" baseline "* ]] && line+=$(awk -v e="$cpu_edge" -v b="$cpu_baseline" -v r="$cpu_relay" 'BEGIN { printf ", baseline/relay %.2f, sip-edge/baseline %.3f", b / r, e / b }')
    [[ " $CONTESTANTS " == *" edge-recvmmsg "* ]] && line+=$(awk -v e="$cpu_edge_recvmmsg" -v r="$cpu_relay" 'BEGIN { printf ", recvmmsg path/relay %.2f", e / r }')
    [[ " $CONTESTANTS " == *" kamailio "* ]] && line+=$(awk -v e="$cpu_edge" -v k="$cpu_kamailio" 'BEGIN { printf ", sip-edge/kamailio %.2f", e / k }')
    echo "$line"
done
echo "highest clean rate (no request lost in any round):"
for contestant in $CONTESTANTS; do
    clean=$(awk -v c="$contestant" '$2 == c { lost[$1] += $4; seen[$1] = 1 } END { best = 0; for (r in seen) if (lost[r] == 0 && r + 0 > best) best = r + 0; print best }' "$WORK/results")
    echo "  $contestant: $clean/s of the rates tried"
done
