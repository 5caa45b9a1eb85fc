import Foundation
import Testing

/// SIPp UAC -> sip-edge -> SIPp UAS over UDP on 127.0.0.1, all three real processes started here.
@Suite(.serialized) struct SIPpThroughEdgeTests {
    /// Starts a UAS and sip-edge, runs the UAC scenario, stops everything; returns the UAC's exit status and logs.
    func runCalls(uac: [String], uas: [String], calls: Int, name: String,
                  dataPath: String = "auto", denyIOURing: Bool = false, extraArguments: [String] = [],
                  duringCalls: ((Process) -> Void)? = nil) throws -> (Int32, String) {
        let sipp = try #require(ProcessHarness.which("sipp"), "sipp (Debian sip-tester) must be installed")
        let base = ProcessHarness.portBase(.calls)
        let (edgePort, uasPort, uacPort) = (base, base + 1, base + 2)
        // -aa: the UAS answers the edge's OPTIONS health probes 200, as a real core does.
        let server = try ProcessHarness.start(sipp, uas + ["-aa", "-i", "127.0.0.1", "-p", "\(uasPort)", "-nostdin"],
                                              log: "\(name)-uas.log")
        defer { ProcessHarness.stop(server) }
        let edgeArguments = ["--listen", "udp:127.0.0.1:\(edgePort)", "--upstream", "sip:127.0.0.1:\(uasPort)",
                             "--workers", "2", "--data-path", dataPath, "--admin", "off"] + extraArguments
        let edge = denyIOURing
            ? try ProcessHarness.start(ProcessHarness.denyIOURingBinary.path,
                                       [ProcessHarness.sipEdgeBinary.path] + edgeArguments, log: "\(name)-edge.log")
            : try ProcessHarness.start(ProcessHarness.sipEdgeBinary.path, edgeArguments, log: "\(name)-edge.log")
        defer { ProcessHarness.stop(edge) }
        usleep(500_000)
        #expect(ProcessHarness.isRunning(edge), "sip-edge exited: \(ProcessHarness.logContents("\(name)-edge.log"))")
        if let duringCalls {
            // Run the calls in the background and act on sip-edge while they flow.
            let uacProcess = try ProcessHarness.start(
                sipp,
                uac + ["127.0.0.1:\(edgePort)", "-i", "127.0.0.1", "-p", "\(uacPort)", "-m", "\(calls)", "-r", "20",
                       "-timeout", "20s", "-timeout_error", "-nostdin", "-trace_stat", "-stf",
                       FileManager.default.temporaryDirectory.appendingPathComponent("\(name).csv").path],
                log: "\(name)-uac.log")
            usleep(500_000)
            duringCalls(edge)
            let deadline = Date().addingTimeInterval(30)
            while ProcessHarness.isRunning(uacProcess) && Date() < deadline { usleep(50_000) }
            ProcessHarness.stop(uacProcess)
            ProcessHarness.stop(edge)
            return (ProcessHarness.exitStatus(uacProcess),
                    ProcessHarness.logContents("\(name)-uac.log") + ProcessHarness.logContents("\(name)-edge.log"))
        }
        let status = try ProcessHarness.run(
            sipp,
            uac + ["127.0.0.1:\(edgePort)", "-i", "127.0.0.1", "-p", "\(uacPort)", "-m", "\(calls)", "-r", "20",
                   "-timeout", "20s", "-timeout_error", "-nostdin", "-trace_stat", "-stf",
                   FileManager.default.temporaryDirectory.appendingPathComponent("\(name).csv").path],
            timeout: 30, log: "\(name)-uac.log")
        ProcessHarness.stop(edge)
        return (status, ProcessHarness.logContents("\(name)-uac.log") + ProcessHarness.logContents("\(name)-edge.log"))
    }

    func callTotals(_ name: String) throws -> (successful: Int, failed: Int) {
        try ProcessHarness.sippCallTotals(name)
    }

