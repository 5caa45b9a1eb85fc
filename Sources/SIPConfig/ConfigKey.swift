import SIPBytes
import SIPCapture
import SIPParsing
import SIPProxyCore
import SIPSecurity
import SIPSettings
import Yams

/// One configuration key: its dotted path, type, default, whether SIGHUP applies it, help text and where it lives
/// in ``EdgeConfiguration``. ``ConfigKey/keys`` is the only list of keys: the YAML reader's allowed keys,
/// ``EdgeConfiguration/defaults()``, `sip-edge config --defaults`, the SIPEDGE_* variables and the reload report
/// all come from it, so a key cannot be documented, defaulted or diffed in one place and forgotten in another.
public struct ConfigKey: Sendable {
    /// `rate_limit.window_ms`: at most one dot (`section.key`).
    public let path: String
    /// SIGHUP applies a change to running workers; otherwise it takes a restart.
    public let appliesOnReload: Bool
    public let help: String
    /// The SIPEDGE_* variable that overrides it (between the file and the flags), if any.
    public let environment: String?
    /// The allowed values in words.
    public let allowed: String
    let read: @Sendable (_ node: Node, _ path: String, _ configuration: inout EdgeConfiguration) throws -> Void
    let setDefault: @Sendable (inout EdgeConfiguration) -> Void
    let differs: @Sendable (EdgeConfiguration, EdgeConfiguration) -> Bool
    let environmentNode: @Sendable (String) -> Node
    /// The key's value in a configuration, as YAML text.
    public let yamlValue: @Sendable (EdgeConfiguration) -> String
    /// Another valid value than the one in the configuration, as YAML text (for tests that walk the table).
    public let alternativeYAMLValue: @Sendable (EdgeConfiguration) -> String

    init<Value>(_ path: String, _ field: WritableKeyPath<EdgeConfiguration, Value> & Sendable, _ type: ConfigValue<Value>,
                _ defaultValue: Value, reload: Bool, _ help: String, environment: String? = nil) {
        self.path = path
        appliesOnReload = reload
        self.help = help
        self.environment = environment
        allowed = type.allowed
        read = { node, path, configuration in
            configuration[keyPath: field] = try type.decode(node, path, configuration[keyPath: field])
        }
        setDefault = { $0[keyPath: field] = defaultValue }
        differs = { $0[keyPath: field] != $1[keyPath: field] }
        environmentNode = type.environment
        yamlValue = { type.encode($0[keyPath: field]) }
        alternativeYAMLValue = { type.encode(type.alternative($0[keyPath: field])) }
    }

    static func restart<Value>(_ path: String, _ field: WritableKeyPath<EdgeConfiguration, Value> & Sendable,
                               _ type: ConfigValue<Value>, _ defaultValue: Value, _ help: String,
                               environment: String? = nil) -> ConfigKey {
        ConfigKey(path, field, type, defaultValue, reload: false, help, environment: environment)
    }

    static func reload<Value>(_ path: String, _ field: WritableKeyPath<EdgeConfiguration, Value> & Sendable,
                              _ type: ConfigValue<Value>, _ defaultValue: Value, _ help: String) -> ConfigKey {
        ConfigKey(path, field, type, defaultValue, reload: true, help)
    }

    /// `(section, key)`; the section is nil at the top level.
    var section: String? { path.firstIndex(of: ".").map { String(path[..<$0]) } }
    var leaf: String { path.firstIndex(of: ".").map { String(path[path.index(after: $0)...]) } ?? path }

