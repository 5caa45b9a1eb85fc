public import SIPBytes

/// The transport a client reached us over.
public enum TransportKind: UInt8, Sendable, CaseIterable {
    case udp = 0
    case tcp = 1
    case tls = 2
    /// SIP over WebSocket (RFC 7118), plain and over TLS: a browser's connection, clients only.
    case ws = 3
    case wss = 4

    /// The Via transport token (RFC 3261 §20.42, RFC 7118 §5.2).
    public var viaName: StaticString {
        switch self {
        case .udp: "UDP"
        case .tcp: "TCP"
        case .tls: "TLS"
        case .ws: "WS"
        case .wss: "WSS"
        }
    }

    /// The `transport=` URI parameter value, nil for UDP (the default, left out).
    var uriParameter: StaticString? {
        switch self {
        case .udp: nil
        case .tcp: "tcp"
        case .tls: "tls"
        case .ws: "ws"
        case .wss: "wss"
        }
    }

    /// The transport a Via's protocol token names (any case), nil for one the edge does not speak (SCTP, ...).
    /// The cases spell ``viaName`` lower-cased: a switch on one word, as every response is checked with it
    /// (`allCases` would build an array each time).
    init?(viaToken span: ByteSpan, in bytes: PacketBytes) {
        guard span.count >= 2, span.count <= 3, bytes.contains(span) else { return nil }
        switch ASCII.lowercased(word: bytes.word(at: span.start, length: span.count)) {
        case ASCII.word("udp"): self = .udp
        case ASCII.word("tcp"): self = .tcp
        case ASCII.word("tls"): self = .tls
        case ASCII.word("ws"): self = .ws
        case ASCII.word("wss"): self = .wss
        default: return nil
        }
    }

    public var isStream: Bool { self != .udp }
    /// Carried in WebSocket frames (RFC 6455) after an HTTP upgrade.
    public var isWebSocket: Bool { self == .ws || self == .wss }
    /// Encrypted with TLS (the TLS listener's certificate serves both SIP over TLS and WSS).
    public var isEncrypted: Bool { self == .tls || self == .wss }
}

/// One client flow (RFC 5626 §3): how a message reached us, and so how to reach that client again. A UDP flow is
/// its address (any worker can send from the shared port); a stream flow is one connection of one worker.
public struct Flow: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var transport: TransportKind
    /// The worker that owns the connection (stream flows only mean anything there).
    public var worker: UInt8
    /// The worker's connection key (slot and generation); 0 for UDP.
    public var connection: UInt32
    public var address: EndpointAddress

    public init(transport: TransportKind, worker: UInt8 = 0, connection: UInt32 = 0, address: EndpointAddress) {
        self.transport = transport
        self.worker = worker
        self.connection = connection
        self.address = address
    }

    /// A UDP flow to `address`.
    public static func udp(_ address: EndpointAddress) -> Flow { Flow(transport: .udp, address: address) }

    public var description: String {
        transport.isStream ? "\(transport)#\(worker).\(connection)@\(address)" : "udp@\(address)"
    }
}

/// Stateless, signed flow tokens (RFC 5626 §5.2 style): the flow is encoded in the token itself and authenticated
/// with HMAC-SHA256 (truncated to 80 bits) under a key from the configuration, so no table is needed to find a
/// flow again and nobody without the key can make one. Encoded as base64url, which is legal in a URI parameter.
///
/// Layout before encoding: version, transport, worker, connection (4, big-endian), family, address (4 or 16),
/// port (2), then the MAC over all of that.
///
/// Holds a keyed OpenSSL MAC context and scratch buffers, reused from token to token (no allocation per token):
/// one per worker, not shared between threads.
///
/// A token is a function of its flow and the key alone, so the codec keeps the tokens it made or verified last, by
/// flow (``cacheSlots`` of them, direct-mapped): a client's next dialog-forming request, or a request that carries
/// a token this codec made, costs no MAC (two SHA-256 blocks of ~1,000 instructions each, a tenth of a forwarded
/// message). A cached token is reused only for the identical flow, and a token is taken as verified only when it is
/// byte for byte the one in its flow's slot (compared in constant time); anything else is signed or verified in
/// full, as without the cache.
public final class FlowTokenCodec {
    static let version: UInt8 = 1
    static let macLength = 10
    /// Longest token text: IPv6 (36 raw bytes) in base64url.
    static let longestToken = 48
    /// Slots of the token cache (a power of two). 256 slots of ~90 bytes each: ~22 KiB a worker.
    public static let cacheSlots = 256
    private let authenticator: MessageAuthenticator
    private var raw: [UInt8] = []
    private var mac = [UInt8](repeating: 0, count: FlowTokenCodec.macLength)
    private var cachedFlows = [Flow?](repeating: nil, count: FlowTokenCodec.cacheSlots)
    private var cachedTokens = ByteSlots(count: FlowTokenCodec.cacheSlots, slotCapacity: FlowTokenCodec.longestToken)

    /// `key`: at least 16 bytes of secret. Tokens made with another key do not verify.
    public init(key: [UInt8]) {
        precondition(key.count >= 16, "flow token key shorter than 16 bytes")
        authenticator = MessageAuthenticator(key: key)
        raw.reserveCapacity(48)
    }

