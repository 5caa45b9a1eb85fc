public import SIPBytes

/// One `name[=value]` parameter, as spans.
public struct Parameter: Equatable, Sendable {
    public var name: ByteSpan
    public var value: ByteSpan?
}

/// A URI as spans into the message: `sip:`/`sips:` (RFC 3261 §19.1), `tel:` (RFC 3966) or any other absolute URI.
///
/// Parsing validates the whole grammar (user, password, host including IPv6 references, port, parameters,
/// headers, `%HH` escapes) but decodes nothing: escapes stay as they are on the wire, as a proxy forwards them.
public struct SIPURI: Equatable, Sendable {
    public enum Scheme: UInt8, Sendable {
        case sip, sips, tel, other
    }

    public enum HostKind: UInt8, Sendable {
        case name, ipv4, ipv6
    }

    /// The whole URI.
    public var span: ByteSpan
    public var scheme: Scheme
    public var user: ByteSpan?
    public var password: ByteSpan?
    /// Host for sip/sips (IPv6 references keep their brackets); empty for other schemes.
    public var host: ByteSpan
    public var hostKind: HostKind
    public var port: UInt16?
    /// The parameters after the first `;` (without it), up to `?` or the end; empty when there are none.
    public var parameters: ByteSpan
    /// The headers after `?` (without it), or nil.
    public var headers: ByteSpan?

    /// Parses `span` as a URI. Throws `invalidURI` with the offset of the first bad byte.
    public static func parse(_ bytes: PacketBytes, _ span: ByteSpan) throws(SIPParseError) -> SIPURI {
        var cursor = ValueCursor(bytes, span)
        let schemeSpan = cursor.scan(.scheme)
        guard !schemeSpan.isEmpty, ASCII.isAlpha(bytes[schemeSpan.start]), cursor.consume(UInt8(ascii: ":")) else {
            throw SIPParseError(.invalidURI, at: cursor.position)
        }
        var uri = SIPURI(span: span, scheme: .other, user: nil, password: nil, host: ByteSpan(offset: cursor.position,
            length: 0), hostKind: .name, port: nil, parameters: ByteSpan(offset: span.end, length: 0), headers: nil)
        if schemeSpan.count <= 4 {
            switch ASCII.lowercased(word: bytes.word(at: schemeSpan.start, length: schemeSpan.count)) {
            case ASCII.word("sip"): uri.scheme = .sip
            case ASCII.word("sips"): uri.scheme = .sips
            case ASCII.word("tel"): uri.scheme = .tel
            default: break
            }
        }
        switch uri.scheme {
        case .sip, .sips:
            try uri.parseSIPRest(bytes, &cursor)
        case .tel:
            try requireAll(bytes, &cursor, .telephone)
        case .other:
            try requireAll(bytes, &cursor, .uric)
        }
        return uri
    }

    /// The common shape of a SIP URI, read in one pass: `sip:` or `sips:`, an optional user without escapes or
    /// password, a hostname or IPv4 address, an optional port of 1-5 digits, optional parameters, no headers.
    /// Nil for anything else (and for errors): then ``parse(_:_:)`` decides, so every error comes from one place.
    /// Whatever this accepts, ``parse(_:_:)`` parses to the same URI (tests and the fuzzer compare the two).
    static func parseCommonForm(_ bytes: PacketBytes, _ span: ByteSpan) -> SIPURI? {
        let start = span.start
        let end = span.end
        guard span.count >= 5 else { return nil }
        let scheme: Scheme
        var i: Int
        let prefix = ASCII.lowercased(word: bytes.word(at: start, length: 5))
        if prefix & 0xFF_FFFF_FFFF == ASCII.word("sips:") {
            (scheme, i) = (.sips, start + 5)
        } else if prefix & 0xFFFF_FFFF == ASCII.word("sip:") {
            (scheme, i) = (.sip, start + 4)
        } else {
            return nil
        }
        var user: ByteSpan?
        // The user part is everything before the first '@' (user characters include ';' and '?', so a URI without
        // a user runs on to its end or to a character no user has, never to an '@').
        let userEnd = CharacterClass.user.endOfRun(in: bytes, from: i, to: end)
        if userEnd < end && bytes[userEnd] == UInt8(ascii: "@") {
            guard userEnd > i else { return nil }
            user = ByteSpan(from: i, to: userEnd)
            i = userEnd + 1
        } else if bytes.firstIndex(of: UInt8(ascii: "@"), in: ByteSpan(from: userEnd, to: end)) != nil {
            return nil  // escapes, a password or a bad character before the '@'
        }
        let hostEnd = CharacterClass.hostname.endOfRun(in: bytes, from: i, to: end)
        guard hostEnd > i else { return nil }
        let host = ByteSpan(from: i, to: hostEnd)
        guard let hostKind = try? classifyHostname(bytes, host) else { return nil }
        var uri = SIPURI(span: span, scheme: scheme, user: user, password: nil, host: host, hostKind: hostKind,
                         port: nil, parameters: ByteSpan(offset: end, length: 0), headers: nil)
        i = hostEnd
        if i < end && bytes[i] == UInt8(ascii: ":") {
            guard let (port, portEnd) = portCommonForm(bytes, from: i + 1, to: end) else { return nil }
            uri.port = port
            i = portEnd
        }
        if i < end {
            guard bytes[i] == UInt8(ascii: ";"),
                bytes.firstIndex(of: UInt8(ascii: "?"), in: ByteSpan(from: i + 1, to: end)) == nil
            else { return nil }
            uri.parameters = ByteSpan(from: i + 1, to: end)
            guard (try? validateParameters(bytes, uri.parameters)) != nil else { return nil }
        }
        return uri
    }

