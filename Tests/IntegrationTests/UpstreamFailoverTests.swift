import Foundation
import SIPBytes
import SIPUring
import Testing

/// SIPp UAC -> sip-edge -> two SIPp UAS, one stopped and restarted by PID while the edge runs: health checks take
/// a dead upstream out of rotation, calls started after the detection window all succeed on the other one, and
/// the upstream's share comes back with it. The same with a backup (priority) group.
@Suite(.serialized) struct UpstreamFailoverTests {
    /// Probes every 200 ms: down after 3 unanswered (0.6 s, sooner through ICMP), up after 2 answered (0.4 s).
    static let health = "upstream_health:\n  interval_ms: 200\n  fall: 3\n  rise: 2\n"
    static let detectionWindow: useconds_t = 1_500_000

    /// One SIPp UAS answering calls and the edge's OPTIONS (-aa), logging the messages it receives. `scenario`:
    /// SIPp's built-in `uas`, or other arguments (`-sf FILE`, `-d MS`).
    struct Callee {
        let process: Process
        let messages: URL

        init(port: Int, name: String, scenario: [String] = ["-sn", "uas"]) throws {
            let sipp = try #require(ProcessHarness.which("sipp"), "sipp (Debian sip-tester) must be installed")
            messages = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-messages.log")
            try? FileManager.default.removeItem(at: messages)
            process = try ProcessHarness.start(
                sipp, scenario + ["-aa", "-i", "127.0.0.1", "-p", "\(port)", "-nostdin",
                                  "-trace_msg", "-message_file", messages.path], log: "\(name).log")
        }

        /// Every message received so far, retransmissions included.
        var received: [SIPText] { SIPText.receivedBySIPp(trace: messages) }

        /// INVITEs received so far (SIPp writes each message to the trace as it handles it).
        var invites: Int {
            let text = (try? String(contentsOf: messages, encoding: .utf8)) ?? ""
            return text.components(separatedBy: "\nINVITE sip:").count - 1
        }

        func stop() { ProcessHarness.stop(process) }
    }

    struct Rig {
        let base = ProcessHarness.portBase(.failover)
        var edgePort: Int { base }
        var portA: Int { base + 1 }
        var portB: Int { base + 2 }
        var uacPort: Int { base + 3 }
        var adminPort: Int { base + 4 }
        var dnsPort: Int { base + 5 }

        /// Starts sip-edge with `upstreams` (YAML list items), fast health checks and `extra` YAML.
        func startEdge(upstreams: String, name: String, extra: String = "") throws -> Process {
            let config = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(getpid()).yaml")
            try """
                listen: udp:127.0.0.1:\(edgePort)
                workers: 2
                upstreams:
                \(upstreams)
                admin:
                  listen: 127.0.0.1:\(adminPort)
                \(UpstreamFailoverTests.health)
                \(extra)
                """.write(to: config, atomically: true, encoding: .utf8)
            let edge = try ProcessHarness.start(ProcessHarness.sipEdgeBinary.path, ["--config", config.path],
                                                log: "\(name)-edge.log")
            usleep(800_000)
            #expect(ProcessHarness.isRunning(edge), "sip-edge exited: \(ProcessHarness.logContents("\(name)-edge.log"))")
            return edge
        }

        /// Runs `calls` SIPp calls through the edge (at most 30 s); returns (successful, failed).
        @discardableResult
        func calls(_ calls: Int, name: String, during: (() -> Void)? = nil) throws -> (successful: Int, failed: Int) {
            let sipp = try #require(ProcessHarness.which("sipp"))
            let uac = try ProcessHarness.start(
                sipp, ["-sn", "uac", "127.0.0.1:\(edgePort)", "-i", "127.0.0.1", "-p", "\(uacPort)", "-m", "\(calls)",
                       "-r", "40", "-timeout", "20s", "-timeout_error", "-nostdin", "-trace_stat", "-stf",
                       FileManager.default.temporaryDirectory.appendingPathComponent("\(name).csv").path],
                log: "\(name)-uac.log")
            if let during {
                usleep(700_000)
                during()
            }
            let deadline = Date().addingTimeInterval(30)
            while ProcessHarness.isRunning(uac) && Date() < deadline { usleep(50_000) }
            ProcessHarness.stop(uac)
            return try ProcessHarness.sippCallTotals(name)
        }

