import Foundation
import SIPBytes
import SIPTestSupport
import SIPUring
import Testing

/// sip-edge in front of a real Kamailio registrar (Fixtures/kamailio-registrar.cfg: usrloc in memory, registrar with
/// use_path, record_route, t_relay): a SIPp callee registers through the edge over UDP, TCP or TLS, a SIPp caller
/// calls it through the edge, and Kamailio sends the call back through the edge down the registered flow.
@Suite(.serialized) struct KamailioFrontingTests {
    struct Ports {
        let base = ProcessHarness.portBase(.kamailio)
        var edge: Int { base }
        var edgeTLS: Int { base + 1 }
        var kamailio: Int { base + 2 }
        var callee: Int { base + 3 }
        var caller: Int { base + 4 }
        var tlsBridge: Int { base + 5 }
        var coreTLS: Int { base + 6 }
        var admin: Int { base + 7 }
    }

    let ports = Ports()
    static let callID = "alice-%u@sipedge.test"

    func fixture(_ name: String) -> String { ProcessHarness.fixtures.appendingPathComponent(name).path }

    /// Kamailio on UDP and TCP, and with `tls` also on TLS (tls module, the test CA's certificate for localhost).
    func startKamailio(log: String, certificates: TestCertificates, tls: Bool = false) throws -> Process {
        try ProcessHarness.startKamailioRegistrar(port: ports.kamailio, tls: tls ? (ports.coreTLS, certificates) : nil,
                                                  log: log)
    }

    /// Two workers, so flows live on different workers and Kamailio must reach each one at its own port.
    func startEdge(certificates: TestCertificates, upstreamTransport: String, log: String) throws -> Process {
        let upstreamPort = upstreamTransport == "tls" ? ports.coreTLS : ports.kamailio
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("kamailio-edge-\(getpid()).yaml")
        try """
            listen: udp:127.0.0.1:\(ports.edge)
            upstreams: [sip:127.0.0.1:\(upstreamPort)]
            upstream_transport: \(upstreamTransport)
            upstream_tls:
              ca: \(certificates.caCertificate)
              server_name: localhost
            workers: 2
            admin:
              listen: "off"
            tls:
              listen: tls:127.0.0.1:\(ports.edgeTLS)
              certificate: \(certificates.serverCertificate)
              private_key: \(certificates.serverKey)
            flow:
              key: kamailio-fronting-test-flow-key
            """.write(to: config, atomically: true, encoding: .utf8)
        return try ProcessHarness.start(ProcessHarness.sipEdgeBinary.path, ["--config", config.path], log: log)
    }

