public import SIPBytes
import CSIPScan

/// A `name-addr` or `addr-spec` with header parameters: the value of From, To, Contact, Route, Record-Route,
/// Path and friends (RFC 3261 §20.10, §25.1).
public struct NameAddress: Equatable, Sendable {
    /// The whole element.
    public var span: ByteSpan
    /// The display name as written: a quoted string with its quotes, or a run of tokens. Nil when absent.
    public var displayName: ByteSpan?
    public var uri: SIPURI
    /// True for the `<uri>` form.
    public var isBracketed: Bool
    /// Header parameters after the address (without the first `;`); empty when none.
    public var parameters: ByteSpan
    /// The `tag` parameter's value (From/To), if present.
    public var tag: ByteSpan?


    /// Parses one element (already split at top-level commas). Throws `invalidHeaderValue` for structural
    /// errors (the caller renames it for its header), or a more specific code (URI, quoting, display name).
    public static func parse(_ bytes: PacketBytes, _ span: ByteSpan) throws(SIPParseError) -> NameAddress {
        try checkForm(bytes, span, code: .invalidDisplayName)
        var cursor = ValueCursor(bytes, span)
        cursor.skipWhitespace()
        var displayName: ByteSpan?
        var isBracketed = false
        let uriSpan: ByteSpan

        if cursor.peek() == UInt8(ascii: "\"") {
            displayName = try cursor.scanQuotedString()
            cursor.skipWhitespace()
            guard cursor.peek() == UInt8(ascii: "<") else { throw SIPParseError(.invalidDisplayName, at: span.start) }
        } else {
            // Either `*(token LWS) <uri>` or a bare addr-spec; look ahead for '<' past a run of tokens.
            let start = cursor.position
            var lastTokenEnd = start
            while true {
                guard let token = cursor.scanToken() else { break }
                lastTokenEnd = token.end
                cursor.skipWhitespace()
            }
            if cursor.peek() == UInt8(ascii: "<") {
                if lastTokenEnd > start { displayName = ByteSpan(from: start, to: lastTokenEnd) }
            } else {
                cursor.position = start
            }
        }

        if cursor.consume(UInt8(ascii: "<")) {
            isBracketed = true
            let start = cursor.position
            guard let close = bytes.firstIndex(of: UInt8(ascii: ">"), in: ByteSpan(from: start, to: cursor.end)) else {
                throw SIPParseError(.invalidHeaderValue, at: cursor.end)
            }
            uriSpan = ByteSpan(from: start, to: close)
            cursor.position = close + 1
        } else {
            // addr-spec form: the URI ends at the first ';' or whitespace, and may not contain '?' (RFC 3261
            // §20.10: such URIs must be enclosed in <>; RFC 4475 regbadct); checkForm refused `,` `"` `<` `>`.
            let start = cursor.position
            while let byte = cursor.peek(), byte != UInt8(ascii: ";"), !ASCII.isLinearWhitespace(byte) {
                if byte == UInt8(ascii: "?") { throw SIPParseError(.invalidURI, at: cursor.position) }
                cursor.position += 1
            }
            uriSpan = ByteSpan(from: start, to: cursor.position)
        }
        guard !uriSpan.isEmpty else { throw SIPParseError(.invalidURI, at: uriSpan.start) }
        let uri = try SIPURI.parse(bytes, uriSpan)

        var parameters = ByteSpan(offset: span.end, length: 0)
        var tag: ByteSpan?
        cursor.skipWhitespace()
        if cursor.consume(UInt8(ascii: ";")) {
            parameters = ByteSpan(from: cursor.position, to: cursor.end)
            tag = try validateHeaderParameters(bytes, parameters, captureTag: true)
        }
        guard cursor.isAtEnd || parameters.end == cursor.end else {
            throw SIPParseError(.invalidHeaderValue, at: cursor.position)
        }
        return NameAddress(span: span, displayName: displayName, uri: uri, isBracketed: isBracketed,
                           parameters: parameters, tag: tag)
    }

