import Foundation
import SIPTestSupport
import SIPUring
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The admin endpoint: readiness follows the upstream's OPTIONS answers, /metrics counts real traffic, and no
/// client (slow, idle, or one of a thousand) keeps a liveness probe waiting.
@Suite(.serialized) struct AdminTests {
    func get(_ url: String, name: String) throws -> String {
        try ProcessHarness.httpGet(url, log: name, headers: true)
    }

    @Test func readinessAndMetricsReflectTheUpstreamAndTheTraffic() throws {
        let base = ProcessHarness.portBase(.admin)
        let (edgePort, corePort, uacPort, adminPort) = (base, base + 1, base + 2, base + 4)
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("admin-\(getpid()).yaml")
        try """
            listen: udp:127.0.0.1:\(edgePort)
            upstreams: [sip:127.0.0.1:\(corePort)]
            workers: 2
            admin:
              listen: 127.0.0.1:\(adminPort)
            upstream_health:
              interval_ms: 200
            """.write(to: config, atomically: true, encoding: .utf8)
        let edge = try ProcessHarness.start(ProcessHarness.sipEdgeBinary.path, ["--config", config.path], log: "admin-edge.log")
        defer { ProcessHarness.stop(edge) }
        usleep(500_000)
        let admin = "http://127.0.0.1:\(adminPort)"
        #expect(try get("\(admin)/health/live", name: "live.log").hasPrefix("HTTP/1.1 200 OK"))
        // No upstream yet: not ready, and it says why.
        let notReady = try get("\(admin)/health/ready", name: "ready-before.log")
        #expect(notReady.hasPrefix("HTTP/1.1 503"), "\(notReady)")
        #expect(notReady.contains("no upstream up and answering OPTIONS"))

        // An upstream that answers OPTIONS: ready within a few probe intervals.
        let core = try ProcessHarness.startOptionsCore(port: corePort, log: "admin-core.log")
        defer { ProcessHarness.stop(core) }
        var ready = ""
        for _ in 0..<30 {
            ready = try get("\(admin)/health/ready", name: "ready-after.log")
            if ready.hasPrefix("HTTP/1.1 200") { break }
            usleep(100_000)
        }
        #expect(ready.hasPrefix("HTTP/1.1 200"), "\(ready)")

        // 25 OPTIONS through the edge, then the counters.
        let status = try ProcessHarness.runOptions(to: edgePort, from: uacPort, count: 25, rate: 50, timeoutSeconds: 15,
                                                log: "admin-uac.log")
        #expect(status == 0)
        usleep(300_000)  // workers publish their counters every 100 ms
        let metrics = try get("\(admin)/metrics", name: "metrics.log")
        #expect(metrics.contains("Content-Type: text/plain; version=0.0.4"))
        let optionsLine = metrics.split(separator: "\n").first { $0.hasPrefix("sip_messages_total{method=\"OPTIONS\",transport=\"udp\"}") }
        let optionsCount = optionsLine.flatMap { Int($0.split(separator: " ").last!) } ?? 0
        #expect(optionsCount >= 25, "\(String(describing: optionsLine))")
        #expect(metrics.contains("sip_response_time_seconds_count "))
        #expect(metrics.contains("sip_upstream_up{upstream=\"127.0.0.1:\(corePort)\"} 1"))
        #expect(metrics.contains("process_resident_memory_bytes "))
        #expect(try get("\(admin)/nope", name: "404.log").hasPrefix("HTTP/1.1 404"))
    }

    // MARK: - Many connections, one admin thread

