#!/usr/bin/env bash
# Runs the whole suite with Swift Testing only (XCTest would print a misleading "0 tests" last), then prints one
# plain "N passed, N failed" line counted from the per-test results.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p .build
log=.build/test.log
swift test --disable-xctest "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
passed=$(grep -cE '^✔ Test (.*) passed' "$log" | head -1)
passed=$((passed - $(grep -cE '^✔ Test run with' "$log")))
failed=$(grep -E '^✘ Test .* failed after' "$log" | grep -cvE '^✘ Test run with' || true)
echo "tests: ${passed} passed, ${failed} failed"
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
    echo "swift test exited with status $status"
fi
exit "$status"
