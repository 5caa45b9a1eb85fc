#!/usr/bin/env bash
# SIP over streams, CPU per message: sip-edge over TCP, WebSocket and TLS, and Kamailio over TCP and TLS, in
# alternating rounds of one run, for 1, 100 and 10,000 client connections (issue #16: WS <= 1.2x TCP; issue #17:
# sip-edge <= 0.5x Kamailio over TCP and TLS at 10,000 connections).
#
#   ROUNDS=3 EXCHANGES=50000 CONNECTIONS="1 100 10000" KINDS="tcp ws kamailio" perf/stream-bench.sh
#   KINDS="tls kamailio-tls" perf/stream-bench.sh      (TLS: both with the same self-signed P-256 certificate,
#                                                      TLS 1.3 with the client's defaults; handshakes before "ready")
#   BATCH_WAIT_US=0 KINDS="tcp tls" perf/stream-bench.sh  (sip-edge's uring.batch_wait_us; unset: its default)
#
# perf/stream-load.c (built here with the system compiler) opens the connections and sends OPTIONS over them in
# turn, one in flight per connection and at most 256 in all (WS frames masked once when built), and is itself the
# UDP core answering 200 (a separate stream-load process for the whole run, so it answers health probes between
# runs), each answer checked (a local refusal by a proxy stops the run), so the proxies' CPU is the only SIP work measured. One exchange is two messages
# through the proxy. CPU is utime + stime from /proc (Kamailio: its main process and children), per 1,000 messages.
# sip-edge: one worker, every validator rule and the rate limiter on (the per-source limit raised past the load,
# which comes from one address; 1,024 provided receive buffers, as 256 requests in flight on as many connections
# need more than the default 128). Kamailio 5.6: perf/kamailio-stateless.cfg (Max-Forwards, rport, loose_route,
# stateless forward()) with one UDP and one TCP worker, -x fm. Loopback only; every process started is stopped by
# PID; each load run is bounded (EXCHANGES, and 120 s).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/release/sip-edge}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-"1 100 10000"}
EXCHANGES=${EXCHANGES:-50000}
KINDS=${KINDS:-"tcp ws kamailio"}
BASE_PORT=${BASE_PORT:-19810}  # below the ephemeral range (32768-60999): the load's own client sockets take ports there
EDGE_PORT=$BASE_PORT
CORE_PORT=$((BASE_PORT + 1))
WS_PORT=$((BASE_PORT + 2))
KAMAILIO_PORT=$((BASE_PORT + 3))
TLS_PORT=$((BASE_PORT + 4))
KAMAILIO_TLS_PORT=$((BASE_PORT + 5))
[ -x "$BIN" ] || { echo "build it first: swift build -c release" >&2; exit 2; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
# shellcheck source=perf/stream-common.sh
. perf/stream-common.sh

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=bench.sipedge.test" \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
cat > "$WORK/edge.yaml" <<YAML
listen: udp:127.0.0.1:$EDGE_PORT
upstreams: [sip:127.0.0.1:$CORE_PORT]
workers: 1
admin:
  listen: "off"
rate_limit:
  requests_per_window: 10000000
tcp:
  max_connections: 20000
uring:
  receive_buffers: 1024
${BATCH_WAIT_US:+  batch_wait_us: $BATCH_WAIT_US}
websocket:
  listen: [ws:127.0.0.1:$WS_PORT]
tls:
  listen: tls:127.0.0.1:$TLS_PORT
  certificate: $WORK/cert.pem
  private_key: $WORK/key.pem
flow:
  key: stream-bench-flow-key-0123456789
security:
  audit_log: "off"
YAML
# The core lives for the whole run (answering the edge's health probes between load runs too).
"$WORK/stream-load" core 0 "$CORE_PORT" 1 0 3600 > "$WORK/core.log" 2>&1 &
pids+=("$!")
"$BIN" --config "$WORK/edge.yaml" > "$WORK/edge.log" 2>&1 &
edge=$!
pids+=("$edge")
kamailio_pid=
if [[ " $KINDS " == *" kamailio"* ]]; then
    command -v kamailio >/dev/null || { echo "kamailio not installed" >&2; exit 2; }
    # TLS through the tls module (one TCP/TLS worker, like the TCP case), the same certificate as sip-edge's.
    tls_lines="enable_tls=yes\nlisten=tls:127.0.0.1:$KAMAILIO_TLS_PORT\ntls_max_connections=20000"
    sed -e "s/KAMAILIO_CHILDREN/1/; s/KAMAILIO_LISTEN/127.0.0.1:$KAMAILIO_PORT/" \
        -e "s/KAMAILIO_UPSTREAM_HOST/127.0.0.1/; s/KAMAILIO_UPSTREAM_PORT/$CORE_PORT/" perf/kamailio-stateless.cfg \
        | sed -e "s/^listen=udp:.*/&\nlisten=tcp:127.0.0.1:$KAMAILIO_PORT\ntcp_children=1\ntcp_max_connections=20000\ntcp_connection_lifetime=3600\n$tls_lines/" \
              -e "s|^loadmodule \"pv.so\"|loadmodule \"tls.so\"\nmodparam(\"tls\", \"certificate\", \"$WORK/cert.pem\")\nmodparam(\"tls\", \"private_key\", \"$WORK/key.pem\")\nmodparam(\"tls\", \"tls_method\", \"TLSv1.2+\")\nmodparam(\"tls\", \"verify_certificate\", 0)\nmodparam(\"tls\", \"require_certificate\", 0)\n&|" \
        > "$WORK/kamailio.cfg"
    mkdir -p "$WORK/kamailio-run"
    kamailio -f "$WORK/kamailio.cfg" -DD -E -x fm -m "${KAMAILIO_SHM_MB:-4096}" -Y "$WORK/kamailio-run" > "$WORK/kamailio.log" 2>&1 &
    kamailio_pid=$!
    pids+=("$kamailio_pid")
fi
sleep 1.5
kill -0 "$edge" || { cat "$WORK/edge.log"; exit 1; }
[ -z "$kamailio_pid" ] || kill -0 "$kamailio_pid" || { tail "$WORK/kamailio.log"; exit 1; }

echo "sip-edge $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $EXCHANGES exchanges per round, $ROUNDS rounds"
printf '%-12s %-6s %-9s %14s %12s %11s\n' connections round kind "CPU ms/1000" "exchanges/s" "sent again"
for connections in $CONNECTIONS; do
    exchanges=$EXCHANGES
    [ "$exchanges" -lt $((connections * 3)) ] && exchanges=$((connections * 3))
    for round in $(seq 1 "$ROUNDS"); do
        for kind in $KINDS; do
            case $kind in
                tcp) port=$EDGE_PORT mode=tcp MEASURED_PID=$edge ;;
                ws) port=$WS_PORT mode=ws MEASURED_PID=$edge ;;
                kamailio) port=$KAMAILIO_PORT mode=tcp MEASURED_PID=$kamailio_pid ;;
                tls) port=$TLS_PORT mode=tls MEASURED_PID=$edge ;;
                kamailio-tls) port=$KAMAILIO_TLS_PORT mode=tls MEASURED_PID=$kamailio_pid ;;
            esac
            read -r cpu rate again _ <<< "$(measured_load "$mode" "$port" 0 "$connections" "$exchanges" 120)"
            printf '%-12s %-6s %-9s %14s %12s %11s\n' "$connections" "$round" "$kind" "$cpu" "$rate" "$again"
            echo "$connections $kind $cpu $rate" >> "$WORK/results"
            # The connections close at the end of a run: give the proxies a moment to take them down.
            sleep 1
        done
    done
