import CSIPScan

/// A set of up to 64 lower-case byte patterns searched case-insensitively in one pass by C
/// (`csip_patterns_find`); a pattern starting with a letter matches only at a word start. Built once, read-only
/// afterwards. The search runs a SIMD prefilter (AVX2 or SSE4.2, chosen at run time) in front of the exact check;
/// every level gives the same result as the scalar reference.
public final class PatternSet {
    private let table: UnsafeMutablePointer<csip_patterns>
    /// `order[i]` is the caller's index of the pattern the C table holds at position i.
    private let order: [Int]

    /// Patterns in any order (ASCII letters are compared without case, other bytes as they are). Traps when they do
    /// not ``fit(_:)`` (a programming error), or on a `simd` level this CPU lacks (see `MessageScanner.supports`);
    /// `.auto` picks the best one. `wordStart: false` drops the word-start rule: plain substring search.
    public init(_ patterns: [[UInt8]], wordStart: Bool = true, simd: SIMDLevel = .auto) {
        let sorted = patterns.enumerated().map { ($0.offset, $0.element.map(ASCII.lowercased)) }
            .sorted { $0.1[0] < $1.1[0] }
        let table = UnsafeMutablePointer<csip_patterns>.allocate(capacity: 1)
        if wordStart { csip_patterns_init(table) } else { csip_patterns_init_anywhere(table) }
        for (_, text) in sorted {
            let status = text.withUnsafeBufferPointer { csip_patterns_add(table, $0.baseAddress, $0.count) }
            precondition(status == 0, "pattern table full or malformed")
        }
        // Re-place the patterns in the prefilter's buckets for typical header text (speed only, never results).
        precondition(csip_patterns_optimize(table) == 0, "pattern table refinement failed")
        precondition(csip_patterns_set_level(table, simd.rawValue) == 0, "SIMD level \(simd) not supported")
        self.table = table
        order = sorted.map(\.0)
    }

    /// True when `patterns` fit one table: at most 64, each 1-255 bytes, 1,024 bytes in all.
    public static func fit(_ patterns: [[UInt8]]) -> Bool {
        patterns.count <= Int(CSIP_PATTERNS_MAX) && patterns.allSatisfy { !$0.isEmpty && $0.count <= 255 }
            && patterns.reduce(0) { $0 + $1.count } <= Int(CSIP_PATTERNS_TEXT_MAX)
    }

    deinit {
        table.deallocate()
    }

    /// The caller's mask (bit i = caller's pattern i) translated to the table's order.
    public func tableMask(enabled: (Int) -> Bool) -> UInt64 {
        var mask: UInt64 = 0
        for (position, original) in order.enumerated() where enabled(original) { mask |= 1 << UInt64(position) }
        return mask
    }

    /// The caller's index of the first enabled pattern found in `span`, or nil. `mask` comes from ``tableMask``.
    public func firstMatch(in bytes: PacketBytes, _ span: ByteSpan, mask: UInt64) -> Int? {
        precondition(bytes.contains(span), "span outside PacketBytes")
        guard span.count > 0, let base = bytes.base.baseAddress else { return nil }
        let found = csip_patterns_find_in(
            table, base.assumingMemoryBound(to: UInt8.self), bytes.count, span.start, span.end, mask)
        return found < 0 ? nil : order[Int(found)]
    }

    /// ``firstMatch(in:_:mask:)`` over `first` (when given: a Request-URI), then over the value of each of the first
    /// `count` lines of `headers` whose kind code k has bit k set in `kinds` (`HeaderSet.rawValue`), in that order,
    /// in one C call:
    /// the first span holding an enabled pattern, its first position, table order there. Returns the caller's index
    /// of the pattern and the header line it is in (nil: in `first`), or nil. `headers` must describe `bytes`.
    public func firstMatch(in bytes: PacketBytes, first: ByteSpan?, headers: HeaderTable, count: Int, kinds: UInt64,
                           mask: UInt64) -> (pattern: Int, line: Int?)? {
        precondition(count >= 0 && count <= headers.count, "header count out of range")
        guard let base = bytes.base.baseAddress else { return nil }
        let buffer = base.assumingMemoryBound(to: UInt8.self)
        var line: Int32 = -1
        let found: Int32
        if let first {
            precondition(bytes.contains(first), "span outside PacketBytes")
            var span = csip_span(off: first.offset, len: first.length)
            found = csip_patterns_find_headers(
                table, buffer, bytes.count, &span, headers.storage.baseAddress, UInt32(count), kinds, mask,
                &line)
        } else {
            found = csip_patterns_find_headers(
                table, buffer, bytes.count, nil, headers.storage.baseAddress, UInt32(count), kinds, mask,
                &line)
        }
        precondition(found >= -1, "header span outside PacketBytes")
        guard found >= 0 else { return nil }
        return (order[Int(found)], line < 0 ? nil : Int(line))
    }
}
