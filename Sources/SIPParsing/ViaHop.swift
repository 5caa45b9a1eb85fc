public import SIPBytes

/// One Via hop (RFC 3261 §20.42, RFC 3581 rport), as spans and small decoded numbers.
public struct ViaHop: Equatable, Sendable {
    /// The rport parameter (RFC 3581).
    public enum RPort: Equatable, Sendable {
        case absent
        /// `;rport` without a value: the client asks us to fill it in.
        case requested
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
                         rport: .absent, maddr: nil, ttl: nil)
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

    private mutating func readParameters(_ bytes: PacketBytes) throws(SIPParseError) {
        var iterator = ParameterIterator(bytes, parameters, allowsWhitespace: true)
        while true {
            let next: (name: ByteSpan, value: ByteSpan?)?
            do { next = try iterator.next() } catch { throw SIPParseError(.invalidVia, at: Int(error.offset)) }
            guard let (name, value) = next else { break }
            guard !name.isEmpty, NameAddress.isAll(bytes, name, .token) else {
                throw SIPParseError(.invalidVia, at: name.start)
            }
            // Dispatch on length first: one comparison per parameter instead of five.
            switch name.count {
            case 6 where bytes.equalsIgnoringCase(name, "branch"):
                guard let value, !value.isEmpty, NameAddress.isAll(bytes, value, .token) else {
                    throw SIPParseError(.invalidVia, at: name.start)
                }
                branch = value
            case 8 where bytes.equalsIgnoringCase(name, "received"):
                guard let value, !value.isEmpty, NameAddress.isAll(bytes, value, Self.addressCharacters) else {
                    throw SIPParseError(.invalidVia, at: name.start)
                }
                received = value
            case 5 where bytes.equalsIgnoringCase(name, "rport"):
                if let value {
                    var number = ValueCursor(bytes, value)
                    guard let port = number.scanNumber(limit: 65_535), !port.overflow, number.isAtEnd else {
                        throw SIPParseError(.invalidVia, at: value.start)
                    }
                    rport = .value(UInt16(port.value))
                } else {
                    rport = .requested
                }
            case 3 where bytes.equalsIgnoringCase(name, "ttl"):
                var number = ValueCursor(bytes, value ?? ByteSpan(offset: name.end, length: 0))
                guard let ttl = number.scanNumber(limit: 255), !ttl.overflow, number.isAtEnd else {
                    throw SIPParseError(.invalidVia, at: name.start)
                }
                self.ttl = UInt8(ttl.value)
            case 5 where bytes.equalsIgnoringCase(name, "maddr"):
                guard let value, !value.isEmpty, NameAddress.isAll(bytes, value, Self.addressCharacters) else {
                    throw SIPParseError(.invalidVia, at: name.start)
                }
                maddr = value
            default:
                if let value, !value.isEmpty, bytes[value.start] != UInt8(ascii: "\""),
                    !NameAddress.isAll(bytes, value, Self.genericValue) {
                    throw SIPParseError(.invalidVia, at: value.start)
                }
            }
        }
    }

    /// IPv4, IPv6 (bare or bracketed) or a hostname.
    static var addressCharacters: CharacterClass { CharacterClass(low: 0x07FF600000000000, high: 0x07FFFFFE2FFFFFFE) }  // alphanumeric + -.:[]
    /// gen-value: token / host / quoted-string.
    static var genericValue: CharacterClass { CharacterClass(low: 0x07FF6CA200000000, high: 0x47FFFFFFAFFFFFFE) }  // alphanumeric + -.!%*_+`'~[]:

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
