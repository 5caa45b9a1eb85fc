public import SIPBytes
import CSIPScan

/// One Via hop (RFC 3261 §20.42, RFC 3581 rport), as spans and small decoded numbers.
public struct ViaHop: Equatable, Sendable {
    /// The rport parameter (RFC 3581).
    public enum RPort: Equatable, Sendable {
        case absent
        /// `;rport` without a value: the client asks us to fill it in, at `nameEnd` (just after the name).
        case requested(nameEnd: Int)
        case value(UInt16)
    }

    public var span: ByteSpan
    public var protocolName: ByteSpan
    public var protocolVersion: ByteSpan
    public var transport: ByteSpan
    public var host: ByteSpan
    public var hostKind: SIPURI.HostKind
    public var port: UInt16?
    /// Parameters after the first `;` (without it); empty when none.
    public var parameters: ByteSpan
    public var branch: ByteSpan?
    public var received: ByteSpan?
    public var rport: RPort
    public var maddr: ByteSpan?
    public var ttl: UInt8?
    /// The value of the first `ft` parameter with one: the flow token an edge puts in its own Via for a client on
    /// a stream, kept as the hop is read, so a response needs no second walk of the parameters to find it.
    public var flowToken: ByteSpan?

    /// Parses one hop (already split at top-level commas). Throws `invalidVia` or a more specific code.
    public static func parse(_ bytes: PacketBytes, _ span: ByteSpan) throws(SIPParseError) -> ViaHop {
        var cursor = ValueCursor(bytes, span)
        cursor.skipWhitespace()
        guard let name = cursor.scanToken(), cursor.consumeSeparator(UInt8(ascii: "/")),
            let version = cursor.scanToken(), cursor.consumeSeparator(UInt8(ascii: "/")),
            let transport = cursor.scanToken()
        else { throw SIPParseError(.invalidVia, at: cursor.position) }
        let beforeSpace = cursor.position
        cursor.skipWhitespace()
        guard cursor.position > beforeSpace else { throw SIPParseError(.invalidVia, at: cursor.position) }

        let host: ByteSpan
        let hostKind: SIPURI.HostKind
        do {
            (host, hostKind) = try SIPURI.parseHost(bytes, &cursor)
        } catch {
            throw SIPParseError(.invalidVia, at: Int(error.offset))
        }
        var hop = ViaHop(span: span, protocolName: name, protocolVersion: version, transport: transport,
                         host: host, hostKind: hostKind, port: nil,
                         parameters: ByteSpan(offset: span.end, length: 0), branch: nil, received: nil,
                         rport: .absent, maddr: nil, ttl: nil, flowToken: nil)
        if cursor.consumeSeparator(UInt8(ascii: ":")) {
            guard let port = cursor.scanNumber(limit: 65_535), !port.overflow else {
                throw SIPParseError(.invalidVia, at: cursor.position)
            }
            hop.port = UInt16(port.value)
        }
        cursor.skipWhitespace()
        if cursor.consume(UInt8(ascii: ";")) {
            hop.parameters = ByteSpan(from: cursor.position, to: cursor.end)
            try hop.readParameters(bytes)
        } else if !cursor.isAtEnd {
            throw SIPParseError(.invalidVia, at: cursor.position)
        }
        return hop
    }

    /// The common shape of a hop, read in one pass (C, `csip_via_common_form`: every response reads two hops and
    /// every request one): `SIP/2.0/TRANSPORT SP host[:port][;param[=value]]...`, no whitespace but the one SP, no
    /// quotes, no IPv6 reference, ending at the end of `value` or at a comma. Returns the hop and where it ends, or
    /// nil for anything else: then ``parse(_:_:)`` decides, so every error (code and offset) comes from one place.
    /// Whatever this accepts, ``parse(_:_:)`` parses to the same hop (tested on every hop of the test corpora, on
    /// seeded mutations of them, and by the fuzzer).
    static func parseCommonForm(_ bytes: PacketBytes, _ value: ByteSpan) -> (hop: ViaHop, end: Int)? {
        guard let found = bytes.viaHopCommonForm(in: value) else { return nil }
        let flags = Int(found.flags)
        let host = ByteSpan(from: Int(found.host_start), to: Int(found.host_end))
        let hostKind: SIPURI.HostKind
        if flags & CSIP_VIA_HOST_IPV4 != 0 {
            hostKind = .ipv4
        } else {
            guard let kind = try? SIPURI.classifyHostname(bytes, host) else { return nil }
            hostKind = kind
        }
        let start = value.start
        let rport: RPort = flags & CSIP_VIA_RPORT_VALUE != 0 ? .value(found.rport)
            : flags & CSIP_VIA_RPORT_REQUESTED != 0 ? .requested(nameEnd: Int(found.rport_name_end)) : .absent
        let hop = ViaHop(
            span: ByteSpan(from: start, to: Int(found.end)), protocolName: ByteSpan(offset: start, length: 3),
            protocolVersion: ByteSpan(offset: start + 4, length: 3),
            transport: ByteSpan(from: start + 8, to: Int(found.transport_end)), host: host, hostKind: hostKind,
            port: flags & CSIP_VIA_PORT != 0 ? found.port : nil, parameters: ByteSpan(found.parameters),
            branch: flags & CSIP_VIA_BRANCH != 0 ? ByteSpan(found.branch) : nil,
            received: flags & CSIP_VIA_RECEIVED != 0 ? ByteSpan(found.received) : nil, rport: rport,
            maddr: flags & CSIP_VIA_MADDR != 0 ? ByteSpan(found.maddr) : nil,
            ttl: flags & CSIP_VIA_TTL != 0 ? found.ttl : nil,
            flowToken: flags & CSIP_VIA_FLOW_TOKEN != 0 ? ByteSpan(found.flow_token) : nil)
        return (hop, Int(found.end))
    }

