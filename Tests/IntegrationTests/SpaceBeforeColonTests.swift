import Foundation
import SIPBytes
import SIPTestSupport
import SIPUring
import Testing

/// A space before the colon (RFC 3261 `HCOLON`) through the real binary, over UDP and TCP: accepted on headers the
/// edge neither frames nor routes by, 400 on the ones in `security.no_space_before_colon` (and, on streams only,
/// `..._on_streams`), and both lists changed by SIGHUP.
@Suite(.serialized) struct SpaceBeforeColonTests {
    let base = ProcessHarness.portBase(.colon)
    var edgePort: Int { base }

    /// An OPTIONS from `host`:`port` over `transport` with `extra` header lines; `lines` rewrites the finished
    /// list (to space a line the message always has).
    func options(_ callID: String, transport: String, port: UInt16, extra: [String] = [],
                 lines rewrite: (String) -> String = { $0 }) -> String {
        ([
            "OPTIONS sip:bob@example.com SIP/2.0",
            "Via: SIP/2.0/\(transport) 127.0.0.1:\(port);branch=z9hG4bK-\(callID);rport",
            "Max-Forwards: 70", "From: <sip:alice@example.com>;tag=c1", "To: <sip:bob@example.com>",
            "Call-ID: \(callID)", "CSeq: 1 OPTIONS",
        ] + extra + ["Content-Length: 0"]).map(rewrite).joined(separator: "\r\n") + "\r\n\r\n"
    }

    /// Every datagram that reaches `socket` within `timeout` seconds (stops at the first quiet 100 ms after one).
    func receive(_ socket: UDPSocket, timeout: TimeInterval) -> [String] {
        let batch = DatagramBatch(capacity: 16, bufferSize: 8_192)
        let deadline = Date().addingTimeInterval(timeout)
        var texts: [String] = []
        while Date() < deadline {
            if batch.receive(from: socket) > 0 {
                for i in 0..<batch.count { batch.withDatagram(i) { bytes, _ in texts.append(bytes.string(bytes.all)) } }
            } else if !texts.isEmpty {
                break
            }
            usleep(100_000)
        }
        return texts
    }

    /// Sends one message over UDP and one over a new TCP connection (Call-IDs `<name>-udp`, `<name>-tcp`); returns
    /// each one's answer ("" when none came) and the Call-IDs the core received.
    func exchange(_ name: String, core: FakeCore, udp: UDPSocket, extra: [String] = [],
                  lines rewrite: @escaping (String) -> String = { $0 }) throws -> (udp: String, tcp: String, forwarded: [String]) {
        let edge = EndpointAddress.parse("127.0.0.1", port: UInt16(edgePort))!
        udp.send(Array(options("\(name)-udp", transport: "UDP", port: udp.localAddress.port, extra: extra,
                               lines: rewrite).utf8), to: edge)
        let udpAnswer = receive(udp, timeout: 1).first ?? ""
        let tcp = try #require(TestStreamClient(port: edgePort))
        tcp.send(options("\(name)-tcp", transport: "TCP", port: 5999, extra: extra, lines: rewrite))
        let tcpAnswer = tcp.receive(timeout: 1) { $0.contains("\r\n\r\n") }
        usleep(200_000)
        return (udpAnswer, tcpAnswer, core.takeCallIDs())
    }

    func expectForwarded(_ result: (udp: String, tcp: String, forwarded: [String]), _ name: String) {
        #expect(result.forwarded.sorted() == ["\(name)-tcp", "\(name)-udp"], "\(name): \(result)")
        #expect(result.udp.isEmpty && result.tcp.isEmpty, "\(name) answered by the edge: \(result)")
    }

    func expectRefused(_ result: (udp: String, tcp: String, forwarded: [String]), _ name: String,
                       udp udpRefused: Bool = true, tcp tcpRefused: Bool = true) {
        let refusal = "SIP/2.0 400 Ambiguous Message Framing\r\n"
        #expect(result.udp.hasPrefix(refusal) == udpRefused, "\(name) over UDP: \(result.udp)")
        #expect(result.tcp.hasPrefix(refusal) == tcpRefused, "\(name) over TCP: \(result.tcp)")
        var forwarded: [String] = []
        if !udpRefused { forwarded.append("\(name)-udp") }
        if !tcpRefused { forwarded.append("\(name)-tcp") }
        #expect(result.forwarded.sorted() == forwarded.sorted(), "\(name): forwarded \(result.forwarded)")
    }

