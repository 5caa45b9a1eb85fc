#!/usr/bin/env bash
# perf/scrape-cost.sh: what a Prometheus scrape of /metrics at 10 Hz costs sip-edge's workers.
#
# Method: ROUNDS rounds, each running CALLS SIPp calls at RATE calls/s through a release sip-edge (WORKERS workers)
# twice, once with nobody scraping and once with curl fetching /metrics every 100 ms, alternating. The workers'
# CPU (utime + stime of the threads named sip-edge-wN, from /proc/PID/task) is read before and after the
# calls, so the admin thread's own work of rendering the page is not counted: the question is whether workers
# notice (they only publish a snapshot every 100 ms, whether or not anyone reads it).
# Output: per round the worker CPU per 1,000 messages with and without scraping; the medians and their ratio.
# Tunables: RATE=2000 CALLS=16000 ROUNDS=5 WORKERS=1 BASE_PORT=26300. Needs sipp, curl, a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-2000}; CALLS=${CALLS:-16000}; ROUNDS=${ROUNDS:-5}; WORKERS=${WORKERS:-1}; BASE_PORT=${BASE_PORT:-26300}
EDGE=.build/release/sip-edge
[ -x "$EDGE" ] || { echo "scrape-cost: build first: swift build -c release"; exit 1; }
TICKS=$(getconf CLK_TCK)
WORK=$(mktemp -d /tmp/sipedge-scrape.XXXXXX)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

worker_ticks() { # $1 = sip-edge PID: utime + stime of its worker threads (named sip-edge-wN)
    local total=0 task
    for task in /proc/"$1"/task/*; do
        grep -qE '^sip-edge-w[0-9]' "$task/comm" 2>/dev/null || continue
        total=$((total + $(sed 's/^.*) //' "$task/stat" | awk '{print $12 + $13}')))
    done
    echo "$total"
}

one_run() { # $1 = scrape | quiet; prints worker ms per 1000 messages
    sipp -sn uas -aa -i 127.0.0.1 -p $((BASE_PORT + 1)) -nostdin > "$WORK/uas.log" 2>&1 &
    local uas=$!
    "$EDGE" --config perf/load-generator.yaml --listen "udp:127.0.0.1:$BASE_PORT" --upstream "sip:127.0.0.1:$((BASE_PORT + 1))" \
        --workers "$WORKERS" --admin "127.0.0.1:$((BASE_PORT + 3))" > "$WORK/edge.log" 2>&1 &
    local edge=$!
    pids+=("$uas" "$edge")
    sleep 1
    local scraper=""
    if [ "$1" = scrape ]; then
        ( for _ in $(seq 1 $((CALLS / RATE * 10 + 100))); do
              curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$((BASE_PORT + 3))/metrics"; sleep 0.1
          done ) &
        scraper=$!
    fi
    local before after
    before=$(worker_ticks "$edge")
    timeout $((CALLS / RATE + 60)) sipp -sn uac "127.0.0.1:$BASE_PORT" -i 127.0.0.1 -p $((BASE_PORT + 2)) -m "$CALLS" \
        -r "$RATE" -timeout "$((CALLS / RATE + 30))s" -timeout_error -nostdin > "$WORK/uac.log" 2>&1 || echo "unclean" >&2
    after=$(worker_ticks "$edge")
    [ -n "$scraper" ] && kill "$scraper" 2>/dev/null
    kill "$edge" "$uas" 2>/dev/null; wait "$edge" "$uas" 2>/dev/null || true
    echo "($after - $before) * 1000 / $TICKS * 1000 / ($CALLS * 6)" | bc -l
}

median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
: > "$WORK/quiet"; : > "$WORK/scrape"
for round in $(seq 1 "$ROUNDS"); do
    quiet=$(one_run quiet); scrape=$(one_run scrape)
    printf 'round %d  workers: quiet %6.2f  scraped at 10 Hz %6.2f ms/1000 msgs\n' "$round" "$quiet" "$scrape"
    echo "$quiet" >> "$WORK/quiet"; echo "$scrape" >> "$WORK/scrape"
done
q=$(median < "$WORK/quiet"); s=$(median < "$WORK/scrape")
printf 'median worker CPU per 1000 messages: quiet %.2f ms, scraped %.2f ms, ratio %.3f\n' "$q" "$s" "$(echo "$s / $q" | bc -l)"
