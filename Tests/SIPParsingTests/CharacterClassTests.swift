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
        ("name-addr parameter value", NameAddress.parameterValue, alphanumeric + "-.!%*_+`'~[]:"),
        ("Via address", ViaHop.addressCharacters, alphanumeric + "-.:[]"),
        ("Via generic value", ViaHop.genericValue, alphanumeric + "-.!%*_+`'~[]:"),
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
                let inTable = [UInt8(byte)].withPacketBytes { $0.endOfRun(from: 0, to: 1, classes: characterClass.bit) == 1 }
                #expect(inTable == characterClass.contains(UInt8(byte)), "\(name): byte \(byte)")
            }
        }
    }
}
