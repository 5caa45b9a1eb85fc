import CSIPScan
#if canImport(Glibc)
import Glibc
#endif
import SIPBytes
import SIPTestSupport
import Testing

/// The SIMD pattern search (Teddy prefilter + exact check) must give exactly the scalar reference's answer: same
/// pattern, same first position, for every span, mask and case mix. These tests compare every level this CPU runs
/// against the scalar search on random and adversarial inputs.
@Suite struct PatternSetTests {
    static let levels = SIMDLevel.allCases.filter { $0 != .auto && $0 != .scalar && MessageScanner.supports($0) }

    /// The validator's attack patterns (SIPSecurity's AttackPatterns, copied: this target does not see it).
    static let attackPatterns: [String] = [
        "' or ", "'or ", "' and ", "'--", "';", "' union", "union select", "union all select", "select * from",
        "drop table", "insert into", "delete from", "xp_cmdshell", "sleep(", "benchmark(", "waitfor delay", "or 1=1",
        "1=1--", "<script", "</script", "javascript:", "vbscript:", "onerror=", "onload=", "onmouseover=", "<img",
        "<iframe", "<svg", "<body", "<object", "<embed", "document.cookie", "alert(", "$(", "${", "&&", "||", "|sh",
        "| sh", "; rm ", ";rm ", "/bin/sh", "/bin/bash", "wget ", "curl ", "nc -", "`id`", "`whoami`", "`uname",
        "../", "..\\", "..%2f", "..%5c", "%2e%2e", "/etc/passwd", "%0d", "%0a",
    ]

    /// One scalar set and one per SIMD level over the same patterns.
    struct Sets {
        let scalar: PatternSet
        let simd: [(SIMDLevel, PatternSet)]
        init(_ patterns: [[UInt8]]) {
            scalar = PatternSet(patterns, simd: .scalar)
            simd = PatternSetTests.levels.map { ($0, PatternSet(patterns, simd: $0)) }
        }

