#!/usr/bin/env bash
# Soak: sip-edge under steady calls, REGISTER churn over UDP, TCP and TLS connection churn (connect, register,
# close) and a SIGHUP reload every minute (a changed policy and a renewed certificate), for DURATION seconds
# (default 1800). Every 10 s it samples the edge's RSS, open descriptors, threads and /metrics into
# $OUT/soak.csv (every exposition kept in $OUT/metrics/); then it judges the run:
#   - 0 failed calls (SIPp) and 0 failed registrations (perf/soak-churn.py);
#   - after the warm-up (WARMUP seconds, default a quarter of the run, at most 300), the least-squares slope of
#     the live heap (jemalloc stats.allocated, from /metrics: what the program holds, without the allocator's
#     caches) is at most HEAP_SLOPE_KIB_PER_MIN (default 16 KiB/min, under 1 MiB an hour), that of RSS at most
#     RSS_SLOPE_KIB_PER_MIN (default 32 KiB/min) and that of the descriptor count at most FD_SLOPE_PER_MIN (0.5);
#   - no counter of /metrics (every *_total series and histogram _count) ever goes backwards;
#   - the edge is still running at the end.
# Prints PASS or FAIL with the figures (also $OUT/summary.txt), plots $OUT/soak.svg when gnuplot is installed
# (Debian gnuplot-nox; PLOT=0 skips it), and exits 0 only on PASS.
#
#   perf/soak.sh [DURATION]    env: BIN (default .build/release/sip-edge, built if missing), OUT (default
#   $(mktemp -d)), PORT_BASE (5 ports from it; default 19900, below the test suites' blocks), RATE calls/s (20), HOLD_MS (2000), CHURN_RATE
#   rounds/s (5), RELOAD_EVERY s (60), SAMPLE_EVERY s (10), WORKERS (2).
# Everything runs on 127.0.0.1; every process started is stopped by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-1800}
RATE=${RATE:-20}
HOLD_MS=${HOLD_MS:-2000}
CHURN_RATE=${CHURN_RATE:-5}
RELOAD_EVERY=${RELOAD_EVERY:-60}
SAMPLE_EVERY=${SAMPLE_EVERY:-10}
WORKERS=${WORKERS:-2}
WARMUP=${WARMUP:-$(( DURATION / 4 < 300 ? DURATION / 4 : 300 ))}
RSS_SLOPE_KIB_PER_MIN=${RSS_SLOPE_KIB_PER_MIN:-32}
HEAP_SLOPE_KIB_PER_MIN=${HEAP_SLOPE_KIB_PER_MIN:-16}
FD_SLOPE_PER_MIN=${FD_SLOPE_PER_MIN:-0.5}
PORT_BASE=${PORT_BASE:-19900}
EDGE_PORT=$PORT_BASE TLS_PORT=$((PORT_BASE + 1)) CORE_PORT=$((PORT_BASE + 2)) UAC_PORT=$((PORT_BASE + 3))
ADMIN_PORT=$((PORT_BASE + 4))
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT/metrics"
PYTHON=/usr/bin/python3

if [ -z "${BIN:-}" ]; then
    BIN=.build/release/sip-edge
    [ -x "$BIN" ] || swift build -c release --product sip-edge >/dev/null
fi
for tool in sipp curl openssl "$PYTHON"; do
    command -v "$tool" >/dev/null || { echo "soak: $tool is missing (scripts/install-deps.sh)" >&2; exit 2; }
done

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

# A self-signed certificate, renewed (new key, new serial) on every reload.
renew_certificate() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=soak.sipedge.test" \
        -keyout "$OUT/key.pem.new" -out "$OUT/cert.pem.new" 2>/dev/null
    mv "$OUT/key.pem.new" "$OUT/key.pem"
    mv "$OUT/cert.pem.new" "$OUT/cert.pem"
}
# The configuration; the blocked User-Agent changes on every reload (a policy change the workers apply).
write_config() {
    cat > "$OUT/sip-edge.yaml" <<YAML
listen: udp:127.0.0.1:$EDGE_PORT
upstreams: [sip:127.0.0.1:$CORE_PORT]
workers: $WORKERS
admin:
  listen: 127.0.0.1:$ADMIN_PORT
tls:
  listen: tls:127.0.0.1:$TLS_PORT
  certificate: $OUT/cert.pem
  private_key: $OUT/key.pem
rate_limit:
  requests_per_window: 100000
  registers_per_window: 100000
security:
  blocked_user_agents: [evil-agent-$1]
YAML
}

renew_certificate
write_config 0
sipp -sf perf/soak-core.xml -aa -i 127.0.0.1 -p "$CORE_PORT" -nostdin > "$OUT/core.log" 2>&1 &
pids+=($!)
"$BIN" run --config "$OUT/sip-edge.yaml" > "$OUT/edge.log" 2>&1 &
EDGE=$!
pids+=($EDGE)
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$ADMIN_PORT/health/live" >/dev/null && break; sleep 0.1; done
kill -0 "$EDGE" || { echo "soak: sip-edge did not start: $(cat "$OUT/edge.log")" >&2; exit 1; }

