public import SIPBytes
public import SIPCapture
public import SIPParsing
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

/// Everything sip-edge can be configured with, typed and validated. Built from the defaults of ``ConfigKey/keys``,
/// then a YAML file, then SIPEDGE_* variables, then command-line flags, each overriding the one before.
public struct EdgeConfiguration: Sendable, Equatable {
    /// Public UDP address.
    public var listen: EndpointAddress
    /// The SIP core(s): numeric addresses or DNS names, with weights and priorities.
    public var upstreams: [UpstreamTarget]
    public var upstreamHealth = UpstreamHealthSettings()
    public var upstreamDNS = UpstreamDNSSettings()
    /// The zero-downtime restart (SIGUSR2).
    public var handover = HandoverSettings()
    /// Proxy-Require option tags the edge passes on for the core (RFC 3261 §16.3 step 5).
    public var proxyRequirePassthrough: [String] = []
    /// `proxy.mode` and the transaction layer's settings.
    public var transactions = TransactionSettings()
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
    /// Log level name (trace, debug, info, notice, warning, error, critical); SIPEDGE_LOG overrides it.
    public var logLevel: String
    public var streams = StreamLimits()
    /// Signs flow tokens; nil: a random key per start.
    public var flowKey: String?
    /// Add Path (RFC 3327) to REGISTERs.
    public var addPath: Bool
    /// The host the core reaches us at, when it differs from `advertise` (a private interface); nil: the same.
    public var advertiseInternal: EndpointAddress?
    /// How the upstreams are reached: UDP, or pooled TCP/TLS connections.
    public var upstreamTransport: TransportKind
    public var upstreamPool = UpstreamPoolSettings()
    /// `capture.*`: HEP v3 to a collector.
    public var capture = CaptureSettings()
    /// `shared_state.*`: bans shared with other edges through Redis (the password is read at start).
    public var sharedState = SharedStateSettings()
    public var redisPasswordFile: String?
    /// `flow.key_file`: the flow key kept out of the configuration file.
    public var flowKeyFile: String?
    /// TLS toward the upstreams (client side): trust anchors, optional client certificate.
    public var upstreamTLS = TLSConfiguration(requirePeerCertificate: true)
    /// SIP over TLS: where to listen (nil = off) and the server's certificate, key and client verification.
    public var tlsListen: EndpointAddress?
    public var tls = TLSConfiguration()
    /// SIP over WebSocket (RFC 7118): listeners (none = off), handshake rules, pings.
    public var webSocket = WebSocketSettings()
    /// A listener needs the `tls.*` certificate: SIP over TLS or secure WebSocket.
    public var servesTLS: Bool { tlsListen != nil || webSocket.secure != nil }

    /// Concurrent admin HTTP connections; when full, the oldest unfinished one is closed.
    public var adminMaxConnections: Int
    /// Whole-request deadline per admin connection, in milliseconds: a slow client cannot hold a slot.
    public var adminRequestTimeoutMilliseconds: Int

    /// The defaults of every key in ``ConfigKey/keys``: what sip-edge runs with when given no file.
    public static func defaults() -> EdgeConfiguration {
        var configuration = unset
        for key in ConfigKey.keys { key.setDefault(&configuration) }
        return configuration
    }

    /// `sip-edge config --defaults`: the defaults as commented YAML, a starting point for a file.
    public static var defaultsYAML: String { defaults().yaml() }

    /// Reads `yaml` over `base` (the defaults when nil). Unknown keys are errors: a typo must not silently
    /// leave a limit at its default.
    public static func parse(yaml: String, over base: EdgeConfiguration? = nil) throws -> EdgeConfiguration {
        let node: Node?
        do {
            node = try Yams.compose(yaml: yaml)
        } catch {
            throw ConfigError("", "not valid YAML: \(error)")
        }
        var configuration = base ?? defaults()
        guard let node else { return configuration }
        let root = try Mapping(node, path: "")
        try root.allowOnly(ConfigKey.names(in: nil))
        var sections: [String: Mapping?] = [:]
        for key in ConfigKey.keys {
            var mapping: Mapping? = root
            if let section = key.section {
                if sections[section] == nil {
                    let found = try root.mapping(section)
                    try found?.allowOnly(ConfigKey.names(in: section))
                    sections[section] = .some(found)
                }
                mapping = sections[section] ?? nil
            }
            if let value = mapping?.node(key.leaf) { try key.read(value, key.path, &configuration) }
        }
        try configuration.validate()
        return configuration
    }

