#!/usr/bin/env bash
# perf/bench.sh: CPU per message and maximum clean call rate, sip-edge against Kamailio, under the same SIPp load.
#
# Configurations (both on 127.0.0.1, both stateless, both with WORKERS workers/children):
#   sip-edge  .build/release/sip-edge --config ${EDGE_CONFIG:-perf/load-generator.yaml} --workers WORKERS: defaults (Record-Route,
#             every validator rule, rate limiter consulted) with per-source limits above what one SIPp sends
#   kamailio  perf/kamailio-stateless.cfg, started with -x fm: Max-Forwards, rport, Record-Route, loose_route,
#             forward() -- the same work per message
# Method:
#   1. CPU per message: ROUNDS rounds, each running sip-edge then Kamailio (alternating, so drift on this shared
#      machine hits both), CALLS calls each at a fixed RATE (calls/s) of SIPp's uac scenario against its uas.
#      CPU = utime + stime from /proc of the proxy (all threads; Kamailio: main process and children), read
#      before and after the calls. Each call is 6 messages through the proxy (INVITE, 180, 200, ACK, BYE, 200).
#      Reported: CPU ms per 1000 messages per round, the medians, and the ratio sip-edge / Kamailio.
#   2. Maximum clean rate: for each rate in RATES, STEP_SECONDS of calls through each proxy; the highest rate at
#      which SIPp completed every call with none failed. SIPp itself shares the 2 cores, so both figures may be
#      SIPp's ceiling rather than the proxy's: the script says so when both proxies pass every step.
# WORKERS defaults to 1: with 2 Kamailio children a 180 and the 200 after it are handled by different processes
# and can leave in the wrong order, which SIPp's uac scenario counts as a failed call (seen at 300 calls/s). One
# worker each keeps the comparison about CPU, not ordering. (sip-edge keeps a client's messages on one worker.)
# A clean run: every SIPp run exits 0 (no failed call). Unclean rounds are reported and left out of the medians.
# The floor: perf/udp-relay.c (built here with the system compiler) relays the same datagrams between SIPp's uac and
#   uas with no SIP work at all (epoll, recvmmsg/sendmmsg in batches of 64). It runs as a contestant in every round
#   (RELAY=0 leaves it out): sip-edge/relay is the gap that is sip-edge's own, sip-edge/Kamailio the comparison.
#   The relay cannot Record-Route, so its uac's ACK and BYE go to it like everything else (the same 6 messages).
# BASELINE=PATH adds a third contestant, another sip-edge binary (e.g. the build before a change) run with the same
#   configuration in the same rounds, so a change on the message path is measured before and after in one run.
#   BASELINE_CONFIG=FILE gives the baseline its own configuration (BASELINE=.build/release/sip-edge and
#   BASELINE_CONFIG compare two settings of one build).
# Tunables (environment): RATE=500 CALLS=5000 ROUNDS=3 WORKERS=1 RATES="500 1000 2000 4000" STEP_SECONDS=5
#   BASE_PORT=26000 (uses BASE_PORT..BASE_PORT+3) CAPTURE=0 (1: HEP capture on as a contestant) EDGE_ARGS="" (extra sip-edge flags, e.g. --config FILE)
#   KAMAILIO_CFG=perf/kamailio-stateless.cfg (perf/kamailio-stateful.cfg: tm's t_relay(), the reference for a
#   transaction-stateful edge) KAMAILIO_SHM_MB=512
# EDGE_MODE=transaction runs sip-edge with --mode transaction against Kamailio's tm (perf/kamailio-stateful.cfg
#   unless KAMAILIO_CFG says otherwise), and adds the same binary in stateless mode as a contestant in the same
#   rounds, so the transaction layer's cost is measured against both references in one run.
# Installs nothing. Needs: sipp (sip-tester), kamailio, and `swift build -c release` done.
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=${RATE:-500}
CALLS=${CALLS:-5000}
ROUNDS=${ROUNDS:-3}
WORKERS=${WORKERS:-1}
RATES=${RATES-"500 1000 2000 4000"}
STEP_SECONDS=${STEP_SECONDS:-5}
BASE_PORT=${BASE_PORT:-26000}
PROXY_PORT=$BASE_PORT
UAS_PORT=$((BASE_PORT + 1))
UAC_PORT=$((BASE_PORT + 2))
MESSAGES_PER_CALL=6
EDGE=.build/release/sip-edge
WORK=$(mktemp -d /tmp/sipedge-bench.XXXXXX)
TICKS=$(getconf CLK_TCK)

