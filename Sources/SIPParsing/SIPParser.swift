public import SIPBytes

/// Limits the parser enforces. Every one is configurable; the defaults are safe for a public edge.
public struct ParseLimits: Sendable, Equatable {
    /// Scanner limits: message size (default 65,536), line length (8,192), header count (128).
    public var scan: ScanLimits
    /// Most Via hops across all Via lines. Default: 70, the usual initial Max-Forwards, so no message that could
    /// have arrived legitimately is refused (RFC 4475 longreq has 34). Edge policy sets its own, tighter limit.
    public var maxViaHops: Int
    /// Longest Request-URI or header URI, in bytes. Default: 2,048.
    public var maxURILength: Int

    public init(scan: ScanLimits = ScanLimits(), maxViaHops: Int = 70, maxURILength: Int = 2_048) {
        self.scan = scan
        self.maxViaHops = maxViaHops
        self.maxURILength = maxURILength
    }
}

/// How the message arrived, which decides how the body is delimited (RFC 3261 §18.3).
public enum Framing: Sendable {
    /// One message per datagram: Content-Length may be absent (the body is the rest); bytes after it are ignored.
    case datagram
    /// A stream: Content-Length is mandatory.
    case stream
}

/// Parses SIP messages without copying: the C scanner finds the lines, this type reads the start line and the
/// headers a proxy needs (Via, From, To, Call-ID, CSeq, Max-Forwards, Content-Length) and checks the rules that
/// keep a message unambiguous. ``validateAllHeaders(_:)`` checks the grammar of every other known header.
///
/// One per worker thread: it owns the reusable header table, so a parsed ``SIPMessage`` is valid only until the
/// next `parse`.
public final class SIPParser {
    public let scanner: MessageScanner
    /// Constant, like every stored property read per parse: a class's `var` costs a run-time exclusivity check
    /// per read. A reload builds a new parser.
    public let limits: ParseLimits
    /// Read the common shapes of the start line (Request-URI included), the top Via, CSeq, Max-Forwards and
    /// Content-Length in one pass (the default). Off, every message takes the full grammar; the outcome is the same either way (tests and the fuzzer compare the two).
    public let readsCommonFormsInOnePass: Bool

    public init(limits: ParseLimits = ParseLimits(), simd: SIMDLevel = .auto,
                readsCommonFormsInOnePass: Bool = true) throws(ScannerSetupError) {
        self.limits = limits
        self.readsCommonFormsInOnePass = readsCommonFormsInOnePass
        self.scanner = try MessageScanner(simd: simd, headerCapacity: Int(max(limits.scan.maxHeaders, 1)))
    }

