import Foundation
import SIPTestSupport
import Testing

/// SIP over WebSocket (RFC 7118) against the real binary: a browser-style phone (Python `websockets`, Debian
/// python3-websockets: a kept WebSocket implementation, not one written for the tests) registers through the edge
/// at a real Kamailio registrar and is called by SIPp through Kamailio, over ws and wss; raw clients send what no
/// library would (bad handshakes, unmasked, oversized and fragmented frames, silence after pings).
@Suite(.serialized) struct WebSocketTests {
    struct Ports {
        let base = ProcessHarness.portBase(.webSocket)
        var edge: Int { base }
        var ws: Int { base + 1 }
        var wss: Int { base + 2 }
        var kamailio: Int { base + 3 }
        var caller: Int { base + 4 }
        var admin: Int { base + 5 }
        var core: Int { base + 6 }
    }

    let ports = Ports()

    func fixture(_ name: String) -> String { ProcessHarness.fixtures.appendingPathComponent(name).path }

    /// sip-edge (2 workers: flows live on either) with ws and wss listeners in front of `upstream`.
    func startEdge(_ name: String, certificates: TestCertificates, upstream: Int, webSocket extra: String = "")
        throws -> Process {
        let config = try writeConfig(name, certificates: certificates, upstream: upstream, webSocket: extra)
        let edge = try ProcessHarness.start(ProcessHarness.sipEdgeBinary.path, ["--config", config.path],
                                            log: "\(name)-edge.log")
        usleep(600_000)
        #expect(ProcessHarness.isRunning(edge), "sip-edge exited: \(ProcessHarness.logContents("\(name)-edge.log"))")
        return edge
    }

    @discardableResult
    func writeConfig(_ name: String, certificates: TestCertificates, upstream: Int, webSocket extra: String = "",
                     renewed: Bool = false) throws -> URL {
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(getpid()).yaml")
        let certificate = renewed ? certificates.renewedServerCertificate : certificates.serverCertificate
        let key = renewed ? certificates.renewedServerKey : certificates.serverKey
        try """
            listen: udp:127.0.0.1:\(ports.edge)
            upstreams: [sip:127.0.0.1:\(upstream)]
            workers: 2
            admin:
              listen: 127.0.0.1:\(ports.admin)
            tls:
              certificate: \(certificate)
              private_key: \(key)
            websocket:
              listen: [ws:127.0.0.1:\(ports.ws), wss:127.0.0.1:\(ports.wss)]
            \(extra.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
            flow:
              key: websocket-test-flow-key-0123456789
            """.write(to: config, atomically: true, encoding: .utf8)
        return config
    }

    /// wss is the TLS listener's code: SIGHUP re-reads the certificate, new wss handshakes get the renewed one and
    /// a session opened before keeps going.
    @Test func wssServesTheReloadedCertificateToNewConnections() throws {
        let certificates = try TestCertificates.make()
        defer { try? FileManager.default.removeItem(atPath: certificates.directory) }
        let core = try ProcessHarness.startOptionsCore(port: ports.core, log: "websocket-reload-core.log")
        defer { ProcessHarness.stop(core) }
        let edge = try startEdge("websocket-reload", certificates: certificates, upstream: ports.core)
        defer { ProcessHarness.stop(edge) }
        let upgrade = WebSocketTestClient.upgradeRequest()
        let first = try OpenSSLClient(port: ports.wss, certificates: certificates, name: "wss-first")
        defer { first.stop() }
        first.send(upgrade)
        #expect(first.waitFor("101 Switching Protocols"), "\(first.output)")
        #expect(!first.output.contains("renewed.localhost"))
        try writeConfig("websocket-reload", certificates: certificates, upstream: ports.core, renewed: true)
        kill(edge.processIdentifier, SIGHUP)
        #expect(waitFor("tls certificate reloaded", inLog: "websocket-reload-edge.log", seconds: 3))
        let second = try OpenSSLClient(port: ports.wss, certificates: certificates, name: "wss-second")
        defer { second.stop() }
        second.send(upgrade)
        #expect(second.waitFor("101 Switching Protocols"), "\(second.output)")
        #expect(second.output.contains("renewed.localhost"), "new wss sessions get the renewed certificate")
        #expect(ProcessHarness.isRunning(first.process), "the session opened before the reload is still up")
        #expect(try metric("sip_active_connections{transport=\"wss\"}", reaching: 2) == 2)
    }