    /// `Name : value` through the edge with the default lists, then with lists changed by SIGHUP.
    @Test func spacedHeadersAreForwardedOrRefusedAsTheListsSay() throws {
        let core = try FakeCore()
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("colon-\(getpid()).yaml")
        func writeConfig(_ security: String) throws {
            try """
                listen: udp:127.0.0.1:\(edgePort)
                upstreams: [sip:\(core.address)]
                workers: 1
                admin:
                  listen: "off"
                rate_limit:
                  enabled: false
                security:
                  audit_log: stderr
                \(security)
                """.write(to: config, atomically: true, encoding: .utf8)
        }
        try writeConfig("")
        let edge = try ProcessHarness.start(ProcessHarness.sipEdgeBinary.path, ["--config", config.path],
                                            log: "colon-edge.log")
        defer { ProcessHarness.stop(edge) }
        usleep(600_000)
        try #require(ProcessHarness.isRunning(edge), "\(ProcessHarness.logContents("colon-edge.log"))")
        let udp = try UDPSocket(binding: EndpointAddress.parse("127.0.0.1", port: 0)!, reusePort: false)
        func spaced(_ name: String) -> (String) -> String {
            { $0.hasPrefix(name + ":") ? name + " :" + $0.dropFirst(name.count + 1) : $0 }
        }

        // Defaults. Accepted: headers the edge neither frames nor routes by (Subject, From, To, an unknown one).
        expectForwarded(try exchange("subject", core: core, udp: udp, extra: ["Subject : lunch", "X-Note\t: 1"]),
                        "subject")
        expectForwarded(try exchange("from-to", core: core, udp: udp) { spaced("To")(spaced("From")($0)) }, "from-to")
        // Refused on every transport: the framing and routing headers, full and compact forms.
        for name in ["Via", "Content-Length", "Call-ID", "CSeq", "Max-Forwards"] {
            expectRefused(try exchange("spaced-\(name.lowercased())", core: core, udp: udp, lines: spaced(name)),
                          "spaced-\(name.lowercased())")
        }
        expectRefused(try exchange("spaced-route", core: core, udp: udp, extra: ["Route : <sip:p1.example.com;lr>"]),
                      "spaced-route")
        expectRefused(try exchange("compact-l", core: core, udp: udp) { $0 == "Content-Length: 0" ? "l  : 0" : $0 },
                      "compact-l")
        // Content-Type: refused on streams only.
        expectRefused(try exchange("content-type", core: core, udp: udp, extra: ["Content-Type : application/sdp"]),
                      "content-type", udp: false, tcp: true)
        // RFC 4475 wsinv spaces Content-Length and Via: refused on both, as the README says.
        let wsinv = try Data(contentsOf: ProcessHarness.repositoryRoot
            .appendingPathComponent("Tests/SIPParsingTests/Corpus/RFC4475/wsinv.sip"))
        /// Whether wsinv reached the core: [over UDP, over TCP].
        func sendWsinv() throws -> [Bool] {
            _ = core.take()
            udp.send(Array(wsinv), to: EndpointAddress.parse("127.0.0.1", port: UInt16(edgePort))!)
            usleep(300_000)
            let overUDP = core.take().count == 1
            let tcp = try #require(TestStreamClient(port: edgePort))
            tcp.send(String(decoding: wsinv, as: UTF8.self))  // ASCII, byte for byte
            let answer = tcp.receive(timeout: 1) { $0.contains("\r\n\r\n") }
            usleep(200_000)
            let overTCP = core.take().count == 1
            #expect(overTCP == answer.isEmpty, "wsinv over TCP: \(answer)")
            return [overUDP, overTCP]
        }
        #expect(try sendWsinv() == [false, false])
        let log = ProcessHarness.logContents("colon-edge.log")
        #expect(log.contains("\"rule\":\"header_smuggling\",\"action\":\"reject\",\"status\":400"), "\(log.suffix(800))")

        // Lists changed by SIGHUP: Subject refused, Via and (over TCP) Content-Type accepted.
        try writeConfig("  no_space_before_colon: [subject]\n  no_space_before_colon_on_streams: []")
        kill(edge.processIdentifier, SIGHUP)
        usleep(600_000)
        try #require(ProcessHarness.isRunning(edge))
        expectRefused(try exchange("reloaded-subject", core: core, udp: udp, extra: ["s : lunch"]), "reloaded-subject")
        expectForwarded(try exchange("reloaded-via", core: core, udp: udp, lines: spaced("Via")), "reloaded-via")
        expectForwarded(try exchange("reloaded-type", core: core, udp: udp, extra: ["Content-Type : application/sdp"]),
                        "reloaded-type")

        // Both lists empty: wsinv, valid SIP, is forwarded over UDP and TCP.
        try writeConfig("  no_space_before_colon: []\n  no_space_before_colon_on_streams: []")
        kill(edge.processIdentifier, SIGHUP)
        usleep(600_000)
        #expect(try sendWsinv() == [true, true])
    }
}
