import SIPBytes
@testable import SIPParsing
import SIPTestSupport
import Testing

/// Every Via and URI host is classified on the message path, IPv4 through a fast C-digit-run check first. That check
/// may only ever say "IPv4" where the grammar's reading does: whatever it passes on must still come out as before.
@Suite struct HostClassificationTests {
    /// What `classify` answers for `text` as a comparable value: the kind, or the error's code and offset.
    static func outcome(_ text: [UInt8],
                        _ classify: (PacketBytes, ByteSpan) throws(SIPParseError) -> SIPURI.HostKind) -> String {
        text.withPacketBytes { packet in
            do throws(SIPParseError) { return "\(try classify(packet, packet.all))" } catch {
                return "error \(error.code) at \(error.offset)"
            }
        }
    }

    /// The grammar's answer alone (no fast check).
    static func byGrammar(_ text: [UInt8]) -> String { outcome(text, SIPURI.classifyDottedNumbers) }

    /// The message path's answer.
    static func classified(_ text: [UInt8]) -> String { outcome(text, SIPURI.classifyHostname) }

    static let cases = [
        "127.0.0.1", "0.0.0.0", "255.255.255.255", "192.0.2.10", "1.2.3.4", "01.2.3.4", "1.2.3.0255", "000.0.0.0",
        "0000000000000000000001.2.3.4", "256.1.1.1", "1.2.3.256", "1.2.3", "1.2.3.4.5", "1..2.3", "1.2.3.", "1.2.3.4.",
        "1.2.3.999", "1.2.3.4a", "9999999999999999999999.1.1.1", "1.2.3.4.5.6", "1.2.3.0004",
    ]

    @Test(arguments: cases)
    func knownHostsReadAsTheGrammarReadsThem(_ text: String) {
        let bytes = Array(text.utf8)
        #expect(Self.classified(bytes) == Self.byGrammar(bytes))
    }

    /// Random strings of digits and dots.
    @Test func randomDottedNumbersReadAsTheGrammarReadsThem() {
        var random = SplitMix64(seed: 0x1F4)
        let alphabet = Array("0123456789.".utf8) + Array("0125.".utf8)  // digits likelier, and low ones
        var compared = 0
        for _ in 0..<50_000 {
            let length = 1 + Int(random.next() % 20)
            let bytes = (0..<length).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] }
            // A last label not starting with a digit is a name before the check runs: not its business.
            let kind = Self.classified(bytes)
            guard kind != "name" else { continue }
            #expect(kind == Self.byGrammar(bytes), "\(String(decoding: bytes, as: UTF8.self))")
            compared += 1
        }
        #expect(compared > 30_000)
    }
}
