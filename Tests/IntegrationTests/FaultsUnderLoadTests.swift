import Foundation
import SIPBytes
import SIPTestSupport
import SIPUring
import Testing

/// Faults injected while SIPp calls flow through the binary (UAC -> sip-edge -> UAS over UDP, 20 calls/s): what
/// must hold is stated per test; every one needs the edge alive at the end and still serving.
@Suite(.serialized) struct FaultsUnderLoadTests {
    let base = ProcessHarness.portBase(.faultsUnderLoad)
    var edgePort: Int { base }
    var tlsPort: Int { base + 1 }
    var adminPort: Int { base + 2 }
    var coreAPort: Int { base + 3 }
    var coreBPort: Int { base + 4 }
    var callerPort: Int { base + 5 }

    struct Run {
        let edge: Process
        let caller: Process
        let name: String
        /// /metrics once the caller has finished (the edge still running).
        var finalMetrics = ""
        var edgeLog: String { ProcessHarness.logContents("\(name)-edge.log") }
        var callerLog: String { ProcessHarness.logContents("\(name)-caller.log") }
    }

    /// Starts one or two cores, the edge (`extraConfig` appended to its YAML) and a caller making `calls` calls at
    /// 20/s; runs `fault` while they flow, waits for the caller, and returns its totals with the run.
    func underLoad(_ name: String, cores: Int = 1, calls: Int = 300, extraConfig: String = "",
                   certificates: TestCertificates? = nil,
                   fault: (Run, inout [Process]) throws -> Void) throws -> (Run, totals: (successful: Int, failed: Int)) {
        let sipp = try #require(ProcessHarness.which("sipp"), "sipp (Debian sip-tester) must be installed")
        var started: [Process] = []
        defer { for process in started.reversed() { ProcessHarness.stop(process) } }
        for port in [coreAPort, coreBPort].prefix(cores) {
            started.append(try ProcessHarness.start(sipp, ["-sn", "uas", "-aa", "-i", "127.0.0.1", "-p", "\(port)", "-nostdin"],
                                                    log: "\(name)-core-\(port).log"))
        }
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(getpid()).yaml")
        let upstreams = [coreAPort, coreBPort].prefix(cores).map { "sip:127.0.0.1:\($0)" }.joined(separator: ", ")
        let tls = certificates.map {
            "tls:\n  listen: tls:127.0.0.1:\(tlsPort)\n  certificate: \($0.serverCertificate)\n  private_key: \($0.serverKey)\n"
                + "  handshake_timeout_ms: 2000\n"
        } ?? ""
        try """
            listen: udp:127.0.0.1:\(edgePort)
            upstreams: [\(upstreams)]
            workers: 2
            admin:
              listen: 127.0.0.1:\(adminPort)
            upstream_health:
              interval_ms: 500
            \(tls)\(extraConfig)
            """.write(to: config, atomically: true, encoding: .utf8)
        let edge = try ProcessHarness.start(ProcessHarness.sipEdgeBinary.path, ["--config", config.path], log: "\(name)-edge.log")
        started.append(edge)
        usleep(800_000)
        try #require(ProcessHarness.isRunning(edge), "sip-edge exited: \(ProcessHarness.logContents("\(name)-edge.log"))")
        let caller = try ProcessHarness.start(
            sipp, ["-sn", "uac", "127.0.0.1:\(edgePort)", "-i", "127.0.0.1", "-p", "\(callerPort)", "-m", "\(calls)",
                   "-r", "20", "-timeout", "60s", "-timeout_error", "-nostdin", "-trace_stat", "-stf",
                   FileManager.default.temporaryDirectory.appendingPathComponent("\(name).csv").path],
            log: "\(name)-caller.log")
        started.append(caller)
        var run = Run(edge: edge, caller: caller, name: name)
        usleep(1_000_000)
        try fault(run, &started)
        let deadline = Date().addingTimeInterval(60)
        while ProcessHarness.isRunning(caller) && Date() < deadline { usleep(50_000) }
        #expect(ProcessHarness.isRunning(edge), "sip-edge died:\n\(run.edgeLog)")
        run.finalMetrics = try metrics()
        return (run, try ProcessHarness.sippCallTotals(name))
    }

    func metrics() throws -> String {
        try ProcessHarness.httpGet("http://127.0.0.1:\(adminPort)/metrics", log: "faults-metrics.log")
    }

    func event(_ name: String, in metrics: String) -> Double {
        ProcessHarness.metricValue("sip_connection_events_total{event=\"\(name)\"}", in: metrics) ?? -1
    }

    /// Runs Fixtures/fault-clients.py in the background; its JSON summary line ends up in `log`.
    func startFaultClients(_ arguments: [String], log: String) throws -> Process {
        try ProcessHarness.start("/usr/bin/python3", [ProcessHarness.fixtures.appendingPathComponent("fault-clients.py").path]
                                 + arguments, log: log)
    }

