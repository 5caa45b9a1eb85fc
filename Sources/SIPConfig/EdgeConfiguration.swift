public import SIPBytes
import SIPParsing
public import SIPProxyCore
public import SIPSettings
public import SIPSecurity
import Yams
import Foundation

/// A configuration problem, named by its key path (`limits.max_headers`), found before any socket is bound.
public struct ConfigError: Error, Equatable, CustomStringConvertible {
    public let keyPath: String
    public let reason: String

    public init(_ keyPath: String, _ reason: String) {
        self.keyPath = keyPath
        self.reason = reason
    }

    public var description: String { keyPath.isEmpty ? reason : "\(keyPath): \(reason)" }
}

/// Everything sip-edge can be configured with, typed and validated. Built from the embedded defaults, then a
/// YAML file, then command-line flags, each overriding the one before.
public struct EdgeConfiguration: Sendable, Equatable {
    /// Public UDP address.
    public var listen: EndpointAddress
    /// The SIP core(s).
    public var upstreams: [EndpointAddress]
    /// Address written into Via and Record-Route; nil means `listen`.
    public var advertise: EndpointAddress?
    /// Worker threads; 0 means one per core.
    public var workers: Int
    public var dataPath: DataPath
    public var recordRoute: Bool
    public var limits: ParseLimits
    public var uring: URingOptions
    public var security: SecurityConfiguration
    public var rateLimit: RateLimitConfiguration
    public var audit: AuditDestination
    public var auditLinesPerSecond: Int
    /// The admin HTTP server (`/metrics`, `/health/live`, `/health/ready`); nil turns it off.
    public var admin: EndpointAddress?
    /// How often the upstreams are sent OPTIONS for readiness, in milliseconds.
    public var probeIntervalMilliseconds: Int
    /// Log level name (trace, debug, info, notice, warning, error, critical); SIPEDGE_LOG overrides it.
    public var logLevel: String
    public var streams = StreamLimits()
    /// Signs flow tokens; nil: a random key per start.
    public var flowKey: String?
    /// Add Path (RFC 3327) to REGISTERs.
    public var addPath = true
    /// The host the core reaches us at, when it differs from `advertise` (a private interface); nil: the same.
    public var advertiseInternal: EndpointAddress?
    /// How the upstreams are reached: UDP, or pooled TCP/TLS connections.
    public var upstreamTransport: TransportKind = .udp
    public var upstreamPool = UpstreamPoolSettings()
    /// TLS toward the upstreams (client side): trust anchors, optional client certificate.
    public var upstreamTLS = TLSConfiguration(requirePeerCertificate: true)
    /// SIP over TLS: where to listen (nil = off) and the server's certificate, key and client verification.
    public var tlsListen: EndpointAddress?
    public var tls = TLSConfiguration()

