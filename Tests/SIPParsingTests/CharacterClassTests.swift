@testable import SIPParsing
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
}
