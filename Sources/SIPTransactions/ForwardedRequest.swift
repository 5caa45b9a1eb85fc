import SIPBytes
import SIPParsing

/// What a transaction builds later from the request the edge forwarded (its own output, kept in the
/// ``MessageStore``), once the client's original is gone: the ACK for a non-2xx final response and the CANCEL
/// (RFC 3261 §17.1.1.3, §9.1), a response of the edge's own to the client (408, 500, 487), and the branch
/// rewritten for a failover.
///
/// The bytes are the edge's own output: a request that passed the strict parser, with the edge's Via as the first
/// header line. So a plain line walk suffices (folded lines are kept with their header).
public enum ForwardedRequest {
    /// The branch the edge writes: the magic cookie and 16 hex digits.
    static let branchPrefix: [UInt8] = Array(";branch=z9hG4bK".utf8)
    public static let branchDigits = 16

    /// Where the 16 hex digits of the edge's branch start: in its Via, the first header line.
    public static func branchDigitsOffset(in request: [UInt8]) -> Int? {
        guard let lineEnd = lineEnd(in: request, from: 0), lineEnd < request.count,
            let viaEnd = self.lineEnd(in: request, from: lineEnd) else { return nil }
        let prefix = branchPrefix
        var index = lineEnd
        while index + prefix.count + branchDigits <= viaEnd {
            if request[index] == prefix[0], request[index..<index + prefix.count].elementsEqual(prefix) {
                return index + prefix.count
            }
            index += 1
        }
        return nil
    }

