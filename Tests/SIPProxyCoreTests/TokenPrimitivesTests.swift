import CSIPTLS
import Foundation
import SIPBytes
import Testing

/// The flow-token MAC keeps its key's pad states and hashes only the data per call: it must still be HMAC-SHA256
/// exactly, or tokens signed by an edge of the previous build (handover, a peer edge) would stop verifying.
@Suite struct MessageAuthenticatorTests {
    private func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }

    private func mac(key: [UInt8], data: [UInt8], length: Int = 32) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: length)
        #expect(MessageAuthenticator(key: key).compute(data, length: data.count, into: &out))
        return out
    }

    /// RFC 4231's test cases whose keys are long enough for a flow key (16 bytes or more); 6 and 7 have a key longer
    /// than SHA-256's block, which HMAC hashes first, and 7 data over two blocks.
    @Test(arguments: [
        ([UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8),
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        (Array(1...25), [UInt8](repeating: 0xcd, count: 50),
         "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
        ([UInt8](repeating: 0xaa, count: 131), Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
        ([UInt8](repeating: 0xaa, count: 131),
         Array(("This is a test using a larger than block-size key and a larger than block-size data. The key needs"
             + " to be hashed before being used by the HMAC algorithm.").utf8),
         "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
    ])
    func rfc4231(key: [UInt8], data: [UInt8], expected: String) {
        #expect(hex(mac(key: key, data: data)) == expected)
    }

    /// Every data length across the padding boundaries (55/56 and 64 bytes), truncated as flow tokens use it, the
    /// same as OpenSSL's one-shot HMAC(); the context is reused between calls, as a worker's is.
    @Test func matchesOneShotHMACForEveryLengthAndReuse() {
        let key = Array("0123456789abcdef0123456789abcdef".utf8)
        let authenticator = MessageAuthenticator(key: key)
        let data = (0..<200).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        for length in 0...data.count {
            var reused = [UInt8](repeating: 0, count: 12)
            #expect(authenticator.compute(data, length: length, into: &reused))
            var reference = [UInt8](repeating: 0, count: 12)
            #expect(csip_hmac_sha256(key, key.count, data, length, &reference, reference.count) == 0)
            #expect(reused == reference, "length \(length)")
        }
    }
}

/// Flow tokens are base64url (RFC 4648 §5, no padding) in Via and Route parameters: an edge of another build must
/// read them, so the encoder must match the standard byte for byte, at every length (a token is 24 or 36 bytes;
/// the encoder works 48 bytes at a time).
@Suite struct Base64URLTests {
    @Test func matchesFoundationForEveryLength() {
        for length in 0...130 {
            let raw = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 97 &+ 13) }
            var encoded: [UInt8] = Array("prefix:".utf8)
            Base64URL.append(raw, to: &encoded)
            let expected = "prefix:" + Data(raw).base64EncodedString()
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
            #expect(String(decoding: encoded, as: UTF8.self) == expected, "length \(length)")
        }
    }
}

/// The generated-text appenders of the forwarding path (Via branches, CSeq numbers, ports).
@Suite struct GeneratedTextTests {
    @Test(arguments: [UInt64(0), 7, 10, 99, 100, 5060, 65_535, 4_294_967_295, UInt64.max])
    func decimal(value: UInt64) {
        var out: [UInt8] = Array("n=".utf8)
        appendDecimal(value, to: &out)
        #expect(String(decoding: out, as: UTF8.self) == "n=\(value)")
    }

    @Test(arguments: [UInt64(0), 0xA, 0x0123_4567_89AB_CDEF, UInt64.max])
    func hex(value: UInt64) {
        var out: [UInt8] = []
        appendHex(value, to: &out)
        let digits = String(value, radix: 16)
        #expect(String(decoding: out, as: UTF8.self) == String(repeating: "0", count: 16 - digits.count) + digits)
    }
}
