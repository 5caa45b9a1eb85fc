public import CSIPScan

extension ByteSpan {
    /// A span the C scanner reported.
    @inlinable
    public init(_ span: csip_span) {
        self.init(offset: span.off, length: span.len)
    }
}

/// A borrowed, read-only view of one message's bytes: a receive buffer, a slice of a stream buffer, or an array.
///
/// `PacketBytes` holds no storage of its own. It is valid only while the memory it was made from stays alive and
/// unchanged: inside the `withPacketBytes` closure that produced it, or while the worker holds the receive buffer's
/// lease. Never store it beyond that; store ``ByteSpan``s instead.
///
/// Every read is bounds-checked (a `precondition`, so a parser bug traps instead of reading foreign memory). Bad
/// *input* never reaches a trap: parsers check spans against `count` before reading.
public struct PacketBytes {
    @usableFromInline
    let base: UnsafeRawBufferPointer

    /// Wraps memory that the caller keeps alive and unchanged for as long as this value is used.
    @inlinable
    public init(unsafeBorrowing base: UnsafeRawBufferPointer) {
        self.base = base
    }

    @inlinable
    public var count: Int { base.count }

    /// The whole buffer as a span.
    @inlinable
    public var all: ByteSpan { ByteSpan(offset: 0, length: count) }

    @inlinable
    public subscript(index: Int) -> UInt8 {
        precondition(UInt(bitPattern: index) < UInt(bitPattern: base.count), "PacketBytes index out of range")
        return base.load(fromByteOffset: index, as: UInt8.self)
    }

    /// True when `span` lies inside this buffer.
    @inlinable
    public func contains(_ span: ByteSpan) -> Bool {
        span.end <= count
    }

    /// True when `span` holds exactly `literal`. Literals of up to 8 bytes compare as one 64-bit word.
    @inlinable @inline(__always)
    public func equals(_ span: ByteSpan, _ literal: StaticString) -> Bool {
        let length = literal.utf8CodeUnitCount
        guard span.count == length, contains(span) else { return false }
        if length <= 8 { return word(at: span.start, length: length) == ASCII.word(literal) }
        let text = literal.utf8Start
        for i in 0..<span.count where self[span.start + i] != text[i] {
            return false
        }
        return true
    }

    /// True when `span` holds `literal`, ASCII letters in either case. Literals of up to 8 bytes (every SIP
    /// keyword the parser looks for) compare as one 64-bit word.
    @inlinable @inline(__always)
    public func equalsIgnoringCase(_ span: ByteSpan, _ literal: StaticString) -> Bool {
        let length = literal.utf8CodeUnitCount
        guard span.count == length, contains(span) else { return false }
        if length <= 8 {
            return ASCII.lowercased(word: word(at: span.start, length: length))
                == ASCII.lowercased(word: ASCII.word(literal))
        }
        let text = literal.utf8Start
        for i in 0..<span.count where ASCII.lowercased(self[span.start + i]) != ASCII.lowercased(text[i]) {
            return false
        }
        return true
    }

    /// True when `span` holds exactly `text`. The span is checked once, not per byte.
    @inlinable
    public func equals(_ span: ByteSpan, _ text: [UInt8]) -> Bool {
        guard span.count == text.count, contains(span) else { return false }
        for i in 0..<text.count where base.load(fromByteOffset: span.start + i, as: UInt8.self) != text[i] {
            return false
        }
        return true
    }

    /// True when the bytes of two spans (of this buffer) are equal, ASCII letters compared without case.
    @inlinable
    public func equalsIgnoringCase(_ a: ByteSpan, _ b: ByteSpan) -> Bool {
        guard a.count == b.count, contains(a), contains(b) else { return false }
        for i in 0..<a.count where ASCII.lowercased(self[a.start + i]) != ASCII.lowercased(self[b.start + i]) {
            return false
        }
        return true
    }