    /// The branch value at `offset` (as ``branchDigitsOffset(in:)`` found it), or nil when the digits are not hex.
    public static func branch(at offset: Int, in request: [UInt8]) -> UInt64? {
        guard offset >= 0, offset + branchDigits <= request.count else { return nil }
        var value: UInt64 = 0
        for byte in request[offset..<offset + branchDigits] {
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            default: return nil
            }
            value = value << 4 | UInt64(digit)
        }
        return value
    }

    /// Writes `value` (a branch or a tag) as 16 lower-case hex digits at `offset`.
    public static func writeHex(_ value: UInt64, at offset: Int, in bytes: inout [UInt8]) {
        for index in 0..<branchDigits {
            let digit = UInt8((value >> UInt64(60 - 4 * index)) & 0xF)
            bytes[offset + index] = digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + digit - 10
        }
    }

    public enum HopMethod: Sendable {
        case ack, cancel
    }

    /// Builds into `output` the ACK (for a non-2xx final response; `responseTo` is that response's To line, with
    /// the tag the core chose) or the CANCEL (`responseTo` nil: the request's own To) of `request`: same
    /// Request-URI, the edge's Via alone, the request's Route, From, Call-ID and CSeq number (RFC 3261 §17.1.1.3,
    /// §9.1). False when a line it needs is missing.
    public static func buildHopRequest(_ method: HopMethod, of request: [UInt8], responseTo: [UInt8]?,
                                       into output: inout [UInt8]) -> Bool {
        guard let requestLineEnd = lineEnd(in: request, from: 0),
            let uri = requestURI(in: request, lineEnd: requestLineEnd),
            let viaEnd = lineEnd(in: request, from: requestLineEnd) else { return false }
        let methodName = method == .ack ? "ACK" : "CANCEL"
        output.removeAll(keepingCapacity: true)
        output.append(contentsOf: methodName.utf8)
        output.append(UInt8(ascii: " "))
        output.append(contentsOf: request[uri])
        output.append(contentsOf: " SIP/2.0\r\n".utf8)
        output.append(contentsOf: request[requestLineEnd..<viaEnd])
        var hasFrom = false, hasTo = false, hasCallID = false, hasCSeq = false
        var position = viaEnd
        while let end = lineEnd(in: request, from: position), end > position + 2 {
            defer { position = end }
            switch headerName(in: request, lineStart: position) {
            case .route:
                output.append(contentsOf: request[position..<end])
            case .from:
                hasFrom = true
                output.append(contentsOf: request[position..<end])
            case .to:
                hasTo = true
                if responseTo == nil { output.append(contentsOf: request[position..<end]) }
            case .callID:
                hasCallID = true
                output.append(contentsOf: request[position..<end])
            case .cseq:
                guard let number = cseqNumber(in: request, lineStart: position, lineEnd: end) else { return false }
                hasCSeq = true
                output.append(contentsOf: "CSeq: ".utf8)
                output.append(contentsOf: request[number])
                output.append(UInt8(ascii: " "))
                output.append(contentsOf: methodName.utf8)
                output.append(contentsOf: "\r\n".utf8)
            case .via, .other:
                break
            }
        }
        guard hasFrom, hasTo, hasCallID, hasCSeq else { return false }
        if let responseTo { output.append(contentsOf: responseTo) }
        output.append(contentsOf: "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n".utf8)
        return true
    }

    /// Builds into `output` a response of the edge's own to the client that sent `request` (RFC 3261 §8.2.6, §16.7
    /// step 6 and §16.8: 408 when no upstream answered, 500 for a 503, 487 for a cancelled INVITE): the client's
    /// Via lines (the request's after the edge's own), From, To with `tag` added when it has none, Call-ID, CSeq.
    /// `reason` is fixed text. False when a line it needs is missing.
    public static func buildResponse(status: UInt16, reason: StaticString, tag: UInt64, of request: [UInt8],
                                     into output: inout [UInt8]) -> Bool {
        guard let requestLineEnd = lineEnd(in: request, from: 0),
            let viaEnd = lineEnd(in: request, from: requestLineEnd) else { return false }
        output.removeAll(keepingCapacity: true)
        output.append(contentsOf: "SIP/2.0 ".utf8)
        output.append(contentsOf: String(status).utf8)
        output.append(UInt8(ascii: " "))
        reason.withUTF8Buffer { output.append(contentsOf: $0) }
        output.append(contentsOf: "\r\n".utf8)
        var clientVias = 0
        var others = 0
        var position = viaEnd
        while let end = lineEnd(in: request, from: position), end > position + 2 {
            defer { position = end }
            switch headerName(in: request, lineStart: position) {
            case .via:
                clientVias += 1
                output.append(contentsOf: request[position..<end])
            case .from, .callID, .cseq:
                others += 1
                output.append(contentsOf: request[position..<end])
            case .to:
                others += 1
                output.append(contentsOf: request[position..<end - 2])
                if !hasTag(request[position..<end - 2]) {
                    output.append(contentsOf: ";tag=".utf8)
                    output.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: branchDigits))
                    writeHex(tag, at: output.count - branchDigits, in: &output)
                }
                output.append(contentsOf: "\r\n".utf8)
            case .route, .other:
                break
            }
        }
        guard clientVias > 0, others == 4 else { return false }
        output.append(contentsOf: "Server: sip-edge\r\nContent-Length: 0\r\n\r\n".utf8)
        return true
    }

    // MARK: Lines

    enum HeaderName: Equatable {
        case via, from, to, callID, cseq, route, other
    }

    /// The index just past the CRLF ending the line at `start`, continuation lines included; nil when there is no
    /// CRLF.
    static func lineEnd(in bytes: [UInt8], from start: Int) -> Int? {
        var index = start
        while index + 1 < bytes.count {
            if bytes[index] == 0x0D, bytes[index + 1] == 0x0A {
                // A line starting with whitespace continues this header (RFC 3261 §7.3.1 folding).
                let next = index + 2
                if next > start + 2, next < bytes.count, bytes[next] == 0x20 || bytes[next] == 0x09 {
                    index = next
                    continue
                }
                return next
            }
            index += 1
        }
        return nil
    }

    /// The header a line starts, by its name (long or compact form, any case), from the scanner's one table.
    static func headerName(in bytes: [UInt8], lineStart: Int) -> HeaderName {
        var end = lineStart
        while end < bytes.count, bytes[end] != UInt8(ascii: ":"), bytes[end] != 0x20, bytes[end] != 0x09,
            bytes[end] != 0x0D { end += 1 }
        switch HeaderKind(code: MessageScanner.classifyHeader(bytes, lineStart..<end)) {
        case .via: return .via
        case .from: return .from
        case .to: return .to
        case .callID: return .callID
        case .cseq: return .cseq
        case .route: return .route
        default: return .other
        }
    }

    /// The Request-URI: between the first and the last space of the request line.
    private static func requestURI(in bytes: [UInt8], lineEnd: Int) -> Range<Int>? {
        guard let first = bytes[0..<lineEnd].firstIndex(of: 0x20),
            let last = bytes[0..<lineEnd].lastIndex(of: 0x20), first < last else { return nil }
        return first + 1..<last
    }

    /// The digits of a CSeq line's number.
    private static func cseqNumber(in bytes: [UInt8], lineStart: Int, lineEnd: Int) -> Range<Int>? {
        guard var index = bytes[lineStart..<lineEnd].firstIndex(of: UInt8(ascii: ":")) else { return nil }
        index += 1
        while index < lineEnd, bytes[index] == 0x20 || bytes[index] == 0x09 || bytes[index] == 0x0D
            || bytes[index] == 0x0A { index += 1 }
        let start = index
        while index < lineEnd, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") { index += 1 }
        return index > start ? start..<index : nil
    }

    /// Whether a To line carries a tag parameter (outside the name-addr's angle brackets and quotes).
    private static func hasTag(_ line: ArraySlice<UInt8>) -> Bool {
        var inQuotes = false
        var inBrackets = false
        var index = line.startIndex
        while index < line.endIndex {
            let byte = line[index]
            if inQuotes {
                if byte == UInt8(ascii: "\\") { index += 1 } else if byte == UInt8(ascii: "\"") { inQuotes = false }
            } else if byte == UInt8(ascii: "\"") {
                inQuotes = true
            } else if byte == UInt8(ascii: "<") {
                inBrackets = true
            } else if byte == UInt8(ascii: ">") {
                inBrackets = false
            } else if byte == UInt8(ascii: ";"), !inBrackets {
                var start = index + 1
                while start < line.endIndex, line[start] == 0x20 || line[start] == 0x09 { start += 1 }
                let tag = Array("tag".utf8)
                if start + 3 <= line.endIndex,
                    zip(tag, line[start..<start + 3]).allSatisfy({ $0 == ($1 | 0x20) }) {
                    var after = start + 3
                    while after < line.endIndex, line[after] == 0x20 || line[after] == 0x09 { after += 1 }
                    if after < line.endIndex, line[after] == UInt8(ascii: "=") { return true }
                }
            }
            index += 1
        }
        return false
    }
}