    /// 1*DIGIT at `from` not above `limit` (leading zeros allowed, as in ``ValueCursor/scanNumber(limit:)``).
    private static func decimal(_ bytes: PacketBytes, from: Int, to: Int, limit: UInt64) -> (UInt64, Int)? {
        var cursor = ValueCursor(bytes, ByteSpan(from: from, to: to))
        guard let number = cursor.scanNumber(limit: limit), !number.overflow else { return nil }
        return (number.value, cursor.position)
    }

    private mutating func readParameters(_ bytes: PacketBytes) throws(SIPParseError) {
        var iterator = ParameterIterator(bytes, parameters, allowsWhitespace: true)
        while true {
            let next: (name: ByteSpan, value: ByteSpan?)?
            do { next = try iterator.next() } catch { throw SIPParseError(.invalidVia, at: Int(error.offset)) }
            guard let (name, value) = next else { break }
            guard !name.isEmpty, NameAddress.isAll(bytes, name, .token) else {
                throw SIPParseError(.invalidVia, at: name.start)
            }
            if let offset = apply(bytes, name: name, value: value) {
                throw SIPParseError(.invalidVia, at: offset)
            }
        }
    }

    /// Reads one parameter into the hop: branch, received, rport, ttl, maddr are checked and kept, others are
    /// checked only. Returns the offset of the rule it breaks, or nil.
    private mutating func apply(_ bytes: PacketBytes, name: ByteSpan, value: ByteSpan?) -> Int? {
        // The name lower-cased as one word: one comparison per known parameter (all are at most 8 bytes). Names
        // are tokens, and OR-ing 0x20 lower-cases a token's letters without turning any other token byte into a
        // letter.
        let key = name.count <= 8 ? bytes.word(at: name.start, length: name.count) | (0x2020_2020_2020_2020 >> (64 - 8 * UInt64(name.count))) : 0
        switch key {
        case ASCII.word("branch"):
            guard let value, !value.isEmpty, NameAddress.isAll(bytes, value, .token) else {
                return name.start
            }
            branch = value
        case ASCII.word("received"):
            guard let value, !value.isEmpty, NameAddress.isAll(bytes, value, Self.addressCharacters) else {
                return name.start
            }
            received = value
        case ASCII.word("rport"):
            if let value {
                guard let (port, portEnd) = Self.decimal(bytes, from: value.start, to: value.end, limit: 65_535),
                    portEnd == value.end
                else { return value.start }
                rport = .value(UInt16(port))
            } else {
                rport = .requested(nameEnd: name.end)
            }
        case ASCII.word("ttl"):
            guard let value, let (number, numberEnd) = Self.decimal(bytes, from: value.start, to: value.end, limit: 255),
                numberEnd == value.end
            else { return name.start }
            ttl = UInt8(number)
        case ASCII.word("maddr"):
            guard let value, !value.isEmpty, NameAddress.isAll(bytes, value, Self.addressCharacters) else {
                return name.start
            }
            maddr = value
        default:
            if let value, !value.isEmpty, bytes[value.start] != UInt8(ascii: "\""),
                !NameAddress.isAll(bytes, value, CharacterClass.genericValue) {
                return value.start
            }
            if key == ASCII.word("ft"), flowToken == nil, let value { flowToken = value }
        }
        return nil
    }

    /// IPv4, IPv6 (bare or bracketed) or a hostname.
    static var addressCharacters: CharacterClass { CharacterClass(low: 0x07FF600000000000, high: 0x07FFFFFE2FFFFFFE, bit: CSIP_CHARS_VIA_ADDRESS) }  // alphanumeric + -.:[]

    /// The Via parameter called `name` (case-insensitive), if present.
    public func parameter(_ name: StaticString, in bytes: PacketBytes) -> Parameter? {
        SIPURI.findParameter(name, in: parameters, bytes: bytes, allowsWhitespace: true)
    }

    /// True when the branch starts with RFC 3261's magic cookie `z9hG4bK`.
    public func hasRFC3261Branch(in bytes: PacketBytes) -> Bool {
        guard let branch, branch.count > 7 else { return false }
        return bytes.equals(ByteSpan(offset: branch.offset, length: 7), "z9hG4bK")
    }
}