    func metric(_ series: String) throws -> Double {
        let text = try ProcessHarness.httpGet("http://127.0.0.1:\(ports.admin)/metrics", log: "websocket-metrics.log")
        return ProcessHarness.metricValue(series, in: text) ?? -1
    }

    /// The series once it reaches `expected` (workers publish their counters a few times a second), or its last
    /// value after 3 s.
    func metric(_ series: String, reaching expected: Double) throws -> Double {
        let deadline = Date().addingTimeInterval(3)
        var value = try metric(series)
        while value != expected, Date() < deadline {
            usleep(100_000)
            value = try metric(series)
        }
        return value
    }

    func startPhone(_ name: String, scheme: String, certificates: TestCertificates, arguments: [String]) throws -> Process {
        let url = "\(scheme)://127.0.0.1:\(scheme == "wss" ? ports.wss : ports.ws)/"
        return try ProcessHarness.start("/usr/bin/python3", [fixture("ws-phone.py"), url, "--ca", certificates.caCertificate,
                                                             "--timeout", "25"] + arguments, log: "\(name)-phone.log")
    }

    func waitFor(_ text: String, inLog log: String, seconds: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if ProcessHarness.logContents(log).contains(text) { return true }
            usleep(50_000)
        }
        return false
    }

    /// The phone registers over ws or wss (Kamailio stores the edge's Path with the flow token), SIPp calls it
    /// through the edge and Kamailio, the INVITE comes down the WebSocket, and the call ends with a BYE from either
    /// side.
    @Test(arguments: [("ws", "caller"), ("ws", "callee"), ("wss", "caller"), ("wss", "callee")])
    func aBrowserPhoneRegistersAndIsCalledThroughKamailio(scheme: String, hangup: String) throws {
        let sipp = try #require(ProcessHarness.which("sipp"), "sipp (Debian sip-tester) must be installed")
        let certificates = try TestCertificates.make()
        defer { try? FileManager.default.removeItem(atPath: certificates.directory) }
        let name = "websocket-\(scheme)-\(hangup)"
        let kamailio = try ProcessHarness.startKamailioRegistrar(port: ports.kamailio, log: "\(name)-kamailio.log")
        defer { ProcessHarness.stop(kamailio) }
        let edge = try startEdge(name, certificates: certificates, upstream: ports.kamailio)
        defer { ProcessHarness.stop(edge) }
        let phone = try startPhone(name, scheme: scheme, certificates: certificates, arguments: ["--hangup", hangup])
        defer { ProcessHarness.stop(phone) }
        #expect(waitFor("--- registered", inLog: "\(name)-phone.log", seconds: 10),
                "\(ProcessHarness.logContents("\(name)-phone.log"))\n\(ProcessHarness.logContents("\(name)-edge.log"))")
        let scenario = hangup == "caller" ? "call-registered.xml" : "call-registered-callee-hangs-up.xml"
        let callerStatus = try ProcessHarness.run(sipp, [
            "127.0.0.1:\(ports.edge)", "-sf", fixture(scenario), "-i", "127.0.0.1", "-p", "\(ports.caller)",
            "-t", "u1", "-m", "1", "-timeout", "15s", "-timeout_error", "-nostdin",
        ], timeout: 25, log: "\(name)-caller.log")
        let deadline = Date().addingTimeInterval(10)
        while ProcessHarness.isRunning(phone), Date() < deadline { usleep(50_000) }
        let logs = ["phone", "caller", "edge", "kamailio"].map {
            "--- \($0):\n" + ProcessHarness.logContents("\(name)-\($0).log")
        }.joined(separator: "\n")
        #expect(callerStatus == 0, "caller failed:\n\(logs)")
        #expect(!ProcessHarness.isRunning(phone) && ProcessHarness.exitStatus(phone) == 0, "phone failed:\n\(logs)")
        let phoneLog = ProcessHarness.logContents("\(name)-phone.log")
        #expect(phoneLog.contains("<<< INVITE sip:alice@") && phoneLog.contains(".invalid;transport=\(scheme)"),
                "the INVITE reached the phone at its .invalid Contact, down its WebSocket:\n\(phoneLog)")
        #expect(phoneLog.contains(hangup == "caller" ? "<<< BYE " : ">>> BYE "), "\(phoneLog)")
        let kamailioLog = ProcessHarness.logContents("\(name)-kamailio.log")
        #expect(kamailioLog.contains(";lr;ft="), "Kamailio stored the edge's Path with the flow token:\n\(kamailioLog)")
        #expect(try metric("sip_messages_total{method=\"REGISTER\",transport=\"\(scheme)\"}") >= 1)
        #expect(try metric("sip_connection_events_total{event=\"websocket_opened\"}") >= 1)
    }

    /// RFC 5626 §5.3 for a WebSocket flow: the phone registered and went away (tab closed); the call gets 430.
    @Test func aCallToAClosedWebSocketGets430() throws {
        let sipp = try #require(ProcessHarness.which("sipp"))
        let certificates = try TestCertificates.make()
        defer { try? FileManager.default.removeItem(atPath: certificates.directory) }
        let name = "websocket-430"
        let kamailio = try ProcessHarness.startKamailioRegistrar(port: ports.kamailio, log: "\(name)-kamailio.log")
        defer { ProcessHarness.stop(kamailio) }
        let edge = try startEdge(name, certificates: certificates, upstream: ports.kamailio)
        defer { ProcessHarness.stop(edge) }
        let phone = try startPhone(name, scheme: "ws", certificates: certificates, arguments: ["--register-only"])
        defer { ProcessHarness.stop(phone) }
        let deadline = Date().addingTimeInterval(10)
        while ProcessHarness.isRunning(phone), Date() < deadline { usleep(50_000) }
        #expect(ProcessHarness.exitStatus(phone) == 0, "\(ProcessHarness.logContents("\(name)-phone.log"))")
        usleep(300_000)
        let status = try ProcessHarness.run(sipp, [
            "127.0.0.1:\(ports.edge)", "-sf", fixture("call-flow-failed.xml"), "-i", "127.0.0.1", "-p", "\(ports.caller)",
            "-t", "u1", "-m", "1", "-timeout", "15s", "-timeout_error", "-nostdin",
        ], timeout: 25, log: "\(name)-caller.log")
        #expect(status == 0, "the caller should see 430 Flow Failed:\n\(ProcessHarness.logContents("\(name)-caller.log"))")
    }

    /// Each bad upgrade gets the status RFC 6455 names and a closed connection; a slow one is cut at the handshake
    /// timeout; through all of it the worker serves a good client.
    @Test func badHandshakesGetTheirStatusAndTheWorkerServesOthers() throws {
        let certificates = try TestCertificates.make()
        defer { try? FileManager.default.removeItem(atPath: certificates.directory) }
        let core = try ProcessHarness.startOptionsCore(port: ports.core, log: "websocket-handshake-core.log")
        defer { ProcessHarness.stop(core) }
        let edge = try startEdge("websocket-handshake", certificates: certificates, upstream: ports.core, webSocket: """
            paths: [/, /sip]
            allowed_origins: [https://phone.sipedge.test, "*.example.com"]
            handshake_timeout_ms: 500
            max_handshake_bytes: 1024
            """)
        defer { ProcessHarness.stop(edge) }
        typealias Case = (request: String, status: Int, why: String)
        let allowed = "https://phone.sipedge.test"
        let cases: [Case] = [
            (WebSocketTestClient.upgradeRequest(version: "8", origin: allowed), 426, "an old protocol version"),
            (WebSocketTestClient.upgradeRequest(protocols: nil, origin: allowed), 400, "no sip subprotocol"),
            (WebSocketTestClient.upgradeRequest(protocols: "chat", origin: allowed), 400, "another subprotocol"),
            (WebSocketTestClient.upgradeRequest(path: "/admin", origin: allowed), 404, "a path not served"),
            (WebSocketTestClient.upgradeRequest(), 403, "no origin where origins are checked"),
            (WebSocketTestClient.upgradeRequest(origin: "https://evil.test"), 403, "an origin not allowed"),
            (WebSocketTestClient.upgradeRequest(origin: "https://example.com.evil.test"), 403, "a suffix trick"),
            (WebSocketTestClient.upgradeRequest(origin: allowed, extraHeaders: "X-Padding: \(String(repeating: "a", count: 1_100))\r\n"),
             431, "a head past max_handshake_bytes"),
            ("POST / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "not a GET upgrade"),
        ]
        for testCase in cases {
            let client = try #require(WebSocketTestClient(port: ports.ws))
            let status = client.handshake(testCase.request)
            #expect(status == testCase.status, "\(testCase.why): \(client.handshakeResponse)")
            #expect(client.stream.waitForClose(timeout: 2), "closed after a refusal (\(testCase.why))")
        }
        let version = try #require(WebSocketTestClient(port: ports.ws))
        _ = version.handshake(WebSocketTestClient.upgradeRequest(version: "8", origin: allowed))
        #expect(version.handshakeResponse.contains("Sec-WebSocket-Version: 13"), "426 names the version it speaks")

        // Slowloris: half a request line, then nothing.
        let slow = try #require(WebSocketTestClient(port: ports.ws))
        slow.stream.send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        let started = Date()
        #expect(slow.stream.waitForClose(timeout: 3))
        #expect(Date().timeIntervalSince(started) < 1.5, "cut at the handshake timeout (500 ms, swept each 100 ms)")

        // Meanwhile a good client, from an allowed origin on the second path, is served.
        let good = try #require(WebSocketTestClient(port: ports.ws))
        let goodStatus = good.handshake(WebSocketTestClient.upgradeRequest(path: "/sip?token=1",
                                                                           origin: "https://a.example.com"))
        #expect(goodStatus == 101, "\(good.handshakeResponse)")
        #expect(good.handshakeResponse.contains("Sec-WebSocket-Protocol: sip"))
        // RFC 6455 §1.3's worked example: this key must give this accept value.
        #expect(good.handshakeResponse.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="))
        good.sendText(options(1))
        let answer = try #require(good.readFrameSkippingPings())
        #expect(answer.opcode == 1 && String(decoding: answer.payload, as: UTF8.self).hasPrefix("SIP/2.0 200"),
                "\(String(decoding: answer.payload, as: UTF8.self))")
        #expect(try metric("sip_connection_events_total{event=\"websocket_handshake_refused\"}", reaching: 10) == 10)
        #expect(try metric("sip_connection_events_total{event=\"websocket_handshake_timeout\"}", reaching: 1) == 1)
    }

    func options(_ number: Int, transport: String = "WS", userAgent: String = "ws-test") -> String {
        [
            "OPTIONS sip:core@127.0.0.1:\(ports.core) SIP/2.0",
            "Via: SIP/2.0/\(transport) h7kd2m.invalid;branch=z9hG4bK-ws-\(number)-\(getpid())",
            "Max-Forwards: 70", "From: <sip:tester@sipedge.test>;tag=w\(number)", "To: <sip:core@127.0.0.1>",
            "Call-ID: ws-\(number)-\(getpid())@test", "CSeq: 1 OPTIONS", "User-Agent: \(userAgent)",
            "Content-Length: 0", "", "",
        ].joined(separator: "\r\n")
    }

    /// Fragments with a ping between them make one message (and the ping its pong), a CRLF keep-alive is answered,
    /// the close handshake echoes the peer's code; an unmasked frame, a reserved opcode and a message past the parse
    /// limit each end their connection with 1002, 1002 and 1009, and the edge policy applies inside frames.
    @Test func framesAreReassembledAnsweredAndRefusedWithTheRightCloseCodes() throws {
        let certificates = try TestCertificates.make()
        defer { try? FileManager.default.removeItem(atPath: certificates.directory) }
        let core = try ProcessHarness.startOptionsCore(port: ports.core, log: "websocket-frames-core.log")
        defer { ProcessHarness.stop(core) }
        let edge = try startEdge("websocket-frames", certificates: certificates, upstream: ports.core)
        defer { ProcessHarness.stop(edge) }

        let client = try #require(WebSocketTestClient(port: ports.ws))
        #expect(client.handshake() == 101)
        let message = Array(options(2).utf8)
        client.send(opcode: 1, Array(message[0..<40]), fin: false)
        client.send(opcode: 9, Array("are you there".utf8))
        client.send(opcode: 0, Array(message[40..<100]), fin: false)
        client.send(opcode: 0, Array(message[100...]), fin: true)
        let pong = try #require(client.readFrame())
        #expect(pong.opcode == 10 && pong.payload == Array("are you there".utf8), "a pong echoing the ping")
        let answer = try #require(client.readFrameSkippingPings())
        #expect(String(decoding: answer.payload, as: UTF8.self).hasPrefix("SIP/2.0 200"), "the reassembled OPTIONS")
        #expect(String(decoding: answer.payload, as: UTF8.self).contains("received=127.0.0.1"))
        client.send(opcode: 1, Array("\r\n\r\n".utf8))
        let keepalive = try #require(client.readFrameSkippingPings())
        #expect(keepalive.payload == Array("\r\n".utf8), "a CRLF keep-alive is answered with CRLF")
        // The edge policy inside frames: an injection in a header is refused as over UDP or TCP.
        client.sendText(options(3, userAgent: "x' or '1'='1"))
        let refused = try #require(client.readFrameSkippingPings())
        #expect(String(decoding: refused.payload, as: UTF8.self).hasPrefix("SIP/2.0 403"),
                "\(String(decoding: refused.payload, as: UTF8.self))")
        client.send(opcode: 8, [0x03, 0xE8] + Array("bye".utf8))
        let close = try #require(client.readFrameSkippingPings())
        #expect(close.opcode == 8 && WebSocketTestClient.closeCode(close.payload) == 1000, "the close echoes 1000")
        #expect(client.stream.waitForClose(timeout: 2))

        let broken: [(frame: [UInt8], code: Int, why: String)] = [
            (WebSocketTestClient.frame(opcode: 1, Array(options(4).utf8), masked: false), 1002, "an unmasked frame"),
            (WebSocketTestClient.frame(opcode: 3, [1, 2, 3]), 1002, "a reserved opcode"),
            (WebSocketTestClient.frame(opcode: 1, [], declaredLength: 1 << 20), 1009, "a message past the parse limit"),
            (WebSocketTestClient.frame(opcode: 9, [UInt8](repeating: 0x41, count: 126)), 1002, "a ping over 125 bytes"),
        ]
        for testCase in broken {
            let peer = try #require(WebSocketTestClient(port: ports.ws))
            #expect(peer.handshake() == 101)
            peer.stream.send(bytes: testCase.frame)
            let closing = peer.readFrameSkippingPings()
            #expect(closing?.opcode == 8 && WebSocketTestClient.closeCode(closing?.payload ?? []) == testCase.code,
                    "\(testCase.why): \(String(describing: closing))")
            #expect(peer.stream.waitForClose(timeout: 2), "\(testCase.why): connection closed")
        }
        #expect(try metric("sip_connection_events_total{event=\"websocket_protocol_error\"}", reaching: 4) == 4)
        #expect(try metric("sip_connection_events_total{event=\"websocket_closed\"}", reaching: 1) == 1)
        // The worker still serves: a new client gets its answer.
        let after = try #require(WebSocketTestClient(port: ports.ws))
        #expect(after.handshake() == 101)
        after.sendText(options(5))
        #expect(after.readFrameSkippingPings().map { String(decoding: $0.payload, as: UTF8.self).hasPrefix("SIP/2.0 200") } == true)
    }

    /// The zombie WebSocket: a peer that stops answering is pinged after half the interval and cut within two,
    /// while one that answers its pings stays.
    @Test func aPeerThatStopsAnsweringPingsIsCutWithinTwoIntervals() throws {
        let certificates = try TestCertificates.make()
        defer { try? FileManager.default.removeItem(atPath: certificates.directory) }
        let core = try ProcessHarness.startOptionsCore(port: ports.core, log: "websocket-zombie-core.log")
        defer { ProcessHarness.stop(core) }
        let edge = try startEdge("websocket-zombie", certificates: certificates, upstream: ports.core,
                                 webSocket: "ping_interval_s: 1")
        defer { ProcessHarness.stop(edge) }
        let zombie = try #require(WebSocketTestClient(port: ports.ws))
        let alive = try #require(WebSocketTestClient(port: ports.ws))
        #expect(zombie.handshake() == 101)
        #expect(alive.handshake() == 101)
        let started = Date()
        var zombieClosedAfter: TimeInterval?
        var pingsSeen = 0
        var pingsAnswered = 0
        while Date().timeIntervalSince(started) < 4 {
            if zombieClosedAfter == nil {
                if let frame = zombie.readFrame(timeout: 0.05), frame.opcode == 9 { pingsSeen += 1 }
                if zombie.stream.peerClosed { zombieClosedAfter = Date().timeIntervalSince(started) }
            }
            if let frame = alive.readFrame(timeout: 0.05), frame.opcode == 9 {
                alive.send(opcode: 10, frame.payload)
                pingsAnswered += 1
            }
        }
        #expect(pingsSeen >= 1, "the silent peer was pinged")
        let closedAfter = try #require(zombieClosedAfter, "the silent peer was cut")
        #expect(closedAfter <= 2.3, "cut within twice the ping interval (1 s), took \(closedAfter) s")
        #expect(pingsAnswered >= 2 && !alive.stream.peerClosed, "the peer answering its pings stays")
        #expect(try metric("sip_connection_events_total{event=\"websocket_ping_timeout\"}", reaching: 1) == 1)
        alive.sendText(options(6))
        #expect(alive.readFrameSkippingPings().map { String(decoding: $0.payload, as: UTF8.self).hasPrefix("SIP/2.0 200") } == true)
    }
}
