import CSIPScan
import SIPBytes
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
        var rng = SplitMix64(state: 7)
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
        var rng = SplitMix64(state: 2024)
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
        var rng = SplitMix64(state: 99)
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
        var rng = SplitMix64(state: 5)
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
        var rng = SplitMix64(state: 11)
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
        var rng = SplitMix64(state: 3)
        let patterns = Self.attackPatterns.map { Array($0.utf8) }.sorted { $0[0] < $1[0] }
        for level in [SIMDLevel.scalar] + Self.levels {
            let table = UnsafeMutablePointer<csip_patterns>.allocate(capacity: 1)
            defer { table.deallocate() }
            csip_patterns_init(table)
            for pattern in patterns {
                #expect(pattern.withUnsafeBufferPointer { csip_patterns_add(table, $0.baseAddress, $0.count) } == 0)
            }
            #expect(csip_patterns_set_level(table, level.rawValue) == 0)
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
            }
        }
    }
}