    /// Registers alice through the edge over `transport`, then runs `caller` against the edge over UDP.
    /// Returns the exit statuses of callee and caller and every log.
    func registerAndCall(transport: String, caller: String, calleeStaysUp: Bool = true, upstreamTransport: String = "udp")
        throws -> (callee: Int32, caller: Int32, logs: String)
    {
        let sipp = try #require(ProcessHarness.which("sipp"), "sipp (Debian sip-tester) must be installed")
        let certificates = try TestCertificates.make()
        defer { try? FileManager.default.removeItem(atPath: certificates.directory) }
        let name = "kamailio-\(transport)-\(upstreamTransport)"
        let kamailio = try startKamailio(log: "\(name)-kamailio.log", certificates: certificates,
                                         tls: upstreamTransport == "tls")
        defer { ProcessHarness.stop(kamailio) }
        let edge = try startEdge(certificates: certificates, upstreamTransport: upstreamTransport,
                                 log: "\(name)-edge.log")
        defer { ProcessHarness.stop(edge) }
        usleep(700_000)
        #expect(ProcessHarness.isRunning(kamailio), "kamailio exited: \(ProcessHarness.logContents("\(name)-kamailio.log"))")
        #expect(ProcessHarness.isRunning(edge), "sip-edge exited: \(ProcessHarness.logContents("\(name)-edge.log"))")

        var bridge: Process?
        defer { bridge.map(ProcessHarness.stop) }

        let target: Int
        switch transport {
        case "tls":
            bridge = try ProcessHarness.startTLSBridge(listenPort: ports.tlsBridge, tlsPort: ports.edgeTLS,
                                                        certificates: certificates, log: "\(name)-socat.log")
            usleep(200_000)
            target = ports.tlsBridge
        default:
            target = ports.edge
        }
        var calleeArguments = [
            "127.0.0.1:\(target)", "-sf", fixture("register-then-answer.xml"), "-i", "127.0.0.1",
            "-p", "\(ports.callee)", "-t", transport == "udp" ? "u1" : "t1", "-m", "1", "-timeout", "20s",
            "-timeout_error", "-cid_str", Self.callID, "-nostdin",
        ]
        if !calleeStaysUp { calleeArguments += ["-set", "register_only", "yes"] }
        let callee = try ProcessHarness.start(sipp, calleeArguments, log: "\(name)-callee.log")
        defer { ProcessHarness.stop(callee) }
        // Registered (Kamailio logs the REGISTER with the Path it stores) before the call starts.
        let deadline = Date().addingTimeInterval(10)
        while !ProcessHarness.logContents("\(name)-kamailio.log").contains("path <"), Date() < deadline { usleep(50_000) }
        if !calleeStaysUp {
            while ProcessHarness.isRunning(callee), Date() < deadline { usleep(50_000) }
            usleep(300_000)  // the edge sees the connection close
        }
        let callerStatus = try ProcessHarness.run(sipp, [
            "127.0.0.1:\(ports.edge)", "-sf", fixture(caller), "-i", "127.0.0.1", "-p", "\(ports.caller)",
            "-t", "u1", "-m", "1", "-timeout", "15s", "-timeout_error", "-cid_str", Self.callID, "-nostdin",
        ], timeout: 25, log: "\(name)-caller.log")
        let calleeDeadline = Date().addingTimeInterval(10)
        while ProcessHarness.isRunning(callee), Date() < calleeDeadline { usleep(50_000) }
        let calleeStatus: Int32 = ProcessHarness.isRunning(callee) ? -1 : ProcessHarness.exitStatus(callee)
        let logs = ["callee", "caller", "edge", "kamailio", "socat"].map {
            "--- \($0):\n" + ProcessHarness.logContents("\(name)-\($0).log")
        }.joined(separator: "\n")
        return (calleeStatus, callerStatus, logs)
    }

    @Test(arguments: ["udp", "tcp", "tls"])
    func aUserRegisteredThroughTheEdgeIsCalledDownItsFlow(transport: String) throws {
        let result = try registerAndCall(transport: transport, caller: "call-registered.xml")
        #expect(result.callee == 0, "callee (registered over \(transport)) failed:\n\(result.logs)")
        #expect(result.caller == 0, "caller failed:\n\(result.logs)")
        let kamailio = result.logs.components(separatedBy: "--- kamailio:").last ?? ""
        // Kamailio stored the edge's Path (a flow token on this edge's worker port) and routed the call into it.
        #expect(kamailio.contains("path <<sip:127.0.0.1:"), "\(kamailio)")
        #expect(kamailio.contains(";lr;ft="), "\(kamailio)")
        #expect(kamailio.contains("Route: <sip:127.0.0.1:"), "the INVITE should carry the Path as Route:\n\(kamailio)")
    }