for tool in sipp kamailio; do command -v "$tool" >/dev/null || { echo "bench: $tool not installed"; exit 1; }; done
[ -x "$EDGE" ] || { echo "bench: build first: swift build -c release"; exit 1; }
BASELINE=${BASELINE:-}
EDGE_MODE=${EDGE_MODE:-stateless}
CONTESTANTS="edge kamailio"
if [ "${RELAY:-1}" = 1 ]; then
    CONTESTANTS="relay $CONTESTANTS"
    cc -O2 -Wall -Wextra -Werror -o "$WORK/udp-relay" perf/udp-relay.c
fi
RELAY_BACK_PORT=$((BASE_PORT + 4))
if [ "$EDGE_MODE" = transaction ]; then
    CONTESTANTS="stateless $CONTESTANTS"
    KAMAILIO_CFG=${KAMAILIO_CFG:-perf/kamailio-stateful.cfg}
elif [ "$EDGE_MODE" != stateless ]; then
    echo "bench: EDGE_MODE must be stateless or transaction"; exit 1
fi
started_pids=()
cleanup() {
    for pid in "${started_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

# CAPTURE=1 adds the same binary with HEP capture on at 100% (every message received and sent, to a sink on
# BASE_PORT+3 that socat drains; CAPTURE_TRANSPORT=udp (default) or tcp), so the cost of capture is measured against capture off in the same rounds.
if [ "${CAPTURE:-0}" = 1 ]; then
    command -v socat >/dev/null || { echo "bench: CAPTURE=1 needs socat"; exit 1; }
    CONTESTANTS="capture $CONTESTANTS"
    CAPTURE_TRANSPORT=${CAPTURE_TRANSPORT:-udp}
    { cat "${EDGE_CONFIG:-perf/load-generator.yaml}"
      printf 'capture:\n  hep: %s:127.0.0.1:%d\n' "$CAPTURE_TRANSPORT" $((BASE_PORT + 3)); } > "$WORK/capture.yaml"
    if [ "$CAPTURE_TRANSPORT" = tcp ]; then
        socat -u "TCP-LISTEN:$((BASE_PORT + 3)),bind=127.0.0.1,reuseaddr,fork" /dev/null &
    else
        socat -u "UDP-RECV:$((BASE_PORT + 3)),bind=127.0.0.1,rcvbuf=8388608" /dev/null &
    fi
    started_pids+=("$!")
fi
if [ -n "$BASELINE" ]; then
    [ -x "$BASELINE" ] || { echo "bench: BASELINE $BASELINE is not an executable"; exit 1; }
    CONTESTANTS="baseline $CONTESTANTS"
fi


# CPU ticks of a process and its direct children: "USER SYSTEM" (utime, stime).
cpu_ticks() {
    local user=0 system=0 pid
    for pid in "$1" $(pgrep -P "$1" || true); do
        [ -r "/proc/$pid/stat" ] || continue
        # Fields after the ")" that ends the command name: utime is the 12th, stime the 13th.
        local fields
        fields=$(sed 's/^.*) //' "/proc/$pid/stat")
        user=$((user + $(echo "$fields" | awk '{print $12}')))
        system=$((system + $(echo "$fields" | awk '{print $13}')))
    done
    echo "$user $system"
}

start_uas() {
    # -aa: the uas answers sip-edge's OPTIONS health probes (a core that does not is taken out of rotation).
    sipp -sn uas -aa -i 127.0.0.1 -p "$UAS_PORT" -nostdin > "$WORK/uas.log" 2>&1 &
    UAS_PID=$!
    started_pids+=("$UAS_PID")
}

stop_pid() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

start_proxy() { # $1 = edge | baseline | capture | stateless | kamailio | relay
    if [ "$1" = relay ]; then
        "$WORK/udp-relay" "$PROXY_PORT" "$RELAY_BACK_PORT" "$UAS_PORT" 3600 > "$WORK/relay.log" 2>&1 &
        PROXY_PID=$!
    elif [ "$1" != kamailio ]; then
        local binary=$EDGE mode=$EDGE_MODE config=${EDGE_CONFIG:-perf/load-generator.yaml}
        [ "$1" = baseline ] && binary=$BASELINE && config=${BASELINE_CONFIG:-$config}
        [ "$1" = capture ] && config=$WORK/capture.yaml
        [ "$1" = stateless ] && mode=stateless
        # The baseline may predate --mode: it is only given one when transaction mode is measured.
        local mode_flag=()
        [ "$EDGE_MODE" = transaction ] && mode_flag=(--mode "$mode")
        # shellcheck disable=SC2086 # EDGE_ARGS is a list of extra flags
        "$binary" --config "$config" --listen "udp:127.0.0.1:$PROXY_PORT" --upstream "sip:127.0.0.1:$UAS_PORT" --workers "$WORKERS" \
            "${mode_flag[@]}" ${EDGE_ARGS:-} > "$WORK/edge.log" 2>&1 &
        PROXY_PID=$!
    else
        sed -e "s/KAMAILIO_CHILDREN/$WORKERS/; s/KAMAILIO_LISTEN/127.0.0.1:$PROXY_PORT/" \
            -e "s/KAMAILIO_UPSTREAM_HOST/127.0.0.1/; s/KAMAILIO_UPSTREAM_PORT/$UAS_PORT/" \
            "${KAMAILIO_CFG:-perf/kamailio-stateless.cfg}" > "$WORK/kamailio.cfg"
        mkdir -p "$WORK/kamailio-run"
        # -m: shared memory in MB. tm keeps every transaction there for up to 32 s; at 2,000 calls/s the default 64 MB
        # runs out within seconds ("out of mem" and 500s), which would measure an error path.
        kamailio -f "$WORK/kamailio.cfg" -DD -E -x fm -m "${KAMAILIO_SHM_MB:-512}" -Y "$WORK/kamailio-run" \
            > "$WORK/kamailio.log" 2>&1 &
        PROXY_PID=$!
    fi
    started_pids+=("$PROXY_PID")
    sleep 1
    kill -0 "$PROXY_PID" 2>/dev/null || { echo "bench: $1 did not start"; tail "$WORK"/*.log; exit 1; }
}

# Runs CALLS calls at RATE through the proxy; sets UAC_STATUS and ELAPSED (s).
run_calls() { # $1 calls, $2 rate
    local start end
    start=$(date +%s.%N)
    set +e
    timeout $(( $1 / $2 + 60 )) sipp -sn uac "127.0.0.1:$PROXY_PORT" -i 127.0.0.1 -p "$UAC_PORT" -m "$1" -r "$2" \
        -timeout "$(( $1 / $2 + 30 ))s" -timeout_error -nostdin > "$WORK/uac.log" 2>&1
    UAC_STATUS=$?
    set -e
    end=$(date +%s.%N)
    ELAPSED=$(echo "$end - $start" | bc -l)
}

median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

echo "bench: $CALLS calls at $RATE calls/s, $ROUNDS rounds, $WORKERS workers, sip-edge $EDGE_MODE; work dir $WORK"
: > "$WORK/relay.ms"
: > "$WORK/stateless.ms"
: > "$WORK/edge.ms"
: > "$WORK/kamailio.ms"
: > "$WORK/baseline.ms"
: > "$WORK/capture.ms"
for round in $(seq 1 "$ROUNDS"); do
    for proxy in $CONTESTANTS; do
        start_uas
        start_proxy "$proxy"
        before=$(cpu_ticks "$PROXY_PID")
        run_calls "$CALLS" "$RATE"
        after=$(cpu_ticks "$PROXY_PID")
        stop_pid "$PROXY_PID"
        stop_pid "$UAS_PID"
        read -r user_before system_before <<< "$before"
        read -r user_after system_after <<< "$after"
        user_ms=$(echo "($user_after - $user_before) * 1000 / $TICKS" | bc -l)
        system_ms=$(echo "($system_after - $system_before) * 1000 / $TICKS" | bc -l)
        cpu_ms=$(echo "$user_ms + $system_ms" | bc -l)
        per_k=$(echo "$cpu_ms * 1000 / ($CALLS * $MESSAGES_PER_CALL)" | bc -l)
        if [ "$UAC_STATUS" -eq 0 ]; then
            printf 'round %d %-8s cpu %7.0f ms (user %5.0f, system %5.0f)  %6.2f ms/1000 msgs  (%.1f s)\n' \
                "$round" "$proxy" "$cpu_ms" "$user_ms" "$system_ms" "$per_k" "$ELAPSED"
            echo "$per_k" >> "$WORK/$proxy.ms"
            echo "$(echo "$user_ms * 1000 / ($CALLS * $MESSAGES_PER_CALL)" | bc -l) $(echo "$system_ms * 1000 / ($CALLS * $MESSAGES_PER_CALL)" | bc -l)" \
                >> "$WORK/$proxy.split"
        else
            printf 'round %d %-8s UNCLEAN (SIPp exit %d), left out\n' "$round" "$proxy" "$UAC_STATUS"
        fi
    done
done
edge_median=$(median < "$WORK/edge.ms")
kamailio_median=$(median < "$WORK/kamailio.ms")
ratio() { if [ "$2" = nan ] || [ "$1" = nan ]; then echo nan; else echo "$1 / $2" | bc -l; fi; }
printf 'median CPU per 1000 messages: sip-edge (%s) %.2f ms, kamailio %.2f ms, ratio %.2f\n' \
    "$EDGE_MODE" "$edge_median" "$kamailio_median" "$(ratio "$edge_median" "$kamailio_median")"
# User and system apart (medians of each, so they need not add up to the median of the sums).
split() { [ -s "$WORK/$1.split" ] || { echo "nan nan"; return; }
          echo "$(awk '{print $1}' "$WORK/$1.split" | median) $(awk '{print $2}' "$WORK/$1.split" | median)"; }
if [ "${RELAY:-1}" = 1 ]; then
    relay_median=$(median < "$WORK/relay.ms")
    printf 'median CPU per 1000 messages: relay (no SIP work) %.2f ms, sip-edge/relay %.2f, kamailio/relay %.2f\n' \
        "$relay_median" "$(ratio "$edge_median" "$relay_median")" "$(ratio "$kamailio_median" "$relay_median")"
    for contestant in relay edge kamailio; do
        read -r user system <<< "$(split "$contestant")"
        printf '  %-8s user %6.2f  system %6.2f  ms/1000 msgs\n' "$contestant" "$user" "$system"
    done
fi
if [ "${CAPTURE:-0}" = 1 ]; then
    capture_median=$(median < "$WORK/capture.ms")
    printf 'median CPU per 1000 messages: sip-edge with HEP capture %.2f ms, capture/no capture %.3f\n' \
        "$capture_median" "$(ratio "$capture_median" "$edge_median")"
fi
if [ "$EDGE_MODE" = transaction ]; then
    stateless_median=$(median < "$WORK/stateless.ms")
    printf 'median CPU per 1000 messages: sip-edge stateless %.2f ms, transaction/stateless %.3f\n' \
        "$stateless_median" "$(ratio "$edge_median" "$stateless_median")"
fi
if [ -n "$BASELINE" ]; then
    baseline_median=$(median < "$WORK/baseline.ms")
    printf 'median CPU per 1000 messages: baseline %.2f ms, sip-edge/baseline %.3f\n' \
        "$baseline_median" "$(ratio "$edge_median" "$baseline_median")"
fi

# RATES= (empty): CPU per message only.
[ -z "${RATES// /}" ] && exit 0
echo "bench: maximum clean rate, $STEP_SECONDS s per step, rates: $RATES"
best_edge=0
best_kamailio=0
RATE_CONTESTANTS="edge kamailio"
[ "${RELAY:-1}" = 1 ] && RATE_CONTESTANTS="relay $RATE_CONTESTANTS"
for rate in $RATES; do
    for proxy in $RATE_CONTESTANTS; do
        start_uas
        start_proxy "$proxy"
        before=$(cpu_ticks "$PROXY_PID")
        run_calls $((rate * STEP_SECONDS)) "$rate"
        after=$(cpu_ticks "$PROXY_PID")
        stop_pid "$PROXY_PID"
        stop_pid "$UAS_PID"
        read -r user_before system_before <<< "$before"
        read -r user_after system_after <<< "$after"
        step_per_k=$(echo "(($user_after - $user_before) + ($system_after - $system_before)) * 1000 / $TICKS * 1000 / ($rate * $STEP_SECONDS * $MESSAGES_PER_CALL)" | bc -l)
        # Clean: no failed call, and the calls did not take much longer than planned (SIPp fell behind).
        if [ "$UAC_STATUS" -eq 0 ] && [ "$(echo "$ELAPSED <= $STEP_SECONDS * 1.5 + 2" | bc -l)" -eq 1 ]; then
            verdict=clean
            case $proxy in edge) best_edge=$rate ;; kamailio) best_kamailio=$rate ;; esac
        else
            verdict="not clean (SIPp exit $UAC_STATUS, $(printf '%.1f' "$ELAPSED") s)"
        fi
        printf 'rate %5d %-8s %6.2f ms/1000 msgs  %s\n' "$rate" "$proxy" "$step_per_k" "$verdict"
    done
done
last_rate=${RATES##* }
echo "max clean rate: sip-edge $best_edge calls/s, kamailio $best_kamailio calls/s"
if [ "$best_edge" = "$last_rate" ] && [ "$best_kamailio" = "$last_rate" ]; then
    echo "note: both passed every step: the ceiling measured is SIPp's on this machine, not the proxies'"
fi