    /// Appends the token for `flow` to `out`.
    public func append<Output: ByteOutput & ~Copyable>(_ flow: Flow, to out: inout Output) {
        let slot = Self.cacheSlot(of: flow)
        if cachedFlows[slot] != flow {
            sign(flow)
            cachedTokens.store(base64URLOf: raw, in: slot)
            cachedFlows[slot] = flow
        }
        cachedTokens.append(slot: slot, to: &out)
    }

    /// The flow in a token, or nil when it is malformed or its MAC does not verify.
    public func decode(_ bytes: PacketBytes, _ span: ByteSpan) -> Flow? {
        guard span.count <= 64, Base64URL.decode(bytes, span, into: &raw), raw.count > Self.macLength + 9,
            let flow = Self.unverifiedFlow(raw)
        else { return nil }
        let slot = Self.cacheSlot(of: flow)
        // The slot's text is compared first, whatever flow it holds: whether a flow is cached shows in no timing.
        if cachedTokens.holds(bytes, span, in: slot), cachedFlows[slot] == flow { return flow }
        let body = raw.count - Self.macLength
        guard authenticator.compute(raw, length: body, into: &mac) else { return nil }
        // Constant-time comparison: the time taken must not reveal how many MAC bytes matched.
        var difference: UInt8 = 0
        for i in 0..<Self.macLength { difference |= mac[i] ^ raw[body + i] }
        guard difference == 0 else { return nil }
        // Base64URL.decode takes canonical text only, so re-encoding `raw` gives back exactly `span`'s bytes.
        cachedTokens.store(base64URLOf: raw, in: slot)
        cachedFlows[slot] = flow
        return flow
    }

    /// `raw` := the token's body for `flow`, then its MAC.
    private func sign(_ flow: Flow) {
        raw.removeAll(keepingCapacity: true)
        raw.append(Self.version)
        raw.append(flow.transport.rawValue)
        raw.append(flow.worker)
        appendBigEndian(UInt64(flow.connection), bytes: 4, to: &raw)
        raw.append(flow.address.family.rawValue)
        if flow.address.family == .ipv4 {
            appendBigEndian(UInt64(flow.address.ipv4), bytes: 4, to: &raw)
        } else {
            appendBigEndian(flow.address.high, bytes: 8, to: &raw)
            appendBigEndian(flow.address.low, bytes: 8, to: &raw)
        }
        appendBigEndian(UInt64(flow.address.port), bytes: 2, to: &raw)
        guard authenticator.compute(raw, length: raw.count, into: &mac) else {
            preconditionFailure("HMAC-SHA256 failed")
        }
        raw += mac
    }

    /// The flow a decoded token's body names, before its MAC is checked; nil when the layout is not one this
    /// codec makes.
    private static func unverifiedFlow(_ raw: [UInt8]) -> Flow? {
        let body = raw.count - macLength
        guard raw[0] == version, let transport = TransportKind(rawValue: raw[1]) else { return nil }
        let connection = UInt32(readBigEndian(raw, at: 3, bytes: 4))
        let address: EndpointAddress
        switch raw[7] {
        case EndpointAddress.Family.ipv4.rawValue where body == 14:
            address = EndpointAddress(family: .ipv4, high: readBigEndian(raw, at: 8, bytes: 4) << 32, low: 0,
                                      port: UInt16(readBigEndian(raw, at: 12, bytes: 2)))
        case EndpointAddress.Family.ipv6.rawValue where body == 26:
            address = EndpointAddress(family: .ipv6, high: readBigEndian(raw, at: 8, bytes: 8),
                                      low: readBigEndian(raw, at: 16, bytes: 8),
                                      port: UInt16(readBigEndian(raw, at: 24, bytes: 2)))
        default:
            return nil
        }
        return Flow(transport: transport, worker: raw[2], connection: connection, address: address)
    }

    /// The cache slot of `flow`: its fields mixed by one multiply (Fibonacci hashing), the top bits taken.
    /// Flows an attacker makes collide at worst, which costs a MAC each, as without the cache.
    private static func cacheSlot(of flow: Flow) -> Int {
        let fields = UInt64(flow.transport.rawValue) | UInt64(flow.worker) << 8 | UInt64(flow.address.port) << 16
            | UInt64(flow.connection) << 32
        let mixed = (flow.address.high ^ (flow.address.low << 29 | flow.address.low >> 35) ^ fields) &* 0x9E37_79B9_7F4A_7C15
        return Int(truncatingIfNeeded: mixed >> UInt64(64 - cacheSlots.trailingZeroBitCount))
    }
}

private func appendBigEndian(_ value: UInt64, bytes: Int, to out: inout [UInt8]) {
    out.append(count: bytes) { index in UInt8(truncatingIfNeeded: value >> (8 * (bytes - 1 - index))) }
}

private func readBigEndian(_ raw: [UInt8], at offset: Int, bytes: Int) -> UInt64 {
    var value: UInt64 = 0
    for index in 0..<bytes { value = value << 8 | UInt64(raw[offset + index]) }
    return value
}