CALLS=$((RATE * DURATION))
sipp -sn uac 127.0.0.1:"$EDGE_PORT" -i 127.0.0.1 -p "$UAC_PORT" -r "$RATE" -m "$CALLS" -d "$HOLD_MS" \
    -timeout "$((DURATION + 120))s" -timeout_error -nostdin -trace_stat -stf "$OUT/calls.csv" -fd 5 \
    > "$OUT/uac.log" 2>&1 &
UAC=$!
pids+=($UAC)
"$PYTHON" perf/soak-churn.py 127.0.0.1 "$EDGE_PORT" "$TLS_PORT" "$DURATION" "$CHURN_RATE" > "$OUT/churn.json" 2> "$OUT/churn.log" &
CHURN=$!
pids+=($CHURN)

echo "seconds,rss_kib,fds,threads,forwarded,messages,connections_accepted,connections_open,reloads,heap_kib" > "$OUT/soak.csv"
metric_sum() { awk -v name="$1" 'index($0, name) == 1 { sum += $NF } END { printf "%d", sum }' "$2"; }
sample() {
    local seconds=$1 prom="$OUT/metrics/$(printf %06d "$1").prom"
    curl -sf --max-time 3 "http://127.0.0.1:$ADMIN_PORT/metrics" > "$prom" || true
    local rss fds threads
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$EDGE/status")
    threads=$(awk '/^Threads:/ { print $2 }' "/proc/$EDGE/status")
    fds=$(find "/proc/$EDGE/fd" -mindepth 1 -maxdepth 1 | wc -l)
    echo "$seconds,$rss,$fds,$threads,$(metric_sum 'sip_forwarded_total ' "$prom"),$(metric_sum 'sip_messages_total{' "$prom"),$(metric_sum 'sip_connection_events_total{event="accepted"}' "$prom"),$(metric_sum 'sip_active_connections{' "$prom"),$reloads,$(( $(metric_sum 'process_heap_allocated_bytes ' "$prom") / 1024 ))" >> "$OUT/soak.csv"
}

# The kernel's UDP drops (this network namespace), before and after: a stateless edge does not retransmit for a
# reliable-transport client, so a datagram dropped between the edge and the core loses a TCP or TLS registration.
udp_drops() { awk '/^Udp:/ && ++seen == 2 { print $4 }' /proc/net/snmp; }  # InErrors (RcvbufErrors are among them)
udp_drops_at_start=$(udp_drops)
reloads=0
started=$(date +%s)
sample 0
next_sample=$SAMPLE_EVERY
next_reload=$RELOAD_EVERY
while true; do
    now=$(( $(date +%s) - started ))
    [ "$now" -ge "$DURATION" ] && break
    kill -0 "$EDGE" 2>/dev/null || break
    if [ "$now" -ge "$next_reload" ]; then
        reloads=$((reloads + 1))
        renew_certificate
        write_config "$reloads"
        kill -HUP "$EDGE"
        echo "$now" >> "$OUT/reload-seconds.txt"
        next_reload=$((next_reload + RELOAD_EVERY))
    fi
    if [ "$now" -ge "$next_sample" ]; then
        sample "$now"
        next_sample=$((next_sample + SAMPLE_EVERY))
    fi
    sleep 0.5
done
kill -0 "$EDGE" 2>/dev/null && sample "$(( $(date +%s) - started ))"
edge_alive=0
kill -0 "$EDGE" 2>/dev/null && edge_alive=1

# The calls end HOLD_MS after the last one started; the churn with the duration.
for _ in $(seq $((HOLD_MS / 100 + 200))); do kill -0 "$UAC" 2>/dev/null || break; sleep 0.1; done
uac_status=0
wait "$UAC" || uac_status=$?
churn_status=0
wait "$CHURN" || churn_status=$?
udp_drops_during_run=$(( $(udp_drops) - udp_drops_at_start ))
reloads_logged=$(grep -c 'SIGHUP: security, rate_limit and tls certificate reloaded' "$OUT/edge.log" || true)

"$PYTHON" - "$OUT" "$WARMUP" "$RSS_SLOPE_KIB_PER_MIN" "$FD_SLOPE_PER_MIN" "$HEAP_SLOPE_KIB_PER_MIN" "$uac_status" \
    "$churn_status" "$edge_alive" "$reloads" "$reloads_logged" "$udp_drops_during_run" <<'PY'
