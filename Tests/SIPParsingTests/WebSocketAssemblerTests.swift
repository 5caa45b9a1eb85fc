import SIPBytes
import SIPParsing
import Testing

/// A client frame as a browser sends it: masked, any opcode and FIN, the length in its minimal encoding unless
/// `lengthBytes` forces another.
func clientFrame(_ opcode: UInt8, _ payload: [UInt8], fin: Bool = true, masked: Bool = true,
                 key: [UInt8] = [0x37, 0xFA, 0x21, 0x3D], rsv: UInt8 = 0, announced: UInt64? = nil,
                 lengthBytes: Int? = nil) -> [UInt8] {
    var out: [UInt8] = [(fin ? 0x80 : 0) | rsv << 4 | opcode]
    let length = announced ?? UInt64(payload.count)
    let encoding = lengthBytes ?? (length < 126 ? 0 : length <= 0xFFFF ? 2 : 8)
    let maskBit: UInt8 = masked ? 0x80 : 0
    switch encoding {
    case 0: out.append(maskBit | UInt8(length))
    case 2: out += [maskBit | 126, UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)]
    default: out.append(maskBit | 127); for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(length >> UInt64(shift) & 0xFF)) }
    }
    if masked {
        out += key
        out += payload.enumerated().map { $0.element ^ key[$0.offset % 4] }
    } else {
        out += payload
    }
    return out
}

@Suite struct WebSocketAssemblerTests {
    let invite = Array("INVITE sip:bob@example.com SIP/2.0\r\n".utf8)

    func feedAll(_ bytes: [UInt8], max: Int = 70_000, chunk: Int? = nil) -> [WebSocketAssembler.Event] {
        var assembler = WebSocketAssembler(maxMessage: max)
        guard let chunk else { return assembler.feed(bytes[...]) }
        var events: [WebSocketAssembler.Event] = []
        var index = 0
        while index < bytes.count {
            events += assembler.feed(bytes[index..<min(index + chunk, bytes.count)])
            index += chunk
        }
        return events
    }

    @Test(arguments: [0, 5, 125, 126, 65_535, 65_536])
    func aMaskedMessageOfEveryLengthEncodingComesOutWhole(length: Int) {
        let payload = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let frame = clientFrame(1, payload)
        #expect(feedAll(frame) == [.message(payload, isText: true)])
        #expect(feedAll(frame, chunk: length > 1_000 ? 977 : 1) == [.message(payload, isText: true)], "in pieces")
    }