    /// Starts sip-edge with one worker and the admin listener, its descriptor soft limit first lowered to 1,024 (as
    /// a login shell leaves it) so that the raise at start is visible; waits (bounded) until the admin port accepts.
    func startEdge(log: String) throws -> (edge: Process, adminPort: Int) {
        let base = ProcessHarness.portBase(.admin)
        let (edgePort, corePort, adminPort) = (base, base + 1, base + 4)
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("admin-many-\(getpid()).yaml")
        try """
            listen: udp:127.0.0.1:\(edgePort)
            upstreams: [sip:127.0.0.1:\(corePort)]
            workers: 1
            admin:
              listen: 127.0.0.1:\(adminPort)
            """.write(to: config, atomically: true, encoding: .utf8)
        let edge = try ProcessHarness.start("/bin/sh", ["-c", "ulimit -Sn 1024 && exec \"$0\" \"$@\"",
                                                        ProcessHarness.sipEdgeBinary.path, "--config", config.path],
                                            log: log)
        for _ in 0..<50 where ProcessHarness.isRunning(edge) {
            if TestStreamClient(port: adminPort) != nil { break }
            usleep(100_000)
        }
        return (edge, adminPort)
    }

    /// One request as a kubelet or a scraper makes it: connect, send, read until the server closes. The time
    /// covers all of it; the text is everything the server sent.
    func exchange(_ request: String, port: Int) -> (response: String, elapsed: Duration) {
        let clock = ContinuousClock()
        let start = clock.now
        guard let client = TestStreamClient(port: port) else { return ("", clock.now - start) }
        client.send(request)
        _ = client.waitForClose(timeout: 2)
        return (client.text, clock.now - start)
    }

    func probeLive(port: Int) -> (response: String, elapsed: Duration) {
        exchange("GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: kube-probe/1.31\r\n\r\n", port: port)
    }

