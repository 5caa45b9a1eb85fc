@testable import SIPParsing
import SIPBytes
import Testing

/// The character classes are literal bit masks for speed; each must equal the character list it documents.
@Suite struct CharacterClassTests {
    static let alphanumeric = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

    static let classes: [(String, CharacterClass, String)] = [
        ("token", .token, alphanumeric + "-.!%*_+`'~"),
        ("word", .word, alphanumeric + "-.!%*_+`'~()<>:\\\"/[]?{}"),
        ("user", .user, alphanumeric + "-_.!~*'()&=+$,;?/"),
        ("password", .password, alphanumeric + "-_.!~*'()&=+$,"),
        ("parameter", .parameter, alphanumeric + "[]/:&+$-_.!~*'()"),
        ("uriHeader", .uriHeader, alphanumeric + "[]/?:+$-_.!~*'()"),
        ("hostname", .hostname, alphanumeric + "-."),
        ("ipv6", .ipv6, "0123456789abcdefABCDEF:."),
        ("uric", .uric, alphanumeric + ";/?:@&=+$,-_.!~*'()[]"),
        ("telephone", .telephone, alphanumeric + "+-.()*#;=%/:[]&$!~_'"),
        ("scheme", .scheme, alphanumeric + "+-."),
        ("Via address", ViaHop.addressCharacters, alphanumeric + "-.:[]"),
        ("generic parameter value", .genericValue, alphanumeric + "-.!%*_+`'~[]:"),
        ("display name tokens", .displayNameTokens, alphanumeric + "-.!%*_+`'~ \t\r\n"),
        ("comma-separated element text", CommaSeparatedValues.plain,
         String(decoding: (0..<128).map { UInt8($0) }.filter { !Array(",\"<".utf8).contains($0) }, as: UTF8.self)),
    ]

    @Test func everyMaskMatchesItsCharacterList() {
        for (name, characterClass, list) in Self.classes {
            let members = Set(list.utf8)
            for byte in 0...255 {
                #expect(characterClass.contains(UInt8(byte)) == members.contains(UInt8(byte)), "\(name): byte \(byte)")
            }
        }
    }

    /// Runs are walked through the C table (csip_chars.h): each class's bit there must hold the same bytes.
    @Test func everyTableBitMatchesItsMask() {
        for (name, characterClass, _) in Self.classes {
            for byte in 0...255 {
                let inTable = [UInt8(byte)].withPacketBytes { $0.endOfRun(from: 0, to: 1, singleClass: characterClass.bit) == 1 }
                #expect(inTable == characterClass.contains(UInt8(byte)), "\(name): byte \(byte)")
            }
        }
    }
    /// Hostname, Call-ID word and element text runs step 16 bytes at a time (SSE2) and fall back to the table near the end of the
    /// buffer: every run over random text, from every start, must end where the mask says.
    @Test func longRunsEndWhereTheMaskSays() {
        var generator = SystemRandomNumberGenerator()
        var mismatches: [String] = []
        for (name, characterClass) in [("hostname", CharacterClass.hostname), ("word", CharacterClass.word),
                                       ("element text", CommaSeparatedValues.plain)] {
            for length in [1, 15, 16, 17, 31, 40, 64, 100] {
                for _ in 0..<20 {
                    // Mostly members, so runs are long; any byte at all now and then.
                    let buffer = (0..<length).map { _ -> UInt8 in
                        if UInt8.random(in: 0..<8, using: &generator) == 0 { return UInt8.random(in: 0...255, using: &generator) }
                        var byte: UInt8
                        repeat { byte = UInt8.random(in: 0...127, using: &generator) } while !characterClass.contains(byte)
                        return byte
                    }
                    buffer.withPacketBytes { packet in
                        for start in 0...length {
                            for end in [start, min(length, start + 1), min(length, start + 17), length] {
                                let expected = (start..<end).first { !characterClass.contains(buffer[$0]) } ?? end
                                let found = characterClass.endOfRun(in: packet, from: start, to: end)
                                if found != expected { mismatches.append("\(name) \(buffer) \(start)..<\(end): \(found)") }
                            }
                        }
                    }
                }
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(3))")
    }
}
