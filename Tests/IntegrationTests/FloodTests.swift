import Foundation
import SIPBytes
import SIPUring
import Testing

/// A REGISTER flood from one address against sip-edge, with a legitimate client beside it, all on loopback.
@Suite(.serialized) struct FloodTests {
    func register(_ number: Int, from host: String, port: UInt16) -> [UInt8] {
        Array(("REGISTER sip:example.com SIP/2.0\r\n"
            + "Via: SIP/2.0/UDP \(host):\(port);branch=z9hG4bK-\(host)-\(number);rport\r\n"
            + "Max-Forwards: 70\r\nFrom: <sip:user\(number)@example.com>;tag=\(number)\r\n"
            + "To: <sip:user\(number)@example.com>\r\nCall-ID: flood-\(host)-\(number)\r\n"
            + "CSeq: 1 REGISTER\r\nContact: <sip:user@\(host):\(port)>\r\nExpires: 60\r\nContent-Length: 0\r\n\r\n").utf8)
    }

    /// Datagrams waiting on `socket`, as text.
    func drain(_ socket: UDPSocket) -> [String] {
        let batch = DatagramBatch(capacity: 64, bufferSize: 4_096)
        var texts: [String] = []
        while batch.receive(from: socket) > 0 {
            for i in 0..<batch.count {
                batch.withDatagram(i) { bytes, _ in texts.append(bytes.string(bytes.all)) }
            }
        }
        return texts
    }

    /// Bans do not escalate here (ban_max_ms = ban_ms): a flood outlasting its first ban is banned again, and
    /// this test is about throttling and recovery; escalation has its own test below and in RateLimiterTests.
    @Test func registerFloodIsThrottledOthersAreUntouchedAndServiceRecovers() throws {
        let base = ProcessHarness.portBase(.flood)
        let core = try FakeCore()
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("flood-\(getpid()).yaml")
        try """
            listen: udp:127.0.0.1:\(base)
            upstreams: [sip:\(core.address)]
            workers: 1
            admin:
              listen: "off"
            security:
              audit_log: stderr
            rate_limit:
              window_ms: 1000
              registers_per_window: 20
              ban_multiplier: 3
              ban_ms: 1500
              ban_max_ms: 1500
              retry_after_s: 7
            """.write(to: config, atomically: true, encoding: .utf8)
        let edge = try ProcessHarness.start(ProcessHarness.sipEdgeBinary.path, ["--config", config.path],
                                            log: "flood-edge.log")
        defer { ProcessHarness.stop(edge) }
        usleep(500_000)
        #expect(ProcessHarness.isRunning(edge), "\(ProcessHarness.logContents("flood-edge.log"))")
        let edgeAddress = EndpointAddress.parse("127.0.0.1", port: UInt16(base))!

        let attacker = try UDPSocket(binding: EndpointAddress.parse("127.0.0.2", port: 0)!, reusePort: false)
        let client = try UDPSocket(binding: EndpointAddress.parse("127.0.0.3", port: 0)!, reusePort: false)
        // 500 REGISTERs in 2 s from the attacker; one every 200 ms from the client.
        var clientSent = 0
        for number in 0..<500 {
            attacker.send(register(number, from: "127.0.0.2", port: attacker.localAddress.port), to: edgeAddress)
            if number % 50 == 0 {
                client.send(register(number, from: "127.0.0.3", port: client.localAddress.port), to: edgeAddress)
                clientSent += 1
            }
            usleep(4_000)
        }
        usleep(200_000)
        let forwarded = core.take()
        let fromAttacker = forwarded.filter { $0.contains("Call-ID: flood-127.0.0.2-") }.count
        let fromClient = forwarded.filter { $0.contains("Call-ID: flood-127.0.0.3-") }.count
        let answers = drain(attacker)
        // The attacker gets at most about a window's quota per second through; the rest is refused or dropped.
        #expect(fromAttacker >= 20 && fromAttacker <= 60, "attacker got \(fromAttacker) through")
        #expect(fromClient == clientSent, "the legitimate client lost REGISTERs: \(fromClient)/\(clientSent)")
        #expect(answers.contains { $0.hasPrefix("SIP/2.0 503 ") && $0.contains("Retry-After: 7\r\n") })
        // Banned after 3x the rate: most of the flood got no answer at all.
        #expect(answers.count < 100, "\(answers.count) answers")

        // After the ban and the window, the same address is served again.
        usleep(2_500_000)
        for number in 1_000..<1_005 {
            attacker.send(register(number, from: "127.0.0.2", port: attacker.localAddress.port), to: edgeAddress)
        }
        usleep(200_000)
        #expect(core.take().filter { $0.contains("Call-ID: flood-127.0.0.2-") }.count == 5)
        let log = ProcessHarness.logContents("flood-edge.log")
        #expect(log.contains("\"rule\":\"rate_limited\""), "audit log: \(log.prefix(500))")
        #expect(log.contains("\"rule\":\"banned\""))
    }

