import Foundation
import SIPBytes
import SIPUring
import Testing

/// SIGHUP applies a new policy to running workers, names restart-only changes, and a bad file changes nothing.
@Suite struct ReloadTests {
    @Test func sighupReloadsThePolicyWithoutRestarting() throws {
        let base = ProcessHarness.portBase(.reload)
        let core = try FakeCore()
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("reload-\(getpid()).yaml")
        func writeConfig(blocking agent: String, extra: String = "") throws {
            try """
                listen: udp:127.0.0.1:\(base)
                upstreams: [sip:\(core.address)]
                workers: 2
                admin:
                  listen: "off"
                security:
                  blocked_user_agents: [\(agent)]
                \(extra)
                """.write(to: config, atomically: true, encoding: .utf8)
        }
        try writeConfig(blocking: "evil-agent")
        let edge = try ProcessHarness.start(ProcessHarness.sipEdgeBinary.path, ["--config", config.path], log: "reload-edge.log")
        defer { ProcessHarness.stop(edge) }
        usleep(500_000)
        let client = try UDPSocket(binding: EndpointAddress.parse("127.0.0.5", port: 0)!, reusePort: false)
        let edgeAddress = EndpointAddress.parse("127.0.0.1", port: UInt16(base))!
        func sendOptions(_ callID: String) {
            OptionsTraffic.send(from: client, viaHost: "127.0.0.5", to: edgeAddress, callID: callID,
                                userAgent: "good-agent/1.0")
        }
        func forwardedCallIDs() -> [String] { core.takeCallIDs() }

        sendOptions("before-reload")
        usleep(200_000)
        #expect(forwardedCallIDs() == ["before-reload"])

        // A restart-only key changed alongside is not applied, but named by its path.
        try writeConfig(blocking: "good-agent", extra: "tcp:\n  idle_timeout_s: 60\n")
        kill(edge.processIdentifier, SIGHUP)
        usleep(600_000)  // workers apply it at their next loop turn (at most 200 ms)
        #expect(ProcessHarness.isRunning(edge))
        sendOptions("after-reload")
        usleep(200_000)
        #expect(forwardedCallIDs().isEmpty, "good-agent should now be blocked")
        let log = ProcessHarness.logContents("reload-edge.log")
        #expect(log.contains("SIGHUP: security and rate_limit reloaded"))
        #expect(log.contains("restart to apply tcp.idle_timeout_s"))

        // A broken file is refused and the running policy stays.
        try writeConfig(blocking: "nobody", extra: "rate_limit:\n  window_ms: soon\n")
        kill(edge.processIdentifier, SIGHUP)
        usleep(600_000)
        #expect(ProcessHarness.isRunning(edge))
        #expect(ProcessHarness.logContents("reload-edge.log").contains("configuration rejected, keeping the running one: rate_limit.window_ms"))
        sendOptions("after-bad-reload")
        usleep(200_000)
        #expect(forwardedCallIDs().isEmpty, "the good policy (blocking good-agent) must still apply")
    }
}