    /// The configuration sip-edge runs with when given no file: shipped as YAML so `sip-edge config --defaults`
    /// prints a complete, commented starting point.
    public static let embeddedDefaultYAML = """
        # sip-edge configuration. Every key is optional; these are the defaults.
        listen: udp:127.0.0.1:5060          # public side: udp:HOST:PORT (numeric host)
        upstreams:                          # the SIP core; several = Call-ID hashing across them
          - sip:127.0.0.1:5070
        upstream_transport: udp             # udp | tcp | tls; tcp/tls: a pool of persistent connections per worker
        upstream_pool:
          connections: 2                    # per upstream per worker (tcp/tls)
          reconnect_min_ms: 200             # first retry after a failed connection, doubled per failure...
          reconnect_max_ms: 10000           # ...up to this
        upstream_tls:
          ca: null                          # PEM CAs the core's certificate must chain to (required for tls)
          server_name: null                 # name the core's certificate must carry; null = its IP address
          certificate: null                 # client certificate, when the core asks for one
          private_key: null
        advertise: null                     # HOST:PORT for Via/Record-Route; null = listen address
        advertise_internal: null            # HOST the core reaches us at (Path, core-facing Record-Route), when
                                            # not the advertised one; each worker's own upstream port is added
        workers: 0                          # worker threads; 0 = one per core
        data_path: auto                     # auto | io-uring | recvmmsg
        record_route: true                  # Record-Route dialog-creating requests
        limits:
          max_message_size: 65536           # bytes, body included
          max_line_length: 8192             # bytes, start line or one header with its folds
          max_headers: 128
          max_via_hops: 70
          max_uri_length: 2048              # bytes
        uring:
          entries: 256                      # submission queue entries per worker
          receive_buffers: 128              # provided receive buffers per worker (power of two)
          send_slots: 256                   # sends in flight per worker
          send_slot_size: 8192              # bytes; larger datagrams use sendto
          batch_wait_us: 0                  # under load, wait up to this long to batch completions (0 = off)
        security:
          max_via_hops: 20
          max_uri_length: 512               # bytes of Request-URI
          allowed_domains: []               # Request-URI hosts served (and subdomains); empty = any
          blocked_user_agents: [friendly-scanner, sipvicious, sipcli, sip-scan, sundayddr, iwar, vaxsipuseragent, pplsip, smap]
          actions:                          # per rule: reject (answer 4xx/5xx) | drop (silently) | allow (rule off)
            blocked_user_agent: drop
            banned: drop
          audit_log: stderr                 # stderr | off | /path/to/file (JSON lines)
          audit_lines_per_second: 50        # per worker; the rest are counted as suppressed
        rate_limit:                         # per source IP (IPv6 per /64), per worker
          enabled: true
          window_ms: 1000
          requests_per_window: 200
          registers_per_window: 20
          table_size: 65536                 # sources tracked per worker; least recently seen evicted
          ban_multiplier: 3                 # rate >= 3x the limit: banned
          ban_ms: 60000
          retry_after_s: 5                  # Retry-After on 503
          allow_list: []                    # CIDR prefixes never limited or filtered (upstreams always are)
        tcp:
          enabled: true                     # SIP over TCP on the listen address (RFC 3261 §18.3 framing)
          max_connections: 4096             # per worker; more are closed when accepted
          idle_timeout_s: 300               # silent this long (no message, no RFC 5626 ping): closed
          max_send_queue: 262144            # bytes queued toward one connection; a slower reader is cut
        tls:
          listen: null                      # tls:HOST:PORT, e.g. tls:0.0.0.0:5061; null = TLS off
          certificate: null                 # PEM certificate chain, leaf first (required with listen)
          private_key: null                 # PEM private key of the leaf
          ca: null                          # PEM CAs that client certificates are verified against
          require_client_certificate: false # mutual TLS: refuse clients without a certificate from ca
          min_version: "1.2"                # 1.2 | 1.3
          ciphers: null                     # OpenSSL list for TLS 1.2; null = ECDHE + AES-GCM/ChaCha20 only
                                            # (SIGHUP re-reads certificate and key; open sessions keep theirs)
        flow:
          key: null                         # secret (16+ characters) signing flow tokens; null = random per start,
                                            # so UDP registrations made before a restart get 403 until renewed
          path: true                        # add Path with a flow token to REGISTERs (RFC 3327); the registrar
                                            # then routes calls down the client's own flow (RFC 5626)
        admin:
          listen: 127.0.0.1:9090            # /metrics, /health/live, /health/ready; "off" to disable
          probe_interval_ms: 5000           # OPTIONS to the upstreams; ready when one answers
        log:
          level: info                       # trace | debug | info | notice | warning | error | critical
        """

    /// The embedded defaults.
    public static func defaults() -> EdgeConfiguration {
        // The embedded YAML is part of the binary and covered by tests: failing here is a build defect.
        do {
            return try parse(yaml: embeddedDefaultYAML, over: nil)
        } catch {
            preconditionFailure("embedded default configuration is invalid: \(error)")
        }
    }