    /// Every key, grouped by section in the order `config --defaults` prints them. SIGHUP applies what the
    /// workers' policy holds (security rules, rate limits) and a new TLS server context; the rest is bound into
    /// sockets, threads or start-up state.
    public static let keys: [ConfigKey] = [
        .restart("listen", \.listen, .endpoint("udp"), address("127.0.0.1", 5060), "public side: UDP, and TCP when on",
                 environment: "SIPEDGE_LISTEN"),
        .restart("upstreams", \.upstreams, .list(.upstream, minimum: 1), [UpstreamTarget(address("127.0.0.1", 5070))],
                 "the SIP core: Call-ID hashing over those up; a name without a port is looked up by SRV",
                 environment: "SIPEDGE_UPSTREAMS"),
        .restart("upstream_transport", \.upstreamTransport, .choice(TransportKind.allCases.filter { !$0.isWebSocket }.map { ("\($0)", $0) }), .udp,
                 "tcp/tls: a pool of persistent connections per worker"),
        .restart("advertise", \.advertise, .optional(.endpoint(nil)), nil, "for Via/Record-Route; null = listen address",
                 environment: "SIPEDGE_ADVERTISE"),
        .restart("advertise_internal", \.advertiseInternal, .optional(.host), nil,
                 "the core reaches us at (Path, core-facing Record-Route), when not advertise; plus each worker's port"),
        .restart("workers", \.workers, .integer(0...256), 0, "worker threads; 0 = one per core",
                 environment: "SIPEDGE_WORKERS"),
        .restart("data_path", \.dataPath, .choice(DataPath.allCases.map { ($0.rawValue, $0) }), .auto,
                 "how workers move datagrams", environment: "SIPEDGE_DATA_PATH"),
        .restart("record_route", \.recordRoute, .bool, true, "Record-Route dialog-creating requests"),

        .restart("proxy.mode", \.transactions.mode, .choice(ProxyMode.allCases.map { ($0.rawValue, $0) }), .stateless,
                 "stateless, or transaction: absorb retransmissions, retransmit toward the core, fail over"),
        .restart("proxy.proxy_require_passthrough", \.proxyRequirePassthrough, .list(.text()), [],
                 "Proxy-Require option tags passed on for the core; any other gets 420 Bad Extension"),
        .restart("transactions.max_per_worker", \.transactions.maxPerWorker, .integer(16...4_194_304), 65_536,
                 "live transactions per worker; when full, new INVITEs get 503"),
        .restart("transactions.failover_timeout_ms", \.transactions.failoverTimeoutMilliseconds,
                 .integer(100...64_000), 2_000, "no response from an upstream this long: try the next"),
        .restart("transactions.max_attempts", \.transactions.maxAttempts, .integer(1...16), 3,
                 "upstreams tried per request"),
        .restart("transactions.t1_ms", \.transactions.t1Milliseconds, .integer(50...10_000), 500,
                 "RFC 3261 T1: first retransmission interval toward the core"),
        .restart("transactions.t2_ms", \.transactions.t2Milliseconds, .integer(100...60_000), 4_000,
                 "RFC 3261 T2: longest retransmission interval"),
        .restart("transactions.t4_ms", \.transactions.t4Milliseconds, .integer(100...60_000), 5_000,
                 "RFC 3261 T4: how long a message may live in the network"),
        .restart("transactions.timer_c_ms", \.transactions.timerCMilliseconds, .integer(1_000...3_600_000), 180_000,
                 "an INVITE ringing this long without an answer is cancelled (Timer C)"),
        .restart("transactions.message_memory_mb", \.transactions.messageMemoryMegabytes, .integer(1...4_096), 64,
                 "per worker, for the messages transactions resend"),

        .restart("upstream_health.interval_ms", \.upstreamHealth.intervalMilliseconds, .integer(100...60_000), 1_000,
                 "OPTIONS to every upstream this often; one unanswered by the next has failed"),
        .restart("upstream_health.fall", \.upstreamHealth.fall, .integer(1...100), 3,
                 "failed probes in a row that take an upstream out of rotation"),
        .restart("upstream_health.rise", \.upstreamHealth.rise, .integer(1...100), 2,
                 "answered probes in a row that bring it back"),
        .restart("upstream_health.retry_after_s", \.upstreamHealth.retryAfterSeconds, .integer(1...3_600), 5,
                 "Retry-After of the 503 requests get while no upstream is up"),

        .restart("upstream_dns.servers", \.upstreamDNS.servers, .list(.endpoint(nil)), [],
                 "DNS servers for upstream names, HOST:PORT; empty = /etc/resolv.conf"),
        .restart("upstream_dns.min_ttl_s", \.upstreamDNS.minimumTTLSeconds, .integer(1...3_600), 5,
                 "names are looked up again when their TTL runs out, but no sooner..."),
        .restart("upstream_dns.max_ttl_s", \.upstreamDNS.maximumTTLSeconds, .integer(1...86_400), 3_600, "...and no later"),
        .restart("upstream_dns.drain_s", \.upstreamDNS.drainSeconds, .integer(0...86_400), 3_600,
                 "an address gone from DNS takes no new calls, but in-dialog requests, this long"),
        .restart("upstream_dns.give_up_s", \.upstreamDNS.giveUpSeconds, .integer(1...86_400), 30,
                 "exit when no upstream has resolved for this long"),

        .restart("upstream_pool.connections", \.upstreamPool.connectionsPerUpstream, .integer(1...64), 2,
                 "per upstream per worker, with tcp/tls"),
        .restart("upstream_pool.reconnect_min_ms", \.upstreamPool.reconnectMinMilliseconds, .integer(10...600_000), 200,
                 "first retry after a failed connection, doubled per failure..."),
        .restart("upstream_pool.reconnect_max_ms", \.upstreamPool.reconnectMaxMilliseconds, .integer(10...3_600_000),
                 10_000, "...up to this"),

        .restart("upstream_tls.ca", \.upstreamTLS.caPath, .optional(.absolutePath), nil,
                 "PEM CAs the core's certificate must chain to; required for tls"),
        .restart("upstream_tls.server_name", \.upstreamPool.tlsServerName, .optional(.text()), nil,
                 "name the core's certificate must carry; null = its IP address"),
        .restart("upstream_tls.certificate", \.upstreamTLS.certificatePath, .optional(.absolutePath), nil,
                 "client certificate, when the core asks for one"),
        .restart("upstream_tls.private_key", \.upstreamTLS.privateKeyPath, .optional(.absolutePath), nil,
                 "its private key"),

        .restart("limits.max_message_size", \.limits.scan.maxMessageSize, .integer(512...1_048_576), 65_536,
                 "bytes, body included"),
        .restart("limits.max_line_length", \.limits.scan.maxLineLength, .integer(128...65_536), 8_192,
                 "bytes, start line or one header with its folds"),
        .restart("limits.max_headers", \.limits.scan.maxHeaders, .integer(8...1_024), 128, "header lines per message"),
        .restart("limits.max_via_hops", \.limits.maxViaHops, .integer(1...1_024), 70, "Via hops the parser accepts"),
        .restart("limits.max_uri_length", \.limits.maxURILength, .integer(64...65_536), 2_048, "bytes of any URI"),

        .restart("uring.entries", \.uring.entries, .integer(8...32_768), 256, "submission queue entries per worker"),
        .restart("uring.receive_buffers", \.uring.receiveBuffers, .integer(8...32_768, powerOfTwo: true), 128,
                 "provided receive buffers per worker"),
        .restart("uring.send_slots", \.uring.sendSlots, .integer(8...65_536), 256, "sends in flight per worker"),
        .restart("uring.send_slot_size", \.uring.sendSlotSize, .integer(512...65_536), 8_192,
                 "bytes; larger datagrams use sendto"),
        .restart("uring.batch_wait_us", \.uring.batchWaitMicroseconds, .integer(0...100_000), 300,
                 "under dense traffic, wait up to this long to batch completions; 0 = off"),

        .reload("security.max_via_hops", \.security.maxViaHops, .integer(1...70), 20, "Via hops from the public side"),
        .reload("security.max_uri_length", \.security.maxURILength, .integer(32...8_192), 512, "bytes of Request-URI"),
        .reload("security.allowed_domains", \.security.allowedDomains, .list(.text()), [],
                "Request-URI hosts served (and subdomains); empty = any"),
        .reload("security.blocked_user_agents", \.security.blockedUserAgents, .list(.text()),
                ["friendly-scanner", "sipvicious", "sipcli", "sip-scan", "sundayddr", "iwar", "vaxsipuseragent", "pplsip",
                 "smap"], "User-Agent substrings refused (any case)"),
        .reload("security.actions", \.ruleActionsButRateLimit, .ruleActions, [.blockedUserAgent: .drop, .banned: .drop],
                "per rule: reject (answer 4xx/5xx) | drop (silently) | allow (rule off); unlisted rules reject"),
        .reload("security.no_space_before_colon", \.security.noSpaceBeforeColon, .list(.headerName),
                SecurityConfiguration.framingAndRoutingHeaders,
                "headers refused with a space before the colon (header_smuggling); others accept it (HCOLON)"),
        .reload("security.no_space_before_colon_on_streams", \.security.noSpaceBeforeColonOnStreams, .list(.headerName),
                [.contentType], "refused that way on TCP/TLS only, in addition"),
        .restart("security.audit_log", \.audit, .audit, .standardError, "JSON lines, one per refusal"),
        .restart("security.audit_lines_per_second", \.auditLinesPerSecond, .integer(0...100_000), 50,
                 "per worker; the rest are counted as suppressed"),

        .reload("rate_limit.enabled", \.rateLimit.enabled, .bool, true, "per source IP (IPv6 per /64), per worker"),
        .reload("rate_limit.window_ms", \.rateLimit.windowMilliseconds, .integer(100...3_600_000), 1_000,
                "sliding window length"),
        .reload("rate_limit.requests_per_window", \.rateLimit.requestsPerWindow, .integer(1...10_000_000), 200,
                "requests other than REGISTER"),
        .reload("rate_limit.registers_per_window", \.rateLimit.registersPerWindow, .integer(1...10_000_000), 20,
                "REGISTERs"),
        .reload("rate_limit.table_size", \.rateLimit.tableSize, .integer(64...16_777_216), 65_536,
                "sources tracked per worker; least recently seen evicted"),
        .reload("rate_limit.ban_multiplier", \.rateLimit.banMultiplier, .integer(1...1_000), 3,
                "rate >= this many times the limit: banned"),
        .reload("rate_limit.ban_ms", \.rateLimit.banMilliseconds, .integer(0...86_400_000), 5_000,
                "first ban of a source; 0 = never banned"),
        .reload("rate_limit.ban_memory_s", \.rateLimit.banMemoryMilliseconds, .integer(0...604_800, unit: 1_000),
                600_000, "banned again within this long after a ban ends: twice as long"),
        .reload("rate_limit.ban_max_ms", \.rateLimit.banMaxMilliseconds, .integer(0...86_400_000), 300_000,
                "longest ban the doubling reaches"),
        .reload("rate_limit.retry_after_s", \.rateLimit.retryAfterSeconds, .integer(0...86_400), 5, "Retry-After on 503"),
        .reload("rate_limit.allow_list", \.rateLimit.allowList, .list(.prefix), [],
                "CIDR prefixes never limited or filtered (upstreams always are)"),
        .reload("rate_limit.action", \.rateLimitAction, .choice([("reject", .reject), ("drop", .drop)]), .reject,
                "over the limit: 503 with Retry-After, or silence"),

        .restart("tcp.enabled", \.streams.tcpEnabled, .bool, true, "SIP over TCP on the listen address, RFC 3261 §18.3 framing"),
        .restart("tcp.max_connections", \.streams.maxConnections, .integer(1...65_535), 4_096,
                 "per worker; more are closed when accepted"),
        .restart("tcp.idle_timeout_s", \.streams.idleTimeoutMilliseconds, .integer(1...86_400, unit: 1_000), 300_000,
                 "silent this long (no message, no RFC 5626 ping): closed"),
        .restart("tcp.message_timeout_ms", \.streams.messageTimeoutMilliseconds, .integer(100...600_000), 10_000,
                 "a message begun on a connection (TCP, TLS, WebSocket) must be complete within this, or the connection is closed"),
        .restart("tcp.max_send_queue", \.streams.maxSendQueueBytes, .integer(4_096...67_108_864), 262_144,
                 "bytes queued toward one connection; a slower reader is cut"),

        .restart("tls.listen", \.tlsListen, .optional(.endpoint("tls")), nil, "e.g. tls:0.0.0.0:5061; null = TLS off"),
        .restart("tls.handshake_timeout_ms", \.streams.tlsHandshakeTimeoutMilliseconds, .integer(100...600_000),
                 10_000, "a client's TLS handshake must finish within this after accept"),
        .reload("tls.certificate", \.tls.certificatePath, .optional(.absolutePath), nil,
                "PEM chain, leaf first; required with listen; SIGHUP re-reads it, open sessions keep theirs"),
        .reload("tls.private_key", \.tls.privateKeyPath, .optional(.absolutePath), nil, "PEM private key of the leaf"),
        .reload("tls.ca", \.tls.caPath, .optional(.absolutePath), nil, "PEM CAs client certificates are verified against"),
        .reload("tls.require_client_certificate", \.tls.requirePeerCertificate, .bool, false,
                "mutual TLS: refuse clients without a certificate from ca"),
        .reload("tls.min_version", \.tls.minimumVersion, .choice([("1.2", .tls12), ("1.3", .tls13)]), .tls12,
                "oldest TLS version accepted"),
        .reload("tls.ciphers", \.tls.ciphers, .optional(.text()), nil,
                "OpenSSL list for TLS 1.2; null = ECDHE + AES-GCM/ChaCha20 only"),

        .restart("websocket.listen", \.webSocket.listeners, .list(.webSocketListener), [],
                 "SIP over WebSocket for browsers (RFC 7118): ws:HOST:PORT and/or wss:HOST:PORT (tls.* certificate)"),
        .restart("websocket.paths", \.webSocket.handshake.paths, .list(.text(minimumLength: 1), minimum: 1), ["/"],
                 "request paths the upgrade is accepted on (query ignored); others get 404"),
        .restart("websocket.allowed_origins", \.webSocket.handshake.allowedOrigins, .list(.text(minimumLength: 1)), [],
                 "Origin values let in: exact (https://app.example.com) or *.example.com; empty = any; others get 403"),
        .restart("websocket.handshake_timeout_ms", \.webSocket.handshakeTimeoutMilliseconds, .integer(100...60_000),
                 5_000, "the upgrade request must be complete within this long (slowloris), or the connection is cut"),
        .restart("websocket.max_handshake_bytes", \.webSocket.handshake.maxHeaderBytes, .integer(1_024...65_536),
                 8_192, "upgrade request head larger than this: 431 and closed"),
        .restart("websocket.ping_interval_s", \.webSocket.pingIntervalMilliseconds, .integer(1...3_600, unit: 1_000),
                 30_000, "silent half this long: pinged; no answer within it: closed (a dead peer is cut within twice it)"),

        .restart("flow.key", \.flowKey, .optional(.text(minimumLength: 16)), nil,
                 "secret signing flow tokens; null = random per start, so UDP registrations need renewing"),
        .restart("flow.key_file", \.flowKeyFile, .optional(.absolutePath), nil,
                 "file holding flow.key (a Kubernetes Secret, say); read at start, wins over flow.key"),
        .restart("flow.path", \.addPath, .bool, true,
                 "add Path with a flow token to REGISTERs, RFC 3327, so calls come down the client's flow"),

        .restart("admin.listen", \.admin, .optional(.endpoint(nil), none: "off"), address("127.0.0.1", 9090),
                 "/metrics, /health/live, /health/ready", environment: "SIPEDGE_ADMIN_LISTEN"),
        .restart("admin.max_connections", \.adminMaxConnections, .integer(1...65_535), 256,
                 "concurrent admin HTTP connections; when full the oldest unfinished one is closed"),
        .restart("admin.request_timeout_ms", \.adminRequestTimeoutMilliseconds, .integer(100...60_000), 2_000,
                 "whole-request deadline per admin connection"),

        .restart("handover.drain_s", \.handover.drainSeconds, .integer(0...86_400), 30,
                 "after SIGUSR2 handed the sockets to a new process: serve open connections this long at most, then exit"),
        .restart("handover.ready_timeout_s", \.handover.readyTimeoutSeconds, .integer(1...600), 30,
                 "a new process started by SIGUSR2 that is not serving within this is stopped; this one serves on"),

        .restart("capture.hep", \.capture.target, .optional(.captureTarget, none: "off"), nil,
                 "HEP v3 copies of every message to a collector (Homer, sngrep): udp:HOST:PORT or tcp:HOST:PORT"),
        .restart("capture.node_id", \.capture.nodeID, .integer(0...Int(UInt32.max)), 2_001,
                 "the capture agent id chunk"),
        .restart("capture.password", \.capture.password, .optional(.text()), nil, "the auth key chunk; null = none"),
        .restart("capture.sample_percent", \.capture.samplePercent, .integer(0...100), 100,
                 "dialogs captured, chosen by Call-ID hash so a call is captured whole or not at all"),
        .restart("capture.include", \.capture.include,
                 .list(.choice(CaptureSettings.Direction.allCases.map { ($0.rawValue, $0) })), [.received, .sent],
                 "received, sent, or both"),
        .restart("capture.flush_ms", \.capture.flushMilliseconds, .integer(1...1_000), 20,
                 "longest a capture waits to leave with others (32 KiB queued leave at once)"),
        .restart("capture.queue_kb", \.capture.queueBytes, .integer(16...1_048_576, unit: 1_024), 1_048_576,
                 "per worker, captures waiting for the collector; the oldest are dropped beyond"),

        .restart("shared_state.redis", \.sharedState.redis, .optional(.redisTarget, none: "off"), nil,
                 "redis://HOST:PORT/DB that edges share bans through; off = each edge on its own",
                 environment: "SIPEDGE_REDIS"),
        .restart("shared_state.password_file", \.redisPasswordFile, .optional(.absolutePath), nil,
                 "file holding the Redis AUTH password (or SIPEDGE_REDIS_PASSWORD); null = none"),
        .restart("shared_state.key_prefix", \.sharedState.keyPrefix, .text(minimumLength: 1), "sipedge:",
                 "prefix of every key and the channel: one per deployment sharing a Redis"),

        .restart("shared_state.rate_interval_ms", \.sharedState.rateIntervalMilliseconds, .integer(100...60_000), 1_000,
                 "each edge adds its busiest sources' counts per interval; over the limit together: limited on all"),
        .restart("shared_state.busiest_sources", \.sharedState.busiestSources, .integer(1...10_000), 100,
                 "sources each worker reports per interval (the top K by requests)"),

        .restart("log.level", \.logLevel,
                 .choice(["trace", "debug", "info", "notice", "warning", "error", "critical"].map { ($0, $0) }), "info",
                 "SIPEDGE_LOG overrides it"),
    ]

