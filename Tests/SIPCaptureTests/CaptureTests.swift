import SIPBytes
import SIPCapture
import SIPTestSupport
import Testing

@Suite struct HEPEncoderTests {
    let message = Array("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK1\r\nCall-ID: abc@host\r\n\r\n".utf8)

    func encode(source: EndpointAddress, destination: EndpointAddress, password: String = "",
                node: String = "sip-edge") -> [UInt8] {
        message.withPacketBytes { payload in
            let callID = CallIDLocator.find(in: payload)!
            let metadata = CaptureMetadata(source: source, destination: destination, ipProtocol: .tcp,
                                           seconds: 1_800_000_000, microseconds: 123_456)
            let length = HEPEncoder.encodedLength(metadata: metadata, payloadLength: payload.count,
                                                  correlationLength: callID.count, authKeyLength: password.utf8.count,
                                                  nodeNameLength: node.utf8.count)!
            var out: [UInt8] = []
            HEPEncoder.encode(into: &out, metadata: metadata, payload: payload, correlation: payload.copyBytes(callID),
                              authKey: Array(password.utf8), nodeName: Array(node.utf8), captureAgentID: 0x0102_0304)
            #expect(out.count == length)
            return out
        }
    }

    @Test func anIPv4CaptureCarriesEveryChunkInNetworkOrder() throws {
        let packet = encode(source: EndpointAddress.parse("192.0.2.1", port: 5060)!,
                            destination: EndpointAddress.parse("198.51.100.7", port: 40_000)!, password: "s3cret")
        let chunks = try #require(hepChunks(packet))
        let byType = Dictionary(chunks, uniquingKeysWith: { first, _ in first })
        #expect(byType[0x0001] == [2])  // AF_INET
        #expect(byType[0x0002] == [6])  // TCP
        #expect(byType[0x0003] == [192, 0, 2, 1])
        #expect(byType[0x0004] == [198, 51, 100, 7])
        #expect(byType[0x0007] == [0x13, 0xC4])  // 5060
        #expect(byType[0x0008] == [0x9C, 0x40])  // 40000
        #expect(byType[0x0009] == [0x6B, 0x49, 0xD2, 0x00])  // 1,800,000,000
        #expect(byType[0x000A] == [0x00, 0x01, 0xE2, 0x40])  // 123,456
        #expect(byType[0x000B] == [1])  // SIP
        #expect(byType[0x000C] == [1, 2, 3, 4])
        #expect(byType[0x000E] == Array("s3cret".utf8))
        #expect(byType[0x0011] == Array("abc@host".utf8))
        #expect(byType[0x0013] == Array("sip-edge".utf8))
        #expect(byType[0x000F] == message)
        #expect(chunks.last?.0 == 0x000F, "the payload comes last")
    }

    @Test func anIPv6CaptureUsesTheIPv6ChunksAndNoAuthKeyWithoutAPassword() throws {
        let packet = encode(source: EndpointAddress.parse("2001:db8::1", port: 5060)!,
                            destination: EndpointAddress.parse("2001:db8::2", port: 5080)!)
        let chunks = try #require(hepChunks(packet))
        let byType = Dictionary(chunks, uniquingKeysWith: { first, _ in first })
        #expect(byType[0x0001] == [10])  // AF_INET6
        #expect(byType[0x0005] == [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [1])
        #expect(byType[0x0006] == [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [2])
        #expect(byType[0x0003] == nil && byType[0x000E] == nil)
    }

    @Test func aMessageBeyondHEPsSixteenBitLengthIsNotEncoded() {
        let metadata = CaptureMetadata(source: EndpointAddress.parse("192.0.2.1", port: 1)!,
                                       destination: EndpointAddress.parse("192.0.2.2", port: 2)!, ipProtocol: .udp,
                                       seconds: 0, microseconds: 0)
        #expect(HEPEncoder.encodedLength(metadata: metadata, payloadLength: 65_500, correlationLength: 10,
                                         authKeyLength: 0, nodeNameLength: 8) == nil)
        #expect(HEPEncoder.encodedLength(metadata: metadata, payloadLength: 60_000, correlationLength: 10,
                                         authKeyLength: 0, nodeNameLength: 8) != nil)
    }

    @Test func theCallIDIsFoundInLongAndCompactFormAndNotInTheBody() {
        func find(_ text: String) -> String? {
            Array(text.utf8).withPacketBytes { bytes in CallIDLocator.find(in: bytes).map { bytes.string($0) } }
        }
        #expect(find("SIP/2.0 200 OK\r\nVia: x\r\ncall-ID :  c1@h \r\n\r\n") == "c1@h")
        #expect(find("BYE sip:a SIP/2.0\r\ni: short\r\n\r\n") == "short")
        #expect(find("BYE sip:a SIP/2.0\r\nVia: x\r\n\r\nCall-ID: in-body\r\n") == nil)
    }
}

@Suite struct CaptureQueueTests {
    static func packet(_ value: UInt8, length: Int) -> (inout [UInt8]) -> Void {
        { out in out.append(contentsOf: Array(repeating: value, count: length)) }
    }

    @Test func aFullQueueDropsItsOldestAndKeepsTheOrderOfTheRest() {
        var queue = CaptureQueue(capacityBytes: 100)
        for value in 1...4 { queue.append(length: 30, Self.packet(UInt8(value), length: 30)) }
        // 4 x 30 > 100: the first went.
        #expect(queue.dropped == 1)
        #expect(queue.count == 3)
        #expect(queue.bytes[Int(queue.offsets[queue.head])] == 2)
        queue.consume(1)
        queue.append(length: 60, Self.packet(9, length: 60))
        // 30 + 30 + 60 > 100: packet 3 went too, packet 4 and 9 stay in order.
        #expect(queue.dropped == 2)
        #expect(queue.count == 2)
        #expect(queue.bytes[Int(queue.offsets[queue.head])] == 4)
        #expect(queue.bytes[Int(queue.offsets[queue.head + 1])] == 9)
        #expect(queue.bytes.count <= 100, "never beyond its capacity")
    }

    @Test func aCaptureLargerThanTheQueueIsDroppedWithoutEmptyingIt() {
        var queue = CaptureQueue(capacityBytes: 64)
        queue.append(length: 10, Self.packet(1, length: 10))
        queue.append(length: 65, Self.packet(2, length: 65))
        #expect(queue.dropped == 1)
        #expect(queue.count == 1)
        queue.consume(1)
        #expect(queue.isEmpty && queue.bytes.isEmpty)
    }
}
