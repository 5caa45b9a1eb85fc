import Foundation
import Testing

/// The admin endpoint: readiness follows the upstream's OPTIONS answers, and /metrics counts real traffic.
@Suite(.serialized) struct AdminTests {
    func get(_ url: String, name: String) throws -> String {
        try ProcessHarness.httpGet(url, log: name, headers: true)
    }

    @Test func readinessAndMetricsReflectTheUpstreamAndTheTraffic() throws {
        let sipp = try #require(ProcessHarness.which("sipp"))
        let base = ProcessHarness.portBase(.admin)
        let (edgePort, corePort, uacPort, adminPort) = (base, base + 1, base + 2, base + 4)
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("admin-\(getpid()).yaml")
        try """
            listen: udp:127.0.0.1:\(edgePort)
            upstreams: [sip:127.0.0.1:\(corePort)]
            workers: 2
            admin:
              listen: 127.0.0.1:\(adminPort)
              probe_interval_ms: 200
            """.write(to: config, atomically: true, encoding: .utf8)
        let edge = try ProcessHarness.start(ProcessHarness.sipEdgeBinary.path, ["--config", config.path], log: "admin-edge.log")
        defer { ProcessHarness.stop(edge) }
        usleep(500_000)
        let admin = "http://127.0.0.1:\(adminPort)"
        #expect(try get("\(admin)/health/live", name: "live.log").hasPrefix("HTTP/1.1 200 OK"))
        // No upstream yet: not ready, and it says why.
        let notReady = try get("\(admin)/health/ready", name: "ready-before.log")
        #expect(notReady.hasPrefix("HTTP/1.1 503"), "\(notReady)")
        #expect(notReady.contains("upstream not answering OPTIONS"))

        // An upstream that answers OPTIONS: ready within a few probe intervals.
        let fixtures = ProcessHarness.fixtures
        let core = try ProcessHarness.start(sipp, ["-sf", fixtures.appendingPathComponent("options-uas.xml").path,
                                                   "-i", "127.0.0.1", "-p", "\(corePort)", "-nostdin"], log: "admin-core.log")
        defer { ProcessHarness.stop(core) }
        var ready = ""
        for _ in 0..<30 {
            ready = try get("\(admin)/health/ready", name: "ready-after.log")
            if ready.hasPrefix("HTTP/1.1 200") { break }
            usleep(100_000)
        }
        #expect(ready.hasPrefix("HTTP/1.1 200"), "\(ready)")

        // 25 OPTIONS through the edge, then the counters.
        let status = try ProcessHarness.run(sipp, ["-sf", fixtures.appendingPathComponent("options-uac.xml").path,
                                                   "127.0.0.1:\(edgePort)", "-i", "127.0.0.1", "-p", "\(uacPort)",
                                                   "-m", "25", "-r", "50", "-timeout", "15s", "-timeout_error", "-nostdin"],
                                            timeout: 30, log: "admin-uac.log")
        #expect(status == 0)
        usleep(300_000)  // workers publish their counters every 100 ms
        let metrics = try get("\(admin)/metrics", name: "metrics.log")
        #expect(metrics.contains("Content-Type: text/plain; version=0.0.4"))
        let optionsLine = metrics.split(separator: "\n").first { $0.hasPrefix("sip_messages_total{method=\"OPTIONS\",transport=\"udp\"}") }
        let optionsCount = optionsLine.flatMap { Int($0.split(separator: " ").last!) } ?? 0
        #expect(optionsCount >= 25, "\(String(describing: optionsLine))")
        #expect(metrics.contains("sip_response_time_seconds_count "))
        #expect(metrics.contains("sip_upstream_up 1"))
        #expect(metrics.contains("process_resident_memory_bytes "))
        #expect(try get("\(admin)/nope", name: "404.log").hasPrefix("HTTP/1.1 404"))
    }
}