    /// Parses one message. Throws the first rule broken.
    public func parse(_ bytes: PacketBytes, framing: Framing = .datagram) throws(SIPParseError) -> SIPMessage {
        let onePass = readsCommonFormsInOnePass
        let startLineSpan: ByteSpan
        let headerCount: Int
        let bodyOffset: Int
        let headerFlags: HeaderLineFlags
        switch scanner.scan(bytes, limits: limits.scan) {
        case let .complete(startLine, count, offset, flags):
            (startLineSpan, headerCount, bodyOffset, headerFlags) = (startLine, count, offset, flags)
        case .incomplete:
            throw SIPParseError(.incompleteHeaders, at: bytes.count)
        case let .invalid(error, offset):
            throw SIPParseError(SIPParseError.Code(error), at: offset)
        }
        let table = scanner.headers
        let startLine = try StartLineParser.parse(bytes, startLineSpan, maxURILength: limits.maxURILength,
                                                  commonFormFirst: onePass)

        let headerSet = HeaderSet(rawValue: scanner.lastHeaderKinds)
        var from: ByteSpan?
        var to: ByteSpan?
        var fromTag: ByteSpan?
        var toTag: ByteSpan?
        var callID: ByteSpan?
        var cseq: CSeq?
        var topVia: ViaHop?
        var topViaIndex = -1
        var viaHops = 0
        var maxForwards: UInt8?
        var contentLength: UInt32?

        // Most messages have no control character at all: then no line needs looking at for them.
        let anyControlCharacters = headerFlags.contains(.controlCharacters)
        for index in 0..<headerCount {
            let line = table[index]
            let kind = HeaderKind(code: line.kindCode)
            if anyControlCharacters && line.flags.contains(.controlCharacters) {
                try Self.checkControlCharacters(bytes, line.value)
            }
            switch kind {
            case .via:
                if topVia != nil {
                    viaHops += try CommaSeparatedValues.count(bytes, line.value)
                } else if onePass, let (hop, hopEnd) = ViaHop.parseCommonForm(bytes, line.value) {
                    topVia = hop
                    topViaIndex = index
                    viaHops += 1
                    if hopEnd < line.value.end {  // a comma: the hops after it, one at least (maybe empty)
                        let rest = ByteSpan(from: hopEnd + 1, to: line.value.end)
                        viaHops += rest.isEmpty ? 1 : try CommaSeparatedValues.count(bytes, rest)
                    }
                } else {
                    let (hop, hops) = try Self.readViaLine(bytes, line.value)
                    topVia = hop
                    topViaIndex = index
                    viaHops += hops
                }
                if viaHops > limits.maxViaHops { throw SIPParseError(.tooManyVias, at: line.name.start) }
            case .from:
                guard from == nil else { throw SIPParseError(.duplicateHeader, at: line.name.start) }
                from = line.value
                if onePass, let tag = NameAddress.commonFormTag(bytes, line.value) {
                    fromTag = tag
                } else {
                    fromTag = try NameAddress.quickTag(bytes, line.value, code: .invalidFrom)
                    try NameAddress.checkForm(bytes, line.value, code: .invalidDisplayNameInFrom)
                }
            case .to:
                guard to == nil else { throw SIPParseError(.duplicateHeader, at: line.name.start) }
                to = line.value
                if onePass, let tag = NameAddress.commonFormTag(bytes, line.value) {
                    toTag = tag
                } else {
                    toTag = try NameAddress.quickTag(bytes, line.value, code: .invalidTo)
                    try NameAddress.checkForm(bytes, line.value, code: .invalidDisplayNameInTo)
                }
            case .contact:
                if !Self.isWildcard(bytes, line.value) {
                    try Self.checkEachForm(bytes, line.value, code: .invalidDisplayNameInContact)
                }
            case .route:
                try Self.checkEachForm(bytes, line.value, code: .invalidDisplayNameInRoute)
            case .recordRoute:
                try Self.checkEachForm(bytes, line.value, code: .invalidDisplayNameInRecordRoute)
            case .callID:
                guard callID == nil else { throw SIPParseError(.duplicateHeader, at: line.name.start) }
                callID = try Self.parseCallID(bytes, line.value)
            case .cseq:
                guard cseq == nil else { throw SIPParseError(.duplicateHeader, at: line.name.start) }
                cseq = try Self.parseCSeq(bytes, line.value, commonFormFirst: onePass)
            case .maxForwards:
                guard maxForwards == nil else { throw SIPParseError(.duplicateHeader, at: line.name.start) }
                if onePass, let number = Self.plainNumber(bytes, line.value, maxDigits: 3, limit: 255) {
                    maxForwards = UInt8(number)
                } else {
                    maxForwards = UInt8(try Self.readNumber(bytes, line.value, limit: 255, invalid: .invalidMaxForwards,
                                                            outOfRange: .maxForwardsOutOfRange))
                }
            case .contentLength:
                let length: UInt32
                if onePass, let number = Self.plainNumber(bytes, line.value, maxDigits: 10, limit: UInt64(UInt32.max)) {
                    length = UInt32(number)
                } else {
                    length = UInt32(try Self.readNumber(bytes, line.value, limit: UInt64(UInt32.max),
                                                        invalid: .invalidContentLength,
                                                        outOfRange: .contentLengthOutOfRange))
                }
                // Two different lengths make the framing ambiguous (request smuggling); equal repeats are harmless.
                if let previous = contentLength, previous != length {
                    throw SIPParseError(.conflictingContentLength, at: line.name.start)
                }
                contentLength = length
            default:
                break
            }
        }

        guard let topVia else { throw SIPParseError(.missingVia, at: startLineSpan.end) }
        guard let from else { throw SIPParseError(.missingFrom, at: startLineSpan.end) }
        guard let to else { throw SIPParseError(.missingTo, at: startLineSpan.end) }
        guard let callID else { throw SIPParseError(.missingCallID, at: startLineSpan.end) }
        guard let cseq else { throw SIPParseError(.missingCSeq, at: startLineSpan.end) }
        if case .request(let request) = startLine, !request.method.isSameMethod(as: cseq.method, in: bytes) {
            throw SIPParseError(.cseqMethodMismatch, at: cseq.method.span.start)
        }

        let available = bytes.count - bodyOffset
        let body: ByteSpan
        if let contentLength {
            guard Int(contentLength) <= available else {
                throw SIPParseError(.contentLengthExceedsMessage, at: bodyOffset)
            }
            body = ByteSpan(offset: bodyOffset, length: Int(contentLength))
        } else {
            guard framing == .datagram else { throw SIPParseError(.missingContentLength, at: bodyOffset) }
            body = ByteSpan(offset: bodyOffset, length: available)
        }

        return SIPMessage(
            bytes: bytes, table: table, generation: table.generation, startLine: startLine,
            startLineSpan: startLineSpan, headerCount: headerCount, headerSet: headerSet, headerFlags: headerFlags,
            body: body, messageEnd: body.end, callID: callID, cseq: cseq, fromValue: from, toValue: to,
            fromTag: fromTag, toTag: toTag, topVia: topVia,
            topViaHeaderIndex: topViaIndex, viaHopCount: viaHops, maxForwards: maxForwards,
            contentLength: contentLength
        )
    }