    /// Both data paths carry real calls: io_uring (multishot recvmsg, provided buffers) and the recvmmsg fallback.
    @Test(arguments: ["io-uring", "recvmmsg"])
    func inviteAckByeCallsCompleteThroughTheEdge(dataPath: String) throws {
        let name = "edge-calls-\(dataPath)"
        let (status, log) = try runCalls(uac: ["-sn", "uac"], uas: ["-sn", "uas"], calls: 30, name: name,
                                         dataPath: dataPath)
        #expect(status == 0, "SIPp UAC failed:\n\(log)")
        let totals = try callTotals(name)
        #expect(totals.successful == 30)
        #expect(totals.failed == 0)
        #expect(log.contains("UDP workers (\(dataPath))"), "sip-edge should use the \(dataPath) path:\n\(log)")
        // 30 calls of INVITE, 180, 200, ACK, BYE, 200 (SIPp's uas sends no 100): all 180 messages went through.
        #expect(log.contains("forwarded 180,"), "\(log)")
    }

    /// SIPp's UAC over TCP (one connection, io_uring stream path), the core over UDP: responses find the
    /// connection again through the flow token in the edge's Via.
    @Test func callsOverTCPCompleteThroughTheEdge() throws {
        let (status, log) = try runCalls(uac: ["-sn", "uac", "-t", "t1"], uas: ["-sn", "uas"], calls: 30,
                                         name: "edge-calls-tcp")
        #expect(status == 0, "SIPp UAC failed:\n\(log)")
        let totals = try callTotals("edge-calls-tcp")
        #expect(totals.successful == 30)
        #expect(totals.failed == 0)
        #expect(log.contains("TCP on 127.0.0.1:"), "\(log)")
    }

    @Test func optionsRequestsAreAnsweredThroughTheEdge() throws {
        let fixtures = ProcessHarness.fixtures
        let (status, log) = try runCalls(uac: ["-sf", fixtures.appendingPathComponent("options-uac.xml").path],
                                         uas: ["-sf", fixtures.appendingPathComponent("options-uas.xml").path],
                                         calls: 30, name: "edge-options")
        #expect(status == 0, "SIPp UAC failed:\n\(log)")
        let totals = try callTotals("edge-options")
        #expect(totals.successful == 30)
        #expect(totals.failed == 0)
    }

    /// Where io_uring is refused (seccomp, as in containers), `auto` falls back to recvmmsg and still carries calls.
    @Test func refusedIOURingFallsBackToRecvmmsg() throws {
        let (status, log) = try runCalls(uac: ["-sn", "uac"], uas: ["-sn", "uas"], calls: 20, name: "edge-seccomp",
                                         dataPath: "auto", denyIOURing: true)
        #expect(status == 0, "SIPp UAC failed:\n\(log)")
        #expect(log.contains("UDP workers (recvmmsg)"), "\(log)")
        #expect(try callTotals("edge-seccomp").successful == 20)
    }

    /// Demanding io_uring where it is refused is a start-up error that says why, not a silent fallback.
    @Test func demandedIOURingThatIsRefusedFailsClearly() throws {
        let status = try ProcessHarness.run(
            ProcessHarness.denyIOURingBinary.path,
            [ProcessHarness.sipEdgeBinary.path, "--listen", "udp:127.0.0.1:\(ProcessHarness.portBase(.seccomp))",
             "--workers", "1", "--data-path", "io-uring", "--admin", "off"],
            timeout: 10, log: "edge-seccomp-demanded.log")
        let log = ProcessHarness.logContents("edge-seccomp-demanded.log")
        #expect(status == 1)
        #expect(log.contains("io_uring setup"), "\(log)")
        #expect(log.contains("Operation not permitted"), "\(log)")
    }

    /// A policy reload (SIGHUP) in the middle of a run of calls drops none of them.
    @Test func reloadingDuringCallsDropsNothing() throws {
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("reload-calls-\(getpid()).yaml")
        try "security:\n  max_via_hops: 20\n".write(to: config, atomically: true, encoding: .utf8)
        let (status, log) = try runCalls(uac: ["-sn", "uac"], uas: ["-sn", "uas"], calls: 40, name: "edge-reload",
                                         extraArguments: ["--config", config.path]) { edge in
            try? "security:\n  max_via_hops: 10\n".write(to: config, atomically: true, encoding: .utf8)
            kill(edge.processIdentifier, SIGHUP)
            usleep(300_000)
            kill(edge.processIdentifier, SIGHUP)
        }
        #expect(status == 0, "\(log)")
        let totals = try callTotals("edge-reload")
        #expect(totals.successful == 40)
        #expect(totals.failed == 0)
        #expect(log.components(separatedBy: "SIGHUP: security and rate_limit reloaded").count == 3, "\(log)")
    }
}