    /// Reads `yaml` over `base` (the defaults when nil). Unknown keys are errors: a typo must not silently
    /// leave a limit at its default.
    public static func parse(yaml: String, over base: EdgeConfiguration? = nil) throws -> EdgeConfiguration {
        let node: Node?
        do {
            node = try Yams.compose(yaml: yaml)
        } catch {
            throw ConfigError("", "not valid YAML: \(error)")
        }
        var configuration = base ?? EdgeConfiguration.bare
        guard let node else { return configuration }
        let root = try Mapping(node, path: "")
        try root.allowOnly(["listen", "upstreams", "advertise", "workers", "data_path", "record_route", "limits", "uring",
                            "security", "rate_limit", "admin", "log", "tcp", "flow", "tls", "upstream_transport", "upstream_pool",
                            "upstream_tls", "advertise_internal"])
        if let value = try root.string("listen") {
            configuration.listen = try Self.endpoint(value, scheme: "udp", path: "listen")
        }
        if let list = try root.strings("upstreams") {
            guard !list.isEmpty else { throw ConfigError("upstreams", "at least one upstream is needed") }
            configuration.upstreams = try list.enumerated().map {
                try Self.endpoint($0.element, scheme: "sip", path: "upstreams[\($0.offset)]")
            }
        }
        if root.isNull("advertise") {
            configuration.advertise = nil
        } else if let value = try root.string("advertise") {
            configuration.advertise = try Self.endpoint(value, scheme: nil, path: "advertise")
        }
        if let value = try root.integer("workers", in: 0...256) { configuration.workers = value }
        if let value = try root.string("data_path") {
            guard let path = DataPath(rawValue: value) else {
                throw ConfigError("data_path", "must be one of auto, io-uring, recvmmsg")
            }
            configuration.dataPath = path
        }
        if let value = try root.bool("record_route") { configuration.recordRoute = value }
        if let limits = try root.mapping("limits") {
            try limits.allowOnly(["max_message_size", "max_line_length", "max_headers", "max_via_hops", "max_uri_length"])
            if let v = try limits.integer("max_message_size", in: 512...1_048_576) {
                configuration.limits.scan.maxMessageSize = UInt32(v)
            }
            if let v = try limits.integer("max_line_length", in: 128...65_536) {
                configuration.limits.scan.maxLineLength = UInt32(v)
            }
            if let v = try limits.integer("max_headers", in: 8...1_024) { configuration.limits.scan.maxHeaders = UInt32(v) }
            if let v = try limits.integer("max_via_hops", in: 1...1_024) { configuration.limits.maxViaHops = v }
            if let v = try limits.integer("max_uri_length", in: 64...65_536) { configuration.limits.maxURILength = v }
        }
        if let uring = try root.mapping("uring") {
            try uring.allowOnly(["entries", "receive_buffers", "send_slots", "send_slot_size", "batch_wait_us"])
            if let v = try uring.integer("entries", in: 8...32_768) { configuration.uring.entries = UInt32(v) }
            if let v = try uring.integer("receive_buffers", in: 8...32_768) {
                guard v & (v - 1) == 0 else { throw ConfigError("uring.receive_buffers", "must be a power of two") }
                configuration.uring.receiveBuffers = UInt32(v)
            }
            if let v = try uring.integer("send_slots", in: 8...65_536) { configuration.uring.sendSlots = UInt32(v) }
            if let v = try uring.integer("send_slot_size", in: 512...65_536) { configuration.uring.sendSlotSize = UInt32(v) }
            if let v = try uring.integer("batch_wait_us", in: 0...100_000) {
                configuration.uring.batchWaitMicroseconds = UInt32(v)
            }
        }
        if let security = try root.mapping("security") {
            try security.allowOnly(["max_via_hops", "max_uri_length", "allowed_domains", "blocked_user_agents",
                                    "actions", "audit_log", "audit_lines_per_second"])
            if let v = try security.integer("max_via_hops", in: 1...70) { configuration.security.maxViaHops = v }
            if let v = try security.integer("max_uri_length", in: 32...8_192) { configuration.security.maxURILength = v }
            if let list = try security.strings("allowed_domains") { configuration.security.allowedDomains = list }
            if let list = try security.strings("blocked_user_agents") { configuration.security.blockedUserAgents = list }
            if let actions = try security.mapping("actions") {
                for (name, _) in actions.pairs {
                    guard let rule = SecurityRule(rawValue: name) else {
                        throw ConfigError(actions.keyPath(name), "unknown rule (known: \(SecurityRule.allCases.map(\.rawValue).joined(separator: ", ")))")
                    }
                    guard let text = try actions.string(name), let action = RuleAction(rawValue: text) else {
                        throw ConfigError(actions.keyPath(name), "must be reject, drop or allow")
                    }
                    configuration.security.actions[rule] = action
                }
            }
            if let text = try security.string("audit_log") {
                configuration.audit = text == "stderr" ? .standardError : text == "off" ? .off : .file(text)
                if case .file(let path) = configuration.audit, !path.hasPrefix("/") {
                    throw ConfigError("security.audit_log", "must be stderr, off or an absolute path")
                }
            }
            if let v = try security.integer("audit_lines_per_second", in: 0...100_000) { configuration.auditLinesPerSecond = v }
        }
        if let limits = try root.mapping("rate_limit") {
            try limits.allowOnly(["enabled", "window_ms", "requests_per_window", "registers_per_window", "table_size",
                                  "ban_multiplier", "ban_ms", "retry_after_s", "allow_list", "action"])
            if let v = try limits.bool("enabled") { configuration.rateLimit.enabled = v }
            if let v = try limits.integer("window_ms", in: 100...3_600_000) { configuration.rateLimit.windowMilliseconds = UInt64(v) }
            if let v = try limits.integer("requests_per_window", in: 1...10_000_000) {
                configuration.rateLimit.requestsPerWindow = UInt32(v)
            }
            if let v = try limits.integer("registers_per_window", in: 1...10_000_000) {
                configuration.rateLimit.registersPerWindow = UInt32(v)
            }
            if let v = try limits.integer("table_size", in: 64...16_777_216) { configuration.rateLimit.tableSize = v }
            if let v = try limits.integer("ban_multiplier", in: 1...1_000) { configuration.rateLimit.banMultiplier = UInt32(v) }
            if let v = try limits.integer("ban_ms", in: 0...86_400_000) { configuration.rateLimit.banMilliseconds = UInt64(v) }
            if let v = try limits.integer("retry_after_s", in: 0...86_400) { configuration.rateLimit.retryAfterSeconds = UInt32(v) }
            if let list = try limits.strings("allow_list") {
                configuration.rateLimit.allowList = try list.enumerated().map { index, text in
                    guard let prefix = AddressPrefix(text) else {
                        throw ConfigError("rate_limit.allow_list[\(index)]", "expected an address or CIDR prefix, got \(text)")
                    }
                    return prefix
                }
            }
            if let text = try limits.string("action") {
                guard let action = RuleAction(rawValue: text), action != .allow else {
                    throw ConfigError("rate_limit.action", "must be reject or drop")
                }
                configuration.security.actions[.rateLimited] = action
            }
        }
        if let tcp = try root.mapping("tcp") {
            try tcp.allowOnly(["enabled", "max_connections", "idle_timeout_s", "max_send_queue"])
            if let v = try tcp.bool("enabled") { configuration.streams.tcpEnabled = v }
            if let v = try tcp.integer("max_connections", in: 1...65_535) { configuration.streams.maxConnections = v }
            if let v = try tcp.integer("idle_timeout_s", in: 1...86_400) {
                configuration.streams.idleTimeoutMilliseconds = UInt64(v) * 1_000
            }
            if let v = try tcp.integer("max_send_queue", in: 4_096...67_108_864) { configuration.streams.maxSendQueueBytes = v }
        }
        if root.isNull("advertise_internal") {
            configuration.advertiseInternal = nil
        } else if let text = try root.string("advertise_internal") {
            guard let address = EndpointAddress.parse(text, port: 0) else {
                throw ConfigError("advertise_internal", "must be a numeric IPv4 or IPv6 address, got \(text)")
            }
            configuration.advertiseInternal = address
        }
        if let text = try root.string("upstream_transport") {
            guard let transport = TransportKind.allCases.first(where: { "\($0)" == text }) else {
                throw ConfigError("upstream_transport", "must be udp, tcp or tls")
            }
            configuration.upstreamTransport = transport
        }
        if let pool = try root.mapping("upstream_pool") {
            try pool.allowOnly(["connections", "reconnect_min_ms", "reconnect_max_ms"])
            if let v = try pool.integer("connections", in: 1...64) { configuration.upstreamPool.connectionsPerUpstream = v }
            if let v = try pool.integer("reconnect_min_ms", in: 10...600_000) {
                configuration.upstreamPool.reconnectMinMilliseconds = UInt64(v)
            }
            if let v = try pool.integer("reconnect_max_ms", in: 10...3_600_000) {
                configuration.upstreamPool.reconnectMaxMilliseconds = UInt64(v)
            }
        }
        if let upstreamTLS = try root.mapping("upstream_tls") {
            try upstreamTLS.allowOnly(["ca", "server_name", "certificate", "private_key"])
            try upstreamTLS.readTLSFiles(into: &configuration.upstreamTLS)
            if let text = try upstreamTLS.string("server_name") { configuration.upstreamPool.tlsServerName = text }
        }
        if let tls = try root.mapping("tls") {
            try tls.allowOnly(["listen", "certificate", "private_key", "ca", "require_client_certificate",
                               "min_version", "ciphers"])
            if tls.isNull("listen") {
                configuration.tlsListen = nil
            } else if let text = try tls.string("listen") {
                configuration.tlsListen = try Self.endpoint(text, scheme: "tls", path: "tls.listen")
            }
            try tls.readTLSFiles(into: &configuration.tls)
            if let v = try tls.bool("require_client_certificate") { configuration.tls.requirePeerCertificate = v }
            if let text = try tls.string("min_version") {
                switch text {
                case "1.2": configuration.tls.minimumVersion = .tls12
                case "1.3": configuration.tls.minimumVersion = .tls13
                default: throw ConfigError("tls.min_version", "must be 1.2 or 1.3")
                }
            }
            if let text = try tls.string("ciphers") { configuration.tls.ciphers = text }
        }
        if let flow = try root.mapping("flow") {
            try flow.allowOnly(["key", "path"])
            if flow.isNull("key") {
                configuration.flowKey = nil
            } else if let key = try flow.string("key") {
                guard key.utf8.count >= 16 else { throw ConfigError("flow.key", "must be at least 16 characters") }
                configuration.flowKey = key
            }
            if let v = try flow.bool("path") { configuration.addPath = v }
        }
        if let admin = try root.mapping("admin") {
            try admin.allowOnly(["listen", "probe_interval_ms"])
            if let text = try admin.string("listen") {
                configuration.admin = text == "off" ? nil : try Self.endpoint(text, scheme: nil, path: "admin.listen")
            }
            if let v = try admin.integer("probe_interval_ms", in: 100...3_600_000) {
                configuration.probeIntervalMilliseconds = v
            }
        }
        if let log = try root.mapping("log") {
            try log.allowOnly(["level"])
            if let level = try log.string("level") {
                let known = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
                guard known.contains(level) else { throw ConfigError("log.level", "must be one of \(known.joined(separator: ", "))") }
                configuration.logLevel = level
            }
        }
        try configuration.validate()
        return configuration
    }