    /// The rest of an opaque URI must be one or more characters of `characters` (or escapes).
    private static func requireAll(_ bytes: PacketBytes, _ cursor: inout ValueCursor,
                                   _ characters: CharacterClass) throws(SIPParseError) {
        guard let rest = cursor.scanEscaped(characters), !rest.isEmpty, cursor.isAtEnd else {
            throw SIPParseError(.invalidURI, at: cursor.position)
        }
    }

    private mutating func parseSIPRest(_ bytes: PacketBytes, _ cursor: inout ValueCursor) throws(SIPParseError) {
        // userinfo: everything before the first '@' (a literal '@' is not allowed elsewhere in a SIP URI).
        if let at = bytes.firstIndex(of: UInt8(ascii: "@"), in: ByteSpan(from: cursor.position, to: cursor.end)) {
            var userCursor = ValueCursor(bytes, ByteSpan(from: cursor.position, to: at))
            guard let user = userCursor.scanEscaped(.user), !user.isEmpty else {
                throw SIPParseError(.invalidURI, at: userCursor.position)
            }
            self.user = user
            if userCursor.consume(UInt8(ascii: ":")) {
                guard let password = userCursor.scanEscaped(.password) else {
                    throw SIPParseError(.invalidURI, at: userCursor.position)
                }
                self.password = password
            }
            guard userCursor.isAtEnd else { throw SIPParseError(.invalidURI, at: userCursor.position) }
            cursor.position = at + 1
        }
        (host, hostKind) = try Self.parseHost(bytes, &cursor)
        if cursor.consume(UInt8(ascii: ":")) {
            port = try Self.parsePort(&cursor)
        }
        if cursor.consume(UInt8(ascii: ";")) {
            let start = cursor.position
            while let byte = cursor.peek(), byte != UInt8(ascii: "?") { cursor.position += 1 }
            parameters = ByteSpan(from: start, to: cursor.position)
            try Self.validateParameters(bytes, parameters)
        }
        if cursor.consume(UInt8(ascii: "?")) {
            let start = cursor.position
            try Self.validateHeaders(bytes, &cursor)
            headers = ByteSpan(from: start, to: cursor.position)
        }
        guard cursor.isAtEnd else { throw SIPParseError(.invalidURI, at: cursor.position) }
    }

    /// host = hostname / IPv4address / IPv6reference. Used by URIs and Via sent-by.
    static func parseHost(_ bytes: PacketBytes, _ cursor: inout ValueCursor)
        throws(SIPParseError) -> (ByteSpan, HostKind)
    {
        let start = cursor.position
        if cursor.consume(UInt8(ascii: "[")) {
            let inner = cursor.scan(.ipv6)
            guard inner.count >= 2, bytes.firstIndex(of: UInt8(ascii: ":"), in: inner) != nil,
                cursor.consume(UInt8(ascii: "]"))
            else { throw SIPParseError(.invalidURI, at: cursor.position) }
            return (ByteSpan(from: start, to: cursor.position), .ipv6)
        }
        let host = cursor.scan(.hostname)
        guard !host.isEmpty else { throw SIPParseError(.invalidURI, at: start) }
        let kind = try classifyHostname(bytes, host)
        return (host, kind)
    }

