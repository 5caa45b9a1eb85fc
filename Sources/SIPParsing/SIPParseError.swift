import SIPBytes

/// A message broke a rule of the SIP grammar (RFC 3261 §25) or one of our limits.
///
/// `code` names the rule and is stable (it is the JSON `error` of `sip-edge check` and a metric label); `offset` is
/// the byte where the problem was found. Two errors are equal when their codes are, so tests compare against a
/// constructed error without caring where exactly the parser noticed.
public struct SIPParseError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Code: String, CaseIterable, Sendable {
        // Framing, found by the C scanner.
        case emptyMessage
        case bareLineFeed
        case bareCarriageReturn
        case nulByte
        case controlCharacter
        case lineTooLong
        case tooManyHeaders
        case messageTooLarge
        case emptyHeaderName
        case invalidHeaderName
        case missingColon
        case foldedStartLine
        case incompleteHeaders
        // Start line.
        case invalidStartLine
        case startLineWhitespace
        case invalidMethod
        case invalidRequestURI
        case requestURIHasHeaders
        case invalidSIPVersion
        case unsupportedSIPVersion
        case invalidStatusCode
        // Headers.
        case missingVia
        case missingFrom
        case missingTo
        case missingCallID
        case missingCSeq
        case duplicateHeader
        case invalidVia
        case tooManyVias
        case invalidFrom
        case invalidTo
        case invalidCallID
        case invalidCSeq
        case cseqOutOfRange
        case cseqMethodMismatch
        case invalidMaxForwards
        case maxForwardsOutOfRange
        case invalidContentLength
        case contentLengthOutOfRange
        case conflictingContentLength
        case contentLengthExceedsMessage
        case missingContentLength
        case invalidContact
        case invalidRoute
        case invalidRecordRoute
        case invalidPath
        case invalidURI
        case unterminatedQuotedString
        case invalidDisplayName
        // The same, on the headers the forwarding path checks, so that the 400 names the header.
        case invalidDisplayNameInFrom
        case invalidDisplayNameInTo
        case invalidDisplayNameInContact
        case invalidDisplayNameInRoute
        case invalidDisplayNameInRecordRoute
        case invalidDate
        case invalidExpires
        case invalidHeaderValue
    }

    public let code: Code
    /// Byte offset in the message where the problem was found.
    public let offset: UInt32

    public init(_ code: Code, at offset: Int) {
        self.code = code
        self.offset = UInt32(truncatingIfNeeded: offset)
    }

    public static func == (lhs: SIPParseError, rhs: SIPParseError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    public var description: String { "\(code.rawValue) at byte \(offset): \(code.explanation)" }
}

extension SIPParseError.Code {
    /// A short, fixed English explanation. Safe for a SIP reason phrase: it never contains message bytes.
    public var explanation: String {
        switch self {
        case .emptyMessage: "no start line"
        case .bareLineFeed: "LF without CR"
        case .bareCarriageReturn: "CR without LF"
        case .nulByte: "NUL byte in headers"
        case .controlCharacter: "control character in headers"
        case .lineTooLong: "line too long"
        case .tooManyHeaders: "too many headers"
        case .messageTooLarge: "message too large"
        case .emptyHeaderName: "empty header name"
        case .invalidHeaderName: "invalid header name"
        case .missingColon: "header without colon"
        case .foldedStartLine: "folded start line"
        case .incompleteHeaders: "headers not terminated"
        case .invalidStartLine: "malformed start line"
        case .startLineWhitespace: "bad whitespace in start line"
        case .invalidMethod: "invalid method"
        case .invalidRequestURI: "invalid Request-URI"
        case .requestURIHasHeaders: "headers in Request-URI"
        case .invalidSIPVersion: "malformed SIP version"
        case .unsupportedSIPVersion: "unsupported SIP version"
        case .invalidStatusCode: "invalid status code"
        case .missingVia: "missing Via"
        case .missingFrom: "missing From"
        case .missingTo: "missing To"
        case .missingCallID: "missing Call-ID"
        case .missingCSeq: "missing CSeq"
        case .duplicateHeader: "duplicate single-valued header"
        case .invalidVia: "malformed Via"
        case .tooManyVias: "too many Via hops"
        case .invalidFrom: "malformed From"
        case .invalidTo: "malformed To"
        case .invalidCallID: "malformed Call-ID"
        case .invalidCSeq: "malformed CSeq"
        case .cseqOutOfRange: "CSeq number out of range"
        case .cseqMethodMismatch: "CSeq method differs from request method"
        case .invalidMaxForwards: "malformed Max-Forwards"
        case .maxForwardsOutOfRange: "Max-Forwards out of range"
        case .invalidContentLength: "malformed Content-Length"
        case .contentLengthOutOfRange: "Content-Length out of range"
        case .conflictingContentLength: "conflicting Content-Length headers"
        case .contentLengthExceedsMessage: "Content-Length larger than message"
        case .missingContentLength: "missing Content-Length on stream"
        case .invalidContact: "malformed Contact"
        case .invalidRoute: "malformed Route"
        case .invalidRecordRoute: "malformed Record-Route"
        case .invalidPath: "malformed Path"
        case .invalidURI: "malformed URI"
        case .unterminatedQuotedString: "unterminated quoted string"
        case .invalidDisplayName: "malformed display name"
        case .invalidDisplayNameInFrom: "display name in From is not tokens or a quoted string"
        case .invalidDisplayNameInTo: "display name in To is not tokens or a quoted string"
        case .invalidDisplayNameInContact: "display name in Contact is not tokens or a quoted string"
        case .invalidDisplayNameInRoute: "display name in Route is not tokens or a quoted string"
        case .invalidDisplayNameInRecordRoute: "display name in Record-Route is not tokens or a quoted string"
        case .invalidDate: "malformed Date"
        case .invalidExpires: "malformed Expires"
        case .invalidHeaderValue: "malformed header value"
        }
    }

    init(_ scanError: ScanError) {
        switch scanError {
        case .empty: self = .emptyMessage
        case .bareLineFeed: self = .bareLineFeed
        case .bareCarriageReturn: self = .bareCarriageReturn
        case .nulByte: self = .nulByte
        case .controlCharacter: self = .controlCharacter
        case .lineTooLong: self = .lineTooLong
        case .tooManyHeaders: self = .tooManyHeaders
        case .messageTooLarge: self = .messageTooLarge
        case .emptyHeaderName: self = .emptyHeaderName
        case .invalidHeaderName: self = .invalidHeaderName
        case .missingColon: self = .missingColon
        case .foldedStartLine: self = .foldedStartLine
        }
    }
}