    /// True when the bytes of two spans (of this buffer) are equal.
    @inlinable
    public func equals(_ a: ByteSpan, _ b: ByteSpan) -> Bool {
        guard a.count == b.count, contains(a), contains(b) else { return false }
        for i in 0..<a.count where self[a.start + i] != self[b.start + i] {
            return false
        }
        return true
    }

    /// Index of the first `byte` inside `span`, or nil. 16 bytes a step where the CPU allows (C, inlined here).
    @inlinable @inline(__always)
    public func firstIndex(of byte: UInt8, in span: ByteSpan) -> Int? {
        precondition(contains(span), "span outside PacketBytes")
        guard span.count > 0, let start = base.baseAddress else { return nil }
        let found = csip_find_byte(start.assumingMemoryBound(to: UInt8.self), span.start, span.end, base.count, byte)
        return found < span.end ? found : nil
    }

    /// The Via hop at `span` in its common form (`csip_via_common_form`: offsets into these bytes), or nil for any
    /// other shape.
    public func viaHopCommonForm(in span: ByteSpan) -> csip_via_hop? {
        precondition(contains(span), "span outside PacketBytes")
        guard let start = base.baseAddress else { return nil }
        var hop = csip_via_hop()
        guard csip_via_common_form(start.assumingMemoryBound(to: UInt8.self), span.start, span.end, &hop) != 0 else {
            return nil
        }
        return hop
    }

    /// The `<` and `>` of a name-addr in its common form: exactly one of each in `span`, the `>` after the `<`, and
    /// no `"` anywhere in it; nil otherwise. One pass (C, inlined here).
    @inlinable @inline(__always)
    public func angleBrackets(in span: ByteSpan) -> (open: Int, close: Int)? {
        precondition(contains(span), "span outside PacketBytes")
        guard span.count > 0, let start = base.baseAddress else { return nil }
        var open = 0
        var close = 0
        guard csip_angle_brackets(start.assumingMemoryBound(to: UInt8.self), span.start, span.end, base.count,
                                  &open, &close) != 0
        else { return nil }
        return (open, close)
    }

    /// Where an addr-spec starting at `span.start` stops: the first `;`, linear whitespace, `,`, `"`, `<` or `>` in
    /// `span`, or its end. 16 bytes a step (C, inlined here).
    @inlinable @inline(__always)
    public func endOfAddrSpec(in span: ByteSpan) -> Int {
        precondition(contains(span), "span outside PacketBytes")
        guard span.count > 0, let start = base.baseAddress else { return span.start }
        return csip_end_of_addr_spec(start.assumingMemoryBound(to: UInt8.self), span.start, span.end, base.count)
    }

    /// Index of the last `byte` inside `span`, or nil.
    @inlinable @inline(__always)
    public func lastIndex(of byte: UInt8, in span: ByteSpan) -> Int? {
        precondition(contains(span), "span outside PacketBytes")
        guard span.count > 0, let start = base.baseAddress else { return nil }
        let found = csip_find_last_byte(start.assumingMemoryBound(to: UInt8.self), span.start, span.end, byte)
        return found < span.end ? found : nil
    }

    /// The end of the run of bytes of one character class (`singleClass`: a bit of `csip_char_classes`, csip_chars.h)
    /// starting at `from` and stopping at `to`: the first offset whose byte is not in it, or `to`. One bounds check
    /// for the whole run; the C loop inlines here, 16 bytes a step for the classes whose runs are long in typical
    /// messages (hostnames, Call-ID words, comma-separated header lines), the same result for every class (tested).
    @inlinable @inline(__always)
    public func endOfRun(from: Int, to: Int, singleClass: UInt16) -> Int {
        precondition(from >= 0 && to <= base.count, "run outside PacketBytes")
        guard from < to, let start = base.baseAddress else { return from }
        let bytes = start.assumingMemoryBound(to: UInt8.self)
        switch UInt32(singleClass) {
        case CSIP_CHARS_HOSTNAME.rawValue: return csip_end_of_hostname_run(bytes, from, to, base.count)
        case CSIP_CHARS_WORD.rawValue: return csip_end_of_word_run(bytes, from, to, base.count)
        case CSIP_CHARS_ELEMENT_PLAIN.rawValue: return csip_end_of_element_plain_run(bytes, from, to, base.count)
        default: return csip_end_of_run(bytes, from, to, singleClass)
        }
    }

