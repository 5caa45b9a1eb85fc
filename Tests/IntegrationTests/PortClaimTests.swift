import Foundation
import SIPBytes
import SIPTestSupport
import SIPUring
import Testing

/// Start-up refuses addresses it cannot have: a port another process holds (which SO_REUSEPORT would otherwise
/// share, splitting the traffic between two processes), an address that is not local, a taken admin address.
/// Each is exit status 2 with the listener named on stderr, never a process running on without it.
@Suite(.serialized) struct PortClaimTests {
    let base = ProcessHarness.portBase(.portClaim)
    var edgePort: Int { base }
    var tlsPort: Int { base + 1 }
    var adminPort: Int { base + 2 }
    /// UDP (and TCP) port of an edge whose TLS port is the one in question.
    var spareEdgePort: Int { base + 3 }

    /// Runs sip-edge to completion (10 s at most); returns its status, its output and how long it took.
    func runEdge(_ arguments: [String], log: String) throws -> (status: Int32, output: String, seconds: Double) {
        let started = Date()
        let status = try ProcessHarness.run(ProcessHarness.sipEdgeBinary.path, arguments, timeout: 10, log: log)
        return (status, ProcessHarness.logContents(log), Date().timeIntervalSince(started))
    }

    /// Waits (bounded) until `process` has logged its start-up line; false if it exited or never did.
    func waitUntilServing(_ process: Process, log: String, timeout: TimeInterval = 5) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if !ProcessHarness.isRunning(process) { return false }
            if ProcessHarness.logContents(log).contains("UDP workers") { return true }
            usleep(50_000)
        }
        return false
    }

    /// Sends OPTIONS from `client` to the edge and returns the Call-IDs the core received within two seconds.
    func forwarded(from client: UDPSocket, to core: FakeCore, count: Int) -> Set<String> {
        let edge = EndpointAddress.parse("127.0.0.1", port: UInt16(edgePort))!
        for number in 0..<count {
            OptionsTraffic.send(from: client, viaHost: "127.0.0.7", to: edge, callID: "claim-\(number)-\(getpid())")
        }
        var ids: Set<String> = []
        let deadline = Date().addingTimeInterval(2)
        while ids.count < count && Date() < deadline {
            usleep(20_000)
            ids.formUnion(core.takeCallIDs())
        }
        return ids
    }

    /// The issue: a second sip-edge with the same --listen used to start silently and take part of the traffic.
    @Test func secondEdgeOnTheSameListenAddressExitsTwoAndTheFirstKeepsServing() throws {
        let core = try FakeCore()
        let arguments = ["--listen", "udp:127.0.0.1:\(edgePort)", "--upstream", "sip:\(core.address)",
                         "--workers", "2", "--admin", "off"]
        let first = try ProcessHarness.start(ProcessHarness.sipEdgeBinary.path, arguments, log: "claim-first.log")
        defer { ProcessHarness.stop(first) }
        #expect(waitUntilServing(first, log: "claim-first.log"), "\(ProcessHarness.logContents("claim-first.log"))")

        let second = try runEdge(arguments, log: "claim-second.log")
        #expect(second.status == 2, "\(second.output)")
        #expect(second.seconds < 5)
        #expect(second.output.contains("udp 127.0.0.1:\(edgePort) is in use by another process"), "\(second.output)")
        #expect(second.output.contains("\"level\":\"error\""), "\(second.output)")

        #expect(ProcessHarness.isRunning(first))
        let client = try UDPSocket(binding: EndpointAddress.parse("127.0.0.7", port: 0)!, reusePort: false)
        #expect(forwarded(from: client, to: core, count: 5).count == 5)

        // Once the first has stopped, the same address is free again: no lock or probe is left behind.
        ProcessHarness.stop(first)
        let third = try ProcessHarness.start(ProcessHarness.sipEdgeBinary.path, arguments, log: "claim-third.log")
        defer { ProcessHarness.stop(third) }
        #expect(waitUntilServing(third, log: "claim-third.log"), "\(ProcessHarness.logContents("claim-third.log"))")
    }

    /// Two started at the same moment: the start-up lock lets exactly one of them have the port.
    @Test func twoEdgesStartedTogetherLeaveExactlyOneRunning() throws {
        let arguments = ["--listen", "udp:127.0.0.1:\(edgePort)", "--workers", "2", "--admin", "off"]
        let one = try ProcessHarness.start(ProcessHarness.sipEdgeBinary.path, arguments, log: "claim-race-1.log")
        defer { ProcessHarness.stop(one) }
        let two = try ProcessHarness.start(ProcessHarness.sipEdgeBinary.path, arguments, log: "claim-race-2.log")
        defer { ProcessHarness.stop(two) }
        let deadline = Date().addingTimeInterval(8)
        while ProcessHarness.isRunning(one) && ProcessHarness.isRunning(two) && Date() < deadline { usleep(50_000) }
        usleep(500_000)  // the survivor must stay up
        let logs = ProcessHarness.logContents("claim-race-1.log") + ProcessHarness.logContents("claim-race-2.log")
        #expect([one, two].filter { ProcessHarness.isRunning($0) }.count == 1, "\(logs)")
        let loser = ProcessHarness.isRunning(one) ? two : one
        if !ProcessHarness.isRunning(loser) {
            #expect(ProcessHarness.exitStatus(loser) == 2, "\(logs)")
        }
        #expect(logs.contains("udp 127.0.0.1:\(edgePort) is in use by another process"), "\(logs)")
    }

    /// The TCP listener on the UDP address and the TLS listener are claimed too. The holders bind with
    /// SO_REUSEPORT, as a sip-edge worker does, so without the check sip-edge would have bound beside them.
    @Test func tcpAndTLSListenersHeldElsewhereExitTwo() throws {
        let tcpHolder = try StreamListener(binding: EndpointAddress.parse("127.0.0.1", port: UInt16(edgePort))!)
        try withExtendedLifetime(tcpHolder) {
            let tcp = try runEdge(["--listen", "udp:127.0.0.1:\(edgePort)", "--workers", "1", "--admin", "off"],
                                  log: "claim-tcp.log")
            #expect(tcp.status == 2, "\(tcp.output)")
            #expect(tcp.output.contains("tcp 127.0.0.1:\(edgePort) is in use by another process"), "\(tcp.output)")
        }

        let tlsHolder = try StreamListener(binding: EndpointAddress.parse("127.0.0.1", port: UInt16(tlsPort))!)
        try withExtendedLifetime(tlsHolder) {
            try withCertificates { certificates in
                let config = FileManager.default.temporaryDirectory.appendingPathComponent("claim-tls-\(getpid()).yaml")
                try """
                    listen: udp:127.0.0.1:\(spareEdgePort)
                    workers: 1
                    admin:
                      listen: "off"
                    tls:
                      listen: tls:127.0.0.1:\(tlsPort)
                      certificate: \(certificates.serverCertificate)
                      private_key: \(certificates.serverKey)
                    """.write(to: config, atomically: true, encoding: .utf8)
                let tls = try runEdge(["--config", config.path], log: "claim-tls.log")
                #expect(tls.status == 2, "\(tls.output)")
                #expect(tls.output.contains("tls 127.0.0.1:\(tlsPort) is in use by another process"), "\(tls.output)")
            }
        }
    }

    @Test func takenAdminAddressExitsTwoNamingIt() throws {
        let holder = try TCPListener(binding: EndpointAddress.parse("127.0.0.1", port: UInt16(adminPort))!)
        try withExtendedLifetime(holder) {
            let result = try runEdge(["--listen", "udp:127.0.0.1:\(edgePort)", "--workers", "1",
                                      "--admin", "127.0.0.1:\(adminPort)"], log: "claim-admin.log")
            #expect(result.status == 2, "\(result.output)")
            #expect(result.output.contains("admin 127.0.0.1:\(adminPort) is in use by another process"),
                    "\(result.output)")
        }
    }

    /// 192.0.2.1 (TEST-NET-1) is no address of this machine: bind fails with EADDRNOTAVAIL, nothing is sent.
    @Test func addressesThatAreNotLocalExitTwo() throws {
        let listen = try runEdge(["--listen", "udp:192.0.2.1:\(edgePort)", "--workers", "1", "--admin", "off"],
                                 log: "claim-nonlocal.log")
        #expect(listen.status == 2, "\(listen.output)")
        #expect(listen.output.contains("udp 192.0.2.1:\(edgePort) cannot be bound"), "\(listen.output)")
        #expect(listen.output.contains("errno \(EADDRNOTAVAIL)"), "\(listen.output)")

        let admin = try runEdge(["--listen", "udp:127.0.0.1:\(edgePort)", "--workers", "1",
                                 "--admin", "192.0.2.1:\(adminPort)"], log: "claim-nonlocal-admin.log")
        #expect(admin.status == 2, "\(admin.output)")
        #expect(admin.output.contains("admin 192.0.2.1:\(adminPort) cannot be bound"), "\(admin.output)")
    }
}
