/// UTF-8 validity (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF, no stray continuation bytes.
public enum UTF8Check {
    /// The same over bytes held in an array (an outgoing message).
    public static func isValid(_ bytes: ArraySlice<UInt8>) -> Bool {
        bytes.withUnsafeBytes { isValid(PacketBytes(unsafeBorrowing: $0), ByteSpan(offset: 0, length: $0.count)) }
    }

    public static func isValid(_ bytes: PacketBytes, _ span: ByteSpan) -> Bool {
        var i = span.start
        let end = span.end
        while i < end {
            guard let next = bytes.firstNonASCII(in: ByteSpan(from: i, to: end)) else { return true }
            i = next
            let lead = bytes[i]
            let length: Int
            var low: UInt8 = 0x80
            var high: UInt8 = 0xBF
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; low = 0xA0  // no overlong 3-byte forms
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; high = 0x9F  // no surrogates
            case 0xF0: length = 4; low = 0x90  // no overlong 4-byte forms
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; high = 0x8F  // nothing above U+10FFFF
            default: return false  // continuation byte, C0/C1 overlong lead, F5-FF
            }
            guard i + length <= end else { return false }
            let second = bytes[i + 1]
            guard second >= low && second <= high else { return false }
            for k in 2..<max(length, 2) where bytes[i + k] & 0xC0 != 0x80 { return false }
            i += length
        }
        return true
    }
}
