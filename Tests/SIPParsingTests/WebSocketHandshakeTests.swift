import SIPParsing
import Testing

@Suite struct WebSocketHandshakeTests {
    /// RFC 6455 §1.3's own example key and accept value.
    static let key = "dGhlIHNhbXBsZSBub25jZQ=="
    static let accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

    static func request(path: String = "/", version: String = "13", key: String = key, protocols: String? = "sip",
                        origin: String? = "https://phone.example.com", extra: String = "") -> [UInt8] {
        var lines = ["GET \(path) HTTP/1.1", "Host: edge.example.com", "Upgrade: websocket", "Connection: keep-alive, Upgrade",
                     "Sec-WebSocket-Version: \(version)", "Sec-WebSocket-Key: \(key)"]
        if let protocols { lines.append("Sec-WebSocket-Protocol: \(protocols)") }
        if let origin { lines.append("Origin: \(origin)") }
        return Array((lines.joined(separator: "\r\n") + "\r\n" + extra + "\r\n").utf8)
    }

    func status(_ outcome: WebSocketHandshake.Outcome) -> Int? {
        switch outcome {
        case .accept: 101
        case .refuse(let status, _): status
        case .needMore: nil
        }
    }

    @Test func aBrowsersHandshakeIsAcceptedWithTheRFCsAcceptValueAndTheSIPSubprotocol() throws {
        var policy = WebSocketHandshakePolicy()
        policy.paths = ["/", "/ws"]
        let frames: [UInt8] = [0x81, 0x80, 1, 2, 3, 4]
        let outcome = WebSocketHandshake.read(Self.request(path: "/ws?client=1", protocols: "foo, sip") + frames, policy: policy)
        guard case .accept(let response, let consumed, let path, let origin) = outcome else {
            Issue.record("refused: \(outcome)")
            return
        }
        let text = String(decoding: response, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
        #expect(text.contains("\r\nSec-WebSocket-Accept: \(Self.accept)\r\n"))
        #expect(text.contains("\r\nSec-WebSocket-Protocol: sip\r\n") && text.hasSuffix("\r\n\r\n"))
        #expect(consumed == Self.request(path: "/ws?client=1", protocols: "foo, sip").count, "frames after it are left")
        #expect(path == "/ws" && origin == "https://phone.example.com")
    }

    @Test func anIncompleteHeadWaitsAndAnOversizedOneIsRefused() {
        let full = Self.request()
        #expect(WebSocketHandshake.read(Array(full.dropLast(2)), policy: WebSocketHandshakePolicy()) == .needMore)
        var policy = WebSocketHandshakePolicy()
        policy.maxHeaderBytes = 256
        let padded = Self.request(extra: "X-Pad: " + String(repeating: "a", count: 300) + "\r\n")
        #expect(status(WebSocketHandshake.read(padded, policy: policy)) == 431)
        #expect(status(WebSocketHandshake.read(Array(padded.prefix(280)), policy: policy)) == 431, "a slowloris head")
    }

    @Test func eachBrokenRuleGetsItsStatus() {
        var policy = WebSocketHandshakePolicy()
        policy.allowedOrigins = ["https://phone.example.com", "*.example.net"]
        let cases: [([UInt8], Int)] = [
            (Self.request(version: "8"), 426),
            (Self.request(key: "short=="), 400),
            (Self.request(path: "/other"), 404),
            (Self.request(origin: "https://evil.example.org"), 403),
            (Self.request(origin: nil), 403),
            (Self.request(origin: "https://a.example.net:8443"), 101),
            (Self.request(origin: "https://example.net.evil.org"), 403),
            (Self.request(protocols: nil), 400),
            (Self.request(protocols: "xmpp"), 400),
            (Array("POST / HTTP/1.1\r\nHost: x\r\n\r\n".utf8), 400),
            (Array("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n".utf8), 400),
        ]
        for (request, expected) in cases {
            let outcome = WebSocketHandshake.read(request, policy: policy)
            #expect(status(outcome) == expected, "\(String(decoding: request.prefix(60), as: UTF8.self))")
            if case .refuse(_, let response) = outcome {
                let text = String(decoding: response, as: UTF8.self)
                #expect(text.contains("Connection: close\r\n") && !text.contains("evil"), "nothing echoed")
            }
        }
        let upgrade = WebSocketHandshake.read(Self.request(version: "8"), policy: policy)
        if case .refuse(_, let response) = upgrade {
            #expect(String(decoding: response, as: UTF8.self).contains("Sec-WebSocket-Version: 13\r\n"))
        }
    }
}
