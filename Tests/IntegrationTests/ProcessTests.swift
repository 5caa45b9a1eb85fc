import Foundation
import Testing

/// Facts about the sip-edge process itself.
@Suite struct ProcessTests {
    /// jemalloc must be the allocator: it is what the process links first, and it answers its own MALLOC_CONF.
    @Test func jemallocIsTheProcessAllocator() throws {
        let status = try ProcessHarness.run(ProcessHarness.sipEdgeBinary.path, ["config", "--defaults"], timeout: 10,
                                            log: "jemalloc-stats.log", environment: ["MALLOC_CONF": "stats_print:true"])
        #expect(status == 0)
        let log = ProcessHarness.logContents("jemalloc-stats.log")
        #expect(log.contains("___ Begin jemalloc statistics ___"), "no jemalloc statistics: \(log.prefix(300))")
        #expect(log.contains("listen: udp:127.0.0.1:5060"))
    }

    @Test func checkPrintsAVerdictAndExitStatus() throws {
        let corpus = ProcessHarness.repositoryRoot.appendingPathComponent("Tests/SIPParsingTests/Corpus/RFC4475")
        let bad = try ProcessHarness.run(ProcessHarness.sipEdgeBinary.path,
                                         ["check", corpus.appendingPathComponent("scalar02.sip").path],
                                         timeout: 10, log: "check-bad.log")
        #expect(bad == 1)
        #expect(ProcessHarness.logContents("check-bad.log").contains("\"error\":\"cseqOutOfRange\""))
        let good = try ProcessHarness.run(ProcessHarness.sipEdgeBinary.path,
                                          ["check", corpus.appendingPathComponent("esc01.sip").path],
                                          timeout: 10, log: "check-good.log")
        #expect(good == 0)
        #expect(ProcessHarness.logContents("check-good.log").contains("\"valid\":true"))
    }

    @Test func badConfigurationStopsStartUpNamingTheKey() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(getpid()).yaml")
        try "rate_limit:\n  registers_per_window: lots\n".write(to: file, atomically: true, encoding: .utf8)
        let status = try ProcessHarness.run(ProcessHarness.sipEdgeBinary.path, ["--config", file.path], timeout: 10,
                                            log: "bad-config.log")
        #expect(status == 2)
        #expect(ProcessHarness.logContents("bad-config.log").contains("rate_limit.registers_per_window"))
    }

    @Test func logsAreJSONLinesAndSIPEDGE_LOGSetsTheLevel() throws {
        let port = ProcessHarness.portBase(.logging)
        func runBriefly(_ environment: [String: String], log: String) throws -> String {
            let edge = try ProcessHarness.start(ProcessHarness.sipEdgeBinary.path,
                                                ["--listen", "udp:127.0.0.1:\(port)", "--workers", "1", "--admin", "off"],
                                                log: log, environment: environment)
            usleep(400_000)
            ProcessHarness.stop(edge)
            return ProcessHarness.logContents(log)
        }
        let info = try runBriefly([:], log: "log-info.log")
        let lines = info.split(separator: "\n")
        #expect(!lines.isEmpty)
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["level"] != nil && object?["message"] != nil && object?["ts"] != nil, "\(line)")
        }
        #expect(info.contains("\"level\":\"info\""))
        let quiet = try runBriefly(["SIPEDGE_LOG": "warning"], log: "log-warning.log")
        #expect(!quiet.contains("\"level\":\"info\""), "\(quiet)")
    }

    /// A worker that meets a fatal condition takes the whole process down, loudly, never leaving it running deaf:
    /// a failure of its loop is logged as critical and ends the process with status 1; a trap on its thread kills
    /// the process by a signal with the Swift runtime's message on stderr. Either way systemd's Restart=on-failure
    /// starts it again (the unit test checks the unit says so). SIPEDGE_TEST_FAULT makes worker 0 meet one when its
    /// first message arrives.
    @Test(arguments: ["worker-failure", "worker-trap"])
    func aFatalConditionInAWorkerEndsTheProcessLoudly(fault: String) throws {
        let port = ProcessHarness.portBase(.faults) + (fault == "worker-trap" ? 2 : 0)
        let log = "fault-\(fault).log"
        let edge = try ProcessHarness.start(ProcessHarness.sipEdgeBinary.path,
                                            ["--listen", "udp:127.0.0.1:\(port)", "--workers", "1", "--admin", "off"],
                                            log: log, environment: ["SIPEDGE_TEST_FAULT": fault])
        defer { ProcessHarness.stop(edge) }
        usleep(600_000)
        #expect(ProcessHarness.isRunning(edge), "serving until the fault: \(ProcessHarness.logContents(log))")
        // One OPTIONS (SIPp gets no answer; only the datagram matters).
        _ = try ProcessHarness.runOptions(to: port, from: port + 1, count: 1, rate: 10, timeoutSeconds: 2,
                                          log: "fault-\(fault)-sipp.log")
        let deadline = Date().addingTimeInterval(10)
        while ProcessHarness.isRunning(edge), Date() < deadline { usleep(50_000) }
        #expect(!ProcessHarness.isRunning(edge), "the process must not outlive its worker")
        let output = ProcessHarness.logContents(log)
        if fault == "worker-failure" {
            #expect(edge.terminationReason == .exit && edge.terminationStatus == 1, "\(output)")
            #expect(output.contains("\"level\":\"critical\"") && output.contains("injected failure"), "\(output)")
        } else {
            #expect(edge.terminationReason == .uncaughtSignal, "\(output)")
            #expect(output.contains("Fatal error") && output.contains("injected trap"), "\(output)")
        }
    }
}
