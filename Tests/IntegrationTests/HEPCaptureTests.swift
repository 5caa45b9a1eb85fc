import Foundation
import SIPBytes
import SIPTestSupport
import SIPUring
import Testing

/// HEP v3 capture through the real binary, decoded by independent tools: sngrep (Debian's; Debian 12's tshark has
/// no HEP dissector) turns the captured HEP datagrams back into SIP packets with the addresses, ports and times
/// the chunks carry, and tshark reads those. Checked against the traffic SIPp (UDP) and a TCP client exchanged.
@Suite(.serialized) struct HEPCaptureTests {
    /// One decoded capture: what sngrep rebuilt from the chunks and tshark read from it.
    struct Decoded: Hashable {
        var seconds: Double
        var source: String
        var destination: String
        var callID: String
        var method: String
        var status: String
    }

    @Test func everyMessageIsCapturedWithTheAddressesPortsAndTimesOfItsExchange() throws {
        let sngrep = try #require(ProcessHarness.which("sngrep"), "sngrep must be installed (scripts/install-deps.sh)")
        let tshark = try #require(ProcessHarness.which("tshark"), "tshark must be installed (scripts/install-deps.sh)")
        let base = ProcessHarness.portBase(.capture)
        let (edgePort, corePort, adminPort, collectorPort, uacPort) = (base, base + 1, base + 2, base + 3, base + 5)
        let collector = try UDPSocket(binding: EndpointAddress.parse("127.0.0.1", port: UInt16(collectorPort))!,
                                      reusePort: false)
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("hep-\(getpid()).yaml")
        try """
            listen: udp:127.0.0.1:\(edgePort)
            upstreams: [sip:127.0.0.1:\(corePort)]
            workers: 1
            admin:
              listen: 127.0.0.1:\(adminPort)
            capture:
              hep: udp:127.0.0.1:\(collectorPort)
              node_id: 4242
              password: hep-secret
            upstream_health:
              interval_ms: 60000
            """.write(to: config, atomically: true, encoding: .utf8)
        let started = Date().timeIntervalSince1970
        let core = try ProcessHarness.startOptionsCore(port: corePort, log: "hep-core.log")
        defer { ProcessHarness.stop(core) }
        let edge = try ProcessHarness.start(ProcessHarness.sipEdgeBinary.path, ["--config", config.path],
                                            log: "hep-edge.log")
        defer { ProcessHarness.stop(edge) }
        usleep(700_000)

        // UDP: three OPTIONS from SIPp through the edge to the SIPp core.
        let status = try ProcessHarness.runOptions(to: edgePort, from: uacPort, count: 3, rate: 10, timeoutSeconds: 15,
                                                log: "hep-uac.log")
        #expect(status == 0)
        // TCP: one OPTIONS answered by the core, one refused by the edge (Max-Forwards 0: 483).
        let client = try #require(TestStreamClient(port: edgePort))
        let clientPort = client.localPort
        func options(_ callID: String, maxForwards: Int) -> String {
            "OPTIONS sip:core@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:\(clientPort);branch=z9hG4bK\(callID)\r\n"
                + "Max-Forwards: \(maxForwards)\r\nFrom: <sip:hep@127.0.0.1>;tag=1\r\nTo: <sip:core@127.0.0.1>\r\n"
                + "Call-ID: \(callID)\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        }
        client.send(options("hep-tcp-ok", maxForwards: 70))
        #expect(client.receive(timeout: 3) { $0.contains("SIP/2.0 200") }.contains("Call-ID: hep-tcp-ok"))
        client.send(options("hep-tcp-refused", maxForwards: 0))
        #expect(client.receive(timeout: 3) { $0.contains("SIP/2.0 483") }.contains("SIP/2.0 483"))
        let finished = Date().timeIntervalSince1970

        let datagrams = collect(from: collector, quietFor: 1.5)
        let metrics = try ProcessHarness.httpGet("http://127.0.0.1:\(adminPort)/metrics", log: "hep-metrics.log")
        #expect(ProcessHarness.metricValue("sip_capture_sent_total", in: metrics) == Double(datagrams.count))
        #expect(ProcessHarness.metricValue("sip_capture_dropped_total", in: metrics) == 0)

        let decoded = try decode(datagrams, sngrep: sngrep, tshark: tshark)
        let edgeAddress = "127.0.0.1:\(edgePort)"
        let coreAddress = "127.0.0.1:\(corePort)"
        for entry in decoded {
            #expect(entry.seconds >= started - 1 && entry.seconds <= finished + 1, "capture time \(entry.seconds)")
        }
        // Each SIPp call: request in, request out to the core, response in from the core, response out.
        let callIDs = Set(decoded.map(\.callID)).filter { $0.hasSuffix("@127.0.0.1") && !$0.hasPrefix("sip-edge-probe") }
        #expect(callIDs.count == 3, "\(callIDs)")
        for callID in callIDs {
            let legs = decoded.filter { $0.callID == callID }
            #expect(legs.contains { $0.source == "127.0.0.1:\(uacPort)" && $0.destination == edgeAddress && $0.method == "OPTIONS" && $0.status.isEmpty })
            #expect(legs.contains { $0.destination == coreAddress && $0.status.isEmpty })
            #expect(legs.contains { $0.source == coreAddress && $0.status == "200" })
            #expect(legs.contains { $0.source == edgeAddress && $0.destination == "127.0.0.1:\(uacPort)" && $0.status == "200" })
        }
        // The TCP client's exchange, with its own port.
        let tcp = decoded.filter { $0.callID == "hep-tcp-ok" }
        #expect(tcp.contains { $0.source == "127.0.0.1:\(clientPort)" && $0.destination == edgeAddress && $0.status.isEmpty })
        #expect(tcp.contains { $0.source == edgeAddress && $0.destination == "127.0.0.1:\(clientPort)" && $0.status == "200" })
        #expect(tcp.contains { $0.destination == coreAddress })
        let refused = decoded.filter { $0.callID == "hep-tcp-refused" }
        #expect(refused.contains { $0.status.isEmpty } && refused.contains { $0.status == "483" })
        #expect(!refused.contains { $0.destination == coreAddress }, "a refused request never reaches the core")
        // The health probes are captured too.
        #expect(decoded.contains { $0.callID.hasPrefix("sip-edge-probe") && $0.destination == coreAddress })

        // The chunks sngrep does not show: capture id, auth key, correlation id, and the refused tag.
        for datagram in datagrams {
            let chunks = try #require(hepChunks(datagram), "not HEP v3")
            let byType = Dictionary(chunks, uniquingKeysWith: { first, _ in first })
            #expect(byType[0x000C] == [0, 0, 0x10, 0x92], "capture agent id 4242")
            #expect(byType[0x000E] == Array("hep-secret".utf8))
            #expect(byType[0x000B] == [1], "protocol type SIP")
            let payload = String(decoding: byType[0x000F] ?? [], as: UTF8.self)
            let correlation = String(decoding: byType[0x0011] ?? [], as: UTF8.self)
            #expect(payload.contains("Call-ID: \(correlation)\r\n"), "correlation id = Call-ID")
            let node = String(decoding: byType[0x0013] ?? [], as: UTF8.self)
            let isRefusedRequest = payload.hasPrefix("OPTIONS") && correlation == "hep-tcp-refused"
            #expect(node == (isRefusedRequest ? "sip-edge-refused" : "sip-edge"), "\(correlation): \(node)")
        }
    }

    /// A collector that is gone (TCP, nothing listening) costs captures, counted, never calls.
    @Test func aCollectorThatIsGoneCostsCapturesNeverCalls() throws {
        let base = ProcessHarness.portBase(.capture)
        let (edgePort, corePort, adminPort, deadCollector, uacPort) = (base, base + 1, base + 2, base + 4, base + 5)
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("hep-gone-\(getpid()).yaml")
        try """
            listen: udp:127.0.0.1:\(edgePort)
            upstreams: [sip:127.0.0.1:\(corePort)]
            workers: 1
            admin:
              listen: 127.0.0.1:\(adminPort)
            capture:
              hep: tcp:127.0.0.1:\(deadCollector)
              queue_kb: 16
            """.write(to: config, atomically: true, encoding: .utf8)
        let core = try ProcessHarness.startOptionsCore(port: corePort, log: "hep-gone-core.log")
        defer { ProcessHarness.stop(core) }
        let edge = try ProcessHarness.start(ProcessHarness.sipEdgeBinary.path, ["--config", config.path],
                                            log: "hep-gone-edge.log")
        defer { ProcessHarness.stop(edge) }
        usleep(700_000)
        let status = try ProcessHarness.runOptions(to: edgePort, from: uacPort, count: 200, rate: 200, timeoutSeconds: 20,
                                                log: "hep-gone-uac.log")
        #expect(status == 0, "every OPTIONS answered with the collector gone")
        usleep(300_000)
        let metrics = try ProcessHarness.httpGet("http://127.0.0.1:\(adminPort)/metrics", log: "hep-gone-metrics.log")
        let dropped = try #require(ProcessHarness.metricValue("sip_capture_dropped_total", in: metrics))
        // 800 messages of ~500 bytes each into a 16 KiB queue with nowhere to go.
        #expect(dropped >= 600, "\(dropped) dropped")
        #expect(ProcessHarness.metricValue("sip_capture_sent_total", in: metrics) == 0)
        #expect(ProcessHarness.isRunning(edge))
    }

    /// Every datagram until none came for `quietFor` seconds (at most 20 s in all).
    func collect(from socket: UDPSocket, quietFor: TimeInterval) -> [[UInt8]] {
        var datagrams: [[UInt8]] = []
        let batch = DatagramBatch(capacity: 32, bufferSize: 65_536)
        var lastSeen = Date()
        let deadline = Date().addingTimeInterval(20)
        while Date().timeIntervalSince(lastSeen) < quietFor, Date() < deadline {
            let count = batch.receive(from: socket)
            if count == 0 {
                usleep(20_000)
                continue
            }
            lastSeen = Date()
            for index in 0..<count {
                batch.withDatagram(index) { bytes, _ in datagrams.append(bytes.copyBytes(bytes.all)) }
            }
        }
        return datagrams
    }

    /// HEP datagrams -> a pcap of them (Ethernet/IPv4/UDP to port 9060) -> sngrep -E (decodes HEP into the SIP
    /// packets it describes) -> tshark fields.
    func decode(_ datagrams: [[UInt8]], sngrep: String, tshark: String) throws -> [Decoded] {
        let directory = FileManager.default.temporaryDirectory
        let hepPcap = directory.appendingPathComponent("hep-\(getpid()).pcap")
        let sipPcap = directory.appendingPathComponent("hep-sip-\(getpid()).pcap")
        try? FileManager.default.removeItem(at: sipPcap)
        try Data(Self.pcap(datagrams)).write(to: hepPcap)
        let decoded = try ProcessHarness.run(sngrep, ["-I", hepPcap.path, "-E", "-N", "-q", "-O", sipPcap.path],
                                             timeout: 30, log: "hep-sngrep.log")
        #expect(decoded == 0, "\(ProcessHarness.logContents("hep-sngrep.log"))")
        let status = try ProcessHarness.run(tshark, ["-r", sipPcap.path, "-T", "fields", "-E", "separator=|",
                                                     "-e", "frame.time_epoch", "-e", "ip.src", "-e", "udp.srcport",
                                                     "-e", "tcp.srcport", "-e", "ip.dst", "-e", "udp.dstport",
                                                     "-e", "tcp.dstport", "-e", "sip.Call-ID", "-e", "sip.CSeq.method",
                                                     "-e", "sip.Status-Code"],
                                            timeout: 60, log: "hep-tshark.log")
        #expect(status == 0)
        var rows = Set<Decoded>()
        for line in ProcessHarness.logContents("hep-tshark.log").split(separator: "\n") {
            let fields = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 10, let seconds = Double(fields[0]) else { continue }
            let sourcePort = fields[2].isEmpty ? fields[3] : fields[2]
            let destinationPort = fields[5].isEmpty ? fields[6] : fields[5]
            rows.insert(Decoded(seconds: seconds, source: "\(fields[1]):\(sourcePort)",
                                destination: "\(fields[4]):\(destinationPort)", callID: fields[7], method: fields[8],
                                status: fields[9]))
        }
        #expect(!rows.isEmpty, "tshark read nothing: \(ProcessHarness.logContents("hep-tshark.log").prefix(500))")
        return Array(rows)
    }

    /// A classic pcap (microsecond, Ethernet) of `payloads` as UDP datagrams 127.0.0.1:9061 -> 127.0.0.1:9060.
    static func pcap(_ payloads: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        func le32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) } }
        func le16(_ value: UInt16) { withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) } }
        le32(0xA1B2_C3D4); le16(2); le16(4); le32(0); le32(0); le32(65_535); le32(1)
        for payload in payloads {
            var frame: [UInt8] = Array(repeating: 0, count: 12) + [0x08, 0x00]
            let ipLength = 20 + 8 + payload.count
            frame += [0x45, 0, UInt8(ipLength >> 8), UInt8(ipLength & 0xFF), 0, 0, 0, 0, 64, 17, 0, 0,
                      127, 0, 0, 1, 127, 0, 0, 1]
            let udpLength = 8 + payload.count
            frame += [0x23, 0x65, 0x23, 0x64, UInt8(udpLength >> 8), UInt8(udpLength & 0xFF), 0, 0]  // 9061 -> 9060
            frame += payload
            let now = Date().timeIntervalSince1970
            le32(UInt32(now)); le32(UInt32((now - now.rounded(.down)) * 1e6))
            le32(UInt32(frame.count)); le32(UInt32(frame.count))
            out += frame
        }
        return out
    }
}
