import Foundation
import SIPTestSupport

/// A raw WebSocket client (RFC 6455) over a test TCP connection, for what a well-behaved library will not send:
/// bad handshakes, unmasked and oversized frames, fragments with control frames between them. Its frame writer and
/// reader are written here from the RFC, independently of the edge's.
final class WebSocketTestClient {
    let stream: TestStreamClient
    /// The handshake response head, once read.
    private(set) var handshakeResponse = ""

    init?(port: Int) {
        guard let stream = TestStreamClient(port: port) else { return nil }
        self.stream = stream
    }

    static func upgradeRequest(path: String = "/", version: String = "13", protocols: String? = "sip",
                               origin: String? = nil, extraHeaders: String = "") -> String {
        var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: \(version)\r\n"
        if let protocols { request += "Sec-WebSocket-Protocol: \(protocols)\r\n" }
        if let origin { request += "Origin: \(origin)\r\n" }
        return request + extraHeaders + "\r\n"
    }

    /// Sends `request` and reads the response head; returns its status code (0 when none came).
    func handshake(_ request: String = WebSocketTestClient.upgradeRequest(), timeout: TimeInterval = 3) -> Int {
        stream.send(request)
        let text = stream.receive(timeout: timeout) { $0.contains("\r\n\r\n") }
        guard let end = text.range(of: "\r\n\r\n") else { return 0 }
        handshakeResponse = String(text[..<end.lowerBound])
        stream.drop(text.utf8.distance(from: text.utf8.startIndex, to: end.upperBound.samePosition(in: text.utf8)!))
        let parts = handshakeResponse.split(separator: " ")
        return parts.count > 1 ? Int(parts[1]) ?? 0 : 0
    }

    /// A client frame: masked (unless told otherwise) with a fixed key, any opcode and length encoding.
    static func frame(opcode: UInt8, _ payload: [UInt8], fin: Bool = true, masked: Bool = true,
                      declaredLength: UInt64? = nil) -> [UInt8] {
        var out: [UInt8] = [(fin ? 0x80 : 0) | opcode]
        let length = declaredLength ?? UInt64(payload.count)
        let maskBit: UInt8 = masked ? 0x80 : 0
        if length < 126 {
            out.append(maskBit | UInt8(length))
        } else if length <= 0xFFFF {
            out.append(maskBit | 126)
            out += [UInt8(length >> 8), UInt8(length & 0xFF)]
        } else {
            out.append(maskBit | 127)
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8((length >> UInt64(shift)) & 0xFF)) }
        }
        let key: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]
        if masked { out += key }
        for (index, byte) in payload.enumerated() { out.append(masked ? byte ^ key[index % 4] : byte) }
        return out
    }

    func send(opcode: UInt8, _ payload: [UInt8], fin: Bool = true, masked: Bool = true) {
        stream.send(bytes: Self.frame(opcode: opcode, payload, fin: fin, masked: masked))
    }

    func sendText(_ text: String) { send(opcode: 1, Array(text.utf8)) }

    /// The next server frame (opcode, payload), or nil when none came within `timeout` or the server closed first.
    func readFrame(timeout: TimeInterval = 3) -> (opcode: UInt8, payload: [UInt8])? {
        var parsed: (opcode: UInt8, payload: [UInt8], size: Int)?
        stream.receive(timeout: timeout) { _ in
            parsed = Self.parseServerFrame(self.stream.bytes)
            return parsed != nil
        }
        if parsed == nil { parsed = Self.parseServerFrame(stream.bytes) }
        guard let parsed else { return nil }
        stream.drop(parsed.size)
        return (parsed.opcode, parsed.payload)
    }

    /// Frames until one that is not a ping (pings are answered with a pong when `answerPings`).
    func readFrameSkippingPings(timeout: TimeInterval = 3, answerPings: Bool = true) -> (opcode: UInt8, payload: [UInt8])? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            guard let frame = readFrame(timeout: deadline.timeIntervalSinceNow) else { return nil }
            if frame.opcode == 9 {
                if answerPings { send(opcode: 10, frame.payload) }
                continue
            }
            return frame
        }
        return nil
    }

    /// A server frame at the start of `bytes` (unmasked, as RFC 6455 §5.1 requires of servers).
    static func parseServerFrame(_ bytes: [UInt8]) -> (opcode: UInt8, payload: [UInt8], size: Int)? {
        guard bytes.count >= 2 else { return nil }
        var length = Int(bytes[1] & 0x7F)
        var offset = 2
        if length == 126 {
            guard bytes.count >= 4 else { return nil }
            length = Int(bytes[2]) << 8 | Int(bytes[3])
            offset = 4
        } else if length == 127 {
            guard bytes.count >= 10 else { return nil }
            length = bytes[2..<10].reduce(0) { $0 << 8 | Int($1) }
            offset = 10
        }
        guard bytes.count >= offset + length else { return nil }
        return (bytes[0] & 0x0F, Array(bytes[offset..<offset + length]), offset + length)
    }

    /// The status code of a close frame's payload (1005 when it has none).
    static func closeCode(_ payload: [UInt8]) -> Int {
        payload.count >= 2 ? Int(payload[0]) << 8 | Int(payload[1]) : 1005
    }
}