import csv, glob, json, os, sys
out, warmup, rss_bound, fd_bound, heap_bound = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
uac_status, churn_status, edge_alive, reloads, reloads_logged, udp_drops = (int(v) for v in sys.argv[6:12])
rows = list(csv.DictReader(open(f"{out}/soak.csv")))
def slope(column):
    points = [(float(r["seconds"]) / 60, float(r[column])) for r in rows if float(r["seconds"]) >= warmup]
    if len(points) < 3:
        return float("nan")
    n = len(points); mx = sum(x for x, _ in points) / n; my = sum(y for _, y in points) / n
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
rss_slope, fd_slope, heap_slope = slope("rss_kib"), slope("fds"), slope("heap_kib")
# Every counter series, sample after sample.
backwards, previous = [], {}
for path in sorted(glob.glob(f"{out}/metrics/*.prom")):
    for line in open(path):
        if line.startswith("#") or " " not in line:
            continue
        series, value = line.rsplit(" ", 1)
        name = series.split("{", 1)[0]
        if not (name.endswith("_total") or name.endswith("_count")):
            continue
        value = float(value)
        if series in previous and value < previous[series]:
            backwards.append(f"{series} {previous[series]} -> {value} at {os.path.basename(path)}")
        previous[series] = value
calls = {"successful": 0, "failed": 0}
try:
    stats = list(csv.reader(open(glob.glob(f"{out}/calls*.csv")[0]), delimiter=";"))
    header, last = stats[0], stats[-1]
    calls = {"successful": int(last[header.index("SuccessfulCall(C)")]), "failed": int(last[header.index("FailedCall(C)")])}
except (IndexError, ValueError, OSError):
    calls["failed"] = -1
churn, churn_errors, udp_retransmissions = {}, [], "?"
try:
    report = json.loads(open(f"{out}/churn.json").read().strip().splitlines()[-1])
    churn, churn_errors, udp_retransmissions = report["churn"], report["errors"], report["udp_retransmissions"]
except (IndexError, ValueError, OSError, KeyError):
    churn = {"unreadable": {"ok": 0, "failed": 1}}
try:
    reload_seconds = open(f"{out}/reload-seconds.txt").read().split()
except OSError:
    reload_seconds = []
churn_failed = sum(c["failed"] for c in churn.values())
rss = [int(r["rss_kib"]) for r in rows]
checks = {
    "calls": calls["failed"] == 0 and calls["successful"] > 0 and uac_status == 0,
    "churn": churn_failed == 0 and churn_status == 0,
    "heap_flat": heap_slope <= heap_bound,
    "rss_flat": rss_slope <= rss_bound,
    "fds_flat": abs(fd_slope) <= fd_bound,
    "counters_monotonic": not backwards,
    "edge_running": edge_alive == 1,
    "reloads_applied": reloads_logged == reloads,
}
verdict = "PASS" if all(checks.values()) else "FAIL"
lines = [
    f"soak {verdict}: {rows[-1]['seconds']} s, {len(rows)} samples, warm-up {warmup:.0f} s",
    f"calls: {calls['successful']} successful, {calls['failed']} failed (SIPp exit {uac_status})",
    "churn: " + ", ".join(f"{k} {v['ok']} ok / {v['failed']} failed" for k, v in churn.items())
        + f"; UDP retransmissions {udp_retransmissions}" + "".join(f"\n  {e}" for e in churn_errors),
    f"kernel UDP drops during the run (receive buffers, all sockets here): {udp_drops}; reloads at "
        + (", ".join(reload_seconds) or "-") + " s",
    f"RSS: {rss[0]} KiB at start, {min(rss)}..{max(rss)} KiB, slope after warm-up {rss_slope:.1f} KiB/min (bound {rss_bound})",
    f"live heap: {rows[0]['heap_kib']} -> {rows[-1]['heap_kib']} KiB, slope after warm-up {heap_slope:.1f} KiB/min (bound {heap_bound})",
    f"descriptors: {rows[0]['fds']} -> {rows[-1]['fds']}, slope after warm-up {fd_slope:.3f}/min (bound {fd_bound})",
    f"counters going backwards: {len(backwards)}" + ("".join(f"\n  {b}" for b in backwards[:10])),
    f"reloads: {reloads} sent, {reloads_logged} applied; edge running at the end: {bool(edge_alive)}",
    "checks: " + ", ".join(f"{k}={'ok' if v else 'FAILED'}" for k, v in checks.items()),
]
open(f"{out}/summary.txt", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
sys.exit(0 if verdict == "PASS" else 1)
PY
verdict=$?

if [ "${PLOT:-1}" != 0 ] && command -v gnuplot >/dev/null; then
    gnuplot <<GP
set terminal svg size 900,480 dynamic background rgb "white"
set output "$OUT/soak.svg"
set datafile separator ","
set key top left
set xlabel "seconds"
set ylabel "MiB"
set y2label "open descriptors"
set y2tics
set ytics nomirror
set yrange [0:*]
set y2range [0:*]
set title "sip-edge soak: $RATE calls/s, churn $CHURN_RATE/s x (UDP, TCP, TLS), reload every $RELOAD_EVERY s"
plot "$OUT/soak.csv" using 1:(\$2/1024) skip 1 with linespoints title "RSS", \
     "$OUT/soak.csv" using 1:(\$10/1024) skip 1 with lines title "live heap (jemalloc allocated)", \
     "$OUT/soak.csv" using 1:3 skip 1 axes x1y2 with lines title "descriptors"
GP
    echo "plot: $OUT/soak.svg"
fi
echo "results: $OUT"
exit "$verdict"