    /// Checks the grammar of every header the table knows that ``parse(_:framing:)`` did not already check: every
    /// Via hop, Contact, Route, Record-Route, Path, Service-Route, Date, Expires, Content-Type, token lists.
    /// For `sip-edge check`, conformance tests and strict policy; the forwarding path does not need it.
    public func validateAllHeaders(_ message: SIPMessage) throws(SIPParseError) {
        let bytes = message.bytes
        for index in 0..<message.headerCount {
            let line = message.header(at: index)
            switch HeaderKind(code: line.kindCode) {
            case .from, .to:
                let code: SIPParseError.Code = line.kindCode == HeaderKind.from.code ? .invalidFrom : .invalidTo
                _ = try Self.parseNameAddress(bytes, line.value, as: code, maxURILength: limits.maxURILength)
            case .via:
                try Self.forEachElement(bytes, line.value, code: .invalidVia) { (element) throws(SIPParseError) in
                    _ = try ViaHop.parse(bytes, element)
                }
            case .contact:
                if Self.isWildcard(bytes, line.value) { continue }
                try Self.forEachElement(bytes, line.value, code: .invalidContact) { (element) throws(SIPParseError) in
                    let contact = try Self.parseNameAddress(bytes, element, as: .invalidContact,
                                                            maxURILength: limits.maxURILength)
                    if let expires = contact.parameter("expires", in: bytes) {
                        try Self.requireDeltaSeconds(bytes, expires.value, code: .invalidContact)
                    }
                }
            case .route, .recordRoute, .path, .serviceRoute:
                let code: SIPParseError.Code = switch HeaderKind(code: line.kindCode) {
                case .route: .invalidRoute
                case .recordRoute: .invalidRecordRoute
                default: .invalidPath
                }
                try Self.forEachElement(bytes, line.value, code: code) { (element) throws(SIPParseError) in
                    let address = try Self.parseNameAddress(bytes, element, as: code, maxURILength: limits.maxURILength)
                    guard address.isBracketed else { throw SIPParseError(code, at: element.start) }
                }
            case .date:
                try DateValidator.validate(bytes, line.value)
            case .expires, .minExpires:
                try Self.requireDeltaSeconds(bytes, line.value, code: .invalidExpires)
            case .contentType:
                try Self.validateMediaType(bytes, line.value)
            case .supported, .require, .proxyRequire, .unsupported, .allow:
                guard !line.value.isEmpty || HeaderKind(code: line.kindCode) != .require else {
                    throw SIPParseError(.invalidHeaderValue, at: line.value.start)
                }
                try Self.forEachElement(bytes, line.value, code: .invalidHeaderValue) { (element) throws(SIPParseError) in
                    guard !element.isEmpty, NameAddress.isAll(bytes, element, .token) else {
                        throw SIPParseError(.invalidHeaderValue, at: element.start)
                    }
                }
            default:
                break
            }
        }
    }