done
echo "medians (CPU ms per 1000 messages, exchanges/s):"
for connections in $CONNECTIONS; do
    line="  $connections connections:"
    for kind in $KINDS; do
        cpu=$(median_of "$WORK/results" "$connections" "$kind" 3)
        rate=$(median_of "$WORK/results" "$connections" "$kind" 4)
        eval "cpu_${kind//-/_}=$cpu"
        line+=" $kind $cpu ($rate/s);"
    done
    [[ " $KINDS " == *" ws "* && " $KINDS " == *" tcp "* ]] && line+=$(awk -v w="$cpu_ws" -v t="$cpu_tcp" 'BEGIN { printf " ws/tcp %.2f;", w / t }')
    [[ " $KINDS " == *" kamailio "* && " $KINDS " == *" tcp "* ]] && line+=$(awk -v e="$cpu_tcp" -v k="$cpu_kamailio" 'BEGIN { printf " sip-edge/kamailio over tcp %.2f", e / k }')
    [[ " $KINDS " == *" kamailio-tls "* && " $KINDS " == *" tls "* ]] && line+=$(awk -v e="$cpu_tls" -v k="$cpu_kamailio_tls" 'BEGIN { printf " sip-edge/kamailio over tls %.2f", e / k }')
    echo "$line"
done
