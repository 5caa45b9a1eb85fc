# Sourced by the perf scripts that run sip-edge over UDP between SIPp or their own clients and a core: its
# configuration for a load test (one worker, every validator rule on, the rate limiter consulted but with per-source
# limits no single load generator reaches, no admin listener, no audit log, no TCP), and the wait for its port between
# runs.
udp_edge_config() {  # FILE PROXY_PORT CORE_PORT EXTRA: EXTRA (YAML) is added
    cat > "$1" <<YAML
listen: udp:127.0.0.1:$2
upstreams: [sip:127.0.0.1:$3]
workers: 1
admin:
  listen: "off"
rate_limit:
  requests_per_window: 10000000
  registers_per_window: 10000000
security:
  audit_log: "off"
tcp:
  enabled: false
$4
YAML
}

# The kernel tears an io_uring down after the process is gone, so a stopped sip-edge's socket may stay bound a moment.
await_free_udp_port() {  # PORT: returns once nothing is bound to it (at most 5 s)
    for _ in $(seq 1 50); do [ -z "$(ss -Huan "sport = :$1")" ] && return 0; sleep 0.1; done
}
