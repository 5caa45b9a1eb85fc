import SIPBytes

/// A set of ASCII bytes as two 64-bit masks: one shift and AND per test, no table lookups through globals.
struct CharacterClass: Sendable {
    let low: UInt64
    let high: UInt64

    init(alphanumeric: Bool, _ extra: StaticString) {
        var low: UInt64 = 0
        var high: UInt64 = 0
        func add(_ byte: UInt8) {
            if byte < 64 { low |= 1 << UInt64(byte) } else if byte < 128 { high |= 1 << UInt64(byte - 64) }
        }
        if alphanumeric {
            for byte in UInt8(ascii: "0")...UInt8(ascii: "9") { add(byte) }
            for byte in UInt8(ascii: "A")...UInt8(ascii: "Z") { add(byte) }
            for byte in UInt8(ascii: "a")...UInt8(ascii: "z") { add(byte) }
        }
        let text = extra.utf8Start
        for i in 0..<extra.utf8CodeUnitCount { add(text[i]) }
        self.low = low
        self.high = high
    }

    @inline(__always)
    func contains(_ byte: UInt8) -> Bool {
        if byte < 64 { return (low >> UInt64(byte)) & 1 != 0 }
        if byte < 128 { return (high >> UInt64(byte &- 64)) & 1 != 0 }
        return false
    }

    /// RFC 3261 token.
    static let token = CharacterClass(alphanumeric: true, "-.!%*_+`'~")
    /// Call-ID `word`.
    static let word = CharacterClass(alphanumeric: true, "-.!%*_+`'~()<>:\\\"/[]?{}")
    /// `unreserved` = alphanum / mark.
    static let unreserved = CharacterClass(alphanumeric: true, "-_.!~*'()")
    /// URI user part: unreserved / user-unreserved (escapes are checked separately).
    static let user = CharacterClass(alphanumeric: true, "-_.!~*'()&=+$,;?/")
    /// URI password.
    static let password = CharacterClass(alphanumeric: true, "-_.!~*'()&=+$,")
    /// URI parameter characters: param-unreserved / unreserved.
    static let parameter = CharacterClass(alphanumeric: true, "[]/:&+$-_.!~*'()")
    /// URI header characters: hnv-unreserved / unreserved.
    static let uriHeader = CharacterClass(alphanumeric: true, "[]/?:+$-_.!~*'()")
    /// Hostname characters.
    static let hostname = CharacterClass(alphanumeric: true, "-.")
    /// IPv6 reference contents.
    static let ipv6 = CharacterClass(alphanumeric: false, "0123456789abcdefABCDEF:.")
    /// absoluteURI characters after the scheme: reserved / unreserved (escapes checked separately).
    static let uric = CharacterClass(alphanumeric: true, ";/?:@&=+$,-_.!~*'()[]")
    /// telephone-subscriber characters (RFC 3966): digits, visual separators, hex, and parameter characters.
    static let telephone = CharacterClass(alphanumeric: true, "+-.()*#;=%/:[]&$!~_'")
    /// URI scheme characters after the first letter.
    static let scheme = CharacterClass(alphanumeric: true, "+-.")
}

/// Reads a header value left to right. Header values may contain folds (CRLF + WSP): the scanner guarantees CR
/// and LF appear only there, so skipping "linear whitespace" here unfolds logically without copying.
struct ValueCursor {
    let bytes: PacketBytes
    var position: Int
    let end: Int

    init(_ bytes: PacketBytes, _ span: ByteSpan) {
        self.bytes = bytes
        self.position = span.start
        self.end = span.end
    }

    var isAtEnd: Bool { position >= end }

    /// The next byte, or nil at the end.
    func peek() -> UInt8? { position < end ? bytes[position] : nil }

    /// Skips SP, HTAB and folds.
    mutating func skipWhitespace() {
        while position < end && ASCII.isLinearWhitespace(bytes[position]) { position += 1 }
    }

    /// Consumes `byte` if it is next.
    mutating func consume(_ byte: UInt8) -> Bool {
        guard position < end, bytes[position] == byte else { return false }
        position += 1
        return true
    }

    /// Skips whitespace, consumes `byte`, skips whitespace (SIP's SEMI, COLON, EQUAL, SLASH, COMMA).
    mutating func consumeSeparator(_ byte: UInt8) -> Bool {
        let saved = position
        skipWhitespace()
        guard consume(byte) else {
            position = saved
            return false
        }
        skipWhitespace()
        return true
    }

    /// Consumes bytes of `characters`; returns their span (possibly empty).
    mutating func scan(_ characters: CharacterClass) -> ByteSpan {
        let start = position
        while position < end && characters.contains(bytes[position]) { position += 1 }
        return ByteSpan(from: start, to: position)
    }

    /// Consumes bytes of `characters` or `%HH` escapes; nil if an escape is malformed.
    mutating func scanEscaped(_ characters: CharacterClass) -> ByteSpan? {
        let start = position
        while position < end {
            let byte = bytes[position]
            if characters.contains(byte) {
                position += 1
            } else if byte == UInt8(ascii: "%") {
                guard position + 2 < end, ASCII.isHexDigit(bytes[position + 1]), ASCII.isHexDigit(bytes[position + 2])
                else { return nil }
                position += 3
            } else {
                break
            }
        }
        return ByteSpan(from: start, to: position)
    }