        /// Checks every level against the scalar result; returns the scalar result.
        @discardableResult
        func check(_ bytes: [UInt8], from: Int, to: Int, enabled: UInt64 = ~0, _ note: @autoclosure () -> String = "")
            -> Int?
        {
            bytes.withPacketBytes { packet in
                let span = ByteSpan(from: from, to: to)
                let reference = scalar.firstMatch(in: packet, span, mask: scalar.tableMask { enabled >> UInt64($0) & 1 == 1 })
                for (level, set) in simd {
                    let found = set.firstMatch(in: packet, span, mask: set.tableMask { enabled >> UInt64($0) & 1 == 1 })
                    #expect(found == reference,
                            "\(level) \(found.map(String.init) ?? "nil") vs scalar \(reference.map(String.init) ?? "nil") in \(String(decoding: bytes[from..<to], as: UTF8.self).debugDescription) [\(from), \(to)) \(note())")
                }
                return reference
            }
        }
    }

    static var attackSets: Sets { Sets(attackPatterns.map { Array($0.utf8) }) }

    /// Randomly upper-cases letters.
    static func mixCase(_ bytes: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        bytes.map { byte in
            (byte >= 0x61 && byte <= 0x7A && Bool.random(using: &rng)) ? byte - 0x20 : byte
        }
    }

    @Test func findsKnownMatchesAtEveryLevel() {
        let sets = Self.attackSets
        func index(_ text: String) -> Int? { sets.check(Array(text.utf8), from: 0, to: text.utf8.count) }
        #expect(index("sip:x@y.com") == nil)
        #expect(index("a' OR 1=1") == Self.attackPatterns.firstIndex(of: "' or "))
        #expect(index("<SCRIPT>alert(1)") == Self.attackPatterns.firstIndex(of: "<script"))
        // Word-start rule: "reunion select" holds "union select" only inside a word.
        #expect(index("reunion selection") == nil)
        #expect(index("re union selection") == Self.attackPatterns.firstIndex(of: "union select"))
        // First by position, then table order: "' union" (index 5) and "' or " cannot both start at 1; here
        // "'--" at 0 comes before "$(" at 4.
        #expect(index("'--x$(y") == Self.attackPatterns.firstIndex(of: "'--"))
        // At one position, the earlier pattern in table order wins ("union all select" is after "union select",
        // but only the former occurs here).
        #expect(index("UNION ALL SELECT") == Self.attackPatterns.firstIndex(of: "union all select"))
        // A match must end inside the span.
        #expect(sets.check(Array("x../".utf8), from: 0, to: 3) == nil)
        #expect(sets.check(Array("x../".utf8), from: 1, to: 4) == Self.attackPatterns.firstIndex(of: "../"))
        // The word-start rule looks only inside the span: "xunion select" from 1 starts a word.
        #expect(sets.check(Array("xunion select".utf8), from: 1, to: 13) == Self.attackPatterns.firstIndex(of: "union select"))
        #expect(sets.check(Array("xunion select".utf8), from: 0, to: 13) == nil)
    }

    /// Every pattern at every offset of buffers of many lengths (across the 16- and 32-byte steps and the tail
    /// copy), cut at the span end, at one byte short, and preceded by a letter, a digit or punctuation.
    @Test func everyPatternAtEveryOffsetAndEdge() {
        let sets = Self.attackSets
        var rng = SplitMix64(seed: 7)
        let fillers: [UInt8] = Array("abzAZ09 ,;:<>@./-_=\"'%".utf8)
        for (patternIndex, pattern) in Self.attackPatterns.enumerated() {
            let needle = Array(pattern.utf8)
            for length in [needle.count, needle.count + 1, 15, 16, 17, 18, 31, 32, 33, 34, 35, 47, 63, 64, 65, 66, 97]
            where length >= needle.count {
                for offset in 0...(length - needle.count) {
                    var bytes = (0..<length).map { _ in
                        // Mostly letters (the word-start rule), some punctuation.
                        Bool.random(using: &rng) ? UInt8.random(in: 0x61...0x7A, using: &rng) : fillers.randomElement(using: &rng)!
                    }
                    bytes.replaceSubrange(offset..<offset + needle.count, with: Self.mixCase(needle, &rng))
                    if offset > 0 { bytes[offset - 1] = fillers.randomElement(using: &rng)! }
                    let found = sets.check(bytes, from: 0, to: length, "pattern \(pattern.debugDescription) at \(offset)")
                    // A non-letter before it: it must be found (this or an earlier/equal-position match).
                    if offset == 0 || !(bytes[offset - 1] | 0x20 >= 0x61 && bytes[offset - 1] | 0x20 <= 0x7A)
                        && !(bytes[offset - 1] >= 0x30 && bytes[offset - 1] <= 0x39) {
                        #expect(found != nil, "\(pattern.debugDescription) at \(offset) of \(length) missed")
                    }
                    // The span ending one byte short of the pattern, and starting at the pattern.
                    sets.check(bytes, from: 0, to: offset + needle.count - 1)
                    sets.check(bytes, from: offset, to: length)
                    sets.check(bytes, from: offset, to: offset + needle.count)
                    // Only this pattern enabled.
                    let only = sets.check(bytes, from: 0, to: length, enabled: 1 << UInt64(patternIndex))
                    if offset == 0 { #expect(only == patternIndex) }
                }
            }
        }
    }

    /// Random spans of random text built from pattern fragments, with random masks.
    @Test func randomTextAgreesWithScalar() {
        let sets = Self.attackSets
        var rng = SplitMix64(seed: 2024)
        let fragments = Self.attackPatterns.map { Array($0.utf8) } + ["sip:", "bob", "@", " ", ";", "1", "A", "\r\n "].map { Array($0.utf8) }
        for _ in 0..<20_000 {
            var bytes: [UInt8] = []
            let target = Int.random(in: 0...120, using: &rng)
            while bytes.count < target {
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: bytes.append(UInt8.random(in: 0...255, using: &rng))
                case 1: bytes.append(UInt8.random(in: 0x20...0x7E, using: &rng))
                default:
                    let fragment = fragments.randomElement(using: &rng)!
                    // Sometimes only the first 1-3 bytes: prefilter hits that the exact check must reject.
                    let cut = Bool.random(using: &rng) ? fragment.count : min(fragment.count, Int.random(in: 1...3, using: &rng))
                    bytes += Self.mixCase(Array(fragment[..<cut]), &rng)
                }
            }
            let from = Int.random(in: 0...bytes.count, using: &rng)
            let to = Int.random(in: from...bytes.count, using: &rng)
            let enabled: UInt64 = Bool.random(using: &rng) ? ~0 : UInt64.random(in: 0...UInt64.max, using: &rng)
            sets.check(bytes, from: from, to: to, enabled: enabled)
        }
    }

    /// Random pattern sets (1-64 patterns, 1-9 bytes, any byte values, shared prefixes) on text from the same
    /// alphabet, so matches, near misses and short patterns are common.
    @Test func randomPatternSetsAgreeWithScalar() {
        var rng = SplitMix64(seed: 99)
        let alphabets: [[UInt8]] = [Array("ab'1 ".utf8), Array("aAbB;<%.\u{7F}".utf8) + [0x00, 0x80, 0xC3, 0xFF], Array(0...255)]
        for round in 0..<300 {
            let alphabet = alphabets[round % alphabets.count]
            let count = Int.random(in: 1...64, using: &rng)
            let patterns: [[UInt8]] = (0..<count).map { _ in
                (0..<Int.random(in: 1...9, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }
            }
            let sets = Sets(patterns)
            for _ in 0..<60 {
                let length = Int.random(in: 0...100, using: &rng)
                var bytes = (0..<length).map { _ in alphabet.randomElement(using: &rng)! }
                if length > 10, Bool.random(using: &rng) {
                    let pattern = patterns.randomElement(using: &rng)!
                    let at = Int.random(in: 0...(length - min(length, pattern.count)), using: &rng)
                    for (k, byte) in pattern.enumerated() where at + k < length { bytes[at + k] = byte }
                }
                bytes = Self.mixCase(bytes, &rng)
                let from = Int.random(in: 0...length, using: &rng)
                let to = Int.random(in: from...length, using: &rng)
                let enabled: UInt64 = Bool.random(using: &rng) ? ~0 : UInt64.random(in: 0...UInt64.max, using: &rng)
                sets.check(bytes, from: from, to: to, enabled: enabled, "round \(round) patterns \(patterns)")
            }
        }
    }

    /// The longest patterns (255 bytes) and a full table of 64.
    @Test func longPatternsAndFullTable() {
        var rng = SplitMix64(seed: 5)
        let long = Array(repeating: UInt8(ascii: "a"), count: 254) + [UInt8(ascii: "b")]
        let patterns = [long] + (0..<63).map { i in Array("p\(i)x".utf8) }
        let sets = Sets(patterns)
        for length in [254, 255, 256, 300] {
            var bytes = Array(repeating: UInt8(ascii: "A"), count: length)
            if length >= 255 { bytes[254] = UInt8(ascii: "B") }
            let found = sets.check(bytes, from: 0, to: length)
            #expect(found == (length >= 255 ? 0 : nil))
        }
        for _ in 0..<2_000 {
            let bytes = Self.mixCase(Array((0..<Int.random(in: 0...80, using: &rng)).map { _ in
                Array("p0123456789x ".utf8).randomElement(using: &rng)!
            }), &rng)
            sets.check(bytes, from: 0, to: bytes.count)
        }
    }

    /// Short patterns (1-2 bytes) in the last positions of buffers of every small length: the SIMD window cannot
    /// cover a buffer's last two positions, and buffers under one step are copied.
    @Test func shortPatternsAtTheEndOfSmallBuffers() {
        var rng = SplitMix64(seed: 11)
        let sets = Sets(["a", "b;", ";", "&&", "x", "'z"].map { Array($0.utf8) })
        for length in 0...70 {
            for _ in 0..<40 {
                let bytes = Self.mixCase((0..<length).map { _ in Array("ab;&x'z .".utf8).randomElement(using: &rng)! }, &rng)
                let from = Int.random(in: 0...length, using: &rng)
                sets.check(bytes, from: from, to: length)
                sets.check(bytes, from: max(0, length - 2), to: length)
                sets.check(bytes, from: max(0, length - 1), to: length)
            }
        }
    }

    /// csip_patterns_find (reads only [from, to)) agrees with csip_patterns_find_in (reads the whole buffer) at
    /// every level, on spans cut out of random text.
    @Test func findAndFindInAgree() {
        var rng = SplitMix64(seed: 3)
        let patterns = Self.attackPatterns.map { Array($0.utf8) }.sorted { $0[0] < $1[0] }
        for level in [SIMDLevel.scalar] + Self.levels {
            let table = UnsafeMutablePointer<csip_patterns>.allocate(capacity: 1)
            defer { table.deallocate() }
            csip_patterns_init(table)
            for pattern in patterns {
                #expect(pattern.withUnsafeBufferPointer { csip_patterns_add(table, $0.baseAddress, $0.count) } == 0)
            }
            #expect(csip_patterns_set_level(table, level.rawValue) == 0)
            // The same table after csip_patterns_optimize (other buckets): the same answers.
            let optimized = UnsafeMutablePointer<csip_patterns>.allocate(capacity: 1)
            defer { optimized.deallocate() }
            optimized.initialize(to: table.pointee)
            #expect(csip_patterns_optimize(optimized) == 0)
            let fragments = Self.attackPatterns.map { Array($0.utf8) } + [Array("abc ".utf8), Array("x1".utf8)]
            for _ in 0..<5_000 {
                var bytes: [UInt8] = []
                while bytes.count < Int.random(in: 0...90, using: &rng) {
                    bytes += Self.mixCase(fragments.randomElement(using: &rng)!, &rng)
                }
                if bytes.isEmpty { continue }
                let from = Int.random(in: 0...bytes.count, using: &rng)
                let to = Int.random(in: from...bytes.count, using: &rng)
                let enabled = UInt64.random(in: 0...UInt64.max, using: &rng) | (Bool.random(using: &rng) ? ~0 : 0)
                let (whole, cut) = bytes.withUnsafeBufferPointer { buffer in
                    (csip_patterns_find_in(table, buffer.baseAddress!, buffer.count, from, to, enabled),
                     // An exact-size copy of the span: the plain search must not need anything around it.
                     Array(buffer[from..<to]).withUnsafeBufferPointer { span in
                         csip_patterns_find(table, span.baseAddress ?? buffer.baseAddress!, 0, span.count, enabled)
                     })
                }
                #expect(whole == cut, "\(level) \(String(decoding: bytes, as: UTF8.self).debugDescription) [\(from), \(to))")
                let refined = bytes.withUnsafeBufferPointer { buffer in
                    csip_patterns_find_in(optimized, buffer.baseAddress!, buffer.count, from, to, enabled)
                }
                #expect(refined == whole, "optimized \(level) \(String(decoding: bytes, as: UTF8.self).debugDescription)")
            }
        }
    }

    // MARK: - Header search (csip_patterns_find_headers)

    /// Header lines built from pattern fragments, SIP text and odd bytes, under names of several kinds (some skipped
    /// by the validator's kind mask), scanned for real: the one-call header search at every level (scalar included)
    /// must give the pattern and line of the reference, the scalar single-span search over the Request-URI and each
    /// selected line in order.
    @Test func headerSearchAgreesWithOneSearchPerSpan() throws {
        var rng = SplitMix64(seed: 404)
        let names = ["To", "From", "Via", "Contact", "Allow", "Supported", "User-Agent", "X-Custom", "Subject",
                     "CSeq", "Call-ID", "Content-Type", "Max-Forwards", "i", "m", "Route"]
        let fragments = Self.attackPatterns.map { Array($0.utf8) }
            + ["sip:", "bob", "@", " ", ";", "1", "A", "INVITE, ACK, OPTIONS", "<sip:a@b>;tag=x", "\u{E9}", "\t"]
                .map { Array($0.utf8) }
        let tables = Self.attackSets
        let all = [(SIMDLevel.scalar, tables.scalar)] + tables.simd
        let scanner = try MessageScanner()
        for round in 0..<3_000 {
            var lines: [String] = []
            for _ in 0..<Int.random(in: 0...10, using: &rng) {
                var value: [UInt8] = []
                let target = Int.random(in: 0...(round % 7 == 0 ? 200 : 60), using: &rng)
                while value.count < target {
                    let fragment = fragments.randomElement(using: &rng)!
                    let cut = Bool.random(using: &rng) ? fragment.count : min(fragment.count, Int.random(in: 1...3, using: &rng))
                    value += Self.mixCase(Array(fragment[..<cut]), &rng)
                }
                var line = names.randomElement(using: &rng)! + ":" + (Bool.random(using: &rng) ? " " : "")
                    + String(decoding: value, as: UTF8.self)
                if Int.random(in: 0..<8, using: &rng) == 0 { line += "\r\n " + "x' or 1" }  // a folded line
                lines.append(line)
            }
            let uri = String(decoding: Self.mixCase(fragments.randomElement(using: &rng)!, &rng)
                .filter { $0 > 0x20 && $0 < 0x7F }, as: UTF8.self)
            let body = round % 3 == 0 ? "" : "v=0 ' or 1=1 <script"
            let text = (["INVITE sip:\(uri)x SIP/2.0"] + lines).joined(separator: "\r\n") + "\r\n\r\n" + body
            let bytes = Array(text.utf8)
            let kinds: UInt64 = switch round % 4 {
            case 0: ~0
            case 1: ~[CSIP_HDR_VIA, CSIP_HDR_CSEQ, CSIP_HDR_CALL_ID, CSIP_HDR_CONTENT_TYPE, CSIP_HDR_MAX_FORWARDS,
                      CSIP_HDR_CONTENT_LENGTH].reduce(UInt64(0)) { $0 | 1 << UInt64($1) }
            case 2: 1 << UInt64(CSIP_HDR_USER_AGENT)
            default: UInt64.random(in: 0...UInt64.max, using: &rng)
            }
            let enabled: UInt64 = Bool.random(using: &rng) ? ~0 : UInt64.random(in: 0...UInt64.max, using: &rng)
            bytes.withPacketBytes { packet in
                guard case .complete(let startLine, let count, _, _) = scanner.scan(packet) else { return }
                // The Request-URI: the start line's second word.
                let firstSpace = packet.firstIndex(of: 0x20, in: startLine)!
                let secondSpace = packet.firstIndex(of: 0x20, in: ByteSpan(from: firstSpace + 1, to: startLine.end))!
                let uriSpan: ByteSpan? = round % 5 == 0 ? nil : ByteSpan(from: firstSpace + 1, to: secondSpace)
                // The reference: scalar, one span at a time.
                let scalar = tables.scalar
                let mask = scalar.tableMask { enabled >> UInt64($0) & 1 == 1 }
                var expected: (pattern: Int, line: Int?)?
                if let uriSpan, let found = scalar.firstMatch(in: packet, uriSpan, mask: mask) {
                    expected = (found, nil)
                } else {
                    for i in 0..<count where kinds >> UInt64(scanner.headers.kindCode(at: i)) & 1 == 1 {
                        if let found = scalar.firstMatch(in: packet, scanner.headers[i].value, mask: mask) {
                            expected = (found, i)
                            break
                        }
                    }
                }
                for (level, set) in all {
                    let found = set.firstMatch(in: packet, first: uriSpan, headers: scanner.headers, count: count,
                                               kinds: kinds, mask: set.tableMask { enabled >> UInt64($0) & 1 == 1 })
                    #expect(found?.pattern == expected?.pattern && found?.line == expected?.line,
                            "\(level) \(String(describing: found)) vs \(String(describing: expected)) in \(text.debugDescription)")
                }
            }
        }
    }

    /// A header span outside the buffer is refused (-EINVAL), never read; no headers and no first span: -1.
    @Test func headerSearchRefusesSpansOutsideTheBuffer() {
        let patterns = Self.attackPatterns.map { Array($0.utf8) }.sorted { $0[0] < $1[0] }
        for level in [SIMDLevel.scalar] + Self.levels {
            let table = UnsafeMutablePointer<csip_patterns>.allocate(capacity: 1)
            defer { table.deallocate() }
            csip_patterns_init(table)
            for pattern in patterns {
                #expect(pattern.withUnsafeBufferPointer { csip_patterns_add(table, $0.baseAddress, $0.count) } == 0)
            }
            #expect(csip_patterns_set_level(table, level.rawValue) == 0)
            let bytes = Array("To: ' or 1=1\r\n\r\n".utf8) + Array(repeating: 0x20, count: 40)
            var headers = [csip_header(name: csip_span(off: 0, len: 2), value: csip_span(off: 4, len: 8),
                                       kind: UInt16(CSIP_HDR_TO), flags: 0)]
            var line: Int32 = 7
            bytes.withUnsafeBufferPointer { buffer in
                let or = Int32(patterns.firstIndex(of: Array("' or ".utf8))!)
                #expect(csip_patterns_find_headers(table, buffer.baseAddress, buffer.count, nil, &headers, 1, ~0, ~0,
                                                   &line) == or && line == 0)
                #expect(csip_patterns_find_headers(table, buffer.baseAddress, buffer.count, nil, &headers, 0, ~0, ~0,
                                                   &line) == -1 && line == -1)
                // Not selected by kind: nothing.
                #expect(csip_patterns_find_headers(table, buffer.baseAddress, buffer.count, nil, &headers, 1, 0, ~0,
                                                   &line) == -1)
                headers[0].value = csip_span(off: UInt32(buffer.count - 2), len: 3)
                #expect(csip_patterns_find_headers(table, buffer.baseAddress, buffer.count, nil, &headers, 1, ~0, ~0,
                                                   &line) == -EINVAL)
                var first = csip_span(off: 0, len: UInt32(buffer.count + 1))
                #expect(csip_patterns_find_headers(table, buffer.baseAddress, buffer.count, &first, &headers, 0, ~0,
                                                   ~0, &line) == -EINVAL)
            }
        }
    }

    /// csip_find_non_ascii against a byte loop, at every offset and length around its 16- and 64-byte steps.
    @Test func nonASCIISearchAgreesWithAByteLoop() {
        var rng = SplitMix64(seed: 8)
        for length in 0...200 {
            for _ in 0..<20 {
                var bytes = (0..<length).map { _ in UInt8.random(in: 0...0x7F, using: &rng) }
                for _ in 0..<Int.random(in: 0...2, using: &rng) where length > 0 {
                    bytes[Int.random(in: 0..<length, using: &rng)] = UInt8.random(in: 0x80...0xFF, using: &rng)
                }
                let from = Int.random(in: 0...length, using: &rng)
                let to = Int.random(in: from...length, using: &rng)
                let expected = (from..<to).first { bytes[$0] >= 0x80 } ?? to
                let found = bytes.withUnsafeBufferPointer { csip_find_non_ascii($0.baseAddress, from, to) }
                #expect(found == expected, "length \(length) [\(from), \(to))")
                let viaPacket = bytes.withPacketBytes { $0.firstNonASCII(in: ByteSpan(from: from, to: to)) }
                #expect(viaPacket == (expected == to ? nil : expected))
            }
        }
    }
}