    /// The decimal number in the run of at most `maxDigits` (1-19) digits at `from`, stopping at `to` or the first
    /// other byte, and the offset after its last digit (`from` when there is no digit; the value is then 0).
    @inlinable @inline(__always)
    public func decimalRun(from: Int, to: Int, maxDigits: Int) -> (value: UInt64, end: Int) {
        precondition(from >= 0 && to <= base.count && maxDigits >= 1 && maxDigits <= 19, "run outside PacketBytes")
        guard from < to, let start = base.baseAddress else { return (0, from) }
        let run = csip_decimal_run(start.assumingMemoryBound(to: UInt8.self), from, to, maxDigits)
        return (run.value, run.end)
    }

    /// The `length` (at most 8) bytes at `offset` as a little-endian word, zero above them.
    @inlinable @inline(__always)
    public func word(at offset: Int, length: Int) -> UInt64 {
        precondition(offset >= 0 && length >= 0 && length <= 8 && offset + length <= base.count,
                     "word outside PacketBytes")
        if offset + 8 <= base.count {
            // One load; the bytes past `length` are inside the packet and masked off.
            let value = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            return length == 8 ? value : value & ((1 << UInt64(8 * length)) &- 1)
        }
        var value: UInt64 = 0
        for k in 0..<length {
            value |= UInt64(base.load(fromByteOffset: offset + k, as: UInt8.self)) << UInt64(8 * k)
        }
        return value
    }

    /// The first `count` bytes, borrowed like this view.
    public func prefix(_ count: Int) -> PacketBytes {
        precondition(count >= 0 && count <= base.count, "prefix longer than PacketBytes")
        return PacketBytes(unsafeBorrowing: UnsafeRawBufferPointer(rebasing: base[0..<count]))
    }

    /// A copy of the span's bytes. Allocates: for diagnostics, logs and tests, not the forwarding path.
    public func copyBytes(_ span: ByteSpan) -> [UInt8] {
        precondition(contains(span), "span outside PacketBytes")
        return Array(base[span.start..<span.end])
    }

    /// Runs `body` with the borrowed bytes themselves, for handing them to C (TLS decryption, socket writes)
    /// without a copy. The pointer is valid only inside `body` and must not be stored or written through.
    @inlinable
    public func withUnsafeBytes<Result, Failure: Error>(
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        try body(base)
    }

    /// The span decoded as UTF-8 (invalid sequences replaced). Allocates: not for the forwarding path.
    public func string(_ span: ByteSpan) -> String {
        precondition(contains(span), "span outside PacketBytes")
        return String(decoding: UnsafeRawBufferPointer(rebasing: base[span.start..<span.end]), as: UTF8.self)
    }
}

extension Array where Element == UInt8 {
    /// Runs `body` with a borrowed view of the array's bytes. The view must not escape the closure.
    @inlinable
    public func withPacketBytes<Result, Failure: Error>(
        _ body: (PacketBytes) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        let outcome: Swift.Result<Result, Failure> = self.withUnsafeBytes { raw in
            do throws(Failure) {
                return .success(try body(PacketBytes(unsafeBorrowing: raw)))
            } catch {
                return .failure(error)
            }
        }
        return try outcome.get()
    }
}

/// ASCII helpers shared by every parser layer.
public enum ASCII {
    @inlinable
    public static func lowercased(_ byte: UInt8) -> UInt8 {
        (byte &- 0x41) < 26 ? byte | 0x20 : byte
    }

    /// Every byte of `word` lower-cased (ASCII letters only), eight at a time.
    @inlinable @inline(__always)
    public static func lowercased(word: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let low7 = word & (0x7F * ones)
        let atLeastA = low7 &+ (0x80 - 0x41) * ones  // high bit set where the byte is >= 'A'
        let aboveZ = low7 &+ (0x80 - 0x5B) * ones  // high bit set where the byte is > 'Z'
        let upper = atLeastA & ~aboveZ & ~word & (0x80 * ones)
        return word | (upper >> 2)
    }

