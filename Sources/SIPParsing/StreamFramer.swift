public import SIPBytes

/// What the front of a stream buffer holds (RFC 3261 §18.3 framing over TCP/TLS).
public enum StreamFrame: Equatable, Sendable {
    /// A complete message in `message` (leading keep-alive CRLFs already skipped); consume up to `message.end`.
    case message(ByteSpan)
    /// An RFC 5626 keep-alive ping (CRLF CRLF): consume `consumed` bytes and answer with one CRLF (the pong).
    case ping(consumed: Int)
    /// Lone CRLFs that are not (yet) a ping: consume them, answer nothing.
    case padding(consumed: Int)
    /// Not enough bytes yet.
    case needMore
    /// The stream cannot be framed (no Content-Length, a bad one, too large): answer 400 if possible and close.
    case invalid(SIPParseError)
}

/// Finds message boundaries in a byte stream: headers end at the empty line, the body is exactly Content-Length
/// bytes (mandatory on streams). Never copies; works on the connection's buffer as it grows.
public enum StreamFramer {
    public static func nextFrame(in bytes: PacketBytes, scanner: MessageScanner,
                                 limits: ScanLimits = ScanLimits()) -> StreamFrame {
        // Keep-alives between messages (RFC 5626 §4.4.1): CRLF CRLF is a ping; a lone CRLF is padding.
        var start = 0
        while start + 1 < bytes.count, bytes[start] == 0x0D, bytes[start + 1] == 0x0A { start += 2 }
        // A trailing lone CR may be the first half of another CRLF: wait before deciding what the CRLFs were.
        let pendingCR = start + 1 == bytes.count && bytes[start] == 0x0D
        if start >= 4 { return .ping(consumed: start) }
        if start > 0 { return start == bytes.count || pendingCR ? .needMore : .padding(consumed: start) }
        if bytes.count == 0 || pendingCR { return .needMore }

        switch scanner.scan(bytes, limits: limits) {
        case .incomplete:
            return .needMore
        case let .invalid(error, offset):
            return .invalid(SIPParseError(SIPParseError.Code(error), at: offset))
        case let .complete(_, headerCount, bodyOffset, _):
            var contentLength: UInt64?
            for index in 0..<headerCount {
                let line = scanner.headers[index]
                guard line.kindCode == HeaderKind.contentLength.code else { continue }
                var cursor = ValueCursor(bytes, line.value)
                guard let number = cursor.scanNumber(limit: UInt64(limits.maxMessageSize)), cursor.isAtEnd else {
                    return .invalid(SIPParseError(.invalidContentLength, at: line.value.start))
                }
                guard !number.overflow else { return .invalid(SIPParseError(.messageTooLarge, at: line.value.start)) }
                if let previous = contentLength, previous != number.value {
                    return .invalid(SIPParseError(.conflictingContentLength, at: line.name.start))
                }
                contentLength = number.value
            }
            guard let contentLength else { return .invalid(SIPParseError(.missingContentLength, at: bodyOffset)) }
            let end = bodyOffset + Int(contentLength)
            guard end <= Int(limits.maxMessageSize) else { return .invalid(SIPParseError(.messageTooLarge, at: 0)) }
            guard end <= bytes.count else { return .needMore }
            return .message(ByteSpan(from: 0, to: end))
        }
    }
}
