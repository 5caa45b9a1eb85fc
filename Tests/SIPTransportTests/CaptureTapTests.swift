import SIPBytes
import SIPCapture
import SIPProxyCore
@testable import SIPTransport
import SIPTestSupport
import Testing

/// The capture tap's choices: sampling by Call-ID keeps a dialog whole, and `include` picks the directions.
@Suite struct CaptureTapTests {
    static let client = EndpointAddress.parse("192.0.2.10", port: 5060)!
    static let local = EndpointAddress.parse("127.0.0.1", port: 5060)!

    func tap(samplePercent: Int = 100, include: [CaptureSettings.Direction] = [.received, .sent]) throws -> CaptureTap {
        var settings = CaptureSettings()
        settings.samplePercent = samplePercent
        settings.include = include
        // A collector address nothing listens on: these tests read the queue, they never flush it.
        let target = CaptureTarget(transport: .udp, address: EndpointAddress.parse("127.0.0.1", port: 9)!)
        return try CaptureTap(settings: settings, target: target, localAddresses: CaptureTap.LocalAddresses(
            publicUDP: Self.local, upstreamUDP: Self.local, tcp: Self.local, tls: Self.local, ws: Self.local,
            wss: Self.local))
    }

    static func message(_ callID: String) -> [UInt8] {
        Array("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK\(callID)\r\nCall-ID: \(callID)\r\n\r\n".utf8)
    }

    /// The Call-IDs of the queued captures, in order.
    func capturedCallIDs(_ tap: CaptureTap) -> [String] {
        (tap.queue.head..<(tap.queue.head + tap.queue.count)).map { index in
            let start = Int(tap.queue.offsets[index])
            let packet = Array(tap.queue.bytes[start..<(start + Int(tap.queue.lengths[index]))])
            let chunks = hepChunks(packet) ?? []
            return String(decoding: chunks.first { $0.0 == 0x0011 }?.1 ?? [], as: UTF8.self)
        }
    }

    @Test func samplingKeepsOrDropsADialogWholeAndTakesAboutTheShareAskedFor() throws {
        let tap = try tap(samplePercent: 30)
        let callIDs = (0..<400).map { "call-\($0)@host" }
        for callID in callIDs {
            let bytes = Self.message(callID)
            // Handled like the pipeline does: begin, identify once parsed, its reply sent, end.
            tap.begin()
            bytes.withPacketBytes { packet in tap.identify(packet, callID: CallIDLocator.find(in: packet)!) }
            bytes.withPacketBytes { tap.sent($0, to: .udp(Self.client), isUpstream: false) }
            bytes.withPacketBytes { packet in
                tap.end(packet, from: .udp(Self.client), isUpstream: false, refused: false, time: (1, 2))
            }
            // And a send of the same dialog outside any handling (a timer's), which finds the Call-ID itself.
            bytes.withPacketBytes { tap.sent($0, to: .udp(Self.client), isUpstream: false) }
        }
        let captured = capturedCallIDs(tap)
        var perCall: [String: Int] = [:]
        for callID in captured { perCall[callID, default: 0] += 1 }
        #expect(perCall.values.allSatisfy { $0 == 3 }, "a sampled call has all three of its messages")
        #expect(perCall.count > 80 && perCall.count < 160, "\(perCall.count) of 400 calls at 30%")
    }

    @Test func includeChoosesTheDirections() throws {
        let tap = try tap(include: [.sent])
        let bytes = Self.message("only-sent")
        tap.begin()
        bytes.withPacketBytes { packet in tap.identify(packet, callID: CallIDLocator.find(in: packet)!) }
        bytes.withPacketBytes { tap.sent($0, to: .udp(Self.client), isUpstream: false) }
        bytes.withPacketBytes { packet in
            tap.end(packet, from: .udp(Self.client), isUpstream: false, refused: false, time: (1, 2))
        }
        #expect(capturedCallIDs(tap) == ["only-sent"])
        let chunks = try #require(hepChunks(Array(tap.queue.bytes)))
        let source = chunks.first { $0.0 == 0x0003 }?.1
        #expect(source == [127, 0, 0, 1], "a sent capture comes from the edge's own address")
    }

    /// HEP has no WebSocket protocol id: WS is captured as TCP and WSS as TLS (what Homer shows for them).
    @Test func webSocketFlowsAreCapturedAsTCPAndTLS() {
        #expect(CaptureTap.ipProtocol(.ws) == .tcp)
        #expect(CaptureTap.ipProtocol(.wss) == .tls)
        #expect(CaptureTap.ipProtocol(.tls) == .tls)
        #expect(CaptureTap.ipProtocol(.udp) == .udp)
    }
}
