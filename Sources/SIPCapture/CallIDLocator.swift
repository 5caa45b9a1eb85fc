public import SIPBytes

/// Finds the Call-ID value in a message the edge sends (its replies, probes, forwarded messages), for the HEP
/// correlation id and the sampling decision, without parsing the message: the first header line named `Call-ID`
/// or `i` (any case), value trimmed of whitespace. Received messages take the parser's span instead.
public enum CallIDLocator {
    public static func find(in bytes: PacketBytes) -> ByteSpan? {
        var lineStart = 0
        var first = true
        while lineStart < bytes.count {
            guard let lineFeed = bytes.firstIndex(of: 0x0A, in: ByteSpan(from: lineStart, to: bytes.count)) else {
                return nil
            }
            var lineEnd = lineFeed
            if lineEnd > lineStart && bytes[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            if lineEnd == lineStart { return nil }  // end of the headers
            if !first, let value = callIDValue(bytes, ByteSpan(from: lineStart, to: lineEnd)) { return value }
            first = false
            lineStart = lineFeed + 1
        }
        return nil
    }

    private static func callIDValue(_ bytes: PacketBytes, _ line: ByteSpan) -> ByteSpan? {
        guard let colon = bytes.firstIndex(of: UInt8(ascii: ":"), in: line) else { return nil }
        var nameEnd = colon
        while nameEnd > line.start && ASCII.isWhitespace(bytes[nameEnd - 1]) { nameEnd -= 1 }
        let name = ByteSpan(from: line.start, to: nameEnd)
        guard bytes.equalsIgnoringCase(name, "call-id") || bytes.equalsIgnoringCase(name, "i") else { return nil }
        var start = colon + 1
        var end = line.end
        while start < end && ASCII.isWhitespace(bytes[start]) { start += 1 }
        while end > start && ASCII.isWhitespace(bytes[end - 1]) { end -= 1 }
        return start < end ? ByteSpan(from: start, to: end) : nil
    }
}
