#!/usr/bin/env bash
# perf/transaction-memory.sh: memory per live transaction in transaction mode, measured in a running sip-edge.
#
# CALLS INVITEs (default 50,000) ring and are never answered, so each keeps two transactions live (the INVITE
# server transaction from the client and the client transaction toward the core) until Timer C: 100,000 live
# transactions by default, checked on /metrics (sip_transactions_active). The same calls go through sip-edge in
# stateless mode first, as the reference. Memory is preallocated at start (map, records, timer wheel, message
# store), so the script reports
#   - structures per transaction: (RSS transaction mode, empty) - (RSS stateless, empty) - message store, divided by
#     transactions.max_per_worker (= the live count here, so the table is exactly full);
#   - message bytes per live transaction: sip_transaction_message_bytes / live transactions (the INVITE as sent
#     and the last response, whole 512-byte blocks);
#   - the whole difference at that load: RSS transaction mode - RSS stateless, both with the calls live.
# Tunables: CALLS=50000 RATE=2500 BASE_PORT=26100 (uses BASE_PORT..BASE_PORT+3) STORE_MB=128
# Installs nothing. Needs: sipp, curl, and `swift build -c release` done.
set -euo pipefail
cd "$(dirname "$0")/.."

CALLS=${CALLS:-50000}
RATE=${RATE:-2500}
BASE_PORT=${BASE_PORT:-26100}
STORE_MB=${STORE_MB:-128}
LIVE=$((CALLS * 2))
EDGE=.build/release/sip-edge
WORK=$(mktemp -d /tmp/sipedge-txmem.XXXXXX)
[ -x "$EDGE" ] || { echo "transaction-memory: build first: swift build -c release"; exit 1; }

started_pids=()
cleanup() {
    for pid in "${started_pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

metric() { # $1 = metric line prefix: the sum of its samples
    curl -s "http://127.0.0.1:$((BASE_PORT + 3))/metrics" | awk -v m="$1" 'index($0, m) == 1 {s += $NF} END {print s + 0}'
}

# One measurement: starts the core and sip-edge with `$@`, reads RSS empty, rings CALLS calls, reads RSS loaded.
measure() { # $1 = label, rest: sip-edge flags
    local label=$1
    shift
    sipp -sf perf/hold-uas.xml -aa -i 127.0.0.1 -p $((BASE_PORT + 1)) -nostdin > "$WORK/uas-$label.log" 2>&1 &
    local uas=$!
    started_pids+=("$uas")
    "$EDGE" --listen "udp:127.0.0.1:$BASE_PORT" --upstream "sip:127.0.0.1:$((BASE_PORT + 1))" --workers 1 \
        --admin "127.0.0.1:$((BASE_PORT + 3))" "$@" > "$WORK/edge-$label.log" 2>&1 &
    local edge=$!
    started_pids+=("$edge")
    sleep 2
    EMPTY_KIB=$(rss_kib "$edge")
    sipp -sf perf/hold-uac.xml "127.0.0.1:$BASE_PORT" -i 127.0.0.1 -p $((BASE_PORT + 2)) -m "$CALLS" -r "$RATE" \
        -l $((CALLS + 1000)) -nostdin > "$WORK/uac-$label.log" 2>&1 &
    local uac=$!
    started_pids+=("$uac")
    # All calls placed and ringing: the edge has forwarded CALLS 180s (bounded wait).
    local deadline=$((SECONDS + CALLS / RATE + 60))
    while [ "$SECONDS" -lt "$deadline" ]; do
        [ "$(metric 'sip_messages_total{method="response"')" -ge "$CALLS" ] && break
        sleep 1
    done
    sleep 2
    LOADED_KIB=$(rss_kib "$edge")
    ACTIVE=$(metric sip_transactions_active)
    MESSAGE_BYTES=$(metric sip_transaction_message_bytes)
    RESPONSES=$(metric 'sip_messages_total{method="response"')
    kill -9 "$uac" "$edge" "$uas" 2>/dev/null || true
    wait "$uac" "$edge" "$uas" 2>/dev/null || true
    printf '%-12s RSS empty %8d KiB, with %d calls ringing %8d KiB (%d responses from the core, %d live transactions)\n' \
        "$label" "$EMPTY_KIB" "$CALLS" "$LOADED_KIB" "$RESPONSES" "$ACTIVE"
}

echo "transaction-memory: $CALLS ringing calls ($LIVE live transactions in transaction mode); work dir $WORK"
measure stateless --config perf/load-generator.yaml --mode stateless
STATELESS_EMPTY=$EMPTY_KIB
STATELESS_LOADED=$LOADED_KIB
# The load generator's limits (one SIPp sends thousands of requests per second), plus the transaction table.
cp perf/load-generator.yaml "$WORK/transaction.yaml"
cat >> "$WORK/transaction.yaml" <<YAML
proxy:
  mode: transaction
transactions:
  max_per_worker: $LIVE
  message_memory_mb: $STORE_MB
YAML
measure transaction --config "$WORK/transaction.yaml"
[ "$ACTIVE" -eq "$LIVE" ] || { echo "transaction-memory: expected $LIVE live transactions, saw $ACTIVE"; exit 1; }
structures=$(( ( (EMPTY_KIB - STATELESS_EMPTY) * 1024 - STORE_MB * 1048576 ) / LIVE ))
messages=$(( MESSAGE_BYTES / LIVE ))
whole=$(( (LOADED_KIB - STATELESS_LOADED) * 1024 / LIVE ))
echo "structures per transaction (map, record, 3 timer nodes): $structures bytes"
echo "message bytes per live transaction (INVITE copy, last response; 512-byte blocks): $messages bytes"
echo "whole difference at $LIVE live transactions, store of $STORE_MB MB included: $whole bytes per transaction"
