import Foundation
import Testing

/// Zero-downtime restart (SIGUSR2): the running sip-edge starts its binary again and hands it the listening
/// sockets; calls in progress over UDP and over existing TCP connections finish, new ones reach the new process.
@Suite(.serialized) struct HandoverTests {
    let base = ProcessHarness.portBase(.handover)
    var edgePort: Int { base }
    var corePort: Int { base + 1 }
    var callerAPort: Int { base + 2 }
    var callerBPort: Int { base + 3 }
    var adminPort: Int { base + 4 }

    /// The sip-edge run the tests hand over: two workers, UDP and TCP on one port, admin on, its drain bounded.
    func startEdge(name: String, drainSeconds: Int = 30, workers: Int = 2) throws -> (Process, URL) {
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(getpid()).yaml")
        try writeConfig(config, workers: workers, drainSeconds: drainSeconds)
        let edge = try ProcessHarness.start(ProcessHarness.sipEdgeBinary.path, ["--config", config.path],
                                            log: "\(name)-edge.log")
        usleep(600_000)
        #expect(ProcessHarness.isRunning(edge), "sip-edge exited: \(ProcessHarness.logContents("\(name)-edge.log"))")
        return (edge, config)
    }

    func writeConfig(_ url: URL, workers: Int, drainSeconds: Int) throws {
        try """
            listen: udp:127.0.0.1:\(edgePort)
            upstreams: [sip:127.0.0.1:\(corePort)]
            workers: \(workers)
            admin:
              listen: 127.0.0.1:\(adminPort)
            handover:
              drain_s: \(drainSeconds)
              ready_timeout_s: 20
            """.write(to: url, atomically: true, encoding: .utf8)
    }

    /// The core: a SIPp UAS that answers, holds each call `holdMilliseconds`, then hangs up (Fixtures/uas-hangs-up.xml).
    func startCore(name: String, holdMilliseconds: Int) throws -> Process {
        let sipp = try #require(ProcessHarness.which("sipp"), "sipp (Debian sip-tester) must be installed")
        return try ProcessHarness.start(
            sipp, ["-sf", ProcessHarness.fixtures.appendingPathComponent("uas-hangs-up.xml").path, "-aa",
                   "-d", "\(holdMilliseconds)", "-i", "127.0.0.1", "-p", "\(corePort)", "-nostdin"],
            log: "\(name)-core.log")
    }

    /// A SIPp caller (Fixtures/call-registered-callee-hangs-up.xml: the callee's BYE comes back along the route)
    /// making `calls` calls at `rate` per second over `transport` (u1 or t1: one TCP connection).
    func startCaller(name: String, port: Int, transport: String, calls: Int, rate: Int) throws -> Process {
        let sipp = try #require(ProcessHarness.which("sipp"))
        return try ProcessHarness.start(
            sipp, ["-sf", ProcessHarness.fixtures.appendingPathComponent("call-registered-callee-hangs-up.xml").path,
                   "127.0.0.1:\(edgePort)", "-t", transport, "-i", "127.0.0.1", "-p", "\(port)", "-m", "\(calls)",
                   "-r", "\(rate)", "-timeout", "40s", "-timeout_error", "-nostdin", "-trace_stat", "-stf",
                   FileManager.default.temporaryDirectory.appendingPathComponent("\(name).csv").path],
            log: "\(name).log")
    }

    func waitForExit(_ process: Process, seconds: Double) {
        let deadline = Date().addingTimeInterval(seconds)
        while ProcessHarness.isRunning(process) && Date() < deadline { usleep(50_000) }
    }