    /// Checks the form of one element around its URI, without parsing the URI or the parameters: an unquoted
    /// display name is only tokens and LWS (RFC 3261 §25.1 `display-name`), a quoted one is followed by `<`, and
    /// an address without `<...>` is one run of URI bytes (no `,` `"` `<` `>` in it) followed by nothing but LWS
    /// and `;` parameters. Anything else (`Bell, Alexander <sip:...>`, `Bob Smith sip:bob@x`, `a@b <sip:...>`)
    /// is a display name outside the grammar, which a proxy must not guess at: it throws `code` at the element's
    /// start (the caller names its header). Unterminated quotes throw `unterminatedQuotedString`.
    ///
    /// The forwarding path runs this on From, To, Contact, Route and Record-Route; ``parse(_:_:)`` runs it first,
    /// so an element it accepts never fails the full parse for its display name (the fuzzer checks that).
    public static func checkForm(_ bytes: PacketBytes, _ span: ByteSpan,
                                 code: SIPParseError.Code) throws(SIPParseError) {
        var cursor = ValueCursor(bytes, span)
        cursor.skipWhitespace()
        if cursor.peek() == UInt8(ascii: "\"") {
            _ = try cursor.scanQuotedString()
            cursor.skipWhitespace()
            guard cursor.peek() == UInt8(ascii: "<") else { throw SIPParseError(code, at: span.start) }
        } else {
            let start = cursor.position
            while cursor.scanToken() != nil { cursor.skipWhitespace() }
            if cursor.peek() != UInt8(ascii: "<") {
                // addr-spec: the URI runs to the first ';' or LWS; only LWS and parameters may follow it.
                cursor.position = bytes.endOfAddrSpec(in: ByteSpan(from: start, to: span.end))
                if let byte = cursor.peek(), byte != UInt8(ascii: ";"), !ASCII.isLinearWhitespace(byte) {
                    throw SIPParseError(code, at: span.start)  // `,` `"` `<` or `>` inside the URI
                }
                cursor.skipWhitespace()
                guard cursor.isAtEnd || cursor.peek() == UInt8(ascii: ";") else {
                    throw SIPParseError(code, at: span.start)
                }
                return
            }
        }
        // name-addr: `<` found; what follows the matching `>` is LWS and parameters only.
        guard let close = bytes.firstIndex(of: UInt8(ascii: ">"), in: ByteSpan(from: cursor.position, to: span.end))
        else { return }  // no '>': a structural error the full parse reports as the header's own
        cursor.position = close + 1
        cursor.skipWhitespace()
        guard cursor.isAtEnd || cursor.peek() == UInt8(ascii: ";") else { throw SIPParseError(code, at: span.start) }
    }

    /// From and To in their common form, `[display-name tokens] <URI>[;parameters]` with no quote anywhere and no
    /// `<` or `>` but the URI's, read in one pass for the brackets and quickTag's parameter walk: what
    /// ``checkForm(_:_:code:)`` accepts and ``quickTag(_:_:code:)`` finds, as `.some(tag)` (`.some(nil)` without a
    /// tag). Nil for any other shape, or any fault, which the caller leaves to those two (they report it); tests
    /// compare both roads.
    static func commonFormTag(_ bytes: PacketBytes, _ span: ByteSpan) -> ByteSpan?? {
        guard let (open, close) = bytes.angleBrackets(in: span),
            CharacterClass.displayNameTokens.containsAll(of: ByteSpan(from: span.start, to: open), in: bytes)
        else { return nil }
        var cursor = ValueCursor(bytes, ByteSpan(from: close + 1, to: span.end))
        cursor.skipWhitespace()
        guard !cursor.isAtEnd else { return .some(nil) }
        guard cursor.consume(UInt8(ascii: ";")) else { return nil }
        do {
            return .some(try tagParameter(&cursor, code: .invalidHeaderValue))
        } catch {
            return nil
        }
    }