    /// Applies SIPEDGE_* environment variables (between the file and the command line): SIPEDGE_LISTEN,
    /// SIPEDGE_UPSTREAMS (comma-separated), SIPEDGE_ADVERTISE, SIPEDGE_WORKERS, SIPEDGE_DATA_PATH,
    /// SIPEDGE_ADMIN_LISTEN. Errors name the variable.
    public mutating func applyEnvironment(_ environment: [String: String]) throws {
        if let value = environment["SIPEDGE_LISTEN"] { listen = try Self.endpoint(value, scheme: "udp", path: "SIPEDGE_LISTEN") }
        if let value = environment["SIPEDGE_UPSTREAMS"] {
            upstreams = try value.split(separator: ",").map {
                try Self.endpoint($0.trimmingCharacters(in: .whitespaces), scheme: "sip", path: "SIPEDGE_UPSTREAMS")
            }
        }
        if let value = environment["SIPEDGE_ADVERTISE"] {
            advertise = try Self.endpoint(value, scheme: nil, path: "SIPEDGE_ADVERTISE")
        }
        if let value = environment["SIPEDGE_WORKERS"] {
            guard let count = Int(value), (0...256).contains(count) else {
                throw ConfigError("SIPEDGE_WORKERS", "must be 0...256, got \(value)")
            }
            workers = count
        }
        if let value = environment["SIPEDGE_DATA_PATH"] {
            guard let path = DataPath(rawValue: value) else {
                throw ConfigError("SIPEDGE_DATA_PATH", "must be one of auto, io-uring, recvmmsg")
            }
            dataPath = path
        }
        if let value = environment["SIPEDGE_ADMIN_LISTEN"] {
            admin = value == "off" ? nil : try Self.endpoint(value, scheme: nil, path: "SIPEDGE_ADMIN_LISTEN")
        }
        try validate()
    }

