#!/usr/bin/env bash
# The suites under sanitizers, each build in its own scratch path (.build/asan, .build/tsan) and without jemalloc
# (SIPEDGE_SANITIZER: the sanitizers bring their own allocator).
#
#   AddressSanitizer + UndefinedBehaviorSanitizer: every unit suite, Swift instrumented by swiftc, the C targets
#     (scanner, io_uring glue, TLS, DNS) compiled with -fsanitize=address,undefined and halting on the first finding.
#     LeakSanitizer is off: the Swift runtime's metadata caches and the test runner's allocations live until exit
#     by design and would bury any report of ours.
#   ThreadSanitizer: the unit suites that start threads (transport, admin, shared state, io_uring) and the
#     integration suites through a TSan-built sip-edge (its workers, admin thread, prober, resolver, reload,
#     handover and Redis threads); TSAN_OPTIONS makes a race end the process (exit 66), which fails the test.
#
#   scripts/test-sanitizers.sh          everything (make test-sanitizers; about 15 minutes here)
#   scripts/test-sanitizers.sh short    CI's form: the unit suites under ASan+UBSan, and under TSan the thread-starting
#                                       unit suites plus the integration suites that start every kind of thread
# Ends on "sanitizers: N passed, N failed" counted over the runs.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-full}
export SIPEDGE_SANITIZER=1
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export TSAN_OPTIONS=halt_on_error=1:exitcode=66:second_deadlock_stack=1
mkdir -p .build
passed=0
failed=0
status=0

# Runs `swift test` with the arguments, adds its counts (Swift Testing's closing line and the failed tests).
run() {
    local name=$1
    shift
    local log=.build/sanitizers-$name.log
    swift test --disable-xctest "$@" > "$log" 2>&1
    local result=$?
    local total fails
    total=$(grep -oE 'Test run with [0-9]+ tests?' "$log" | tail -1 | grep -oE '[0-9]+' || echo 0)
    fails=$(grep -E '^✘ Test .* failed after' "$log" | grep -vE '^✘ Test run with' | sed -E 's/ failed after.*//' | sort -u | wc -l)
    [ "$result" -ne 0 ] && [ "$fails" -eq 0 ] && fails=1
    passed=$((passed + total - fails))
    failed=$((failed + fails))
    [ "$result" -ne 0 ] && status=1
    grep -hE 'ERROR: AddressSanitizer|runtime error:|WARNING: ThreadSanitizer' "$log" | head -5
    echo "$name: $((total - fails)) passed, $fails failed ($log)"
}

asan=(--scratch-path .build/asan --sanitize=address -Xcc -fsanitize=undefined -Xcc -fno-sanitize-recover=undefined)
swift build --build-tests "${asan[@]}" > .build/sanitizers-asan-build.log 2>&1 || { tail -20 .build/sanitizers-asan-build.log; exit 1; }
run asan-ubsan-unit "${asan[@]}" --skip-build --skip 'IntegrationTests\.'

tsan=(--scratch-path .build/tsan --sanitize=thread)
swift build --build-tests "${tsan[@]}" > .build/sanitizers-tsan-build.log 2>&1 || { tail -20 .build/sanitizers-tsan-build.log; exit 1; }
run tsan-unit "${tsan[@]}" --skip-build --filter 'SIPTransportTests|SIPAdminTests|SIPSharedStateTests|SIPUringTests'
since=$(mktemp)
if [ "$mode" = short ]; then
    run tsan-integration "${tsan[@]}" --skip-build --filter 'ReloadTests|SIPpThroughEdgeTests|HandoverTests|SharedStateTests|UpstreamFailoverTests'
else
    run tsan-integration "${tsan[@]}" --skip-build --filter 'IntegrationTests\.'
fi
# The edges the integration suites started write a TSan report into their own logs, not the test's.
races=$(find "${TMPDIR:-/tmp}" -maxdepth 1 -name '*.log' -newer "$since" -exec grep -l 'WARNING: ThreadSanitizer' {} + 2>/dev/null | head -5)
rm -f "$since"
if [ -n "$races" ]; then
    echo "ThreadSanitizer reports in: $races"
    status=1
fi
echo "sanitizers: $passed passed, $failed failed"
exit "$status"