    // MARK: - Pieces

    static func parseNameAddress(_ bytes: PacketBytes, _ span: ByteSpan, as code: SIPParseError.Code,
                                 maxURILength: Int) throws(SIPParseError) -> NameAddress {
        let address: NameAddress
        do throws(SIPParseError) {
            address = try NameAddress.parse(bytes, span)
        } catch {
            switch error.code {
            case .invalidHeaderValue: throw SIPParseError(code, at: Int(error.offset))
            case .invalidDisplayName: throw SIPParseError(Self.displayNameCode(for: code), at: Int(error.offset))
            default: throw error
            }
        }
        guard address.uri.span.count <= maxURILength else { throw SIPParseError(.invalidURI, at: span.start) }
        return address
    }

    /// The display-name error that names the header whose own error is `headerCode`.
    static func displayNameCode(for headerCode: SIPParseError.Code) -> SIPParseError.Code {
        switch headerCode {
        case .invalidFrom: .invalidDisplayNameInFrom
        case .invalidTo: .invalidDisplayNameInTo
        case .invalidContact: .invalidDisplayNameInContact
        case .invalidRoute: .invalidDisplayNameInRoute
        case .invalidRecordRoute: .invalidDisplayNameInRecordRoute
        default: .invalidDisplayName
        }
    }

    /// Calls `body` for each comma-separated element; an empty element is an error (`code`).
    static func forEachElement(_ bytes: PacketBytes, _ span: ByteSpan, code: SIPParseError.Code,
                               _ body: (ByteSpan) throws(SIPParseError) -> Void) throws(SIPParseError) {
        var elements = CommaSeparatedValues(bytes, span)
        var sawOne = false
        while let element = try elements.next() {
            guard !element.isEmpty else { throw SIPParseError(code, at: element.start) }
            try body(element)
            sawOne = true
        }
        guard sawOne else { throw SIPParseError(code, at: span.start) }
    }

    /// ``NameAddress/checkForm(_:_:code:)`` on every comma-separated element of a Contact, Route or Record-Route
    /// line. Empty elements are left to the full validation (which reports them as the header's own error).
    static func checkEachForm(_ bytes: PacketBytes, _ span: ByteSpan, code: SIPParseError.Code) throws(SIPParseError) {
        var elements = CommaSeparatedValues(bytes, span)
        while let element = try elements.next() {
            if !element.isEmpty { try NameAddress.checkForm(bytes, element, code: code) }
        }
    }

    static func isWildcard(_ bytes: PacketBytes, _ span: ByteSpan) -> Bool {
        span.count == 1 && bytes[span.start] == UInt8(ascii: "*")
    }

    /// Call-ID = word [ "@" word ].
    @inline(__always)
    static func parseCallID(_ bytes: PacketBytes, _ span: ByteSpan) throws(SIPParseError) -> ByteSpan {
        var cursor = ValueCursor(bytes, span)
        guard !cursor.scan(.word).isEmpty else { throw SIPParseError(.invalidCallID, at: span.start) }
        if cursor.consume(UInt8(ascii: "@")) {
            guard !cursor.scan(.word).isEmpty else { throw SIPParseError(.invalidCallID, at: cursor.position) }
        }
        guard cursor.isAtEnd else { throw SIPParseError(.invalidCallID, at: cursor.position) }
        return span
    }

