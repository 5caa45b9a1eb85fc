import Foundation
import SIPBytes
import SIPUring
import Testing

/// Several edges sharing bans through a real Redis (started here on its own port and directory, stopped by PID).
@Suite(.serialized) struct SharedStateTests {
    let base = ProcessHarness.portBase(.sharedState)
    var redisPort: Int { base }
    func edgePort(_ index: Int) -> Int { base + 1 + index }
    var corePort: Int { base + 4 }
    func adminPort(_ index: Int) -> Int { base + 5 + index }
    var uacPort: Int { base + 8 }

    func startRedis(password: String? = nil) throws -> Process {
        let redis = try #require(ProcessHarness.which("redis-server"), "redis-server must be installed")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("redis-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let process = try ProcessHarness.start(redis, ["--port", "\(redisPort)", "--bind", "127.0.0.1", "--save", "",
                                                       "--appendonly", "no", "--dir", directory.path]
                                                   + (password.map { ["--requirepass", $0] } ?? []),
                                               log: "shared-redis.log")
        usleep(300_000)
        return process
    }

    func startEdge(_ index: Int, core: Int, extra: String = "") throws -> Process {
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("shared-\(index)-\(getpid()).yaml")
        try """
            listen: udp:127.0.0.1:\(edgePort(index))
            upstreams: [sip:127.0.0.1:\(core)]
            workers: 1
            admin:
              listen: 127.0.0.1:\(adminPort(index))
            shared_state:
              redis: redis://127.0.0.1:\(redisPort)/0
              key_prefix: "test-\(getpid()):"
            \(extra)
            """.write(to: config, atomically: true, encoding: .utf8)
        return try ProcessHarness.start(ProcessHarness.sipEdgeBinary.path, ["--config", config.path],
                                        log: "shared-edge-\(index).log")
    }

    func metric(_ series: String, edge index: Int) -> Double {
        let text = (try? ProcessHarness.httpGet("http://127.0.0.1:\(adminPort(index))/metrics",
                                                 log: "shared-metrics-\(index).log")) ?? ""
        return ProcessHarness.metricValue(series, in: text) ?? -1
    }

    /// Polls `condition` every 50 ms for up to `seconds`; the time it took, nil if it never held.
    func waitFor(_ seconds: Double, _ condition: () -> Bool) -> Double? {
        let start = Date()
        while Date().timeIntervalSince(start) < seconds {
            if condition() { return Date().timeIntervalSince(start) }
            usleep(50_000)
        }
        return nil
    }

    static func register(from host: String, callID: String) -> [UInt8] {
        Array(("REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP \(host):5060;branch=z9hG4bK\(callID)\r\n"
               + "Max-Forwards: 70\r\nFrom: <sip:flood@example.com>;tag=f\r\nTo: <sip:flood@example.com>\r\n"
               + "Call-ID: \(callID)\r\nCSeq: 1 REGISTER\r\nContact: <sip:flood@\(host):5060>\r\nContent-Length: 0\r\n\r\n").utf8)
    }

    /// `count` REGISTERs from `host` to `port`, paced over about `seconds`.
    func flood(from host: String, to port: Int, count: Int, seconds: Double) throws {
        let socket = try UDPSocket(binding: EndpointAddress.parse(host, port: 0)!, reusePort: false)
        let destination = EndpointAddress.parse("127.0.0.1", port: UInt16(port))!
        for index in 0..<count {
            _ = socket.send(Self.register(from: host, callID: "flood-\(host)-\(index)"), to: destination)
            usleep(UInt32(seconds * 1_000_000 / Double(count)))
        }
    }

    var banned: String { #"sip_security_violations_total{violation_type="banned"}"# }

    @Test func aBanDecidedOnOneEdgeReachesTheOthersWithinASecondAndAnEdgeStartedLater() throws {
        let redis = try startRedis()
        defer { ProcessHarness.stop(redis) }
        let core = try FakeCore()
        let coreAddress = Int(core.address.port)
        let edgeA = try startEdge(0, core: coreAddress)
        defer { ProcessHarness.stop(edgeA) }
        let edgeB = try startEdge(1, core: coreAddress)
        defer { ProcessHarness.stop(edgeB) }
        #expect(waitFor(5) { metric("sip_shared_state_up", edge: 0) == 1 && metric("sip_shared_state_up", edge: 1) == 1 } != nil)

        // A REGISTER flood at A: A bans the source (20 REGISTERs per second allowed, banned at 3x).
        try flood(from: "127.0.0.9", to: edgePort(0), count: 150, seconds: 1)
        let floodEnded = Date()
        #expect(metric(banned, edge: 0) > 0, "A banned the flood")
        // B never saw the flood: a fresh REGISTER from that source is refused there once the ban arrives.
        let socket = try UDPSocket(binding: EndpointAddress.parse("127.0.0.9", port: 0)!, reusePort: false)
        var probes = 0
        let reachedB = waitFor(3) {
            probes += 1
            _ = socket.send(Self.register(from: "127.0.0.9", callID: "fresh-\(probes)"),
                            to: EndpointAddress.parse("127.0.0.1", port: UInt16(edgePort(1)))!)
            usleep(20_000)
            return metric(banned, edge: 1) > 0
        }
        let elapsed = Date().timeIntervalSince(floodEnded)
        #expect(reachedB != nil && elapsed < 1.0, "B refused the source \(elapsed) s after the flood")
        #expect(metric("sip_shared_bans_received_total", edge: 1) >= 1)
        // Another source is untouched at B.
        let other = try UDPSocket(binding: EndpointAddress.parse("127.0.0.10", port: 0)!, reusePort: false)
        _ = other.send(Self.register(from: "127.0.0.10", callID: "innocent"),
                       to: EndpointAddress.parse("127.0.0.1", port: UInt16(edgePort(1)))!)
        #expect(waitFor(2) { core.peek().contains { $0.contains("Call-ID: innocent\r\n") } } != nil)

        // An edge started after the ban loads it from the ban's key.
        let edgeC = try startEdge(2, core: coreAddress)
        defer { ProcessHarness.stop(edgeC) }
        #expect(waitFor(5) { metric("sip_shared_state_up", edge: 2) == 1 } != nil)
        _ = socket.send(Self.register(from: "127.0.0.9", callID: "late"),
                        to: EndpointAddress.parse("127.0.0.1", port: UInt16(edgePort(2)))!)
        #expect(waitFor(2) { metric(banned, edge: 2) > 0 } != nil, "C refuses the banned source")
        #expect(!core.peek().contains { $0.contains("Call-ID: late\r\n") })
    }

    @Test func withRedisStoppedTheEdgesServeOnLocalStateAndShareAgainWhenItIsBack() throws {
        let redis = try startRedis()
        defer {
            kill(redis.processIdentifier, SIGCONT)
            ProcessHarness.stop(redis)
        }
        let core = try ProcessHarness.startOptionsCore(port: corePort, log: "shared-core.log")
        defer { ProcessHarness.stop(core) }
        let edgeA = try startEdge(0, core: corePort)
        defer { ProcessHarness.stop(edgeA) }
        let edgeB = try startEdge(1, core: corePort)
        defer { ProcessHarness.stop(edgeB) }
        #expect(waitFor(5) { metric("sip_shared_state_up", edge: 0) == 1 && metric("sip_shared_state_up", edge: 1) == 1 } != nil)

        // Redis stops answering (SIGSTOP: the connection stays open, replies never come).
        kill(redis.processIdentifier, SIGSTOP)
        #expect(waitFor(5) { metric("sip_shared_state_up", edge: 0) == 0 && metric("sip_shared_state_up", edge: 1) == 0 } != nil)
        for edge in 0..<2 {
            let status = try ProcessHarness.runOptions(to: edgePort(edge), from: uacPort, count: 60, rate: 30, timeoutSeconds: 20,
                                                log: "shared-uac-\(edge).log")
            #expect(status == 0, "edge \(edge) forwarded every OPTIONS with Redis stopped")
        }
        // Local limits still hold.
        try flood(from: "127.0.0.12", to: edgePort(0), count: 150, seconds: 1)
        #expect(metric(banned, edge: 0) > 0)
        #expect(ProcessHarness.logContents("shared-edge-0.log").contains("unavailable"))

        // Redis back: both reconnect (backoff at most 5 s) and share again.
        kill(redis.processIdentifier, SIGCONT)
        #expect(waitFor(12) { metric("sip_shared_state_up", edge: 0) == 1 && metric("sip_shared_state_up", edge: 1) == 1 } != nil)
        let bannedAtB = metric(banned, edge: 1)
        try flood(from: "127.0.0.13", to: edgePort(0), count: 150, seconds: 1)
        let socket = try UDPSocket(binding: EndpointAddress.parse("127.0.0.13", port: 0)!, reusePort: false)
        var probes = 0
        #expect(waitFor(2) {
            probes += 1
            _ = socket.send(Self.register(from: "127.0.0.13", callID: "after-\(probes)"),
                            to: EndpointAddress.parse("127.0.0.1", port: UInt16(edgePort(1)))!)
            usleep(20_000)
            return metric(banned, edge: 1) > bannedAtB
        } != nil, "a ban at A reaches B again")
    }

    /// 14 requests a second to each of two edges is under each one's limit (20) but over it together: both answer
    /// 503 within a few intervals; 8 a second to each (16 together) is never limited.
    @Test func aSourceUnderTheLimitAtEachEdgeButOverItTogetherIsLimitedOnBoth() throws {
        let redis = try startRedis()
        defer { ProcessHarness.stop(redis) }
        let core = try FakeCore()
        let limits = "rate_limit:\n  requests_per_window: 20\n  ban_multiplier: 100"
        let edgeA = try startEdge(0, core: Int(core.address.port), extra: limits)
        defer { ProcessHarness.stop(edgeA) }
        let edgeB = try startEdge(1, core: Int(core.address.port), extra: limits)
        defer { ProcessHarness.stop(edgeB) }
        #expect(waitFor(5) { metric("sip_shared_state_up", edge: 0) == 1 && metric("sip_shared_state_up", edge: 1) == 1 } != nil)
        let heavy = try UDPSocket(binding: EndpointAddress.parse("127.0.0.20", port: 0)!, reusePort: false)
        let light = try UDPSocket(binding: EndpointAddress.parse("127.0.0.21", port: 0)!, reusePort: false)
        let edges = [0, 1].map { EndpointAddress.parse("127.0.0.1", port: UInt16(edgePort($0)))! }
        func options(_ host: String, _ index: Int) -> [UInt8] {
            Array(("OPTIONS sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP \(host):5060;branch=z9hG4bK\(host)-\(index)\r\n"
                   + "Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=f\r\nTo: <sip:a@example.com>\r\n"
                   + "Call-ID: \(host)-\(index)\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").utf8)
        }
        var limitedAnswers: [String: Set<UInt16>] = [:]
        let batch = DatagramBatch(capacity: 32, bufferSize: 4_096)
        func collect(_ socket: UDPSocket, _ host: String) {
            let count = batch.receive(from: socket)
            for index in 0..<count {
                batch.withDatagram(index) { bytes, source in
                    if bytes.string(bytes.all).hasPrefix("SIP/2.0 503"), let source {
                        limitedAnswers[host, default: []].insert(source.port)
                    }
                }
            }
        }
        // 5 s: 14/s and 8/s to each edge, interleaved, bounded in count.
        for tick in 0..<70 {
            for edge in edges {
                _ = heavy.send(options("127.0.0.20", tick * 2 + Int(edge.port % 2)), to: edge)
                if tick % 7 < 4 { _ = light.send(options("127.0.0.21", tick * 2 + Int(edge.port % 2)), to: edge) }
            }
            usleep(71_000)
            collect(heavy, "127.0.0.20")
            collect(light, "127.0.0.21")
        }
        #expect(limitedAnswers["127.0.0.20"] == Set(edges.map(\.port)), "both edges limit the heavy source together")
        #expect(limitedAnswers["127.0.0.21"] == nil, "the light source is never limited")
        #expect(metric("sip_shared_limited_sources_total", edge: 0) >= 1)
    }

    /// A Redis that wants a password: the one in `shared_state.password_file` gets in, a wrong one does not (the
    /// edge says why, and serves on its own).
    @Test func thePasswordComesFromItsFileAndAWrongOneIsRefused() throws {
        let redis = try startRedis(password: "s3cret-\(getpid())")
        defer { ProcessHarness.stop(redis) }
        let core = try FakeCore()
        let right = FileManager.default.temporaryDirectory.appendingPathComponent("redis-right-\(getpid())")
        let wrong = FileManager.default.temporaryDirectory.appendingPathComponent("redis-wrong-\(getpid())")
        try "s3cret-\(getpid())\n".write(to: right, atomically: true, encoding: .utf8)
        try "not-it\n".write(to: wrong, atomically: true, encoding: .utf8)
        let edgeA = try startEdge(0, core: Int(core.address.port), extra: "  password_file: \(right.path)")
        defer { ProcessHarness.stop(edgeA) }
        let edgeB = try startEdge(1, core: Int(core.address.port), extra: "  password_file: \(wrong.path)")
        defer { ProcessHarness.stop(edgeB) }
        #expect(waitFor(5) { metric("sip_shared_state_up", edge: 0) == 1 } != nil)
        #expect(waitFor(3) { ProcessHarness.logContents("shared-edge-1.log").contains("AUTH") } != nil)
        #expect(metric("sip_shared_state_up", edge: 1) == 0)
        #expect(metric("sip_shared_state_configured", edge: 1) == 1)
    }
}