    /// The bytes of a literal of at most 8 bytes as a little-endian word (see ``PacketBytes/word(at:length:)``).
    @inlinable @inline(__always)
    public static func word(_ literal: StaticString) -> UInt64 {
        precondition(literal.utf8CodeUnitCount <= 8, "literal longer than a word")
        var value: UInt64 = 0
        for k in 0..<literal.utf8CodeUnitCount {
            value |= UInt64(literal.utf8Start[k]) << UInt64(8 * k)
        }
        return value
    }

    @inlinable
    public static func isDigit(_ byte: UInt8) -> Bool { (byte &- 0x30) < 10 }

    @inlinable
    public static func isAlpha(_ byte: UInt8) -> Bool { ((byte | 0x20) &- 0x61) < 26 }

    @inlinable
    public static func isAlphanumeric(_ byte: UInt8) -> Bool { isDigit(byte) || isAlpha(byte) }

    @inlinable
    public static func isHexDigit(_ byte: UInt8) -> Bool { isDigit(byte) || ((byte | 0x20) &- 0x61) < 6 }

    /// SP or HTAB.
    @inlinable
    public static func isWhitespace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }

    /// SP, HTAB, CR or LF: linear whitespace inside a header value, where the scanner guarantees CR and LF occur
    /// only as part of a fold (CRLF followed by SP or HTAB).
    @inlinable
    public static func isLinearWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A
    }
}

extension PacketBytes {
    /// True when `span` is the usual IPv4 host of SIP's grammar (`csip_is_common_ipv4`): four octets of 1-3 digits up
    /// to 255 joined by dots, leading zeros allowed. False means "not this form", not "invalid".
    @inlinable @inline(__always)
    public func isCommonIPv4(_ span: ByteSpan) -> Bool {
        precondition(contains(span), "span outside PacketBytes")
        guard span.count > 0, let start = base.baseAddress else { return false }
        return csip_is_common_ipv4(start.assumingMemoryBound(to: UInt8.self), span.start, span.end) != 0
    }

    /// A dotted IPv4 address in `span` by inet_pton's rules (four decimal parts of at most 255, no leading zero):
    /// nil when the span holds anything but digits and dots (for inet_pton to decide); `isValid` false when it
    /// holds only those but is no address (nor could it be IPv6).
    public func dottedQuad(in span: ByteSpan) -> (address: UInt32, isValid: Bool)? {
        precondition(contains(span), "span outside PacketBytes")
        guard span.count > 0, let start = base.baseAddress else { return (0, false) }
        var address: UInt32 = 0
        let result = csip_parse_dotted_quad(start.assumingMemoryBound(to: UInt8.self), span.start, span.end, &address)
        return result < 0 ? nil : (address, result == 1)
    }

    /// Index of the first byte >= 0x80 in `span`, or nil: C, 64 bytes per step (SSE2), for UTF-8 validation.
    public func firstNonASCII(in span: ByteSpan) -> Int? {
        precondition(contains(span), "span outside PacketBytes")
        guard span.count > 0, let start = base.baseAddress else { return nil }
        let found = csip_find_non_ascii(start.assumingMemoryBound(to: UInt8.self), span.start, span.end)
        precondition(found >= span.start && found <= span.end, "csip_find_non_ascii outside the span")
        return found == span.end ? nil : found
    }
}

extension Array where Element == UInt8 {
    /// Runs `body` with a borrowed view of the bytes from `start` to the end (offsets in the view count from
    /// `start`). The view must not escape the closure.
    @inlinable
    public func withPacketBytes<Result>(from start: Int, _ body: (PacketBytes) -> Result) -> Result {
        precondition(start >= 0 && start <= count, "start outside the array")
        return self.withUnsafeBytes { raw in
            body(PacketBytes(unsafeBorrowing: UnsafeRawBufferPointer(rebasing: raw[start...])))
        }
    }
}
