import Foundation
import SIPBytes
import SIPTestSupport
import Testing

/// Transaction mode (issue #14) with real peers: SIPp UAC -> sip-edge `proxy.mode: transaction` -> SIPp UAS and
/// black holes (UDP sockets of the test that read and never answer). An upstream that stays silent or answers 503
/// is replaced by the next one without the client noticing; client retransmissions stop at the edge; when every
/// upstream is silent the client gets 408 after `transactions.max_attempts` tries.
///
/// The callee (uas-record-route.xml) Record-Routes itself, as Kamailio does: after a failover the Call-ID may
/// still hash to the upstream that failed, and only its Route keeps the client's ACK and BYE on the core that
/// has the dialog (2xx ACK and in-dialog requests are forwarded statelessly).
@Suite(.serialized) struct TransactionModeTests {
    static let failoverTimeoutMilliseconds = 500

    struct Rig {
        let base = ProcessHarness.portBase(.transactions)
        var edgePort: Int { base }
        var tlsPort: Int { base + 1 }
        var uasPort: Int { base + 2 }
        var uas503Port: Int { base + 3 }
        var uacPort: Int { base + 4 }
        var adminPort: Int { base + 5 }
        var bridgePort: Int { base + 6 }

        /// Starts sip-edge in transaction mode with `upstreams` (host:port), probes every 10 s (so within a test
        /// only failed attempts can take an upstream down, after `fall` of them), failover after 500 ms.
        func startEdge(upstreams: [String], name: String, fall: Int = 3, maxAttempts: Int = 3,
                       certificates: TestCertificates? = nil) throws -> Process {
            let config = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(getpid()).yaml")
            let tls = certificates.map {
                "tls:\n  listen: tls:127.0.0.1:\(tlsPort)\n  certificate: \($0.serverCertificate)\n"
                    + "  private_key: \($0.serverKey)\n"
            } ?? ""
            try """
                listen: udp:127.0.0.1:\(edgePort)
                workers: 2
                proxy:
                  mode: transaction
                upstreams:
                \(upstreams.map { "  - sip:\($0)" }.joined(separator: "\n"))
                admin:
                  listen: 127.0.0.1:\(adminPort)
                upstream_health:
                  interval_ms: 10000
                  fall: \(fall)
                transactions:
                  failover_timeout_ms: \(TransactionModeTests.failoverTimeoutMilliseconds)
                  max_attempts: \(maxAttempts)
                \(tls)
                """.write(to: config, atomically: true, encoding: .utf8)
            let edge = try ProcessHarness.start(ProcessHarness.sipEdgeBinary.path, ["--config", config.path],
                                                log: "\(name)-edge.log")
            usleep(800_000)
            #expect(ProcessHarness.isRunning(edge), "sip-edge exited: \(ProcessHarness.logContents("\(name)-edge.log"))")
            return edge
        }

        /// Runs `calls` calls of `scenario` (a fixture) at `rate` per second from a SIPp UAC to `target` (the edge's
        /// port unless given) over `transport` (u1, t1), each message awaited at most 8 s, the whole run at most
        /// 40 s; returns the UAC's (successful, failed) totals.
        func calls(_ calls: Int, scenario: String, name: String, rate: Int = 10, transport: String = "u1",
                   target: Int? = nil) throws -> (successful: Int, failed: Int) {
            let sipp = try #require(ProcessHarness.which("sipp"), "sipp (Debian sip-tester) must be installed")
            let csv = FileManager.default.temporaryDirectory.appendingPathComponent("\(name).csv")
            try? FileManager.default.removeItem(at: csv)
            let status = try ProcessHarness.run(
                sipp, ["127.0.0.1:\(target ?? edgePort)", "-sf", ProcessHarness.fixtures.appendingPathComponent(scenario).path,
                       "-i", "127.0.0.1", "-p", "\(uacPort)", "-t", transport, "-m", "\(calls)", "-r", "\(rate)",
                       "-recv_timeout", "8000", "-timeout", "35s", "-timeout_error", "-nostdin",
                       "-trace_stat", "-stf", csv.path, "-trace_err", "-error_file",
                       FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-uac-errors.log").path],
                timeout: 40, log: "\(name)-uac.log")
            #expect(status == 0, "SIPp UAC exit status \(status): \(uacErrors(name))")
            return try ProcessHarness.sippCallTotals(name)
        }

        /// The UAC's error log (unexpected messages, timeouts), for failure messages.
        func uacErrors(_ name: String) -> String {
            String(ProcessHarness.logContents("\(name)-uac-errors.log").prefix(4_000))
        }

        /// /metrics, after the workers' next publication (every 100 ms).
        func metrics(name: String) throws -> String {
            usleep(400_000)
            return try ProcessHarness.httpGet("http://127.0.0.1:\(adminPort)/metrics", log: "\(name)-metrics.log")
        }
    }