    /// The core over TCP (or TLS): each worker keeps pooled connections to Kamailio, whose requests for the edge's Path and
    /// Record-Route come back over those same connections (RFC 5923 alias), never a connection it dials.
    @Test(arguments: [("udp", "tcp"), ("tcp", "tcp"), ("tcp", "tls")])
    func theCoreIsReachedOverPooledStreamConnections(transport: String, upstreamTransport: String) throws {
        let result = try registerAndCall(transport: transport, caller: "call-registered.xml",
                                         upstreamTransport: upstreamTransport)
        #expect(result.callee == 0, "callee (registered over \(transport)) failed:\n\(result.logs)")
        #expect(result.caller == 0, "caller failed:\n\(result.logs)")
        let kamailio = result.logs.components(separatedBy: "--- kamailio:").last ?? ""
        #expect(kamailio.contains("from \(upstreamTransport):127.0.0.1:"), "requests should reach Kamailio over \(upstreamTransport):\n\(kamailio)")
        #expect(kamailio.contains(";transport=\(upstreamTransport);lr;ft="), "the Path names the edge:\n\(kamailio)")
        // The call for alice left Kamailio over TCP toward the edge's worker (its Path), not toward alice.
        let sendInvite = kamailio.split(separator: "\n").first { $0.contains("SEND INVITE sip:alice@") } ?? ""
        #expect(sendInvite.contains(" to \(upstreamTransport):127.0.0.1:") && !sendInvite.hasSuffix(":\(ports.callee)"),
                "\(sendInvite)")
    }

    /// One worker reaching the core at `upstreamPort` over pooled `transport` connections, with fast redials and
    /// the admin server on (readiness, metrics); `extra` is more top-level YAML.
    func startPoolEdge(upstreamPort: Int, transport: String, reconnectMinMilliseconds: Int, extra: String = "",
                       name: String) throws -> Process {
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(getpid()).yaml")
        try """
            listen: udp:127.0.0.1:\(ports.edge)
            upstreams: [sip:127.0.0.1:\(upstreamPort)]
            upstream_transport: \(transport)
            upstream_pool:
              reconnect_min_ms: \(reconnectMinMilliseconds)
              reconnect_max_ms: 400
            workers: 1
            admin:
              listen: 127.0.0.1:\(ports.admin)
            \(extra)
            """.write(to: config, atomically: true, encoding: .utf8)
        return try ProcessHarness.start(ProcessHarness.sipEdgeBinary.path, ["--config", config.path],
                                        log: "\(name)-edge.log")
    }

    /// The pool redials a core that was down (503 with Retry-After meanwhile), and again after it restarts.
    @Test func thePoolRedialsACoreThatComesAndGoes() throws {
        let certificates = try TestCertificates.make()
        defer { try? FileManager.default.removeItem(atPath: certificates.directory) }
        let edge = try startPoolEdge(upstreamPort: ports.kamailio, transport: "tcp", reconnectMinMilliseconds: 100,
                                     name: "kamailio-pool")
        func readiness() throws -> String {
            try ProcessHarness.httpGet("http://127.0.0.1:\(ports.admin)/health/ready", log: "kamailio-pool-ready.log")
        }
        defer { ProcessHarness.stop(edge) }
        let client = try UDPSocket(binding: EndpointAddress.parse("127.0.0.1", port: UInt16(ports.caller))!,
                                   reusePort: false)
        let batch = DatagramBatch(capacity: 8, bufferSize: 4_096)
        var sequence = 0
        /// Sends OPTIONS for Kamailio itself through the edge; the status line of the answer, if one came.
        func ping() -> String? {
            sequence += 1
            let request = [
                "OPTIONS sip:127.0.0.1:\(ports.kamailio) SIP/2.0",
                "Via: SIP/2.0/UDP 127.0.0.1:\(ports.caller);branch=z9hG4bK-pool-\(sequence)-\(getpid());rport",
                "Max-Forwards: 70", "From: <sip:probe@127.0.0.1>;tag=p\(sequence)", "To: <sip:127.0.0.1>",
                "Call-ID: pool-\(sequence)-\(getpid())", "CSeq: 1 OPTIONS", "Content-Length: 0", "", "",
            ].joined(separator: "\r\n")
            _ = client.send(Array(request.utf8), to: EndpointAddress.parse("127.0.0.1", port: UInt16(ports.edge))!)
            let deadline = Date().addingTimeInterval(1)
            while Date() < deadline {
                if batch.receive(from: client) > 0 {
                    var line: String?
                    batch.withDatagram(0) { bytes, _ in line = bytes.string(bytes.all).components(separatedBy: "\r\n").first }
                    return line
                }
                usleep(20_000)
            }
            return nil
        }
        func pingUntil(_ prefix: String, seconds: TimeInterval) -> String? {
            let deadline = Date().addingTimeInterval(seconds)
            var last: String?
            while Date() < deadline {
                last = ping()
                if last?.hasPrefix(prefix) == true { break }
                usleep(100_000)
            }
            return last
        }
        usleep(500_000)
        // No core yet: refused at once with 503, not left to time out.
        #expect(pingUntil("SIP/2.0 503", seconds: 2)?.hasPrefix("SIP/2.0 503 Service Unavailable") == true)
        // Readiness: the probes go over the pool, and there is no connection to send them on.
        #expect(try readiness() == "not ready: workers up, no upstream up and answering OPTIONS\n")
        var kamailio = try startKamailio(log: "kamailio-pool-kamailio.log", certificates: certificates)
        // The core came up: within the backoff the pool is connected, and after `rise` answered probes over it
        // Kamailio is back in rotation and answers.
        #expect(pingUntil("SIP/2.0 200", seconds: 5) == "SIP/2.0 200 OK",
                "\(ProcessHarness.logContents("kamailio-pool-edge.log"))")
        usleep(300_000)
        #expect(try readiness() == "ready\n")
        ProcessHarness.stop(kamailio)
        #expect(pingUntil("SIP/2.0 503", seconds: 3)?.hasPrefix("SIP/2.0 503") == true, "core gone: 503 again")
        kamailio = try startKamailio(log: "kamailio-pool-kamailio2.log", certificates: certificates)
        defer { ProcessHarness.stop(kamailio) }
        #expect(pingUntil("SIP/2.0 200", seconds: 5) == "SIP/2.0 200 OK", "redialled after a restart")
    }

    /// A core whose certificate does not verify is never used: no request is written into an unverified link,
    /// clients get 503, readiness says so, and the pool keeps redialling with a growing backoff.
    @Test func aCoreWhoseCertificateDoesNotVerifyIsNeverUsed() throws {
        let certificates = try TestCertificates.make()
        defer { try? FileManager.default.removeItem(atPath: certificates.directory) }
        let kamailio = try startKamailio(log: "kamailio-badca-kamailio.log", certificates: certificates, tls: true)
        defer { ProcessHarness.stop(kamailio) }
        let edge = try startPoolEdge(upstreamPort: ports.coreTLS, transport: "tls", reconnectMinMilliseconds: 50,
                                     extra: "upstream_tls:\n  ca: \(certificates.otherCA)\n  server_name: localhost",
                                     name: "kamailio-badca")
        defer { ProcessHarness.stop(edge) }
        usleep(1_500_000)
        let metrics = try ProcessHarness.httpGet("http://127.0.0.1:\(ports.admin)/metrics",
                                                 log: "kamailio-badca-metrics.log")
        #expect(metrics.contains("sip_upstream_up{upstream=\"127.0.0.1:\(ports.coreTLS)\"} 0"), "\(metrics)")
        // Every event is exported, zero or not: none connected, some handshakes failed.
        #expect(metrics.contains("sip_connection_events_total{event=\"upstream_connected\"} 0\n"), "\(metrics)")
        let failures = metrics.split(separator: "\n").filter { $0.hasPrefix("sip_connection_events_total{event=\"tls_handshake_failed\"}")
            || $0.hasPrefix("sip_connection_events_total{event=\"tls_error\"}") }
            .compactMap { Int($0.split(separator: " ").last!) }.reduce(0, +)
        #expect(failures > 0, "handshake failures are counted:\n\(metrics)")
        #expect(!ProcessHarness.logContents("kamailio-badca-kamailio.log").contains("IN OPTIONS"))
    }

    /// RFC 5626 §5.3: the callee registered over TCP and hung up; the call for it gets 430 Flow Failed.
    @Test func aCallToAFlowThatIsGoneGets430() throws {
        let result = try registerAndCall(transport: "tcp", caller: "call-flow-failed.xml", calleeStaysUp: false)
        #expect(result.callee == 0, "callee failed to register:\n\(result.logs)")
        #expect(result.caller == 0, "the caller should see 430 Flow Failed:\n\(result.logs)")
    }
}