    /// CSeq = 1*DIGIT LWS Method, the number at most 2^32 - 1.
    @inline(__always)
    static func parseCSeq(_ bytes: PacketBytes, _ span: ByteSpan,
                          commonFormFirst: Bool = true) throws(SIPParseError) -> CSeq {
        if commonFormFirst, let cseq = cseqCommonForm(bytes, span) { return cseq }
        var cursor = ValueCursor(bytes, span)
        guard let number = cursor.scanNumber(limit: UInt64(UInt32.max)) else {
            throw SIPParseError(.invalidCSeq, at: span.start)
        }
        guard !number.overflow else { throw SIPParseError(.cseqOutOfRange, at: span.start) }
        let beforeSpace = cursor.position
        cursor.skipWhitespace()
        guard cursor.position > beforeSpace, let method = cursor.scanToken(), cursor.isAtEnd else {
            throw SIPParseError(.invalidCSeq, at: cursor.position)
        }
        return CSeq(number: UInt32(number.value), method: SIPMethod.classify(bytes, method))
    }

    /// The common CSeq, `1*10DIGIT SP Method` within 32 bits, read in one pass; nil for anything else (leading
    /// zeros past 10 digits, other whitespace, errors), which ``parseCSeq(_:_:)`` then reads in full.
    @inline(__always)
    static func cseqCommonForm(_ bytes: PacketBytes, _ span: ByteSpan) -> CSeq? {
        let start = span.start
        let end = span.end
        let (value, i) = bytes.decimalRun(from: start, to: end, maxDigits: 10)
        guard i > start, value <= UInt64(UInt32.max), i + 1 < end, bytes[i] == 0x20,
            CharacterClass.token.endOfRun(in: bytes, from: i + 1, to: end) == end
        else { return nil }
        return CSeq(number: UInt32(value), method: SIPMethod.classify(bytes, ByteSpan(from: i + 1, to: end)))
    }

    /// Every hop of a Via line (the first one in full) when it is the first Via line and the one-pass reading did not
    /// take it. Out of line: the common case never comes here, and keeping it out keeps ``parse(_:framing:)`` lean.
    @inline(never)
    static func readViaLine(_ bytes: PacketBytes, _ value: ByteSpan) throws(SIPParseError) -> (top: ViaHop?, hops: Int) {
        var elements = CommaSeparatedValues(bytes, value)
        var top: ViaHop?
        var hops = 0
        while let element = try elements.next() {
            hops += 1
            if top == nil { top = try ViaHop.parse(bytes, element) }
        }
        return (top, hops)
    }

    /// The full reading of a number value (Max-Forwards, Content-Length, delta-seconds): 1*DIGIT, leading zeros
    /// allowed, at most `limit`. Out of line, like ``readViaLine(_:_:)``.
    @inline(never)
    static func readNumber(_ bytes: PacketBytes, _ span: ByteSpan, limit: UInt64, invalid: SIPParseError.Code,
                           outOfRange: SIPParseError.Code) throws(SIPParseError) -> UInt64 {
        var cursor = ValueCursor(bytes, span)
        guard let number = cursor.scanNumber(limit: limit), cursor.isAtEnd else { throw SIPParseError(invalid, at: span.start) }
        guard !number.overflow else { throw SIPParseError(outOfRange, at: span.start) }
        return number.value
    }

    /// The common number value: the whole span is 1 to `maxDigits` digits, at most `limit`. Nil for anything else
    /// (then the full reading decides, with its errors).
    @inline(__always)
    static func plainNumber(_ bytes: PacketBytes, _ span: ByteSpan, maxDigits: Int, limit: UInt64) -> UInt64? {
        let (value, end) = bytes.decimalRun(from: span.start, to: span.end, maxDigits: maxDigits)
        return end == span.end && end > span.start && value <= limit ? value : nil
    }

    /// delta-seconds = 1*DIGIT, at most 2^32 - 1 (RFC 3261 §20.19; RFC 4475 scalar02).
    static func requireDeltaSeconds(_ bytes: PacketBytes, _ span: ByteSpan?,
                                    code: SIPParseError.Code) throws(SIPParseError) {
        guard let span else { throw SIPParseError(code, at: 0) }
        _ = try readNumber(bytes, span, limit: UInt64(UInt32.max), invalid: code, outOfRange: code)
    }