    /// The pid of the successor that serves, from the predecessor's log ("handover: PID N serves now"); earlier
    /// refused successors are named in the log too, but never as serving.
    func successorPID(log: String, timeout: Double = 20) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        repeat {
            let text = ProcessHarness.logContents(log)
            if let range = text.range(of: #"handover: PID \d+ serves now"#, options: .regularExpression) {
                return Int32(text[range].split(separator: " ")[2])
            }
            usleep(100_000)
        } while Date() < deadline
        return nil
    }

    /// Whether `pid` (not our child: the successor) still runs; a zombie has ended.
    func isAlive(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let end = stat.lastIndex(of: ")") else { return false }
        return !stat[stat.index(after: end)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    /// Stops the successor this test caused to start, by its pid: SIGTERM, then SIGKILL after 3 s.
    func stopSuccessor(_ pid: Int32) {
        guard isAlive(pid) else { return }
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(3)
        while isAlive(pid) && Date() < deadline { usleep(20_000) }
        if isAlive(pid) { kill(pid, SIGKILL) }
    }

    /// UDP under load: calls set up before the restart are hung up by the core after the old process has exited
    /// (their BYE reaches the port the old process's Record-Route named), calls set up during and after it
    /// complete, and the admin port answers from the new process. Not one call fails.
    @Test func aRestartUnderUDPLoadLosesNoCall() throws {
        let name = "handover-udp"
        let core = try startCore(name: name, holdMilliseconds: 3_000)
        defer { ProcessHarness.stop(core) }
        let (edge, _) = try startEdge(name: name)
        defer { ProcessHarness.stop(edge) }
        let caller = try startCaller(name: "\(name)-caller", port: callerAPort, transport: "u1", calls: 240, rate: 40)
        defer { ProcessHarness.stop(caller) }
        usleep(2_000_000)  // 80 calls up, held 3 s each: their BYEs come after the old process has gone
        kill(edge.processIdentifier, SIGUSR2)
        let successor = try #require(successorPID(log: "\(name)-edge.log"),
                                     "no handover: \(ProcessHarness.logContents("\(name)-edge.log"))")
        defer { stopSuccessor(successor) }
        waitForExit(edge, seconds: 10)
        #expect(!ProcessHarness.isRunning(edge), "the old process should exit once drained (UDP only: at once)")
        #expect(ProcessHarness.exitStatus(edge) == 0)
        #expect(isAlive(successor))
        waitForExit(caller, seconds: 40)
        let log = ProcessHarness.logContents("\(name)-edge.log")
        #expect(ProcessHarness.exitStatus(caller) == 0, "caller failed:\n\(ProcessHarness.logContents("\(name)-caller.log"))\n\(log)")
        let totals = try ProcessHarness.sippCallTotals("\(name)-caller")
        #expect(totals.successful == 240)
        #expect(totals.failed == 0)
        #expect(log.contains("upstream sockets adopted"), "\(log)")
        // The admin listener moved too: /metrics now counts the new process's traffic only (it started at 0).
        let metrics = try ProcessHarness.httpGet("http://127.0.0.1:\(adminPort)/metrics", log: "\(name)-metrics.log")
        let forwarded = ProcessHarness.metricValue("sip_forwarded_total", in: metrics)
        #expect((forwarded ?? 0) > 0, "the new process should serve /metrics:\n\(metrics.prefix(2_000))")
    }

    /// TCP: a caller connected before the restart keeps its connection on the old process and finishes its calls
    /// there (the old process drains, then exits well before handover.drain_s); a caller that connects after it
    /// reaches the new process; neither loses a call.
    @Test func existingTCPConnectionsFinishOnTheOldProcessAndNewOnesReachTheNew() throws {
        let name = "handover-tcp"
        let core = try startCore(name: name, holdMilliseconds: 2_000)
        defer { ProcessHarness.stop(core) }
        let (edge, _) = try startEdge(name: name, drainSeconds: 60)
        defer { ProcessHarness.stop(edge) }
        let callerA = try startCaller(name: "\(name)-a", port: callerAPort, transport: "t1", calls: 60, rate: 10)
        defer { ProcessHarness.stop(callerA) }
        usleep(1_500_000)
        kill(edge.processIdentifier, SIGUSR2)
        let successor = try #require(successorPID(log: "\(name)-edge.log"),
                                     "no handover: \(ProcessHarness.logContents("\(name)-edge.log"))")
        defer { stopSuccessor(successor) }
        usleep(500_000)
        #expect(ProcessHarness.isRunning(edge), "the old process must keep serving caller A's connection")
        let callerB = try startCaller(name: "\(name)-b", port: callerBPort, transport: "t1", calls: 20, rate: 10)
        defer { ProcessHarness.stop(callerB) }
        waitForExit(callerB, seconds: 40)
        waitForExit(callerA, seconds: 40)
        let started = Date()
        waitForExit(edge, seconds: 15)
        let log = ProcessHarness.logContents("\(name)-edge.log")
        #expect(!ProcessHarness.isRunning(edge), "the old process should exit once caller A's connection closed:\n\(log)")
        #expect(Date().timeIntervalSince(started) < 15)
        #expect(ProcessHarness.exitStatus(callerA) == 0, "caller A failed:\n\(ProcessHarness.logContents("\(name)-a.log"))\n\(log)")
        #expect(ProcessHarness.exitStatus(callerB) == 0, "caller B failed:\n\(ProcessHarness.logContents("\(name)-b.log"))\n\(log)")
        #expect(try ProcessHarness.sippCallTotals("\(name)-a").successful == 60)
        #expect(try ProcessHarness.sippCallTotals("\(name)-b").successful == 20)
        // Caller B's connection was accepted by the new process: its counters (on the moved admin port) show it.
        let metrics = try ProcessHarness.httpGet("http://127.0.0.1:\(adminPort)/metrics", log: "\(name)-metrics.log")
        let accepted = ProcessHarness.metricValue(#"sip_connection_events_total{event="accepted"}"#, in: metrics)
        #expect(accepted == 1, "exactly caller B's connection on the new process:\n\(metrics.prefix(3_000))")
    }

    /// A successor that cannot serve changes nothing: a configuration that no longer parses, and one with another
    /// worker count (the predecessor's upstream ports must each find a worker), are refused; the running process
    /// serves on and a later SIGUSR2 with a good file hands over.
    @Test func aSuccessorThatCannotServeLeavesTheRunningProcessServing() throws {
        let name = "handover-refused"
        let core = try startCore(name: name, holdMilliseconds: 0)
        defer { ProcessHarness.stop(core) }
        let (edge, config) = try startEdge(name: name)
        defer { ProcessHarness.stop(edge) }
        let edgeLog = "\(name)-edge.log"

        try "listen: [nonsense\n".write(to: config, atomically: true, encoding: .utf8)
        kill(edge.processIdentifier, SIGUSR2)
        try waitForLog(edgeLog, containing: "handover failed", count: 1)
        try writeConfig(config, workers: 3, drainSeconds: 30)
        kill(edge.processIdentifier, SIGUSR2)
        try waitForLog(edgeLog, containing: "handover failed", count: 2)
        let log = ProcessHarness.logContents(edgeLog)
        #expect(log.contains("exited with status 2"), "\(log)")
        #expect(log.contains("a worker count changes only with a full restart"), "\(log)")
        #expect(ProcessHarness.isRunning(edge))
        // Still serving: calls go through the old process.
        let caller = try startCaller(name: "\(name)-caller", port: callerAPort, transport: "u1", calls: 10, rate: 20)
        defer { ProcessHarness.stop(caller) }
        waitForExit(caller, seconds: 30)
        #expect(ProcessHarness.exitStatus(caller) == 0, "\(ProcessHarness.logContents("\(name)-caller.log"))")

        try writeConfig(config, workers: 2, drainSeconds: 30)
        kill(edge.processIdentifier, SIGUSR2)
        let successor = try #require(successorPID(log: edgeLog), "\(ProcessHarness.logContents(edgeLog))")
        defer { stopSuccessor(successor) }
        waitForExit(edge, seconds: 10)
        #expect(ProcessHarness.exitStatus(edge) == 0)
    }

    func waitForLog(_ log: String, containing text: String, count: Int, timeout: Double = 25) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while ProcessHarness.logContents(log).components(separatedBy: text).count - 1 < count && Date() < deadline {
            usleep(100_000)
        }
        let found = ProcessHarness.logContents(log).components(separatedBy: text).count - 1
        try #require(found >= count, "expected \(count) × \"\(text)\":\n\(ProcessHarness.logContents(log))")
    }
}