    /// Cross-field rules.
    public func validate() throws {
        guard !upstreams.isEmpty else { throw ConfigError("upstreams", "at least one upstream is needed") }
        if upstreams.contains(listen) || upstreams.contains(advertise ?? listen) {
            throw ConfigError("upstreams", "an upstream may not be sip-edge itself (a forwarding loop)")
        }
        if tlsListen != nil {
            guard tls.certificatePath != nil else { throw ConfigError("tls.certificate", "required when tls.listen is set") }
            guard tls.privateKeyPath != nil else { throw ConfigError("tls.private_key", "required when tls.listen is set") }
        }
        if upstreamPool.reconnectMinMilliseconds > upstreamPool.reconnectMaxMilliseconds {
            throw ConfigError("upstream_pool.reconnect_min_ms", "may not exceed upstream_pool.reconnect_max_ms")
        }
        if upstreamTransport == .tls && upstreamTLS.caPath == nil {
            throw ConfigError("upstream_tls.ca", "required when upstream_transport is tls (the core's certificate is verified)")
        }
        if tls.requirePeerCertificate && tls.caPath == nil {
            throw ConfigError("tls.ca", "required when tls.require_client_certificate is true")
        }
        guard limits.scan.maxLineLength <= limits.scan.maxMessageSize else {
            throw ConfigError("limits.max_line_length", "may not exceed limits.max_message_size")
        }
    }