    /// Finds the `tag` header parameter of a From/To value in one pass, without parsing the address: the first
    /// `;` outside quotes and `<...>` starts the header parameters (RFC 3261 §20.10). Throws `code` for a tag
    /// without a token value, `unterminatedQuotedString` for an open quote.
    public static func quickTag(_ bytes: PacketBytes, _ span: ByteSpan,
                                code: SIPParseError.Code = .invalidHeaderValue) throws(SIPParseError) -> ByteSpan? {
        var i = span.start
        var inAngle = false
        // Fast path: no quoted display name, so the address ends at the last '>' (or, with no '<', the header
        // parameters start at the first ';'): skip there with memchr instead of walking every byte.
        if bytes.firstIndex(of: UInt8(ascii: "\""), in: span) == nil {
            if bytes.firstIndex(of: UInt8(ascii: "<"), in: span) != nil {
                guard let close = bytes.lastIndex(of: UInt8(ascii: ">"), in: span) else { return nil }
                i = close + 1
            }
        }
        while i < span.end {
            let byte = bytes[i]
            if byte == UInt8(ascii: "\"") {
                var cursor = ValueCursor(bytes, ByteSpan(from: i, to: span.end))
                i = try cursor.scanQuotedString().end
                continue
            }
            if byte == UInt8(ascii: "<") {
                inAngle = true
            } else if byte == UInt8(ascii: ">") {
                inAngle = false
            } else if byte == UInt8(ascii: ";") && !inAngle {
                var cursor = ValueCursor(bytes, ByteSpan(from: i + 1, to: span.end))
                return try tagParameter(&cursor, code: code)
            }
            i += 1
        }
        return nil
    }

    /// The `tag` among From/To header parameters, `cursor` just after the `;` that starts them; nil when there is
    /// none. Throws `code` for a tag without a token value, `unterminatedQuotedString` for an open quote in a value
    /// skipped on the way.
    private static func tagParameter(_ cursor: inout ValueCursor,
                                     code: SIPParseError.Code) throws(SIPParseError) -> ByteSpan? {
        let bytes = cursor.bytes
        // Most often the tag comes first, written `tag=token`: read it straight away.
        let first = cursor.position
        if cursor.end - first > 4, ASCII.lowercased(word: bytes.word(at: first, length: 4)) == ASCII.word("tag=") {
            let valueEnd = CharacterClass.token.endOfRun(in: bytes, from: first + 4, to: cursor.end)
            if valueEnd > first + 4 {
                cursor.position = valueEnd
                return ByteSpan(from: first + 4, to: valueEnd)
            }
        }
        while true {
            cursor.skipWhitespace()
            let name = cursor.scan(.token)
            if name.count == 3, ASCII.lowercased(word: bytes.word(at: name.start, length: 3)) == ASCII.word("tag") {
                guard cursor.consumeSeparator(UInt8(ascii: "=")), let tag = cursor.scanToken() else {
                    throw SIPParseError(code, at: name.start)
                }
                return tag
            }
            // Skip this parameter's value (token, host or quoted string) to the next ';'.
            while let next = cursor.peek(), next != UInt8(ascii: ";") {
                if next == UInt8(ascii: "\"") {
                    _ = try cursor.scanQuotedString()
                } else {
                    cursor.position += 1
                }
            }
            guard cursor.consume(UInt8(ascii: ";")) else { return nil }
        }
    }

    /// Validates `;`-separated header parameters (token [= token / host / quoted-string]); returns the tag value
    /// when `captureTag` and present.
    static func validateHeaderParameters(_ bytes: PacketBytes, _ span: ByteSpan,
                                         captureTag: Bool) throws(SIPParseError) -> ByteSpan? {
        var iterator = ParameterIterator(bytes, span, allowsWhitespace: true)
        var tag: ByteSpan?
        while let parameter = try iterator.next() {
            guard !parameter.name.isEmpty, isAll(bytes, parameter.name, .token) else {
                throw SIPParseError(.invalidHeaderValue, at: parameter.name.start)
            }
            if let value = parameter.value {
                let quoted = !value.isEmpty && bytes[value.start] == UInt8(ascii: "\"")
                guard quoted || (!value.isEmpty && isAll(bytes, value, .genericValue)) else {
                    throw SIPParseError(.invalidHeaderValue, at: value.start)
                }
            }
            if captureTag, tag == nil, bytes.equalsIgnoringCase(parameter.name, "tag") {
                guard let value = parameter.value, isAll(bytes, value, .token) else {
                    throw SIPParseError(.invalidHeaderValue, at: parameter.name.start)
                }
                tag = value
            }
        }
        return tag
    }

    @inline(__always)
    static func isAll(_ bytes: PacketBytes, _ span: ByteSpan, _ characters: CharacterClass) -> Bool {
        characters.containsAll(of: span, in: bytes)
    }

    /// The header parameter called `name` (case-insensitive), if present.
    public func parameter(_ name: StaticString, in bytes: PacketBytes) -> Parameter? {
        SIPURI.findParameter(name, in: parameters, bytes: bytes, allowsWhitespace: true)
    }
}
