import SIPBytes
import Testing

/// Host addresses in messages (Via sent-by, received, URIs) are read in place; dotted IPv4 has its own loop there
/// (inet_pton per message was measurable). Whatever the loop decides must be what inet_pton decides: the String form
/// still goes through inet_pton, so the two are compared.
@Suite struct EndpointAddressParseTests {
    static let texts = [
        "127.0.0.1", "0.0.0.0", "255.255.255.255", "192.0.2.10", "10.1.2.3", "1.2.3.4",
        "256.1.1.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.04", "1..2.3", ".1.2.3", "1.2.3.", "1.2.3.4.",
        "1000.1.1.1", "1.2.3.0255", "00.0.0.0", "9999999999.1.1.1", "1.2.3.4a", "1 .2.3.4", "", "1", "12345",
        "::1", "2001:db8::1", "::ffff:192.0.2.1", "[::1]", "[2001:db8::7]", "example.com", "1.2.3.x",
    ]

    @Test(arguments: texts)
    func readingInPlaceAgreesWithInetPton(_ text: String) {
        let bytes = Array(text.utf8)
        var inner = text
        if inner.hasPrefix("[") && inner.hasSuffix("]") { inner = String(inner.dropFirst().dropLast()) }
        let expected = EndpointAddress.parse(inner, port: 5060)
        let inPlace = bytes.withPacketBytes { packet in
            EndpointAddress.parse(packet, ByteSpan(from: 0, to: bytes.count), port: 5060)
        }
        #expect(inPlace == expected, "\(text)")
    }

    @Test func dottedAddressesAreParsedToTheirValue() {
        let address = Array("198.51.100.7".utf8).withPacketBytes { packet in
            EndpointAddress.parse(packet, ByteSpan(from: 0, to: 12), port: 40_001)
        }
        #expect(address?.family == .ipv4)
        #expect(address?.ipv4 == 0xC633_6407)
        #expect(address?.port == 40_001)
    }

    /// Every forwarded request from a client carries its source address as text (received=): the text written must
    /// be inet_ntop's, for octets of one, two and three digits in every position.
    @Test func ipv4TextIsWrittenAsInetNtopWritesIt() {
        let octets: [UInt32] = [0, 1, 9, 10, 42, 99, 100, 199, 200, 255]
        for (index, first) in octets.enumerated() {
            for second in octets {
                let third = octets[(index + 3) % octets.count]
                let fourth = octets[(index + 7) % octets.count]
                let value = first << 24 | second << 16 | third << 8 | fourth
                let address = EndpointAddress(family: .ipv4, high: UInt64(value) << 32, low: 0, port: 5060)
                var written: [UInt8] = []
                address.appendHost(to: &written)
                let text = String(decoding: written, as: UTF8.self)
                #expect(text == "\(first).\(second).\(third).\(fourth)")
                #expect(EndpointAddress.parse(text, port: 5060) == address, "\(text)")
            }
        }
    }
}
