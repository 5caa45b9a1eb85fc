import Foundation
import Testing

/// SIPp UAC -> sip-edge -> SIPp UAS over UDP on 127.0.0.1, all three real processes started here.
@Suite(.serialized) struct SIPpThroughEdgeTests {
    /// Starts a UAS and sip-edge, runs the UAC scenario, stops everything; returns the UAC's exit status and logs.
    func runCalls(uac: [String], uas: [String], calls: Int, name: String,
                  dataPath: String = "auto") throws -> (Int32, String) {
        let sipp = try #require(ProcessHarness.which("sipp"), "sipp (Debian sip-tester) must be installed")
        let base = ProcessHarness.portBase(0)
        let (edgePort, uasPort, uacPort) = (base, base + 1, base + 2)
        let server = try ProcessHarness.start(sipp, uas + ["-i", "127.0.0.1", "-p", "\(uasPort)", "-nostdin"],
                                              log: "\(name)-uas.log")
        defer { ProcessHarness.stop(server) }
        let edge = try ProcessHarness.start(
            ProcessHarness.sipEdgeBinary.path,
            ["--listen", "udp:127.0.0.1:\(edgePort)", "--upstream", "sip:127.0.0.1:\(uasPort)", "--workers", "2",
             "--data-path", dataPath],
            log: "\(name)-edge.log")
        defer { ProcessHarness.stop(edge) }
        usleep(500_000)
        #expect(edge.isRunning, "sip-edge exited: \(ProcessHarness.logContents("\(name)-edge.log"))")
        let status = try ProcessHarness.run(
            sipp,
            uac + ["127.0.0.1:\(edgePort)", "-i", "127.0.0.1", "-p", "\(uacPort)", "-m", "\(calls)", "-r", "20",
                   "-timeout", "20s", "-timeout_error", "-nostdin", "-trace_stat", "-stf",
                   FileManager.default.temporaryDirectory.appendingPathComponent("\(name).csv").path],
            timeout: 30, log: "\(name)-uac.log")
        ProcessHarness.stop(edge)
        return (status, ProcessHarness.logContents("\(name)-uac.log") + ProcessHarness.logContents("\(name)-edge.log"))
    }

    /// The "Successful call" and "Failed call" totals from SIPp's statistics file (last line, cumulative).
    func callTotals(_ name: String) throws -> (successful: Int, failed: Int) {
        let csv = try String(contentsOf: FileManager.default.temporaryDirectory.appendingPathComponent("\(name).csv"),
                             encoding: .utf8)
        let lines = csv.split(separator: "\n")
        let header = lines[0].split(separator: ";", omittingEmptySubsequences: false)
        let last = lines[lines.count - 1].split(separator: ";", omittingEmptySubsequences: false)
        let successful = Int(last[header.firstIndex(of: "SuccessfulCall(C)")!])!
        let failed = Int(last[header.firstIndex(of: "FailedCall(C)")!])!
        return (successful, failed)
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
}