        func get(_ path: String, name: String) throws -> String {
            try ProcessHarness.httpGet("http://127.0.0.1:\(adminPort)\(path)", log: "\(name)-curl.log", headers: true)
        }
    }

    @Test func aStoppedUpstreamLeavesRotationAndItsShareComesBackWhenItReturns() throws {
        let rig = Rig()
        let name = "failover-pair"
        let a = try Callee(port: rig.portA, name: "\(name)-a")
        defer { a.stop() }
        var b = try Callee(port: rig.portB, name: "\(name)-b")
        defer { b.stop() }
        let edge = try rig.startEdge(upstreams: "  - sip:127.0.0.1:\(rig.portA)\n  - sip:127.0.0.1:\(rig.portB)",
                                     name: name)
        defer { ProcessHarness.stop(edge) }
        let edgeLog = { ProcessHarness.logContents("\(name)-edge.log") }

        // Both up: Call-ID hashing spreads the calls over both.
        let warm = try rig.calls(40, name: "\(name)-warm")
        #expect(warm == (40, 0), "\(edgeLog())")
        #expect(a.invites >= 8 && b.invites >= 8, "a \(a.invites), b \(b.invites)")

        // B stops mid-run: only calls in flight to it, or started before the edge noticed, may fail.
        let during = try rig.calls(60, name: "\(name)-during") { b.stop() }
        #expect(during.successful >= 30, "\(during)")
        usleep(UpstreamFailoverTests.detectionWindow)
        #expect(edgeLog().contains("upstream 127.0.0.1:\(rig.portB) is down"), "\(edgeLog())")
        #expect(try rig.get("/metrics", name: name).contains("sip_upstream_up{upstream=\"127.0.0.1:\(rig.portB)\"} 0"))
        #expect(try rig.get("/health/ready", name: name).hasPrefix("HTTP/1.1 200"), "A is still up")

        // Calls started after the detection window: none fails, all on A.
        let aBefore = a.invites
        let after = try rig.calls(40, name: "\(name)-after")
        #expect(after == (40, 0), "\(edgeLog())")
        #expect(a.invites - aBefore == 40)

        // B returns: after `rise` answered probes its share comes back.
        b = try Callee(port: rig.portB, name: "\(name)-b2")
        usleep(UpstreamFailoverTests.detectionWindow)
        #expect(edgeLog().contains("upstream 127.0.0.1:\(rig.portB) is up"), "\(edgeLog())")
        let aBack = a.invites
        let back = try rig.calls(40, name: "\(name)-back")
        #expect(back == (40, 0), "\(edgeLog())")
        #expect(b.invites >= 8, "b \(b.invites) of 40 after its return")
        #expect(b.invites + (a.invites - aBack) == 40)
        let metrics = try rig.get("/metrics", name: name)
        #expect(metrics.contains("sip_upstream_state_changes_total{upstream=\"127.0.0.1:\(rig.portB)\",state=\"down\"} 1"),
                "\(metrics)")
        #expect(metrics.contains("sip_upstream_state_changes_total{upstream=\"127.0.0.1:\(rig.portB)\",state=\"up\"} 1"))
    }

    @Test func aBackupGroupTakesOverOnlyWhileThePrimaryIsDownAndNoneUpMeans503AndNotReady() throws {
        let rig = Rig()
        let name = "failover-backup"
        var primary = try Callee(port: rig.portA, name: "\(name)-primary")
        defer { primary.stop() }
        let backup = try Callee(port: rig.portB, name: "\(name)-backup")
        defer { backup.stop() }
        let edge = try rig.startEdge(
            upstreams: "  - sip:127.0.0.1:\(rig.portA)\n  - {uri: sip:127.0.0.1:\(rig.portB), priority: 1}", name: name)
        defer { ProcessHarness.stop(edge) }
        let edgeLog = { ProcessHarness.logContents("\(name)-edge.log") }

        #expect(try rig.calls(30, name: "\(name)-primary-up") == (30, 0), "\(edgeLog())")
        #expect(primary.invites == 30)
        #expect(backup.invites == 0)

        primary.stop()
        usleep(UpstreamFailoverTests.detectionWindow)
        #expect(try rig.calls(30, name: "\(name)-primary-down") == (30, 0), "\(edgeLog())")
        #expect(backup.invites == 30)

        primary = try Callee(port: rig.portA, name: "\(name)-primary2")
        usleep(UpstreamFailoverTests.detectionWindow)
        #expect(try rig.calls(30, name: "\(name)-primary-back") == (30, 0), "\(edgeLog())")
        #expect(primary.invites == 30)
        #expect(backup.invites == 30, "the backup gets nothing once the primary is back")

        // Nobody left: a request is answered 503 with Retry-After at once, and the edge is not ready.
        primary.stop()
        backup.stop()
        usleep(UpstreamFailoverTests.detectionWindow)
        let answer = try Self.optionsAnswer(edgePort: rig.edgePort)
        #expect(answer.hasPrefix("SIP/2.0 503 Service Unavailable"), "\(answer)")
        #expect(answer.contains("\r\nRetry-After: 5\r\n"), "\(answer)")
        let ready = try rig.get("/health/ready", name: name)
        #expect(ready.hasPrefix("HTTP/1.1 503"), "\(ready)")
        let metrics = try rig.get("/metrics", name: name)
        #expect(metrics.contains("sip_upstream_up{upstream=\"127.0.0.1:\(rig.portA)\"} 0"))
        #expect(metrics.contains("sip_upstream_up{upstream=\"127.0.0.1:\(rig.portB)\"} 0"))
    }

    /// The core named by DNS: SRV `_sip._udp.core.test` names a.core.test and b.core.test on the two callees'
    /// ports; their A records live in a hosts file the test rewrites while the edge runs (dnsmasq re-reads it).
    @Test func aCoreNamedBySRVFollowsItsRecordsWhileTheEdgeRuns() throws {
        let rig = Rig()
        let name = "failover-dns"
        let hosts = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-hosts-\(getpid())")
        try? FileManager.default.removeItem(at: hosts)
        try FileManager.default.createDirectory(at: hosts, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(at: hosts) }
        let hostsFile = hosts.appendingPathComponent("hosts")
        // Rewritten in place: dnsmasq follows the file by inotify.
        let setHosts = { (text: String) in try Data(text.utf8).write(to: hostsFile) }
        try setHosts("127.0.0.1 a.core.test\n")
        let dnsmasq = try ProcessHarness.startDnsmasq(
            port: rig.dnsPort,
            records: ["--local-ttl=1", "--hostsdir=\(hosts.path)",
                      "--srv-host=_sip._udp.core.test,a.core.test,\(rig.portA),0,10",
                      "--srv-host=_sip._udp.core.test,b.core.test,\(rig.portB),0,10"],
            probe: "a.core.test", log: "\(name)-dnsmasq.log")
        defer { ProcessHarness.stop(dnsmasq) }
        let a = try Callee(port: rig.portA, name: "\(name)-a")
        defer { a.stop() }
        let b = try Callee(port: rig.portB, name: "\(name)-b")
        defer { b.stop() }
        let edge = try rig.startEdge(
            upstreams: "  - sip:core.test", name: name,
            extra: "upstream_dns:\n  servers: [127.0.0.1:\(rig.dnsPort)]\n  min_ttl_s: 1\n  drain_s: 60\n")
        defer { ProcessHarness.stop(edge) }
        let edgeLog = { ProcessHarness.logContents("\(name)-edge.log") }

        // Only a.core.test has an address: every call goes to A.
        #expect(try rig.calls(20, name: "\(name)-a-only") == (20, 0), "\(edgeLog())")
        #expect(a.invites == 20)
        #expect(b.invites == 0)

        // b.core.test appears: within its TTL (1 s) plus a probe, B takes its share.
        try setHosts("127.0.0.1 a.core.test\n127.0.0.1 b.core.test\n")
        usleep(2_500_000)
        #expect(try rig.calls(40, name: "\(name)-both") == (40, 0), "\(edgeLog())")
        #expect(b.invites >= 8, "b \(b.invites) of 40")
        #expect(try rig.get("/metrics", name: name).contains("sip_upstream_up{upstream=\"127.0.0.1:\(rig.portB)\"} 1"))

        // b.core.test goes: B drains (no new calls), it is not cut off mid-dialog, and A takes everything again.
        try setHosts("127.0.0.1 a.core.test\n")
        usleep(2_500_000)
        let bBefore = b.invites
        #expect(try rig.calls(40, name: "\(name)-b-gone") == (40, 0), "\(edgeLog())")
        #expect(b.invites == bBefore)
        #expect(edgeLog().contains("b.core.test"), "the resolver logs the change: \(edgeLog())")
    }

    /// A name that never resolves: the edge starts, says so, is not ready, and stops with an error after
    /// `upstream_dns.give_up_s`.
    @Test func anUpstreamNameThatNeverResolvesStopsTheEdgeAfterTheGiveUpTime() throws {
        let rig = Rig()
        let name = "failover-unresolvable"
        let dnsmasq = try ProcessHarness.startDnsmasq(port: rig.dnsPort, records: ["--host-record=other.test,127.0.0.1"],
                                                      probe: "other.test", log: "\(name)-dnsmasq.log")
        defer { ProcessHarness.stop(dnsmasq) }
        let edge = try rig.startEdge(
            upstreams: "  - sip:missing.test:5060", name: name,
            extra: "upstream_dns:\n  servers: [127.0.0.1:\(rig.dnsPort)]\n  min_ttl_s: 1\n  give_up_s: 3\n")
        defer { ProcessHarness.stop(edge) }
        let ready = try rig.get("/health/ready", name: name)
        #expect(ready.hasPrefix("HTTP/1.1 503"), "\(ready)")
        let deadline = Date().addingTimeInterval(8)
        while ProcessHarness.isRunning(edge) && Date() < deadline { usleep(100_000) }
        let log = ProcessHarness.logContents("\(name)-edge.log")
        #expect(!ProcessHarness.isRunning(edge), "\(log)")
        #expect(ProcessHarness.exitStatus(edge) == 1, "\(log)")
        #expect(log.contains("not resolvable yet, retrying: sip:missing.test:5060"), "\(log)")
        #expect(log.contains("no upstream has resolved for 3 s"), "\(log)")
    }

    /// Sends one OPTIONS to the edge from a test socket and returns the answer's text (at most 2 s).
    static func optionsAnswer(edgePort: Int) throws -> String {
        let client = try UDPSocket(binding: EndpointAddress.parse("127.0.0.1", port: 0)!, reusePort: false)
        let edge = EndpointAddress.parse("127.0.0.1", port: UInt16(edgePort))!
        OptionsTraffic.send(from: client, viaHost: "127.0.0.1", to: edge, callID: "nobody-up-\(getpid())")
        let batch = DatagramBatch(capacity: 4, bufferSize: 4_096)
        let deadline = Date().addingTimeInterval(2)
        while Date() < deadline {
            if batch.receive(from: client) > 0 {
                return batch.withDatagram(0) { bytes, _ in bytes.string(bytes.all) }
            }
            usleep(20_000)
        }
        return "no answer"
    }
}