    /// True when the server has closed `client`'s connection (end of stream or reset), without waiting.
    func closedByServer(_ client: TestStreamClient) -> Bool {
        var poller = pollfd(fd: client.descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, 0) > 0 else { return false }
        var byte: UInt8 = 0
        return recv(client.descriptor, &byte, 1, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT)) <= 0
    }

    /// The case: a client trickling a request one byte every 500 ms held the only admin thread, and four
    /// liveness probes in a row failed. Now each probe is answered at once, and the slow client is closed once its
    /// whole-request deadline (2 s from accept) passes, however steadily it sends.
    @Test func aSlowClientDoesNotDelayLivenessProbes() throws {
        let (edge, adminPort) = try startEdge(log: "admin-slow-edge.log")
        defer { ProcessHarness.stop(edge) }
        let clock = ContinuousClock()
        let slow = try #require(TestStreamClient(port: adminPort))
        let connected = clock.now
        let trickle = Array("GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow\r\n\r\n")
        var sent = 0
        slow.send(String(trickle[sent]))
        sent += 1

        var probes: [(response: String, elapsed: Duration)] = []
        for round in 1...4 {
            probes.append(probeLive(port: adminPort))
            let nextByte = connected + .milliseconds(500 * round)
            let (seconds, attoseconds) = (nextByte - clock.now).components
            if seconds >= 0, attoseconds > 0 { usleep(UInt32(seconds * 1_000_000 + attoseconds / 1_000_000_000_000)) }
            slow.send(String(trickle[sent]))
            sent += 1
        }
        for probe in probes {
            #expect(probe.response.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(probe.response)")
            #expect(probe.response.hasSuffix("\r\n\r\nok\n"), "\(probe.response)")
        }
        let slowest = probes.map(\.elapsed).max() ?? .seconds(60)
        #expect(slowest < .milliseconds(100), "slowest of 4 liveness probes: \(slowest)")

        // Keep trickling (at most 8 more bytes, 4 s) until the server closes the slow client.
        for _ in 0..<8 where !slow.peerClosed {
            slow.receive(timeout: 0.5) { _ in false }
            if !slow.peerClosed {
                slow.send(String(trickle[sent]))
                sent += 1
            }
        }
        let closedAfter = clock.now - connected
        #expect(slow.peerClosed, "the slow client is still open after \(closedAfter)")
        #expect(closedAfter >= .milliseconds(1_900) && closedAfter < .milliseconds(3_000), "closed after \(closedAfter)")
        #expect(slow.text.isEmpty, "a request never completed gets no answer: \(slow.text)")
        #expect(sent < trickle.count)
    }

    /// A thousand idle connections (four times the cap) must not lock a liveness probe out: each new connection
    /// beyond 256 closes the oldest one that has not sent its request.
    @Test func aThousandIdleConnectionsDoNotLockOutLivenessProbes() throws {
        let limit = raiseOpenFileLimitToHardLimit()
        try #require(limit >= 1_100, "this test needs 1,100 descriptors; the hard limit allows \(limit)")
        let (edge, adminPort) = try startEdge(log: "admin-idle-edge.log")
        defer { ProcessHarness.stop(edge) }

        // The edge raised its own soft limit (started at 1,024) to its hard limit.
        let limits = try String(contentsOfFile: "/proc/\(edge.processIdentifier)/limits", encoding: .utf8)
        let openFiles = try #require(limits.split(separator: "\n").first { $0.hasPrefix("Max open files") })
        let values = openFiles.split(separator: " ").dropFirst(3).prefix(2).map(String.init)
        #expect(values.count == 2 && values[0] == values[1], "\(openFiles)")

        var idle: [TestStreamClient] = []
        idle.reserveCapacity(1_000)
        let deadline = Date().addingTimeInterval(20)
        while idle.count < 1_000, Date() < deadline {
            guard let client = TestStreamClient(port: adminPort) else { break }
            idle.append(client)
        }
        try #require(idle.count == 1_000, "opened only \(idle.count) idle connections")

        let probe = probeLive(port: adminPort)
        #expect(probe.response.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(probe.response)")
        #expect(probe.elapsed < .milliseconds(100), "liveness probe behind 1,000 idle connections: \(probe.elapsed)")

        // The cap held: all but at most 256 of the idle connections were closed to make room.
        let closed = idle.filter(closedByServer).count
        #expect(closed >= 1_000 - 256, "only \(closed) of 1,000 idle connections were closed")
        #expect(idle.prefix(100).allSatisfy(closedByServer), "the oldest go first")
    }

    /// HEAD and refused methods over a real socket, and a request head over 8 KiB; each response arrives whole
    /// before the server's close, even when the client sent bytes the server never read.
    @Test func headMethodNotAllowedAndOversizedHeadsOverTheWire() throws {
        let (edge, adminPort) = try startEdge(log: "admin-methods-edge.log")
        defer { ProcessHarness.stop(edge) }

        let head = exchange("HEAD /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", port: adminPort).response
        #expect(head.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(head)")
        #expect(head.contains("\r\nContent-Length: 3\r\n"), "\(head)")
        #expect(head.hasSuffix("\r\nConnection: close\r\n\r\n"), "HEAD has no body: \(head)")

        let headMetrics = exchange("HEAD /metrics HTTP/1.1\r\n\r\n", port: adminPort).response
        #expect(headMetrics.hasPrefix("HTTP/1.1 200 OK\r\n") && headMetrics.hasSuffix("\r\n\r\n"), "\(headMetrics)")

        let post = exchange("POST /health/live HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", port: adminPort).response
        #expect(post.hasPrefix("HTTP/1.1 405 Method Not Allowed\r\n"), "\(post)")
        #expect(post.contains("\r\nAllow: GET, HEAD\r\n"), "\(post)")
        #expect(post.hasSuffix("method not allowed\n"), "\(post)")

        let delete = exchange("DELETE /metrics HTTP/1.1\r\n\r\n", port: adminPort).response
        #expect(delete.hasPrefix("HTTP/1.1 405 "), "\(delete)")

        let oversized = "GET /health/live HTTP/1.1\r\nX-Filler: " + String(repeating: "a", count: 9_000) + "\r\n\r\n"
        let tooLarge = exchange(oversized, port: adminPort).response
        #expect(tooLarge.hasPrefix("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "\(tooLarge)")

        let http2 = exchange("GET /health/live HTTP/2.0\r\n\r\n", port: adminPort).response
        #expect(http2.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), "\(http2)")
    }
}
