import CSIPScan

/// RFC 4648 §5 base64url without padding: the text of flow tokens in Via and Route parameters, legal in a URI
/// parameter as it stands.
public enum Base64URL {
    /// Appends the encoding of `raw` to `out`: C into scratch memory, one copy (byte-by-byte appends cost a
    /// uniqueness and capacity check per character on every forwarded request).
    @inlinable
    public static func append<Output: ByteOutput & ~Copyable>(_ raw: [UInt8], to out: inout Output) {
        // 96 bytes (128 characters) a step: a flow token takes one.
        var start = 0
        while start < raw.count {
            let end = min(raw.count, start + 96)
            raw.withUnsafeBufferPointer { source in
                withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 128) { scratch in
                    let written = encode(source.baseAddress! + start, count: end - start, into: scratch.baseAddress!)
                    out.appendBytes(UnsafeRawBufferPointer(start: scratch.baseAddress!, count: written))
                }
            }
            start = end
        }
    }

    /// Encodes `count` (at most 96) bytes into `text` (room for 128); the characters written.
    @usableFromInline
    static func encode(_ raw: UnsafePointer<UInt8>, count: Int, into text: UnsafeMutablePointer<UInt8>) -> Int {
        precondition(count <= 96, "base64url step longer than 96 bytes")
        return csip_base64url_encode(raw, count, text)
    }

    /// Decodes `span` into `out` (cleared first); false when it is not canonical base64url.
    public static func decode(_ bytes: PacketBytes, _ span: ByteSpan, into out: inout [UInt8]) -> Bool {
        out.removeAll(keepingCapacity: true)
        guard span.count % 4 != 1 else { return false }
        var word: UInt32 = 0
        var bits = 0
        for index in span.start..<span.end {
            guard let value = sextet(bytes[index]) else { return false }
            word = word << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: word >> UInt32(bits)))
            }
        }
        // Leftover bits must be zero, so every token has exactly one spelling.
        return word & ((1 << UInt32(bits)) - 1) == 0
    }

    private static func sextet(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): byte - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): byte - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0") + 52
        case UInt8(ascii: "-"): 62
        case UInt8(ascii: "_"): 63
        default: nil
        }
    }
}
