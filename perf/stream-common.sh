# Sourced by perf/stream-bench.sh, perf/udp-max-rate.sh, perf/worker-balance.sh and perf/connection-memory.sh: a work directory removed on
# exit with every process started stopped by PID (append to `pids`: perf/work-dir.sh), perf/stream-load.c built into it, and the
# helpers they share. Expects to run from the repository root with `set -euo pipefail`.
# shellcheck source=perf/work-dir.sh
. perf/work-dir.sh
cc -O2 -Wall -Wextra -Werror -o "$WORK/stream-load" perf/stream-load.c -lssl -lcrypto
ticks_per_second=$(getconf CLK_TCK)

# CPU ticks (user + system) of a process and its direct children (Kamailio's workers).
cpu_ticks() {
    local total=0 pid
    for pid in "$1" $(pgrep -P "$1" || true); do
        [ -r "/proc/$pid/stat" ] || continue
        total=$((total + $(sed 's/^.*) //' "/proc/$pid/stat" | awk '{ print $12 + $13 }')))
    done
    echo "$total"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# The median of column COLUMN over the lines of FILE whose first two fields are KEY1 and KEY2 (a results file).
median_of() {  # FILE KEY1 KEY2 COLUMN
    awk -v a="$2" -v b="$3" -v column="$4" '$1 == a && $2 == b { print $column }' "$1" | median
}

# Runs stream-load with the arguments given (its output in $WORK/load.out) and prints
# "CPU_MS_PER_1000 RATE AGAIN LOST" for process $MEASURED_PID: CPU read once every connection is open (stream-load says
# "ready" and pauses 1 s), so set-up (accept, a WebSocket upgrade) is not counted as message cost; per 1,000 messages
# of its EXCHANGES (two messages each). RATE is exchanges a second (udp: the rate sent), AGAIN the requests sent again
# (streams), LOST the requests never answered (udp). Fails the script when the load does, except for lost datagrams
# when LOSS_ALLOWED=1 (perf/udp-max-rate.sh: where loss starts is what it measures).
measured_load() {
    "$WORK/stream-load" "$@" > "$WORK/load.out" 2>&1 &
    local loader=$!
    until grep -q '^ready' "$WORK/load.out" || ! kill -0 "$loader" 2>/dev/null; do sleep 0.05; done
    sleep 0.5
    local before after
    before=$(cpu_ticks "$MEASURED_PID")
    if ! wait "$loader"; then
        [ "${LOSS_ALLOWED:-0}" = 1 ] && grep -q ' lost$' "$WORK/load.out" \
            || { echo "stream-load $* failed: $(cat "$WORK/load.out")" >&2; exit 1; }
    fi
    after=$(cpu_ticks "$MEASURED_PID")
    local line
    line=$(grep answered "$WORK/load.out")
    awk -v t=$((after - before)) -v hz="$ticks_per_second" -v n="$5" \
        -v rate="$(echo "$line" | sed -E 's/.*\(([0-9]+)\/s\).*/\1/')" \
        -v again="$(echo "$line" | sed -nE 's/.*, ([0-9]+) sent again.*/\1/p')" \
        -v lost="$(echo "$line" | sed -nE 's/.*, ([0-9]+) lost$/\1/p')" \
        'BEGIN { printf "%.3f %d %d %d\n", t * 1000 / hz * 1000 / (2 * n), rate, again, lost }'
}