    /// Tells a dotted-quad IPv4 address from a hostname, rejecting malformed ones of either.
    @inline(__always)
    static func classifyHostname(_ bytes: PacketBytes, _ host: ByteSpan) throws(SIPParseError) -> HostKind {
        // RFC 3261: a toplabel starts with a letter, so a host whose last label starts with a digit is IPv4.
        var lastLabelStart = host.start
        var i = host.end - 1
        if bytes[i] == UInt8(ascii: ".") { i -= 1 }  // a fully qualified name may end with a dot
        while i >= host.start {
            if bytes[i] == UInt8(ascii: ".") {
                lastLabelStart = i + 1
                break
            }
            i -= 1
        }
        guard lastLabelStart < host.end else { throw SIPParseError(.invalidURI, at: host.start) }
        if !ASCII.isDigit(bytes[lastLabelStart]) {
            guard bytes[host.start] != UInt8(ascii: "."), bytes[host.start] != UInt8(ascii: "-") else {
                throw SIPParseError(.invalidURI, at: host.start)
            }
            return .name
        }
        if bytes.isCommonIPv4(host) { return .ipv4 }
        return try classifyDottedNumbers(bytes, host)
    }

    /// A host whose last label starts with a digit, by the grammar: IPv4 (leading zeros allowed) or an error.
    static func classifyDottedNumbers(_ bytes: PacketBytes, _ host: ByteSpan) throws(SIPParseError) -> HostKind {
        var cursor = ValueCursor(bytes, host)
        for octet in 0..<4 {
            if octet > 0 {
                guard cursor.consume(UInt8(ascii: ".")) else { throw SIPParseError(.invalidURI, at: cursor.position) }
            }
            guard let number = cursor.scanNumber(limit: 255), !number.overflow else {
                throw SIPParseError(.invalidURI, at: cursor.position)
            }
        }
        guard cursor.isAtEnd else { throw SIPParseError(.invalidURI, at: cursor.position) }
        return .ipv4
    }

    /// The common port of the one-pass readings (URI, Via sent-by): 1-5 digits at `from`, up to 65535, and no digit
    /// after them; nil for anything else (a leading-zero run, say), which the full grammar then reads.
    @inline(__always)
    static func portCommonForm(_ bytes: PacketBytes, from: Int, to: Int) -> (port: UInt16, end: Int)? {
        let (port, end) = bytes.decimalRun(from: from, to: to, maxDigits: 5)
        guard end > from, port <= 65_535, end == to || !ASCII.isDigit(bytes[end]) else { return nil }
        return (UInt16(port), end)
    }

    static func parsePort(_ cursor: inout ValueCursor) throws(SIPParseError) -> UInt16 {
        guard let number = cursor.scanNumber(limit: 65_535), !number.overflow else {
            throw SIPParseError(.invalidURI, at: cursor.position)
        }
        return UInt16(number.value)
    }

    /// uri-parameters: pname [ "=" pvalue ] separated by ';', no whitespace.
    private static func validateParameters(_ bytes: PacketBytes, _ span: ByteSpan) throws(SIPParseError) {
        var cursor = ValueCursor(bytes, span)
        repeat {
            guard let name = cursor.scanEscaped(.parameter), !name.isEmpty else {
                throw SIPParseError(.invalidURI, at: cursor.position)
            }
            if cursor.consume(UInt8(ascii: "=")) {
                guard let value = cursor.scanEscaped(.parameter), !value.isEmpty else {
                    throw SIPParseError(.invalidURI, at: cursor.position)
                }
            }
        } while cursor.consume(UInt8(ascii: ";"))
        guard cursor.isAtEnd else { throw SIPParseError(.invalidURI, at: cursor.position) }
    }

    /// headers: hname "=" hvalue *( "&" hname "=" hvalue ).
    private static func validateHeaders(_ bytes: PacketBytes, _ cursor: inout ValueCursor) throws(SIPParseError) {
        repeat {
            guard let name = cursor.scanEscaped(.uriHeader), !name.isEmpty, cursor.consume(UInt8(ascii: "=")),
                cursor.scanEscaped(.uriHeader) != nil
            else { throw SIPParseError(.invalidURI, at: cursor.position) }
        } while cursor.consume(UInt8(ascii: "&"))
    }

    /// The URI parameter called `name` (case-insensitive), if present.
    public func parameter(_ name: StaticString, in bytes: PacketBytes) -> Parameter? {
        Self.findParameter(name, in: parameters, bytes: bytes, allowsWhitespace: false)
    }

    /// True when the URI carries the parameter `name` (with or without a value), e.g. `lr`.
    public func hasParameter(_ name: StaticString, in bytes: PacketBytes) -> Bool {
        parameter(name, in: bytes) != nil
    }

    static func findParameter(_ name: StaticString, in span: ByteSpan, bytes: PacketBytes,
                              allowsWhitespace: Bool) -> Parameter? {
        var iterator = ParameterIterator(bytes, span, allowsWhitespace: allowsWhitespace)
        while let parameter = try? iterator.next() {
            if bytes.equalsIgnoringCase(parameter.name, name) {
                return Parameter(name: parameter.name, value: parameter.value)
            }
        }
        return nil
    }
}