    /// The names allowed under `section` (nil: the top level).
    static func names(in section: String?) -> Set<String> {
        Set(keys.compactMap { key in
            section == nil ? (key.section ?? key.path) : key.section == section ? key.leaf : nil
        })
    }

    private static func address(_ host: String, _ port: UInt16) -> EndpointAddress {
        guard let address = EndpointAddress.parse(host, port: port) else { preconditionFailure("bad default \(host)") }
        return address
    }
}

/// What a reload would change: every changed key by its dotted path, split by whether SIGHUP applies it.
public struct ConfigurationChanges: Sendable, Equatable {
    public var applied: [String] = []
    public var needRestart: [String] = []

    public init(applied: [String] = [], needRestart: [String] = []) {
        self.applied = applied
        self.needRestart = needRestart
    }
}

extension EdgeConfiguration {
    /// The keys whose values differ in `next`, in table order.
    public func changes(to next: EdgeConfiguration) -> ConfigurationChanges {
        var changes = ConfigurationChanges()
        for key in ConfigKey.keys where key.differs(self, next) {
            if key.appliesOnReload { changes.applied.append(key.path) } else { changes.needRestart.append(key.path) }
        }
        return changes
    }

    /// This configuration as YAML, every key with its help, allowed values and SIGHUP or environment note as a
    /// comment: `sip-edge config --defaults` prints the defaults this way, and the text parses back to them.
    public func yaml() -> String {
        var lines = ["# sip-edge configuration. Every key is optional; these are the defaults.",
                     "# [SIGHUP]: applied by a reload (systemctl reload); every other key needs a restart."]
        var section: String?
        for key in ConfigKey.keys {
            if let keySection = key.section, keySection != section { lines.append("\(keySection):") }
            section = key.section
            var line = (section == nil ? "" : "  ") + "\(key.leaf): \(key.yamlValue(self))"
            line += String(repeating: " ", count: max(1, 36 - line.count))
            line += "# \(key.help) (\(key.allowed))"
            if key.appliesOnReload { line += " [SIGHUP]" }
            if let variable = key.environment { line += " [\(variable)]" }
            lines.append(line)
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `security.actions` without `rate_limited`, which `rate_limit.action` owns: each change has one key.
    var ruleActionsButRateLimit: [SecurityRule: RuleAction] {
        get { security.actions.filter { $0.key != .rateLimited } }
        set {
            let rateLimited = security.actions[.rateLimited]
            security.actions = newValue
            if newValue[.rateLimited] == nil { security.actions[.rateLimited] = rateLimited }
        }
    }

    /// What the rate limiter does over the limit (`security.actions.rate_limited`, under its own key).
    var rateLimitAction: RuleAction {
        get { security.action(for: .rateLimited) }
        set { security.actions[.rateLimited] = newValue }
    }
}