    public func resolvedWorkers(cores: Int) -> Int { workers == 0 ? max(cores, 1) : workers }

    /// Parses `scheme:HOST:PORT` (IPv6 host in brackets). Names are refused: the data path never resolves.
    public static func endpoint(_ text: String, scheme: String?, path: String) throws -> EndpointAddress {
        var rest = Substring(text)
        if let scheme {
            guard rest.hasPrefix(scheme + ":") else { throw ConfigError(path, "expected \(scheme):HOST:PORT, got \(text)") }
            rest = rest.dropFirst(scheme.count + 1)
        }
        guard let colon = rest.lastIndex(of: ":"), let port = UInt16(rest[rest.index(after: colon)...]), port > 0 else {
            throw ConfigError(path, "expected HOST:PORT with a port 1-65535, got \(text)")
        }
        guard let address = EndpointAddress.parse(String(rest[..<colon]), port: port) else {
            throw ConfigError(path, "host must be a numeric IPv4 or IPv6 address, got \(text)")
        }
        return address
    }

    /// Only used as the base for parsing the embedded defaults, which set every field.
    private static let bare = EdgeConfiguration(
        listen: EndpointAddress.parse("127.0.0.1", port: 5060)!, upstreams: [], advertise: nil, workers: 0,
        dataPath: .auto, recordRoute: true, limits: ParseLimits(), uring: URingOptions(),
        security: SecurityConfiguration(), rateLimit: RateLimitConfiguration(), audit: .standardError,
        auditLinesPerSecond: 50, admin: nil, probeIntervalMilliseconds: 5_000, logLevel: "info")
}

