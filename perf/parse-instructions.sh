#!/usr/bin/env bash
# Instructions per parse of the benchmark's simple INVITE, counted by callgrind: steadier than time on a shared machine.
#
# Builds perf/parse-count (release, its own scratch path .build-count/), runs it under callgrind for PARSES and for
# 2 x PARSES parses (default 20,000) and prints the difference divided by PARSES: instructions per parse with the
# program's start-up taken out. Then the functions that cost most (per parse, start-up included).
# Needs valgrind (apt-get install valgrind); installs nothing itself.
#
# Usage: perf/parse-instructions.sh [PARSES]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PARSES=${1:-20000}
if ! [[ $PARSES =~ ^[0-9]+$ ]] || (( PARSES < 1 )); then
    echo "usage: perf/parse-instructions.sh [PARSES]" >&2
    exit 2
fi
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }

SCRATCH="$ROOT/.build-count"
swift build -c release --package-path "$ROOT/perf/parse-count" --scratch-path "$SCRATCH" >&2
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# valgrind 3.19 cannot read the DWARF 5 the toolchain emits: count on a copy without debug information.
cp "$SCRATCH/release/parse-count" "$WORK/parse-count"
strip -g "$WORK/parse-count"

count() { # PARSES -> the instructions of a whole run with that many parses
    valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.$1" "$WORK/parse-count" "$1" >/dev/null \
        2>"$WORK/valgrind.log"
    grep -Eo 'Collected : [0-9]+' "$WORK/valgrind.log" | grep -Eo '[0-9]+'
}
single=$(count "$PARSES")
double=$(count $(( 2 * PARSES )))
echo "instructions per parse: $(( (double - single) / PARSES )) (callgrind, $PARSES and $(( 2 * PARSES )) parses)"
callgrind_annotate "$WORK/callgrind.$PARSES" 2>/dev/null | grep -E '^ *[0-9,]+ \(' | sed -n '2,13p' \
    | sed -E 's/^ *([0-9,]+) \( *[0-9.]+%\) +[^:]*:([^ ]+).*/\1 \2/' \
    | awk -v n="$PARSES" '{ gsub(",", "", $1); printf "%8.0f  %s\n", $1 / n, $2 }' | swift demangle --simplified \
    | cut -c1-150
