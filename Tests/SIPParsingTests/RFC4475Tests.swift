import Foundation
import SIPBytes
import SIPParsing
import Testing

/// RFC 4475 §3: every torture message, byte for byte (Corpus/RFC4475, transcribed from the RFC and checked
/// against its Appendix A archive). Valid ones must parse and pass full validation; invalid ones must be refused
/// with the error that names what is wrong.
@Suite struct RFC4475Tests {
    static let corpus: URL = Bundle.module.url(forResource: "Corpus", withExtension: nil)!
        .appendingPathComponent("RFC4475")

    static func load(_ name: String) throws -> [UInt8] {
        Array(try Data(contentsOf: corpus.appendingPathComponent("\(name).sip")))
    }

    /// Parses and fully validates; returns the error code, or nil when the message is accepted.
    static func verdict(_ name: String) throws -> SIPParseError.Code? {
        let parser = try SIPParser()
        let bytes = try load(name)
        return bytes.withPacketBytes { packet -> SIPParseError.Code? in
            do throws(SIPParseError) {
                let message = try parser.parse(packet)
                try parser.validateAllHeaders(message)
                return nil
            } catch {
                return error.code
            }
        }
    }

    static let validMessages = [
        "wsinv", "intmeth", "esc01", "escnull", "esc02", "lwsdisp", "longreq", "dblreq", "semiuri", "transports",
        "mpart01", "unreason", "noreason", "badbranch", "unkscm", "novelsc", "unksm2", "bext01", "invut", "regaut01",
        "bcast", "zeromf", "cparam01", "cparam02", "regescrt", "sdp01", "inv2543",
    ]

    @Test(arguments: validMessages)
    func validMessageIsAccepted(_ name: String) throws {
        let verdict = try Self.verdict(name)
        #expect(verdict == nil, "\(name) refused: \(String(describing: verdict))")
    }

    static let invalidMessages: [(String, SIPParseError.Code)] = [
        ("badinv01", .invalidVia),
        ("clerr", .contentLengthExceedsMessage),
        ("ncl", .invalidContentLength),
        ("scalar02", .cseqOutOfRange),
        ("scalarlg", .cseqOutOfRange),
        ("quotbal", .unterminatedQuotedString),
        ("ltgtruri", .invalidRequestURI),
        ("lwsruri", .invalidRequestURI),
        ("lwsstart", .startLineWhitespace),
        ("trws", .startLineWhitespace),
        ("escruri", .requestURIHasHeaders),
        ("baddate", .invalidDate),
        ("regbadct", .invalidURI),
        ("badaspec", .invalidURI),
        ("baddn", .invalidDisplayNameInFrom),
        ("badvers", .unsupportedSIPVersion),
        ("mismatch01", .cseqMethodMismatch),
        ("mismatch02", .cseqMethodMismatch),
        ("bigcode", .invalidStatusCode),
        ("insuf", .missingFrom),
        ("multi01", .duplicateHeader),
        ("mcl01", .conflictingContentLength),
    ]

    @Test(arguments: invalidMessages)
    func invalidMessageIsRefusedWithItsReason(_ name: String, _ expected: SIPParseError.Code) throws {
        #expect(try Self.verdict(name) == expected, "\(name)")
    }

    @Test func manifestListsExactlyTheTestedMessages() throws {
        let manifest = try String(contentsOf: Self.corpus.appendingPathComponent("manifest.tsv"), encoding: .utf8)
        var valid = Set<String>()
        var invalid = Set<String>()
        for line in manifest.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            if fields[2] == "valid" { valid.insert(String(fields[0])) } else { invalid.insert(String(fields[0])) }
        }
        #expect(valid == Set(Self.validMessages))
        #expect(invalid == Set(Self.invalidMessages.map(\.0)))
    }
}