/// A YAML mapping with typed, path-named accessors.
struct Mapping {
    let path: String
    let pairs: [(key: String, value: Node)]

    init(_ node: Node, path: String) throws {
        guard let mapping = node.mapping else { throw ConfigError(path, "expected a mapping") }
        self.path = path
        var pairs: [(String, Node)] = []
        for (key, value) in mapping {
            guard let name = key.string else { throw ConfigError(path, "keys must be strings") }
            pairs.append((name, value))
        }
        self.pairs = pairs
    }

    func keyPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func allowOnly(_ keys: Set<String>) throws {
        for pair in pairs where !keys.contains(pair.key) {
            throw ConfigError(keyPath(pair.key), "unknown key (known: \(keys.sorted().joined(separator: ", ")))")
        }
    }

    func node(_ key: String) -> Node? { pairs.first { $0.key == key }?.value }

    func isNull(_ key: String) -> Bool {
        guard let scalar = node(key)?.scalar else { return false }
        return scalar.string == "null" || scalar.string == "~" || scalar.string.isEmpty
    }

    func string(_ key: String) throws -> String? {
        guard let node = node(key), !isNull(key) else { return nil }
        guard let scalar = node.scalar else { throw ConfigError(keyPath(key), "expected a string") }
        return scalar.string
    }

    func strings(_ key: String) throws -> [String]? {
        guard let node = node(key) else { return nil }
        if let scalar = node.scalar { return [scalar.string] }
        guard let sequence = node.sequence else { throw ConfigError(keyPath(key), "expected a list") }
        return try sequence.enumerated().map { index, item in
            guard let scalar = item.scalar else { throw ConfigError("\(keyPath(key))[\(index)]", "expected a string") }
            return scalar.string
        }
    }

    func integer(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let text = try string(key) else { return nil }
        guard let value = Int(text) else { throw ConfigError(keyPath(key), "expected an integer, got \(text)") }
        guard range.contains(value) else {
            throw ConfigError(keyPath(key), "must be \(range.lowerBound)...\(range.upperBound), got \(value)")
        }
        return value
    }

    func bool(_ key: String) throws -> Bool? {
        guard let text = try string(key) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw ConfigError(keyPath(key), "expected true or false, got \(text)")
        }
    }

    /// `certificate`, `private_key` and `ca`: absolute paths of PEM files, into a TLS configuration.
    func readTLSFiles(into tls: inout TLSConfiguration) throws {
        for (key, path) in [("certificate", \TLSConfiguration.certificatePath),
                            ("private_key", \TLSConfiguration.privateKeyPath), ("ca", \TLSConfiguration.caPath)] {
            guard let text = try string(key) else { continue }
            guard text.hasPrefix("/") else { throw ConfigError(keyPath(key), "must be an absolute path") }
            tls[keyPath: path] = text
        }
    }

    func mapping(_ key: String) throws -> Mapping? {
        guard let node = node(key), !isNull(key) else { return nil }
        return try Mapping(node, path: keyPath(key))
    }
}