    /// Consumes a token; nil if none is there.
    mutating func scanToken() -> ByteSpan? {
        let span = scan(.token)
        return span.isEmpty ? nil : span
    }

    /// Consumes a quoted-string (starting at DQUOTE) and returns its span including the quotes. Throws
    /// `unterminatedQuotedString` when the closing quote is missing.
    mutating func scanQuotedString() throws(SIPParseError) -> ByteSpan {
        let start = position
        precondition(bytes[position] == UInt8(ascii: "\""))
        position += 1
        while position < end {
            let byte = bytes[position]
            if byte == UInt8(ascii: "\\") {
                // quoted-pair: any byte but CR and LF.
                guard position + 1 < end, bytes[position + 1] != 0x0D, bytes[position + 1] != 0x0A else {
                    throw SIPParseError(.unterminatedQuotedString, at: start)
                }
                position += 2
            } else if byte == UInt8(ascii: "\"") {
                position += 1
                return ByteSpan(from: start, to: position)
            } else {
                position += 1
            }
        }
        throw SIPParseError(.unterminatedQuotedString, at: start)
    }

    /// Parses a decimal number of at most `maxDigits` significant digits into a UInt64. Leading zeros are
    /// allowed (RFC 4475 wsinv). Returns nil when no digit is there; `overflow` is set when the value exceeds
    /// `limit`.
    mutating func scanNumber(limit: UInt64) -> (value: UInt64, overflow: Bool)? {
        let start = position
        var value: UInt64 = 0
        var overflow = false
        while position < end, ASCII.isDigit(bytes[position]) {
            let digit = UInt64(bytes[position] &- 0x30)
            if !overflow {
                let (times10, o1) = value.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(digit)
                if o1 || o2 || sum > limit { overflow = true } else { value = sum }
            }
            position += 1
        }
        return position == start ? nil : (value, overflow)
    }
}

/// Splits a header value into its comma-separated elements (RFC 3261 §7.3.1), skipping commas inside quoted
/// strings and inside `<...>`. Elements are trimmed; an empty element is reported as an empty span.
struct CommaSeparatedValues {
    let bytes: PacketBytes
    var position: Int
    let end: Int
    var finished = false

    init(_ bytes: PacketBytes, _ span: ByteSpan) {
        self.bytes = bytes
        self.position = span.start
        self.end = span.end
        self.finished = span.isEmpty
    }

    mutating func next() throws(SIPParseError) -> ByteSpan? {
        guard !finished else { return nil }
        var start = position
        while start < end && ASCII.isLinearWhitespace(bytes[start]) { start += 1 }
        var i = start
        var inAngle = false
        while i < end {
            let byte = bytes[i]
            if byte == UInt8(ascii: "\"") {
                var cursor = ValueCursor(bytes, ByteSpan(from: i, to: end))
                i = try cursor.scanQuotedString().end
                continue
            }
            if byte == UInt8(ascii: "<") { inAngle = true }
            else if byte == UInt8(ascii: ">") { inAngle = false }
            else if byte == UInt8(ascii: ","), !inAngle { break }
            i += 1
        }
        var stop = i
        while stop > start && ASCII.isLinearWhitespace(bytes[stop - 1]) { stop -= 1 }
        if i < end {
            position = i + 1
        } else {
            finished = true
        }
        return ByteSpan(from: start, to: stop)
    }
}

/// Iterates `;name[=value]` parameters in a span that starts right after a `;` (or is empty).
/// Whitespace around `;` and `=` is allowed when `allowsWhitespace` (header parameters), not in URIs.
struct ParameterIterator {
    let bytes: PacketBytes
    var cursor: ValueCursor
    let allowsWhitespace: Bool

    init(_ bytes: PacketBytes, _ span: ByteSpan, allowsWhitespace: Bool) {
        self.bytes = bytes
        self.cursor = ValueCursor(bytes, span)
        self.allowsWhitespace = allowsWhitespace
    }

    /// The next parameter as (name, value?) spans; nil at the end. The caller validates names and values.
    mutating func next() throws(SIPParseError) -> (name: ByteSpan, value: ByteSpan?)? {
        if allowsWhitespace { cursor.skipWhitespace() }
        guard !cursor.isAtEnd else { return nil }
        let nameStart = cursor.position
        while let byte = cursor.peek(), byte != UInt8(ascii: ";"), byte != UInt8(ascii: "="),
            !ASCII.isLinearWhitespace(byte) {
            cursor.position += 1
        }
        let name = ByteSpan(from: nameStart, to: cursor.position)
        var value: ByteSpan?
        if allowsWhitespace ? cursor.consumeSeparator(UInt8(ascii: "=")) : cursor.consume(UInt8(ascii: "=")) {
            if cursor.peek() == UInt8(ascii: "\"") {
                value = try cursor.scanQuotedString()
            } else {
                let valueStart = cursor.position
                while let byte = cursor.peek(), byte != UInt8(ascii: ";"), !ASCII.isLinearWhitespace(byte) {
                    cursor.position += 1
                }
                value = ByteSpan(from: valueStart, to: cursor.position)
            }
        }
        if allowsWhitespace { cursor.skipWhitespace() }
        if !cursor.isAtEnd {
            guard cursor.consume(UInt8(ascii: ";")) else {
                throw SIPParseError(.invalidHeaderValue, at: cursor.position)
            }
            if cursor.isAtEnd { throw SIPParseError(.invalidHeaderValue, at: cursor.position) }
        }
        return (name, value)
    }
}
