import SIPBytes
@testable import SIPParsing
import Testing

/// Header values split into elements at commas outside quotes and `<...>` (RFC 3261 §7.3.1). The splitter finds
/// commas with memchr; this checks it against the rule itself, one byte at a time, on every short value over the
/// bytes that matter (and on a seeded sample of longer ones).
@Suite struct CommaSeparatedValuesTests {
    /// The rule, byte by byte: the elements, trimmed of LWS (nil: an unterminated quote).
    static func reference(_ value: [UInt8]) -> [[UInt8]]? {
        guard !value.isEmpty else { return [] }
        var elements: [[UInt8]] = []
        var current: [UInt8] = []
        var inAngle = false
        var inQuote = false
        var index = 0
        while index < value.count {
            let byte = value[index]
            if inQuote {
                current.append(byte)
                if byte == UInt8(ascii: "\\"), index + 1 < value.count {
                    current.append(value[index + 1])
                    index += 1
                } else if byte == UInt8(ascii: "\"") {
                    inQuote = false
                }
            } else if byte == UInt8(ascii: ",") && !inAngle {
                elements.append(current)
                current = []
            } else {
                if byte == UInt8(ascii: "\"") { inQuote = true }
                if byte == UInt8(ascii: "<") { inAngle = true }
                if byte == UInt8(ascii: ">") { inAngle = false }
                current.append(byte)
            }
            index += 1
        }
        if inQuote { return nil }
        elements.append(current)
        return elements.map { element in
            Array(element.drop(while: { $0 == 0x20 }).reversed().drop(while: { $0 == 0x20 }).reversed())
        }
    }

    static func split(_ value: [UInt8]) -> [[UInt8]]? {
        value.withPacketBytes { bytes -> [[UInt8]]? in
            var elements = CommaSeparatedValues(bytes, bytes.all)
            var out: [[UInt8]] = []
            do throws(SIPParseError) {
                while let element = try elements.next() { out.append(Array(value[element.start..<element.end])) }
            } catch {
                return nil
            }
            return out
        }
    }

    @Test func everyShortValueSplitsAsTheRuleSays() {
        let alphabet = Array("a,<> ".utf8)
        for length in 0...7 {
            var digits = [Int](repeating: 0, count: length)
            while true {
                let value = digits.map { alphabet[$0] }
                #expect(Self.split(value) == Self.reference(value), "\(String(decoding: value, as: UTF8.self))")
                guard let carry = digits.lastIndex(where: { $0 < alphabet.count - 1 }) else { break }
                digits[carry] += 1
                for later in (carry + 1)..<length { digits[later] = 0 }
            }
        }
    }

    @Test func longerValuesWithQuotesSplitAsTheRuleSays() {
        let alphabet = Array("a,<>\" \\".utf8)
        var seed: UInt64 = 0x5EED
        for _ in 0..<20_000 {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let length = Int(seed >> 59)  // 0...31
            let value = (0..<length).map { index in
                alphabet[Int((seed >> UInt64(index % 50)) % UInt64(alphabet.count))]
            }
            #expect(Self.split(value) == Self.reference(value), "\(String(decoding: value, as: UTF8.self))")
        }
    }
}
