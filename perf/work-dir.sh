# Sourced by the perf scripts that need a scratch directory: WORK (removed on exit) and `pids`, every process
# appended to it stopped by PID on exit. Expects `set -euo pipefail`.
WORK=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