    /// Applies the SIPEDGE_* environment variables of ``ConfigKey/keys`` (between the file and the command
    /// line; SIPEDGE_UPSTREAMS is comma-separated). Errors name the variable.
    public mutating func applyEnvironment(_ environment: [String: String]) throws {
        for key in ConfigKey.keys {
            guard let variable = key.environment, let text = environment[variable] else { continue }
            try key.read(key.environmentNode(text), variable, &self)
        }
        try validate()
    }

    /// Cross-field rules.
    public func validate() throws {
        guard !upstreams.isEmpty else { throw ConfigError("upstreams", "at least one upstream is needed") }
        let numeric = upstreams.compactMap(\.address)
        if numeric.contains(listen) || numeric.contains(advertise ?? listen) {
            throw ConfigError("upstreams", "an upstream may not be sip-edge itself (a forwarding loop)")
        }
        if tlsListen != nil {
            guard tls.certificatePath != nil else { throw ConfigError("tls.certificate", "required when tls.listen is set") }
            guard tls.privateKeyPath != nil else { throw ConfigError("tls.private_key", "required when tls.listen is set") }
        }
        if webSocket.secure != nil {
            guard tls.certificatePath != nil else { throw ConfigError("tls.certificate", "required when websocket.listen has wss") }
            guard tls.privateKeyPath != nil else { throw ConfigError("tls.private_key", "required when websocket.listen has wss") }
        }
        for (index, listener) in webSocket.listeners.enumerated() {
            let taken = [listen] + (tlsListen.map { [$0] } ?? []) + webSocket.listeners.prefix(index).map(\.address)
            if taken.contains(where: { $0.port == listener.address.port && $0.family == listener.address.family
                && ($0 == listener.address || $0.isWildcard || listener.address.isWildcard) }) {
                throw ConfigError("websocket.listen[\(index)]", "\(listener) shares a TCP port with another listener")
            }
        }
        if upstreams.count > UpstreamSet.maximumMembers {
            throw ConfigError("upstreams", "at most \(UpstreamSet.maximumMembers) entries")
        }
        if upstreamDNS.minimumTTLSeconds > upstreamDNS.maximumTTLSeconds {
            throw ConfigError("upstream_dns.min_ttl_s", "may not exceed upstream_dns.max_ttl_s")
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
        // RFC 3261 §25.1 option-tag = token.
        let tokenCharacters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
        for (index, tag) in proxyRequirePassthrough.enumerated() where tag.isEmpty || !tag.allSatisfy(tokenCharacters.contains) {
            throw ConfigError("proxy.proxy_require_passthrough[\(index)]", "an option tag is a token (letters, digits, -.!%*_+`'~)")
        }
        if rateLimit.banMilliseconds > rateLimit.banMaxMilliseconds {
            throw ConfigError("rate_limit.ban_ms", "may not exceed rate_limit.ban_max_ms (the first ban is the shortest)")
        }
        if transactions.t1Milliseconds > transactions.t2Milliseconds {
            throw ConfigError("transactions.t1_ms", "may not exceed transactions.t2_ms")
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

    /// `redis://HOST:PORT[/DB]`, numeric host, database 0...15. Errors name `path`.
    public static func redisTarget(_ text: String, path: String) throws -> RedisTarget {
        guard text.hasPrefix("redis://") else { throw ConfigError(path, "expected redis://HOST:PORT/DB, got \(text)") }
        var rest = text.dropFirst(8)
        var database = 0
        if let slash = rest.lastIndex(of: "/") {
            guard let number = Int(rest[rest.index(after: slash)...]), (0...15).contains(number) else {
                throw ConfigError(path, "database must be 0...15, got \(text)")
            }
            database = number
            rest = rest[..<slash]
        }
        return RedisTarget(address: try endpoint(String(rest), scheme: nil, path: path), database: database)
    }

    /// `sip:HOST[:PORT]` of an upstream: a numeric host needs its port; a DNS name without one is looked up by
    /// SRV (RFC 3263). Errors name `path`.
    public static func upstreamTarget(_ text: String, path: String) throws -> UpstreamTarget {
        guard text.hasPrefix("sip:") else { throw ConfigError(path, "expected sip:HOST[:PORT], got \(text)") }
        let rest = text.dropFirst(4)
        var host = String(rest)
        var port: UInt16?
        if rest.hasPrefix("[") {
            // [IPv6]:PORT
            guard let close = rest.firstIndex(of: "]") else { throw ConfigError(path, "unclosed [ in \(text)") }
            host = String(rest[...close])
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let value = UInt16(after.dropFirst()), value > 0 else {
                    throw ConfigError(path, "expected a port 1-65535 after ], got \(text)")
                }
                port = value
            }
        } else if let colon = rest.lastIndex(of: ":"), rest.firstIndex(of: ":") == colon {
            guard let value = UInt16(rest[rest.index(after: colon)...]), value > 0 else {
                throw ConfigError(path, "expected HOST:PORT with a port 1-65535, got \(text)")
            }
            host = String(rest[..<colon])
            port = value
        }
        if let address = EndpointAddress.parse(host, port: port ?? 0) {
            guard port != nil else { throw ConfigError(path, "a numeric upstream needs a port, got \(text)") }
            return UpstreamTarget(address)
        }
        guard isHostName(host) else {
            throw ConfigError(path, "host must be a numeric address or a DNS name (letters, digits, '-', '.'), got \(text)")
        }
        return UpstreamTarget(.name(host.lowercased(), port: port))
    }

    /// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, 1-63 bytes each, 253 in all,
    /// not all-numeric at the top (that would be a mistyped IPv4 address).
    static func isHostName(_ text: String) -> Bool {
        let name = text.hasSuffix(".") ? String(text.dropLast()) : text
        guard !name.isEmpty, name.utf8.count <= 253 else { return false }
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        for label in labels {
            guard (1...63).contains(label.utf8.count), label.first != "-", label.last != "-",
                label.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else { return false }
        }
        return !(labels.last!.allSatisfy(\.isNumber))
    }

    /// Placeholders, each replaced by its key's default in ``defaults()``.
    private static let unset = EdgeConfiguration(
        listen: EndpointAddress.parse("0.0.0.0", port: 0)!, upstreams: [], advertise: nil, workers: 0, dataPath: .auto,
        recordRoute: false, limits: ParseLimits(), uring: URingOptions(), security: SecurityConfiguration(),
        rateLimit: RateLimitConfiguration(), audit: .off, auditLinesPerSecond: 0, admin: nil,
        logLevel: "", addPath: false, upstreamTransport: .udp, adminMaxConnections: 0, adminRequestTimeoutMilliseconds: 0)
}

/// DNS for upstream names (RFC 3263 subset): where to ask, how often, how long a vanished address drains.
public struct UpstreamDNSSettings: Sendable, Equatable {
    /// Empty: the system's resolv.conf.
    public var servers: [EndpointAddress] = []
    public var minimumTTLSeconds = 5
    public var maximumTTLSeconds = 3_600
    public var drainSeconds = 3_600
    /// With no upstream resolvable for this long, the edge exits (it can serve nothing).
    public var giveUpSeconds = 30

    public init() {}
}

/// The zero-downtime restart: how long the old process serves its open connections, how long it waits for the new.
public struct HandoverSettings: Sendable, Equatable {
    public var drainSeconds = 30
    public var readyTimeoutSeconds = 30

    public init() {}
}

/// A YAML mapping whose errors name their key path.
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

    func mapping(_ key: String) throws -> Mapping? {
        guard let node = node(key) else { return nil }
        if let scalar = node.scalar, isNull(scalar) { return nil }
        return try Mapping(node, path: keyPath(key))
    }
}