    /// media-type = m-type SLASH m-subtype *( SEMI m-parameter ).
    static func validateMediaType(_ bytes: PacketBytes, _ span: ByteSpan) throws(SIPParseError) {
        var cursor = ValueCursor(bytes, span)
        guard cursor.scanToken() != nil, cursor.consumeSeparator(UInt8(ascii: "/")), cursor.scanToken() != nil else {
            throw SIPParseError(.invalidHeaderValue, at: cursor.position)
        }
        cursor.skipWhitespace()
        if cursor.consume(UInt8(ascii: ";")) {
            do {
                _ = try NameAddress.validateHeaderParameters(bytes, ByteSpan(from: cursor.position, to: cursor.end),
                                                             captureTag: false)
            } catch {
                throw SIPParseError(.invalidHeaderValue, at: Int(error.offset))
            }
        } else if !cursor.isAtEnd {
            throw SIPParseError(.invalidHeaderValue, at: cursor.position)
        }
    }

    /// Control characters in a header value are legal only as a quoted-pair inside a quoted string.
    static func checkControlCharacters(_ bytes: PacketBytes, _ span: ByteSpan) throws(SIPParseError) {
        var inQuotes = false
        var i = span.start
        while i < span.end {
            let byte = bytes[i]
            if inQuotes && byte == UInt8(ascii: "\\") {
                i += 2
                continue
            }
            if byte == UInt8(ascii: "\"") {
                inQuotes.toggle()
            } else if (byte < 0x20 && byte != 0x09 && byte != 0x0D && byte != 0x0A) || byte == 0x7F {
                throw SIPParseError(byte == 0 ? .nulByte : .controlCharacter, at: i)
            }
            i += 1
        }
    }
}

/// Start-line grammar (RFC 3261 §7.1, §7.2), strict about whitespace: exactly one SP between elements.
enum StartLineParser {
    static func parse(_ bytes: PacketBytes, _ span: ByteSpan, maxURILength: Int,
                      commonFormFirst: Bool = true) throws(SIPParseError) -> StartLine {
        if commonFormFirst, let line = try parseCommonForm(bytes, span, maxURILength: maxURILength) { return line }
        return try parseAnyForm(bytes, span, maxURILength: maxURILength)
    }

    /// The common shape, read in one pass: `METHOD SP Request-URI SP SIP/2.0` or `SIP/2.0 SP 3DIGIT [SP reason]`.
    /// Nil for anything else (extra whitespace, another version, a URI that does not parse): then
    /// ``parseAnyForm(_:_:maxURILength:)`` decides, so every error comes from one place. What this accepts, that
    /// parses to the same line.
    static func parseCommonForm(_ bytes: PacketBytes, _ span: ByteSpan,
                                        maxURILength: Int) throws(SIPParseError) -> StartLine? {
        let start = span.start
        let end = span.end
        guard span.count >= 11 else { return nil }  // "SIP/2.0 200", the shortest common line
        let first = bytes.word(at: start, length: 8)
        if first & 0xDF == UInt64(UInt8(ascii: "S")), ASCII.lowercased(word: first) == ASCII.word("sip/2.0 ") {
            let codeStart = start + 8
            guard codeStart + 3 <= end, ASCII.isDigit(bytes[codeStart]), ASCII.isDigit(bytes[codeStart + 1]),
                ASCII.isDigit(bytes[codeStart + 2])
            else { return nil }
            let code = UInt16(bytes[codeStart] &- 0x30) * 100 + UInt16(bytes[codeStart + 1] &- 0x30) * 10
                + UInt16(bytes[codeStart + 2] &- 0x30)
            guard code >= 100, code <= 699 else { return nil }
            var reason = ByteSpan(offset: end, length: 0)
            if codeStart + 3 < end {
                guard bytes[codeStart + 3] == 0x20 else { return nil }
                reason = ByteSpan(from: codeStart + 4, to: end)
            }
            return .response(StatusLine(version: ByteSpan(offset: start, length: 7), statusCode: code,
                                        reasonPhrase: reason))
        }
        let methodEnd = CharacterClass.token.endOfRun(in: bytes, from: start, to: end)
        guard methodEnd > start, bytes[methodEnd] == 0x20 else { return nil }
        // The version is the last 8 bytes: " SIP/2.0".
        let versionStart = end - 7
        guard versionStart > methodEnd + 1,
            ASCII.lowercased(word: bytes.word(at: versionStart - 1, length: 8)) == ASCII.word(" sip/2.0")
        else { return nil }
        let uriSpan = ByteSpan(from: methodEnd + 1, to: versionStart - 1)
        guard uriSpan.count <= maxURILength,
            let uri = SIPURI.parseCommonForm(bytes, uriSpan) ?? (try? SIPURI.parse(bytes, uriSpan))
        else { return nil }
        if uri.headers != nil { throw SIPParseError(.requestURIHasHeaders, at: uriSpan.start) }
        let method = ByteSpan(from: start, to: methodEnd)
        return .request(RequestLine(method: SIPMethod.classify(bytes, method), uri: uri,
                                    version: ByteSpan(offset: versionStart, length: 7)))
    }