    func summary(_ log: String) -> [String: Any] {
        let line = ProcessHarness.logContents(log).split(separator: "\n").last { $0.hasPrefix("{") } ?? "{}"
        return (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]) ?? [:]
    }

    /// One of two cores killed (SIGKILL) mid-load and started again 4 s later: its failure is seen at once (ICMP
    /// port unreachable on the upstream socket), the callers' INVITE retransmissions go to the other core, and it
    /// is back in rotation once it answers probes. Only calls answered by the killed core and not yet hung up can
    /// fail (their dialog died with it): at 20 calls/s without a hold, at most a few.
    @Test func aKilledUpstreamIsRoutedAroundAndBackWhenRestarted() throws {
        let (run, totals) = try underLoad("fault-kill", cores: 2) { _, started in
            let coreA = started[0]
            kill(coreA.processIdentifier, SIGKILL)
            usleep(4_000_000)
            let sipp = try #require(ProcessHarness.which("sipp"))
            started.append(try ProcessHarness.start(sipp, ["-sn", "uas", "-aa", "-i", "127.0.0.1", "-p", "\(coreAPort)", "-nostdin"],
                                                    log: "fault-kill-core-restarted.log"))
        }
        #expect(totals.failed <= 3, "\(run.callerLog)\n\(run.edgeLog)")
        #expect(totals.successful >= 297)
        #expect(run.edgeLog.contains("upstream 127.0.0.1:\(coreAPort) is down"), "\(run.edgeLog)")
        #expect(run.edgeLog.contains("upstream 127.0.0.1:\(coreAPort) is up"), "back in rotation:\n\(run.edgeLog)")
    }

    /// One of two cores stopped (SIGSTOP) for 10 s and continued: silent, it is taken out of rotation by the
    /// probes; retransmitted INVITEs reach the other core; continued, it answers probes and comes back. Its stale
    /// answers to requests it took while stopped arrive after those calls finished elsewhere. No call fails.
    @Test func aStoppedUpstreamIsRoutedAroundAndBackWhenContinued() throws {
        let (run, totals) = try underLoad("fault-stop", cores: 2, calls: 400) { _, started in
            let coreA = started[0]
            kill(coreA.processIdentifier, SIGSTOP)
            usleep(10_000_000)
            kill(coreA.processIdentifier, SIGCONT)
        }
        #expect(totals.failed == 0, "\(run.callerLog)\n\(run.edgeLog)")
        #expect(totals.successful == 400)
        #expect(run.edgeLog.contains("upstream 127.0.0.1:\(coreAPort) is down"), "\(run.edgeLog)")
        #expect(run.edgeLog.contains("upstream 127.0.0.1:\(coreAPort) is up"), "\(run.edgeLog)")
    }

    /// 1,000 connections that never speak (500 to the TCP port, 500 to the TLS port), 20 TLS clients stalled
    /// mid-ClientHello and 10 slowloris clients over TCP and 10 over TLS (a REGISTER at one byte a second), all
    /// while calls flow: no call fails; the slowloris ones are cut at the message deadline and the silent and
    /// stalled TLS ones at the handshake deadline (2 s each here), the silent TCP ones at the idle timeout (4 s);
    /// memory stays bounded.
    @Test func silentStalledAndTricklingConnectionsCostNoCall() throws {
        try withCertificates { certificates in
            var rssBefore = 0.0
            var rssDuring = 0.0
            let (run, totals) = try underLoad(
                "fault-slow", calls: 300, extraConfig: "tcp:\n  idle_timeout_s: 4\n  message_timeout_ms: 2000\n",
                certificates: certificates) { run, started in
                rssBefore = ProcessHarness.metricValue("process_resident_memory_bytes", in: try metrics()) ?? 0
                let silent = try startFaultClients(["silent", "127.0.0.1", "\(edgePort)", "500", "8", "127.0.1.", "5"], log: "fault-silent.log")
                let silentTLS = try startFaultClients(["silent", "127.0.0.1", "\(tlsPort)", "500", "8", "127.0.6.", "5"],
                                                      log: "fault-silent-tls.log")
                let stalled = try startFaultClients(["stalled-tls", "127.0.0.1", "\(tlsPort)", "20", "8", "127.0.2.", "2"], log: "fault-stalled.log")
                let slowTCP = try startFaultClients(["slowloris", "127.0.0.1", "\(edgePort)", "10", "8", "127.0.3.", "2"], log: "fault-slow-tcp.log")
                let slowTLS = try startFaultClients(["slowloris", "127.0.0.1", "\(tlsPort)", "10", "8", "127.0.4.", "2", "tls"],
                                                    log: "fault-slow-tls.log")
                started += [silent, silentTLS, stalled, slowTCP, slowTLS]
                usleep(2_000_000)
                rssDuring = ProcessHarness.metricValue("process_resident_memory_bytes", in: try metrics()) ?? 0
                for process in [silent, silentTLS, stalled, slowTCP, slowTLS] {
                    let deadline = Date().addingTimeInterval(20)
                    while ProcessHarness.isRunning(process) && Date() < deadline { usleep(100_000) }
                }
                _ = run
            }
            #expect(totals.failed == 0, "\(run.callerLog)")
            #expect(totals.successful == 300)
            for (log, count, within) in [("fault-silent.log", 500, 6.5), ("fault-silent-tls.log", 500, 4.0),
                                         ("fault-stalled.log", 20, 4.0),
                                         ("fault-slow-tcp.log", 10, 4.0), ("fault-slow-tls.log", 10, 4.0)] {
                let result = summary(log)
                #expect(result["opened"] as? Int == count, "\(log): \(ProcessHarness.logContents(log))")
                #expect(result["closed_by_server"] as? Int == count, "\(log): \(result)")
                let latest = (result["close_after_s"] as? [Double])?.last ?? 99
                #expect(latest <= within, "\(log): closed after \(result["close_after_s"] ?? "?") s, expected within \(within) s")
            }
            let after = run.finalMetrics
            #expect(event("idle_closed", in: after) >= 500)
            #expect(event("message_timeout", in: after) >= 20, "\(after)")
            #expect(event("tls_handshake_timeout", in: after) >= 520)
            // 1,040 connections held at once cost well under 16 KiB each.
            #expect(rssDuring - rssBefore < 1_040 * 16_384, "RSS \(rssBefore) -> \(rssDuring)")
        }
    }

    /// The admin port hammered by 1,000 concurrent connections, half of them sending garbage, while calls flow:
    /// no call fails, and a liveness probe is answered within a second throughout.
    @Test func theAdminPortHammeredCostsNoCallAndProbesStillAnswer() throws {
        var slowestProbe = 0.0
        let (run, totals) = try underLoad("fault-admin", calls: 200) { _, started in
            let hammer = try startFaultClients(["garbage", "127.0.0.1", "\(adminPort)", "1000", "6", "127.0.5.", "10"], log: "fault-admin-hammer.log")
            started.append(hammer)
            usleep(500_000)
            for _ in 0..<10 {
                let begin = Date()
                let answer = try ProcessHarness.httpGet("http://127.0.0.1:\(adminPort)/health/live", log: "fault-admin-probe.log")
                #expect(answer.contains("ok"), "probe: \(answer)")
                slowestProbe = max(slowestProbe, Date().timeIntervalSince(begin))
                usleep(300_000)
            }
        }
        #expect(totals.failed == 0, "\(run.callerLog)")
        #expect(totals.successful == 200)
        #expect(slowestProbe < 1.0, "slowest liveness probe \(slowestProbe) s")
        #expect(summary("fault-admin-hammer.log")["opened"] as? Int == 1_000)
    }

    /// A reload with a file that does not parse, mid-load, changes nothing (logged); the next good one applies.
    /// No call fails.
    @Test func aBadReloadMidLoadChangesNothingAndCostsNoCall() throws {
        let name = "fault-reload"
        let (run, totals) = try underLoad(name, calls: 200) { run, _ in
            let config = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(getpid()).yaml")
            let good = try String(contentsOf: config, encoding: .utf8)
            try "listen: [broken\n".write(to: config, atomically: true, encoding: .utf8)
            kill(run.edge.processIdentifier, SIGHUP)
            usleep(1_500_000)
            try (good + "security:\n  blocked_user_agents: [evil-agent]\n").write(to: config, atomically: true, encoding: .utf8)
            kill(run.edge.processIdentifier, SIGHUP)
            usleep(1_000_000)
        }
        #expect(totals.failed == 0, "\(run.callerLog)")
        #expect(totals.successful == 200)
        #expect(run.edgeLog.contains("configuration rejected, keeping the running one"), "\(run.edgeLog)")
        #expect(run.edgeLog.contains("SIGHUP: security and rate_limit reloaded"), "\(run.edgeLog)")
    }

    /// The audit log's disk full (/dev/full: every write fails with ENOSPC) while hostile requests are refused
    /// and calls flow: refusals are still answered, the lost lines are counted, no call fails.
    @Test func aFullDiskForTheAuditLogCostsNoCallAndIsCounted() throws {
        let (run, totals) = try underLoad(
            "fault-disk", calls: 200,
            extraConfig: "security:\n  audit_log: /dev/full\n  blocked_user_agents: [evil-agent]\n") { _, _ in
            let client = try UDPSocket(binding: EndpointAddress.parse("127.0.0.9", port: 0)!, reusePort: false)
            let edge = EndpointAddress.parse("127.0.0.1", port: UInt16(edgePort))!
            for index in 0..<40 {
                OptionsTraffic.send(from: client, viaHost: "127.0.0.9", to: edge, callID: "evil-\(index)",
                                    userAgent: "evil-agent/1.0")
                usleep(50_000)
            }
        }
        #expect(totals.failed == 0, "\(run.callerLog)")
        #expect(totals.successful == 200)
        let after = run.finalMetrics
        #expect((ProcessHarness.metricValue("sip_audit_lines_lost_total", in: after) ?? 0) >= 40, "\(after)")
        #expect((ProcessHarness.metricValue(#"sip_security_violations_total{violation_type="blocked_user_agent"}"#, in: after) ?? 0) >= 40)
    }
}