    /// The value of `series` in `metrics`, -1 when absent (so an equality with a count fails visibly).
    static func value(_ series: String, in metrics: String) -> Int {
        ProcessHarness.metricValue(series, in: metrics).map { Int($0) } ?? -1
    }

    /// The lines of `metrics` about transactions, for failure messages.
    static func transactionLines(_ metrics: String) -> String {
        metrics.split(separator: "\n").filter {
            $0.hasPrefix("sip_transaction") || $0.hasPrefix("sip_failovers") || $0.hasPrefix("sip_retransmissions")
                || $0.hasPrefix("sip_upstream_up")
        }.joined(separator: "\n")
    }

    static func requests(_ method: String, in messages: [SIPText]) -> [SIPText] {
        messages.filter { $0.method == method }
    }

    // MARK: - Silent upstream

    /// A black hole next to a real core, clients over UDP, TCP and TLS: every call completes, each INVITE the
    /// black hole swallowed was tried again on the core (one timeout failover per swallowed INVITE transaction),
    /// the core saw each INVITE once, and the failed attempts alone (probes come every 10 s) took the black hole
    /// out of rotation.
    @Test(arguments: ["udp", "tcp", "tls"])
    func callsToASilentUpstreamFailOverToTheNextAndAllComplete(transport: String) throws {
        let rig = Rig()
        let name = "txtests-blackhole-\(transport)"
        let calls = 30
        let blackHole = try FakeCore(answersProbes: false)
        defer { blackHole.stop() }
        let blackHoleAddress = "127.0.0.1:\(blackHole.address.port)"
        let uas = try UpstreamFailoverTests.Callee(
            port: rig.uasPort, name: "\(name)-uas",
            scenario: ["-sf", ProcessHarness.fixtures.appendingPathComponent("uas-record-route.xml").path])
        defer { uas.stop() }

        try withCertificates { certificates in
            let edge = try rig.startEdge(upstreams: ["127.0.0.1:\(rig.uasPort)", blackHoleAddress], name: name,
                                         certificates: transport == "tls" ? certificates : nil)
            defer { ProcessHarness.stop(edge) }
            var bridge: Process?
            defer { bridge.map(ProcessHarness.stop) }
            if transport == "tls" {
                bridge = try ProcessHarness.startTLSBridge(listenPort: rig.bridgePort, tlsPort: rig.tlsPort,
                                                           certificates: certificates, log: "\(name)-socat.log")
                usleep(200_000)
            }
            let edgeLog = { String(ProcessHarness.logContents("\(name)-edge.log").suffix(4_000)) }

            let totals = try rig.calls(calls, scenario: "uac-record-route.xml", name: name,
                                       transport: transport == "udp" ? "u1" : "t1",
                                       target: transport == "tls" ? rig.bridgePort : nil)
            let metrics = try rig.metrics(name: name)
            let context = "\(rig.uacErrors(name))\n\(Self.transactionLines(metrics))\n\(edgeLog())"
            #expect(totals == (calls, 0), "\(context)")

            // What the black hole got: INVITE transactions (a branch each; the edge's own retransmissions repeat a
            // branch) and nothing of the dialogs, which live on the core.
            let swallowed = Self.requests("INVITE", in: blackHole.peek().map(SIPText.init))
            let swallowedBranches = Set(swallowed.compactMap(\.topBranch))
            let swallowedCalls = Set(swallowed.compactMap(\.callID))
            // About half of the Call-IDs hash to the black hole while it is up: none of 30 is a 1 in 2^30 chance.
            #expect(!swallowedCalls.isEmpty, "no INVITE reached the black hole: the failover went untested")
            let dialogRequests = blackHole.peek().map(SIPText.init).filter { ["ACK", "BYE"].contains($0.method ?? "") }
            #expect(dialogRequests.isEmpty, "ACK/BYE reached the black hole: \(dialogRequests.map(\.text))")

            // The core: every call, each INVITE exactly once, including every one the black hole swallowed.
            let coreInvites = Self.requests("INVITE", in: uas.received).compactMap(\.callID)
            #expect(Set(coreInvites).count == calls, "\(Set(coreInvites).count) calls reached the core")
            #expect(coreInvites.count == calls, "the core got \(coreInvites.count) INVITEs for \(calls) calls")
            #expect(swallowedCalls.isSubset(of: Set(coreInvites)),
                    "swallowed and never retried: \(swallowedCalls.subtracting(coreInvites))")

            #expect(Self.value("sip_failovers_total{reason=\"timeout\"}", in: metrics) == swallowedBranches.count,
                    "\(swallowedBranches.count) INVITE transactions swallowed (\(swallowed.count) datagrams)\n\(context)")
            #expect(Self.value("sip_failovers_total{reason=\"status_503\"}", in: metrics) == 0, "\(context)")
            #expect(Self.value("sip_failovers_total{reason=\"transport\"}", in: metrics) == 0, "\(context)")
            // A failed attempt counts as a failed probe: `fall` (3) of them take the black hole down long before
            // its probes (every 10 s, unanswered) could.
            if swallowedBranches.count >= 3 {
                #expect(Self.value("sip_upstream_up{upstream=\"\(blackHoleAddress)\"}", in: metrics) == 0,
                        "\(swallowedBranches.count) failed attempts, \(blackHole.probes) probes\n\(context)")
                #expect(Self.value("sip_upstream_up{upstream=\"127.0.0.1:\(rig.uasPort)\"}", in: metrics) == 1)
            }
        }
    }

    // MARK: - 503

    /// An upstream that answers every INVITE 503 next to a real core: every call completes on the core, the 503
    /// never reaches the client (uac-record-route.xml fails a call on it), one status_503 failover per refused
    /// INVITE transaction, and the edge ACKs each 503 (its client transaction's duty, RFC 3261 §17.1.1.3).
    @Test func callsRefusedWith503FailOverToTheNextUpstream() throws {
        let rig = Rig()
        let name = "txtests-503"
        let calls = 20
        let uas = try UpstreamFailoverTests.Callee(
            port: rig.uasPort, name: "\(name)-uas",
            scenario: ["-sf", ProcessHarness.fixtures.appendingPathComponent("uas-record-route.xml").path])
        defer { uas.stop() }
        let refuser = try UpstreamFailoverTests.Callee(
            port: rig.uas503Port, name: "\(name)-refuser",
            scenario: ["-sf", ProcessHarness.fixtures.appendingPathComponent("uas-503.xml").path])
        defer { refuser.stop() }
        // fall 100: whether or not a 503 counts against its health, the refuser stays in rotation all along, so
        // every call that hashes to it is refused and must fail over.
        let edge = try rig.startEdge(upstreams: ["127.0.0.1:\(rig.uasPort)", "127.0.0.1:\(rig.uas503Port)"],
                                     name: name, fall: 100)
        defer { ProcessHarness.stop(edge) }

        let totals = try rig.calls(calls, scenario: "uac-record-route.xml", name: name)
        usleep(300_000)  // the last ACKs
        let metrics = try rig.metrics(name: name)
        let context = "\(rig.uacErrors(name))\n\(Self.transactionLines(metrics))\n"
            + String(ProcessHarness.logContents("\(name)-edge.log").suffix(4_000))
        #expect(totals == (calls, 0), "\(context)")

        let refusedInvites = Self.requests("INVITE", in: refuser.received)
        let refusedCalls = Set(refusedInvites.compactMap(\.callID))
        #expect(!refusedCalls.isEmpty, "no INVITE reached the 503 upstream: the failover went untested")
        let coreInvites = Self.requests("INVITE", in: uas.received).compactMap(\.callID)
        #expect(Set(coreInvites).count == calls)
        #expect(coreInvites.count == calls, "the core got \(coreInvites.count) INVITEs for \(calls) calls")
        #expect(refusedCalls.isSubset(of: Set(coreInvites)),
                "refused and never retried: \(refusedCalls.subtracting(coreInvites))")

        let refusedBranches = Set(refusedInvites.compactMap(\.topBranch))
        #expect(Self.value("sip_failovers_total{reason=\"status_503\"}", in: metrics) == refusedBranches.count,
                "\(refusedBranches.count) INVITE transactions refused\n\(context)")
        #expect(Self.value("sip_failovers_total{reason=\"timeout\"}", in: metrics) == 0, "\(context)")
        let acked = Set(Self.requests("ACK", in: refuser.received).compactMap(\.callID))
        #expect(acked == refusedCalls, "503s never ACKed by the edge: \(refusedCalls.subtracting(acked))")
    }

    // MARK: - Retransmissions

    /// A client that loses every 100 Trying keeps retransmitting its INVITE until the 180, which the core sends
    /// 2 s after its 100: the edge absorbs each retransmission, so the core sees each INVITE once.
    @Test func clientRetransmissionsAreAbsorbedAndTheCoreSeesEachInviteOnce() throws {
        let rig = Rig()
        let name = "txtests-retransmissions"
        let calls = 10
        let uas = try UpstreamFailoverTests.Callee(
            port: rig.uasPort, name: "\(name)-uas",
            scenario: ["-sf", ProcessHarness.fixtures.appendingPathComponent("uas-record-route.xml").path,
                       "-d", "2000"])
        defer { uas.stop() }
        let edge = try rig.startEdge(upstreams: ["127.0.0.1:\(rig.uasPort)"], name: name)
        defer { ProcessHarness.stop(edge) }

        let totals = try rig.calls(calls, scenario: "uac-lossy-100.xml", name: name, rate: 5)
        let metrics = try rig.metrics(name: name)
        let context = "\(rig.uacErrors(name))\n\(Self.transactionLines(metrics))\n"
            + String(ProcessHarness.logContents("\(name)-edge.log").suffix(4_000))
        #expect(totals == (calls, 0), "\(context)")

        // SIPp retransmits at 0.5 s and 1.5 s before the 180 at 2 s: without them this test proves nothing.
        let retransmitted = try ProcessHarness.sippStatistic(name, "Retransmissions(C)")
        try #require(retransmitted >= calls, "the UAC retransmitted \(retransmitted) times in \(calls) calls")

        let coreInvites = Self.requests("INVITE", in: uas.received).compactMap(\.callID)
        let repeated = Dictionary(grouping: coreInvites) { $0 }.filter { $0.value.count > 1 }
        #expect(Set(coreInvites).count == calls)
        let counts = "the core got \(coreInvites.count) INVITEs for \(calls) calls, \(repeated.count) calls more than "
            + "once (the UAC retransmitted \(retransmitted) times)"
        #expect(repeated.isEmpty, "\(counts)\n\(context)")
        let absorbed = Self.value("sip_retransmissions_absorbed_total", in: metrics)
        #expect(absorbed >= retransmitted, "absorbed \(absorbed), UAC retransmissions \(retransmitted)\n\(context)")
        #expect(Self.value("sip_failovers_total{reason=\"timeout\"}", in: metrics) == 0,
                "the core sent 100 at once: no failover\n\(context)")
    }

    // MARK: - CANCEL

    /// Callers that cancel while it rings, with a black hole next to the core (kept up: fall 100): the CANCEL
    /// follows the INVITE's branch in use, on the core, even for calls whose Call-ID hashes to the black hole
    /// (stateless forwarding would send it there). The edge answers the CANCEL 200 itself, relays the core's 487,
    /// ACKs it toward the core and keeps the caller's ACK.
    @Test func aCancelFollowsTheInviteToTheUpstreamThatAnswered() throws {
        let rig = Rig()
        let name = "txtests-cancel"
        let calls = 20
        let blackHole = try FakeCore(answersProbes: false)
        defer { blackHole.stop() }
        let uas = try UpstreamFailoverTests.Callee(
            port: rig.uasPort, name: "\(name)-uas",
            scenario: ["-sf", ProcessHarness.fixtures.appendingPathComponent("uas-cancel.xml").path])
        defer { uas.stop() }
        let edge = try rig.startEdge(upstreams: ["127.0.0.1:\(rig.uasPort)", "127.0.0.1:\(blackHole.address.port)"],
                                     name: name, fall: 100)
        defer { ProcessHarness.stop(edge) }

        let totals = try rig.calls(calls, scenario: "uac-cancel.xml", name: name)
        usleep(300_000)
        let metrics = try rig.metrics(name: name)
        let context = "\(rig.uacErrors(name))\n\(Self.transactionLines(metrics))\n"
            + String(ProcessHarness.logContents("\(name)-edge.log").suffix(4_000))
        #expect(totals == (calls, 0), "\(context)")

        let swallowed = Set(Self.requests("INVITE", in: blackHole.peek().map(SIPText.init)).compactMap(\.callID))
        #expect(!swallowed.isEmpty, "no INVITE reached the black hole: the branch in use was always the first")
        let strays = blackHole.peek().map(SIPText.init).filter { $0.method != "INVITE" }
        #expect(strays.isEmpty, "\(strays.count) CANCEL/ACK reached the black hole: \(strays.prefix(3).map(\.text))")
        let received = uas.received
        let cancelled = Self.requests("CANCEL", in: received).compactMap(\.callID)
        #expect(Set(cancelled).count == calls, "\(Set(cancelled).count) CANCELs reached the core for \(calls) calls")
        #expect(swallowed.isSubset(of: Set(cancelled)), "\(swallowed.subtracting(cancelled))")
        // One ACK per 487, the edge's own: the caller's ACK for the 487 it got stays at the edge.
        let acks = Self.requests("ACK", in: received).compactMap(\.callID)
        #expect(Set(acks).count == calls, "\(Set(acks).count) 487s ACKed")
        #expect(acks.count == calls, "\(acks.count) ACKs for \(calls) 487s")
    }

    // MARK: - Nobody answers

    /// Three black holes, max_attempts 2: each call is tried on exactly two of them (a branch each, never the
    /// same one twice), then the client gets 408; the ACK for the 408 stays at the edge.
    ///
    /// The 408 is expected once the last attempt has been silent for failover_timeout_ms (here within the UAC's
    /// 8 s receive timeout), not at that attempt's Timer B (64·T1, 32 s): a 408 at 32 s reaches a UDP client just
    /// as its own Timer B gives up, so it would tell it nothing.
    @Test func whenNoUpstreamAnswersTheClientGets408AfterMaxAttempts() throws {
        let rig = Rig()
        let name = "txtests-408"
        let calls = 5
        let maxAttempts = 2
        let blackHoles = try (0..<3).map { _ in try FakeCore(answersProbes: false) }
        defer { blackHoles.forEach { $0.stop() } }
        // fall 100: every black hole stays up all along (10 failed attempts in all), so every call is tried twice.
        let edge = try rig.startEdge(upstreams: blackHoles.map { "127.0.0.1:\($0.address.port)" }, name: name,
                                     fall: 100, maxAttempts: maxAttempts)
        defer { ProcessHarness.stop(edge) }

        let totals = try rig.calls(calls, scenario: "uac-expect-408.xml", name: name, rate: 5)
        usleep(300_000)
        let metrics = try rig.metrics(name: name)
        let context = "\(rig.uacErrors(name))\n\(Self.transactionLines(metrics))\n"
            + String(ProcessHarness.logContents("\(name)-edge.log").suffix(4_000))
        #expect(totals == (calls, 0), "\(context)")

        // Per call: which black holes got it, and on how many INVITE transactions.
        var attempts: [String: [(hole: Int, branch: String)]] = [:]
        for (index, hole) in blackHoles.enumerated() {
            for invite in Self.requests("INVITE", in: hole.peek().map(SIPText.init)) {
                guard let callID = invite.callID, let branch = invite.topBranch else { continue }
                if !(attempts[callID] ?? []).contains(where: { $0.branch == branch && $0.hole == index }) {
                    attempts[callID, default: []].append((hole: index, branch: branch))
                }
            }
        }
        #expect(attempts.count == calls, "\(attempts.count) calls reached the black holes")
        for (callID, tries) in attempts {
            #expect(tries.count == maxAttempts, "\(callID): \(tries.count) INVITE transactions \(tries)")
            #expect(Set(tries.map(\.hole)).count == tries.count, "\(callID): an upstream tried twice \(tries)")
            #expect(Set(tries.map(\.branch)).count == tries.count, "\(callID): a branch reused \(tries)")
        }
        let acks = blackHoles.flatMap { Self.requests("ACK", in: $0.peek().map(SIPText.init)) }
        #expect(acks.isEmpty, "the ACK for the 408 went upstream: \(acks.map(\.text))")
        #expect(Self.value("sip_failovers_total{reason=\"timeout\"}", in: metrics) == calls * (maxAttempts - 1),
                "one failover per call between its two tries\n\(context)")
        #expect(Self.value("sip_transaction_timeouts_total", in: metrics) >= calls, "\(context)")
    }
}
