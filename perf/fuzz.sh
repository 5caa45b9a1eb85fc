#!/usr/bin/env bash
# Fuzzes with libFuzzer for SECONDS seconds (default 60) per target: SIPParserFuzzer (the C span scanner and the
# Swift SIP parser, WebSocket framing and upgrades), EdgeInputsFuzzer (flow tokens, admin HTTP requests,
# configuration files, TCP stream framing; seeds in Tests/Fuzz/Seeds/edge-inputs) and TLSRecordFuzzer (TLS records
# into a server session: first flights, forged, round-tripped and tampered records after an in-memory handshake;
# seeds in Tests/Fuzz/Seeds/tls-records). FUZZ_TARGETS picks some.
#
# What it does:
#   1. Builds Tests/Fuzz (a separate SwiftPM package, target SIPParserFuzzer) in release mode with libFuzzer and
#      AddressSanitizer: Swift gets -sanitize=fuzzer,address, the C targets -fsanitize=fuzzer-no-link,address (so the
#      C scanner is coverage-instrumented too). Scratch path: .build-fuzz/ (ignored by git).
#   2. Copies the RFC 4475 torture messages (Tests/SIPParsingTests/Corpus/RFC4475/*.sip) and the WebSocket seeds
#      (Tests/Fuzz/Seeds/websocket/*.bin) into the work corpus
#      .build-fuzz/corpus/ as seeds. The corpus persists between runs, so later runs start where earlier ones stopped.
#   3. Runs one fuzzing process (1 core) with the SIP dictionary Tests/Fuzz/sip.dict. The harness also checks that
#      the scalar, SSE4.2 and AVX2 scanners agree and that stream and datagram framing agree; a disagreement is
#      reported as a crash.
#   4. Prints a summary line (executions, exec/s, cov/ft, corpus size, crash or not). Exits non-zero when libFuzzer
#      found a crash, leak, timeout or OOM; the artifact (the input that triggered it) is kept under
#      .build-fuzz/artifacts/ and its path printed. Reproduce with:
#        SWIFT_BACKTRACE=enable=no .build-fuzz/release/SIPParserFuzzer ARTIFACT 2>&1 | swift demangle --simplified
#
# Usage: perf/fuzz.sh [SECONDS]
#
# Tunables (environment variables):
#   FUZZ_SCRATCH     build and work directory               (default: <repo>/.build-fuzz)
#   FUZZ_MAX_LEN     largest input in bytes                 (default: 70000; the parser's message cap is 65536)
#   FUZZ_TIMEOUT     seconds one input may take             (default: 10)
#   FUZZ_RSS_MB      memory limit in MiB                    (default: 2048)
#   FUZZ_FRESH=1     start from the seeds only: empty the work corpus first
#   FUZZ_NO_BUILD=1  skip the build (use the existing binary)
#   FUZZ_ARGS        extra libFuzzer flags, e.g. "-seed=1 -len_control=0"
#   SWIFT            the swift driver                       (default: swift on PATH)
#   SWIFT_BACKTRACE  Swift's crash backtracer               (default: enable=no, see below)
#
# Installs nothing: it needs only the Swift toolchain, which ships libFuzzer (libclang_rt.fuzzer) and ASan.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECONDS_TO_RUN=${1:-60}
if ! [[ $SECONDS_TO_RUN =~ ^[0-9]+$ ]] || (( SECONDS_TO_RUN < 1 )); then
    echo "usage: perf/fuzz.sh [SECONDS]   (SECONDS: a positive integer, default 60)" >&2
    exit 2
fi

SWIFT=${SWIFT:-swift}
SCRATCH=${FUZZ_SCRATCH:-$ROOT/.build-fuzz}
MAX_LEN=${FUZZ_MAX_LEN:-70000}
TIMEOUT=${FUZZ_TIMEOUT:-10}
RSS_MB=${FUZZ_RSS_MB:-2048}
PACKAGE=$ROOT/Tests/Fuzz
DICT=$PACKAGE/sip.dict
SEEDS=$ROOT/Tests/SIPParsingTests/Corpus/RFC4475
ARTIFACTS=$SCRATCH/artifacts
TARGETS=${FUZZ_TARGETS:-"SIPParserFuzzer EdgeInputsFuzzer TLSRecordFuzzer"}
if [[ ${FUZZ_NO_BUILD:-0} != 1 ]]; then
    echo "fuzz: building $TARGETS" >&2
    # lld: Debian's gold stops with an internal error (dwarf_reader.cc) linking EdgeInputsFuzzer under ASan.
    "$SWIFT" build -c release --package-path "$PACKAGE" --scratch-path "$SCRATCH" \
        -Xswiftc -sanitize=fuzzer,address \
        -Xcc -fsanitize=fuzzer-no-link,address \
        -Xswiftc -use-ld=lld
fi
mkdir -p "$ARTIFACTS"
# Swift's own crash backtracer reads memory ASan treats as off limits and buries the report in a second ASan error;
# with it off, libFuzzer prints the stack (Swift names mangled: pipe through `swift demangle --simplified`).
export SWIFT_BACKTRACE=${SWIFT_BACKTRACE:-enable=no}
# ASan symbolizes stacks when it finds llvm-symbolizer; prefer the toolchain's own.
if [[ -z ${ASAN_SYMBOLIZER_PATH:-} ]]; then
    symbolizer=$(dirname "$(command -v "$SWIFT")")/llvm-symbolizer
    if [[ -x $symbolizer ]]; then export ASAN_SYMBOLIZER_PATH=$symbolizer; fi