    @Test func lengthsThatBreakTheEncodingOrTheLimitEndTheConnection() {
        #expect(feedAll(clientFrame(1, [], announced: 1 << 63, lengthBytes: 8)) == [.failed(code: 1002)],
                "the 64-bit length's top bit")
        #expect(feedAll(clientFrame(1, [], announced: 1 << 40)) == [.failed(code: 1009)], "over the limit: 1009")
        #expect(feedAll(clientFrame(1, Array(invite.prefix(5)), lengthBytes: 2)) == [.failed(code: 1002)],
                "5 announced in 16 bits is not minimal")
        #expect(feedAll(clientFrame(2, [UInt8](repeating: 1, count: 300), lengthBytes: 8)) == [.failed(code: 1002)],
                "300 announced in 64 bits is not minimal")
    }

    @Test func unmaskedReservedAndUnknownFramesAreProtocolErrors() {
        #expect(feedAll(clientFrame(1, invite, masked: false)) == [.failed(code: 1002)])
        #expect(feedAll(clientFrame(1, invite, rsv: 4)) == [.failed(code: 1002)])
        #expect(feedAll(clientFrame(3, invite)) == [.failed(code: 1002)])
        var assembler = WebSocketAssembler(maxMessage: 1_000)
        _ = assembler.feed(clientFrame(1, invite, masked: false)[...])
        #expect(assembler.feed(clientFrame(1, invite)[...]).isEmpty, "nothing is read after a failure")
    }

    @Test func fragmentsAreReassembledWithControlFramesBetweenThem() {
        let first = Array(invite.prefix(10))
        let rest = Array(invite.dropFirst(10))
        let bytes = clientFrame(1, first, fin: false) + clientFrame(9, Array("ping".utf8))
            + clientFrame(0, Array(rest.prefix(3)), fin: false) + clientFrame(10, []) + clientFrame(0, Array(rest.dropFirst(3)))
        let expected: [WebSocketAssembler.Event] = [.ping(Array("ping".utf8)), .pong([]), .message(invite, isText: true)]
        #expect(feedAll(bytes) == expected)
        #expect(feedAll(bytes, chunk: 1) == expected, "byte by byte")
    }

    @Test func fragmentationOutOfOrderOrTooLongEndsTheConnection() {
        #expect(feedAll(clientFrame(0, invite)) == [.failed(code: 1002)], "a continuation of nothing")
        #expect(feedAll(clientFrame(1, invite, fin: false) + clientFrame(2, invite)) == [.failed(code: 1002)],
                "a new message before the last one ended")
        let half = [UInt8](repeating: 0x41, count: 600)
        #expect(feedAll(clientFrame(2, half, fin: false) + clientFrame(0, half), max: 1_000) == [.failed(code: 1009)])
        #expect(feedAll(clientFrame(9, [1, 2], fin: false)) == [.failed(code: 1002)], "a fragmented ping")
        #expect(feedAll(clientFrame(9, [UInt8](repeating: 0, count: 126))) == [.failed(code: 1002)], "a ping over 125")
    }

    @Test func closeFramesCarryTheirCodeAndReason() {
        #expect(feedAll(clientFrame(8, [0x03, 0xE8] + Array("bye".utf8))) == [.close(code: 1000, reason: Array("bye".utf8))])
        #expect(feedAll(clientFrame(8, [])) == [.close(code: 1005, reason: [])])
        #expect(feedAll(clientFrame(8, [0x03])) == [.failed(code: 1002)])
        #expect(feedAll(clientFrame(8, [0x03, 0xE8]) + clientFrame(1, invite)) == [.close(code: 1000, reason: [])],
                "nothing after the close")
    }

    @Test(arguments: [(0, 2), (125, 2), (126, 4), (65_535, 4), (65_536, 10)])
    func serverFramesAreUnmaskedWithTheMinimalLength(payload: Int, header: Int) throws {
        let frame = WebSocketAssembler.frame(.text, [UInt8](repeating: 0x61, count: payload))
        #expect(frame.count == header + payload)
        let parsed = try #require(try WebSocketFrameHeader.parse(frame, from: 0, maxPayload: 1 << 20))
        #expect(!parsed.isMasked && parsed.fin && parsed.opcode == .text && parsed.payloadLength == UInt64(payload))
        #expect(WebSocketAssembler.closeFrame(code: 1009, reason: "too big") == [0x88, 9, 0x03, 0xF1] + Array("too big".utf8))
    }

    /// In place (how the edge reads a connection's buffer): a whole message is unmasked where it lies and given
    /// as a range, a frame not all there yet consumes nothing, fragments are gathered apart.
    @Test func framesAreReadInPlaceWithoutCopyingWholeMessages() {
        var buffer: [UInt8] = Array("leftover".utf8) + clientFrame(1, invite)
        var assembler = WebSocketAssembler(maxMessage: 4_096)
        let first = assembler.nextFrame(in: &buffer, from: 8)
        guard case .message(let range, let isText) = first?.frame else {
            Issue.record("expected a message in place, got \(String(describing: first))")
            return
        }
        #expect(isText && Array(buffer[range]) == invite, "unmasked in the buffer itself")
        #expect(first?.end == buffer.count)

        let partial = clientFrame(2, [1, 2, 3, 4, 5])
        var short = Array(partial.dropLast())
        #expect(assembler.nextFrame(in: &short, from: 0) == nil, "not all there: nothing consumed")
        var parts = clientFrame(1, Array(invite[0..<10]), fin: false) + clientFrame(9, [7])
            + clientFrame(0, Array(invite[10...]), fin: true)
        var at = 0
        var frames: [WebSocketAssembler.Frame] = []
        while let (frame, end) = assembler.nextFrame(in: &parts, from: at) {
            frames.append(frame)
            at = end
        }
        #expect(frames == [.fragment, .event(.ping([7])), .event(.message(invite, isText: true))])
        #expect(at == parts.count)
    }
}