    private static func parseAnyForm(_ bytes: PacketBytes, _ span: ByteSpan,
                                     maxURILength: Int) throws(SIPParseError) -> StartLine {
        // A whitespace problem anywhere in the line (double SP, leading or trailing SP, HTAB) gets its own code:
        // RFC 4475 lwsstart and trws.
        guard !span.isEmpty else { throw SIPParseError(.invalidStartLine, at: span.start) }
        if ASCII.isWhitespace(bytes[span.start]) { throw SIPParseError(.startLineWhitespace, at: span.start) }
        guard let firstSpace = bytes.firstIndex(of: 0x20, in: span) else {
            throw SIPParseError(.invalidStartLine, at: span.end)
        }
        let first = ByteSpan(from: span.start, to: firstSpace)
        if bytes.firstIndex(of: 0x09, in: first) != nil { throw SIPParseError(.startLineWhitespace, at: span.start) }

        if first.count >= 4, bytes.equalsIgnoringCase(ByteSpan(offset: first.offset, length: 4), "SIP/") {
            return .response(try parseStatusLine(bytes, span, version: first))
        }
        return .request(try parseRequestLine(bytes, span, method: first, maxURILength: maxURILength))
    }

    private static func parseRequestLine(_ bytes: PacketBytes, _ span: ByteSpan, method: ByteSpan,
                                         maxURILength: Int) throws(SIPParseError) -> RequestLine {
        guard NameAddress.isAll(bytes, method, .token) else { throw SIPParseError(.invalidMethod, at: method.start) }
        // A response's empty Reason-Phrase leaves a trailing SP; a request line never has one (RFC 4475 trws), nor
        // any HTAB (a reason phrase may).
        if ASCII.isWhitespace(bytes[span.end - 1]) { throw SIPParseError(.startLineWhitespace, at: span.end - 1) }
        if let tab = bytes.firstIndex(of: 0x09, in: span) { throw SIPParseError(.startLineWhitespace, at: tab) }
        // The version is after the last SP; everything between is the Request-URI, which has no whitespace.
        var lastSpace = span.end - 1
        while bytes[lastSpace] != 0x20 { lastSpace -= 1 }
        // One SP only: no room for both a URI and a version.
        guard lastSpace > method.end else { throw SIPParseError(.invalidStartLine, at: span.end) }
        let uriSpan = ByteSpan(from: method.end + 1, to: lastSpace)
        let version = ByteSpan(from: lastSpace + 1, to: span.end)
        guard !uriSpan.isEmpty else { throw SIPParseError(.invalidStartLine, at: uriSpan.start) }
        if ASCII.isWhitespace(bytes[uriSpan.start]) || ASCII.isWhitespace(bytes[uriSpan.end - 1]) {
            throw SIPParseError(.startLineWhitespace, at: uriSpan.start)
        }
        try checkVersion(bytes, version)
        guard uriSpan.count <= maxURILength else { throw SIPParseError(.invalidRequestURI, at: uriSpan.start) }
        let uri: SIPURI
        do {
            uri = try SIPURI.parse(bytes, uriSpan)
        } catch {
            throw SIPParseError(.invalidRequestURI, at: Int(error.offset))
        }
        // RFC 3261 §19.1.5: headers are not allowed in a Request-URI (RFC 4475 escruri).
        if uri.headers != nil { throw SIPParseError(.requestURIHasHeaders, at: uriSpan.start) }
        return RequestLine(method: SIPMethod.classify(bytes, method), uri: uri, version: version)
    }

