import SIPBytes
import CSIPScan

/// A set of ASCII bytes as two 64-bit masks: one shift and AND per test, no table lookups through globals.
struct CharacterClass: Sendable {
    let low: UInt64
    let high: UInt64
    /// This class's bit in the C table `csip_char_classes` (csip_chars.h), which runs are walked with.
    let bit: UInt16

    /// The classes below are written as literal masks (generated from the character lists in their comments and
    /// checked against them by tests): a `static let` built by a loop costs a `swift_once` check on every use.
    @inline(__always)
    init(low: UInt64, high: UInt64, bit: Bit) {
        self.low = low
        self.high = high
        self.bit = UInt16(bit.rawValue)
    }

    typealias Bit = csip_char_class

    @inline(__always)
    func contains(_ byte: UInt8) -> Bool {
        if byte < 64 { return (low >> UInt64(byte)) & 1 != 0 }
        if byte < 128 { return (high >> UInt64(byte &- 64)) & 1 != 0 }
        return false
    }

    /// The first offset in `from..<to` whose byte is not in this class, or `to`.
    @inline(__always)
    func endOfRun(in bytes: PacketBytes, from: Int, to: Int) -> Int {
        bytes.endOfRun(from: from, to: to, singleClass: bit)
    }

    /// True when every byte of `span` is in this class.
    @inline(__always)
    func containsAll(of span: ByteSpan, in bytes: PacketBytes) -> Bool {
        endOfRun(in: bytes, from: span.start, to: span.end) == span.end
    }

    /// RFC 3261 token.
    static var token: CharacterClass { CharacterClass(low: 0x03FF6CA200000000, high: 0x47FFFFFF87FFFFFE, bit: CSIP_CHARS_TOKEN) }  // alphanumeric + -.!%*_+`'~
    /// A display name without quotes: tokens and linear whitespace (SP, HTAB, and the CR LF of a fold).
    static var displayNameTokens: CharacterClass { CharacterClass(low: 0x03FF6CA300002600, high: 0x47FFFFFF87FFFFFE, bit: CSIP_CHARS_DISPLAY_NAME) }  // token + SP HTAB CR LF
    /// Call-ID `word`.
    static var word: CharacterClass { CharacterClass(low: 0xD7FFEFA600000000, high: 0x6FFFFFFFBFFFFFFE, bit: CSIP_CHARS_WORD) }  // alphanumeric + -.!%*_+`'~()<>:\"/[]?{}
    /// URI user part: unreserved / user-unreserved (escapes are checked separately).
    static var user: CharacterClass { CharacterClass(low: 0xABFFFFD200000000, high: 0x47FFFFFE87FFFFFE, bit: CSIP_CHARS_USER) }  // alphanumeric + -_.!~*'()&=+$,;?/
    /// URI password.
    static var password: CharacterClass { CharacterClass(low: 0x23FF7FD200000000, high: 0x47FFFFFE87FFFFFE, bit: CSIP_CHARS_PASSWORD) }  // alphanumeric + -_.!~*'()&=+$,
    /// URI parameter characters: param-unreserved / unreserved.
    static var parameter: CharacterClass { CharacterClass(low: 0x07FFEFD200000000, high: 0x47FFFFFEAFFFFFFE, bit: CSIP_CHARS_URI_PARAMETER) }  // alphanumeric + []/:&+$-_.!~*'()
    /// URI header characters: hnv-unreserved / unreserved.
    static var uriHeader: CharacterClass { CharacterClass(low: 0x87FFEF9200000000, high: 0x47FFFFFEAFFFFFFE, bit: CSIP_CHARS_URI_HEADER) }  // alphanumeric + []/?:+$-_.!~*'()
    /// Hostname characters.
    static var hostname: CharacterClass { CharacterClass(low: 0x03FF600000000000, high: 0x07FFFFFE07FFFFFE, bit: CSIP_CHARS_HOSTNAME) }  // alphanumeric + -.
    /// IPv6 reference contents.
    static var ipv6: CharacterClass { CharacterClass(low: 0x07FF400000000000, high: 0x0000007E0000007E, bit: CSIP_CHARS_IPV6) }  // 0123456789abcdefABCDEF:.
    /// absoluteURI characters after the scheme: reserved / unreserved (escapes checked separately).
    static var uric: CharacterClass { CharacterClass(low: 0xAFFFFFD200000000, high: 0x47FFFFFEAFFFFFFF, bit: CSIP_CHARS_URIC) }  // alphanumeric + ;/?:@&=+$,-_.!~*'()[]
    /// telephone-subscriber characters (RFC 3966): digits, visual separators, hex, and parameter characters.
    static var telephone: CharacterClass { CharacterClass(low: 0x2FFFEFFA00000000, high: 0x47FFFFFEAFFFFFFE, bit: CSIP_CHARS_TELEPHONE) }  // alphanumeric + +-.()*#;=%/:[]&$!~_'
    /// gen-value without quotes (RFC 3261 §25.1): token / host, the value of a header parameter (Via, From, To, ...).
    static var genericValue: CharacterClass { CharacterClass(low: 0x07FF6CA200000000, high: 0x47FFFFFFAFFFFFFE, bit: CSIP_CHARS_GENERIC_VALUE) }  // alphanumeric + -.!%*_+`'~[]:
    /// URI scheme characters after the first letter.
    static var scheme: CharacterClass { CharacterClass(low: 0x03FF680000000000, high: 0x07FFFFFE07FFFFFE, bit: CSIP_CHARS_SCHEME) }  // alphanumeric + +-.
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

