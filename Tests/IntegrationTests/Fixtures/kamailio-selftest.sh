#!/usr/bin/env bash
# Validates the Kamailio fixtures without sip-edge (see KAMAILIO.md): a real Kamailio registrar, a SIPp callee
# that registers as alice and a SIPp caller that calls her, on 127.0.0.1 only, every process bounded by
# `timeout` and stopped by its PID.
#
#   Tests/IntegrationTests/Fixtures/kamailio-selftest.sh [udp|tcp|udp-path|tcp-path|all]   (default: all)
#
# udp, tcp:           callee registers directly; the INVITE, ACK and BYE reach it through Kamailio.
# udp-path, tcp-path: the REGISTER carries Path: <sip:FLOWTOKEN@127.0.0.1:PX;lr;ob> (what the edge will add);
#                     a SIPp UAS on PX (path-target-uas.xml) stands in for the edge and must get the INVITE with
#                     that Path as its Route header; the callee only registers.
# Ports: SELFTEST_PORT (default 17060) for Kamailio, the next three for callee, caller and Path target.
# Logs stay in a temporary directory, printed at the end.
set -u
fixtures=$(cd "$(dirname "$0")" && pwd)
base=${SELFTEST_PORT:-17060}
kp=$base; callee_port=$((base + 1)); caller_port=$((base + 2)); path_port=$((base + 3))
work=$(mktemp -d /tmp/sipedge-kamailio-selftest.XXXXXX)
passed=0; failed=0

run_case() { # $1 = udp|tcp|udp-path|tcp-path
    local name=$1 transport=u1 path_uri="" dir="$work/$1" rc=0
    case $name in tcp*) transport=t1 ;; esac
    if [[ $name == *-path ]]; then
        path_uri="<sip:FLOWTOKEN@127.0.0.1:$path_port;lr;ob>"
        [ $transport = t1 ] && path_uri="<sip:FLOWTOKEN@127.0.0.1:$path_port;transport=tcp;lr;ob>"
    fi
    mkdir -p "$dir/run"
    timeout 60 kamailio -f "$fixtures/kamailio-registrar.cfg" -DD -E -m 64 -M 8 -n 1 \
        -Y "$dir/run" -P "$dir/run/kamailio.pid" -l "udp:127.0.0.1:$kp" -l "tcp:127.0.0.1:$kp" \
        > "$dir/kamailio.log" 2>&1 &
    local kamailio_pid=$!
    local i
    for i in $(seq 50); do grep -q "main(): processes" "$dir/kamailio.log" 2>/dev/null && break; sleep 0.1; done
    sleep 0.3

    local target_pid="" extra=()
    if [ -n "$path_uri" ]; then
        timeout 30 sipp -sf "$fixtures/path-target-uas.xml" -i 127.0.0.1 -p "$path_port" -t $transport -m 1 \
            -timeout 20s -timeout_error -nostdin -trace_err -error_file "$dir/target-errors.log" \
            -trace_msg -message_file "$dir/target-messages.log" -trace_logs -log_file "$dir/target.log" \
            > "$dir/target.out" 2>&1 &
        target_pid=$!
        extra=(-set extra_header "Path: $path_uri" -set register_only yes)
    fi
    timeout 30 sipp "127.0.0.1:$kp" -sf "$fixtures/register-then-answer.xml" -i 127.0.0.1 -p "$callee_port" \
        -t $transport -m 1 -timeout 20s -timeout_error -cid_str 'alice-%u@sipedge.test' -nostdin \
        -trace_err -error_file "$dir/callee-errors.log" -trace_msg -message_file "$dir/callee-messages.log" \
        "${extra[@]}" > "$dir/callee.out" 2>&1 &
    local callee_pid=$!
    sleep 1
    timeout 30 sipp "127.0.0.1:$kp" -sf "$fixtures/call-registered.xml" -i 127.0.0.1 -p "$caller_port" \
        -t $transport -m 1 -timeout 15s -timeout_error -cid_str 'alice-%u@sipedge.test' -nostdin \
        -trace_err -error_file "$dir/caller-errors.log" -trace_msg -message_file "$dir/caller-messages.log" \
        > "$dir/caller.out" 2>&1 || rc=1
    wait $callee_pid || rc=1
    if [ -n "$target_pid" ]; then
        wait "$target_pid" || rc=1
        # Kamailio must have sent the INVITE to the Path address, with the Path as its Route header.
        local proto=udp; [ $transport = t1 ] && proto=tcp
        grep -q "SEND INVITE .* to $proto:127.0.0.1:$path_port\$" "$dir/kamailio.log" || rc=1
        grep -qxF "Route: $path_uri" <(tr -d '\r' < "$dir/target-messages.log") || rc=1
    fi
    kill "$kamailio_pid" 2>/dev/null; wait "$kamailio_pid" 2>/dev/null
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1)); echo "ok   $name"
    else
        failed=$((failed + 1)); echo "FAIL $name (logs in $dir)"
    fi
}

cases=("${1:-all}")
[ "${cases[0]}" = all ] && cases=(udp tcp udp-path tcp-path)
for c in "${cases[@]}"; do run_case "$c"; done
echo "logs: $work"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