    private static func parseStatusLine(_ bytes: PacketBytes, _ span: ByteSpan,
                                        version: ByteSpan) throws(SIPParseError) -> StatusLine {
        try checkVersion(bytes, version)
        var cursor = ValueCursor(bytes, ByteSpan(from: version.end + 1, to: span.end))
        let codeStart = cursor.position
        guard let code = cursor.scanNumber(limit: 699), !code.overflow, cursor.position - codeStart == 3,
            code.value >= 100
        else { throw SIPParseError(.invalidStatusCode, at: codeStart) }
        // Reason-Phrase may be empty but the SP before it is required (RFC 4475 noreason); be lenient only about
        // a line that ends right after the code.
        var reason = ByteSpan(offset: span.end, length: 0)
        if !cursor.isAtEnd {
            guard cursor.consume(0x20) else { throw SIPParseError(.invalidStatusCode, at: cursor.position) }
            reason = ByteSpan(from: cursor.position, to: span.end)
        }
        return StatusLine(version: version, statusCode: UInt16(code.value), reasonPhrase: reason)
    }

    /// SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT; only 2.0 is supported (others get 505, RFC 4475 badvers).
    private static func checkVersion(_ bytes: PacketBytes, _ version: ByteSpan) throws(SIPParseError) {
        if bytes.firstIndex(of: 0x20, in: version) != nil || bytes.firstIndex(of: 0x09, in: version) != nil {
            throw SIPParseError(.startLineWhitespace, at: version.start)
        }
        var cursor = ValueCursor(bytes, version)
        guard version.count >= 4, bytes.equalsIgnoringCase(ByteSpan(offset: version.offset, length: 4), "SIP/") else {
            throw SIPParseError(.invalidSIPVersion, at: version.start)
        }
        cursor.position += 4
        guard let major = cursor.scanNumber(limit: 999), cursor.consume(UInt8(ascii: ".")),
            let minor = cursor.scanNumber(limit: 999), cursor.isAtEnd
        else { throw SIPParseError(.invalidSIPVersion, at: version.start) }
        guard major.value == 2, minor.value == 0, !major.overflow, !minor.overflow else {
            throw SIPParseError(.unsupportedSIPVersion, at: version.start)
        }
    }
}

/// SIP-date = rfc1123-date: `wkday "," SP date1 SP time SP "GMT"` (RFC 3261 §20.17; RFC 4475 baddate).
enum DateValidator {
    static func validate(_ bytes: PacketBytes, _ span: ByteSpan) throws(SIPParseError) {
        // "Sat, 13 Nov 2010 23:29:00 GMT" is exactly 29 bytes.
        guard span.count == 29 else { throw SIPParseError(.invalidDate, at: span.start) }
        let s = span.start
        func digits(_ from: Int, _ count: Int) -> Bool {
            (0..<count).allSatisfy { ASCII.isDigit(bytes[from + $0]) }
        }
        let weekdays: [StaticString] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
        let months: [StaticString] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                                      "Dec"]
        let day = ByteSpan(offset: s, length: 3)
        let month = ByteSpan(offset: s + 8, length: 3)
        guard weekdays.contains(where: { bytes.equals(day, $0) }),
            bytes[s + 3] == UInt8(ascii: ","), bytes[s + 4] == 0x20, digits(s + 5, 2), bytes[s + 7] == 0x20,
            months.contains(where: { bytes.equals(month, $0) }), bytes[s + 11] == 0x20, digits(s + 12, 4),
            bytes[s + 16] == 0x20, digits(s + 17, 2), bytes[s + 19] == UInt8(ascii: ":"), digits(s + 20, 2),
            bytes[s + 22] == UInt8(ascii: ":"), digits(s + 23, 2), bytes[s + 25] == 0x20,
            bytes.equals(ByteSpan(offset: s + 26, length: 3), "GMT")
        else { throw SIPParseError(.invalidDate, at: span.start) }
    }
}