    /// Issue #15: a flood bans its source (a whole NATed office) only briefly when it is a first offence. SIPp
    /// sends 500 REGISTERs in 2 s from 127.0.0.5 to a sip-edge with the default bans; right after, that address is
    /// still banned, and a fresh REGISTER from it is forwarded again within 10 s of the flood stopping (the old
    /// fixed 60 s ban failed this).
    @Test func aFirstOffenceFloodsSourceIsServedAgainWithinTenSecondsOfStopping() throws {
        let sipp = try #require(ProcessHarness.which("sipp"), "sipp (Debian sip-tester) must be installed")
        let base = ProcessHarness.portBase(.flood)
        let (edgePort, sippPort) = (base, base + 1)
        let core = try FakeCore()
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("bans-\(getpid()).yaml")
        // The rate limit as shipped (20 REGISTERs a second, banned at 3x, first ban 5 s): only the plumbing is set.
        try """
            listen: udp:127.0.0.1:\(edgePort)
            upstreams: [sip:\(core.address)]
            workers: 1
            admin:
              listen: "off"
            security:
              audit_log: stderr
            """.write(to: config, atomically: true, encoding: .utf8)
        let edge = try ProcessHarness.start(ProcessHarness.sipEdgeBinary.path, ["--config", config.path],
                                            log: "bans-edge.log")
        defer { ProcessHarness.stop(edge) }
        usleep(500_000)
        #expect(ProcessHarness.isRunning(edge), "\(ProcessHarness.logContents("bans-edge.log"))")
        func sippRegisters(kind: String, count: Int, rate: Int, log: String) throws -> Int32 {
            try ProcessHarness.run(sipp, [
                "127.0.0.1:\(edgePort)", "-sf", ProcessHarness.fixtures.appendingPathComponent("register-burst.xml").path,
                "-key", "kind", kind, "-i", "127.0.0.5", "-p", "\(sippPort)", "-m", "\(count)", "-r", "\(rate)",
                "-rp", "1000", "-timeout", "15s", "-nostdin",
            ], timeout: 20, log: log)
        }

        let floodStarted = Date()
        #expect(try sippRegisters(kind: "flood", count: 500, rate: 250, log: "bans-flood-sipp.log") == 0,
                "\(ProcessHarness.logContents("bans-flood-sipp.log"))")
        let floodStopped = Date()
        usleep(100_000)
        let floodForwarded = core.take().filter { $0.contains("Call-ID: flood-") }.count
        // Banned early in the flood: most of the 500 never reached the core.
        #expect(floodForwarded >= 20 && floodForwarded <= 100, "\(floodForwarded) of the flood forwarded")
        #expect(floodStopped.timeIntervalSince(floodStarted) < 4, "SIPp took \(floodStopped.timeIntervalSince(floodStarted)) s")

        // A fresh REGISTER from the same address every half second, until one reaches the core.
        var forwardedAfter: TimeInterval?
        var refusedRightAfter = false
        var probe = 0
        while forwardedAfter == nil, Date().timeIntervalSince(floodStopped) < 15 {
            let sentAt = Date().timeIntervalSince(floodStopped)
            _ = try sippRegisters(kind: "fresh\(probe)", count: 1, rate: 1, log: "bans-fresh-sipp.log")
            usleep(150_000)
            if core.take().contains(where: { $0.contains("Call-ID: fresh\(probe)-") }) {
                forwardedAfter = sentAt
            } else if probe == 0 {
                refusedRightAfter = true
            }
            probe += 1
            usleep(350_000)
        }
        #expect(refusedRightAfter, "the flood's source was not banned at all")
        let after = try #require(forwardedAfter, "no fresh REGISTER forwarded within 15 s of the flood")
        #expect(after <= 10, "the first fresh REGISTER forwarded \(after) s after the flood stopped")
        let log = ProcessHarness.logContents("bans-edge.log")
        #expect(log.contains("\"rule\":\"banned\""), "audit log: \(log.prefix(500))")
        #expect(log.contains("\"ban_step\":1,\"ban_ms\":5000"), "audit log: \(log.prefix(500))")
        #expect(!log.contains("\"ban_step\":2"), "a first offence was escalated")
    }

    @Test func hostileMessagesAreAnsweredAndAudited() throws {
        let base = ProcessHarness.portBase(.hostile)
        let core = try FakeCore()
        let edge = try ProcessHarness.start(ProcessHarness.sipEdgeBinary.path,
                                            ["--listen", "udp:127.0.0.1:\(base)", "--upstream",
                                             "sip:\(core.address)", "--workers", "1", "--admin", "off"],
                                            log: "hostile-edge.log")
        defer { ProcessHarness.stop(edge) }
        usleep(500_000)
        let edgeAddress = EndpointAddress.parse("127.0.0.1", port: UInt16(base))!
        let client = try UDPSocket(binding: EndpointAddress.parse("127.0.0.4", port: 0)!, reusePort: false)
        let port = client.localAddress.port
        func request(_ extra: String, callID: String) -> [UInt8] {
            Array(("OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.4:\(port);branch=z9hG4bK\(callID)\r\n"
                + "Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\n"
                + "Call-ID: \(callID)\r\nCSeq: 1 OPTIONS\r\n\(extra)Content-Length: 0\r\n\r\n").utf8)
        }
        client.send(request("Subject: x' or '1'='1\r\n", callID: "sqli"), to: edgeAddress)
        client.send(request("Max-Forwards: 300\r\n", callID: "badmf"), to: edgeAddress)
        client.send(request("User-Agent: friendly-scanner\r\n", callID: "scanner"), to: edgeAddress)
        client.send(request("", callID: "benign"), to: edgeAddress)
        usleep(300_000)
        let answers = drain(client)
        #expect(answers.contains { $0.hasPrefix("SIP/2.0 403 Forbidden\r\n") && $0.contains("Call-ID: sqli") })
        #expect(answers.contains { $0.hasPrefix("SIP/2.0 400 Bad Request (") && $0.contains("Call-ID: badmf") })
        #expect(!answers.contains { $0.contains("Call-ID: scanner") })  // scanners get silence
        let forwarded = core.take()
        #expect(forwarded.count == 1 && forwarded[0].contains("Call-ID: benign"))
        let log = ProcessHarness.logContents("hostile-edge.log")
        #expect(log.contains("\"rule\":\"sql_injection\",\"action\":\"reject\",\"status\":403"))
        #expect(log.contains("\"rule\":\"blocked_user_agent\",\"action\":\"drop\""))
    }
}