fi

# TLSRecordFuzzer's server certificate and key (made once; the harness reads them at start).
export SIPEDGE_FUZZ_TLS_DIR=$SCRATCH/tls
if [[ ! -s $SIPEDGE_FUZZ_TLS_DIR/server.key ]]; then
    mkdir -p "$SIPEDGE_FUZZ_TLS_DIR"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 -subj "/CN=fuzz.sipedge.test" \
        -keyout "$SIPEDGE_FUZZ_TLS_DIR/server.key" -out "$SIPEDGE_FUZZ_TLS_DIR/server.pem" 2>/dev/null
fi

# Runs one target for SECONDS_TO_RUN over its corpus (kept between runs) seeded from the repository.
run_target() {
    TARGET=$1
    BIN=$SCRATCH/release/$TARGET
    LOG=$SCRATCH/fuzz-$TARGET-$(date -u +%Y%m%dT%H%M%SZ).log
    [[ -x $BIN ]] || { echo "fuzz: no fuzzer binary at $BIN" >&2; return 1; }
    CORPUS=$SCRATCH/corpus
    [[ $TARGET == SIPParserFuzzer ]] || CORPUS=$SCRATCH/corpus-$TARGET
    if [[ ${FUZZ_FRESH:-0} == 1 ]]; then rm -rf "$CORPUS"; fi
    # A new work corpus starts from the minimized corpus kept in the repository (Tests/Fuzz/Corpus/TARGET.tar.gz,
    # made with `TARGET -merge=1 NEW_DIR WORK_CORPUS` after a long run), so CI's 20 seconds begin where long runs
    # ended rather than from the seeds alone.
    if [[ ! -d $CORPUS && -f $ROOT/Tests/Fuzz/Corpus/$TARGET.tar.gz ]]; then
        mkdir -p "$CORPUS"
        tar -xzf "$ROOT/Tests/Fuzz/Corpus/$TARGET.tar.gz" -C "$CORPUS"
    fi
    mkdir -p "$CORPUS"
    if [[ $TARGET == SIPParserFuzzer ]]; then
        # The RFC 4475 torture messages, and WebSocket client streams and upgrade requests (the harness also reads
        # every input as those).
        cp "$SEEDS"/*.sip "$CORPUS"/
        cp "$ROOT"/Tests/Fuzz/Seeds/websocket/*.bin "$CORPUS"/
    elif [[ $TARGET == TLSRecordFuzzer ]]; then
        # First byte: 0 first flight, 1 forged records, 2 round trip, 3 tampered record.
        cp "$ROOT"/Tests/Fuzz/Seeds/tls-records/*.bin "$CORPUS"/
    else
        # First byte: 0 flow token, 1 admin request, 2 configuration, 3 TCP stream.
        cp "$ROOT"/Tests/Fuzz/Seeds/edge-inputs/*.bin "$CORPUS"/
    fi
    # Artifacts from earlier runs stay; only the ones this run writes count (per target: fuzzers of different
    # targets may run at the same time).
    ARTIFACTS=$SCRATCH/artifacts/$TARGET
    mkdir -p "$ARTIFACTS"
    before=$(find "$ARTIFACTS" -type f | sort)

    args=(
        -max_total_time="$SECONDS_TO_RUN"
        -max_len="$MAX_LEN"
        -timeout="$TIMEOUT"
        -rss_limit_mb="$RSS_MB"
        -dict="$DICT"
        -artifact_prefix="$ARTIFACTS/"
        -print_final_stats=1
    )
    if [[ -n ${FUZZ_ARGS:-} ]]; then
        # shellcheck disable=SC2206  # FUZZ_ARGS is a list of flags, split on purpose
        args+=(${FUZZ_ARGS})
    fi

    echo "fuzz: $BIN ${args[*]} $CORPUS" >&2
    echo "fuzz: log $LOG" >&2
    set +e
    "$BIN" "${args[@]}" "$CORPUS" 2>&1 | tee "$LOG"
    status=${PIPESTATUS[0]}
    set -e

    new_artifacts=$(comm -13 <(echo "$before") <(find "$ARTIFACTS" -type f | sort) | sed '/^$/d')
    executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$LOG" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$LOG" | tail -1)
    last=$(grep -E '^#[0-9]+[[:space:]].* cov: ' "$LOG" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9A-Za-z]*\).*/\1/p' <<<"$last")

    if [[ $status -eq 0 && -z $new_artifacts ]]; then
        verdict="crash: none"
    else
        verdict="crash: YES (libFuzzer exit $status) artifact: ${new_artifacts//$'\n'/ }"
    fi
    echo "fuzz: $TARGET: ${executions:-?} executions in ${SECONDS_TO_RUN} s (${rate:-?} exec/s), cov: ${cov:-?} ft: ${ft:-?}," \
        "corpus: ${corp:-?} ($(find "$CORPUS" -type f | wc -l) files in $CORPUS), $verdict"
    if [[ $status -ne 0 || -n $new_artifacts ]]; then
        echo "fuzz: reproduce with: SWIFT_BACKTRACE=enable=no $BIN ${new_artifacts%%$'\n'*}" \
            "2>&1 | swift demangle --simplified" >&2
        return 1
    fi
}

failed=0
for target in $TARGETS; do
    run_target "$target" || failed=1
done
exit $failed