    var isAtEnd: Bool {
        @inline(__always) get { position >= end }
    }

    /// The next byte, or nil at the end.
    @inline(__always)
    func peek() -> UInt8? { position < end ? bytes[position] : nil }

    /// Skips SP, HTAB and folds.
    @inline(__always)
    mutating func skipWhitespace() {
        var i = position
        while i < end && ASCII.isLinearWhitespace(bytes[i]) { i += 1 }
        position = i
    }

    /// Consumes `byte` if it is next.
    @inline(__always)
    mutating func consume(_ byte: UInt8) -> Bool {
        guard position < end, bytes[position] == byte else { return false }
        position += 1
        return true
    }

    /// Skips whitespace, consumes `byte`, skips whitespace (SIP's SEMI, COLON, EQUAL, SLASH, COMMA).
    @inline(__always)
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
    @inline(__always)
    mutating func scan(_ characters: CharacterClass) -> ByteSpan {
        let start = position
        position = characters.endOfRun(in: bytes, from: start, to: end)
        return ByteSpan(from: start, to: position)
    }

    /// Consumes bytes of `characters` or `%HH` escapes; nil if an escape is malformed.
    mutating func scanEscaped(_ characters: CharacterClass) -> ByteSpan? {
        let start = position
        while position < end {
            position = characters.endOfRun(in: bytes, from: position, to: end)
            guard position < end else { break }
            let byte = bytes[position]
            if byte == UInt8(ascii: "%") {
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
    @inline(__always)
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

    /// How many elements `next()` returns for `span`. Without quotes or `<`, that is one more than the commas,
    /// counted in one pass; otherwise the elements are walked (which also reports an unterminated quote).
    static func count(_ bytes: PacketBytes, _ span: ByteSpan) throws(SIPParseError) -> Int {
        guard !span.isEmpty else { return 0 }
        var commas = 0
        var i = span.start
        while true {
            i = Self.plain.endOfRun(in: bytes, from: i, to: span.end)
            guard i < span.end else { return commas + 1 }
            switch bytes[i] {
            case UInt8(ascii: ","): commas += 1
            case UInt8(ascii: "\""), UInt8(ascii: "<"):
                var elements = CommaSeparatedValues(bytes, span)
                var count = 0
                while try elements.next() != nil { count += 1 }
                return count
            default: break  // a byte above 127: no delimiter
            }
            i += 1
        }
    }

    /// Every ASCII byte but the three that delimit elements: `,` `"` `<`.
    static var plain: CharacterClass { CharacterClass(low: 0xEFFFEFFBFFFFFFFF, high: 0xFFFFFFFFFFFFFFFF, bit: CSIP_CHARS_ELEMENT_PLAIN) }

    mutating func next() throws(SIPParseError) -> ByteSpan? {
        guard !finished else { return nil }
        let end = self.end
        var start = position
        while start < end && ASCII.isLinearWhitespace(bytes[start]) { start += 1 }
        let rest = ByteSpan(from: start, to: end)
        // Fast path (almost every Via, Route, Record-Route, Contact): no quote left, so the element ends at the first
        // comma outside `<...>`, which memchr finds without a byte loop: a comma with no `<` before it ends the
        // element; a `<` before it skips to its `>` (no `>`: the element runs to the end, as below).
        if bytes.firstIndex(of: UInt8(ascii: "\""), in: rest) == nil {
            var from = start
            var comma = end
            while let found = bytes.firstIndex(of: UInt8(ascii: ","), in: ByteSpan(from: from, to: end)) {
                guard let open = bytes.firstIndex(of: UInt8(ascii: "<"), in: ByteSpan(from: from, to: found)) else {
                    comma = found
                    break
                }
                guard let close = bytes.firstIndex(of: UInt8(ascii: ">"), in: ByteSpan(from: open + 1, to: end))
                else { break }
                from = close + 1
            }
            var stop = comma
            while stop > start && ASCII.isLinearWhitespace(bytes[stop - 1]) { stop -= 1 }
            if comma < end { position = comma + 1 } else { finished = true }
            return ByteSpan(from: start, to: stop)
        }
        var i = start
        var inAngle = false
        while i < end {
            let byte = bytes[i]
            if byte == UInt8(ascii: "\"") {
                var cursor = ValueCursor(bytes, ByteSpan(from: i, to: end))
                i = try cursor.scanQuotedString().end
                continue
            }
            if byte == UInt8(ascii: ",") {
                if !inAngle { break }
            } else if byte == UInt8(ascii: "<") {
                inAngle = true
            } else if byte == UInt8(ascii: ">") {
                inAngle = false
            }
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
