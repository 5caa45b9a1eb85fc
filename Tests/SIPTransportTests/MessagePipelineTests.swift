import Foundation
import SIPBytes
import SIPParsing
import SIPProxyCore
import SIPSecurity
import SIPSettings
@testable import SIPTransport
import Testing

private let edge = EndpointAddress.parse("127.0.0.1", port: 5060)!
private let core = EndpointAddress.parse("127.0.0.1", port: 5070)!
private let phone = EndpointAddress.parse("192.0.2.10", port: 40_000)!

private func pipeline(rateLimit: RateLimitConfiguration = RateLimitConfiguration(),
                      transport: TransportKind = .udp) throws -> MessagePipeline {
    var proxy = ProxyConfiguration(advertised: edge, upstreams: [core], flowKey: Array("pipeline test flow key".utf8))
    proxy.upstreamTransport = transport
    return MessagePipeline(parser: try SIPParser(), proxy: StatelessProxy(configuration: proxy),
                           security: SecurityConfiguration(), rateLimit: rateLimit,
                           audit: try AuditLog(destination: .off, linesPerSecond: 0, worker: 0))
}

private func request(_ method: String = "OPTIONS", uri: String = "sip:bob@example.com", callID: String = "c1",
                     extra: String = "") -> [UInt8] {
    Array(("\(method) \(uri) SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:40000;branch=z9hG4bK\(callID);rport\r\n"
        + "Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n"
        + "Call-ID: \(callID)\r\nCSeq: 1 \(method)\r\n\(extra)Content-Length: 0\r\n\r\n").utf8)
}

private func handle(_ bytes: [UInt8], _ pipeline: MessagePipeline, _ sink: RecordingSink,
                    from flow: Flow = .udp(phone)) {
    bytes.withPacketBytes { pipeline.handle($0, from: flow, sink: sink) }
}

/// The message path without sockets: what a client's message becomes, and what the client hears back.
@Suite struct MessagePipelineTests {
    @Test func aClientRequestIsForwardedToTheUpstreamWithOurViaOnTop() throws {
        let pipeline = try pipeline()
        let sink = RecordingSink()
        handle(request(), pipeline, sink)
        #expect(sink.sent.count == 1)
        #expect(sink.sent.first?.flow.address == core)
        #expect(sink.sent.first?.text.hasPrefix("OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bK") == true,
                "\(sink.sent)")
        #expect(pipeline.counters.forwarded == 1)
        #expect(pipeline.counters.requestsByMethod[Int(TransportKind.udp.rawValue)][Int(SIPMethod.Known.options.rawValue)] == 1)
    }

    @Test func aRequestWhileNoUpstreamIsUpIsAnswered503WithRetryAfterAndAnAckIsDropped() throws {
        let pipeline = try pipeline()
        pipeline.proxy.upstreams.setUp(false, at: 0)
        let sink = RecordingSink()
        handle(request("INVITE"), pipeline, sink)
        #expect(sink.sent.count == 1)
        #expect(sink.sent.first?.flow == .udp(phone))
        #expect(sink.sent.first?.text.hasPrefix("SIP/2.0 503 Service Unavailable") == true)
        #expect(sink.sent.first?.text.contains("\r\nRetry-After: 5\r\n") == true)
        handle(request("ACK", callID: "c2"), pipeline, sink)
        #expect(sink.sent.count == 1)
        #expect(pipeline.counters.forwarded == 0)
        pipeline.proxy.upstreams.setUp(true, at: 0)
        handle(request("INVITE", callID: "c3"), pipeline, sink)
        #expect(sink.sent.last?.flow.address == core)
    }

    @Test func theAnswerToOurOwnProbeGoesToTheMonitorNotToAClient() throws {
        let pipeline = try pipeline()
        let sink = RecordingSink()
        let answer = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;rport=5060;branch=z9hG4bKab12-7\r\n"
            + "From: <sip:sip-edge@127.0.0.1:5060>;tag=7\r\nTo: <sip:127.0.0.1>;tag=k\r\n"
            + "Call-ID: sip-edge-probe-ab12-7\r\nCSeq: 7 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        handle(Array(answer.utf8), pipeline, sink, from: .udp(core))
        #expect(sink.probeAnswers.map(\.callID) == ["sip-edge-probe-ab12-7"])
        #expect(sink.probeAnswers.map(\.status) == [200])
        #expect(sink.sent.isEmpty)
        // The same Call-ID from the public side is no probe answer of ours: it takes the normal road.
        handle(Array(answer.utf8), pipeline, sink, from: .udp(phone))
        #expect(sink.probeAnswers.count == 1)
    }

    @Test func anUnparsableRequestIsAnswered400NamingTheProblem() throws {
        let pipeline = try pipeline()
        let sink = RecordingSink()
        var bytes = request()
        bytes.replaceSubrange(bytes.firstRange(of: Array("CSeq: 1".utf8))!, with: Array("CSeq: x".utf8))
        handle(bytes, pipeline, sink)
        #expect(sink.sent.count == 1)
        #expect(sink.sent.first?.flow == .udp(phone))
        #expect(sink.sent.first?.text.hasPrefix("SIP/2.0 400 Bad Request") == true)
        #expect(pipeline.counters.parseErrors == 1)
        #expect(pipeline.counters.forwarded == 0)
    }

    @Test func anInjectionIsRefusedAndCountedByRule() throws {
        let pipeline = try pipeline()
        let sink = RecordingSink()
        handle(request(extra: "Subject: ' UNION SELECT password FROM users --\r\n"), pipeline, sink)
        #expect(sink.sent.count == 1)
        #expect(sink.sent.allSatisfy { $0.flow == .udp(phone) && $0.text.hasPrefix("SIP/2.0 403") }, "\(sink.sent)")
        #expect(pipeline.counters.violations[SecurityRule.sqlInjection.ordinal] == 1)
        #expect(pipeline.counters.forwarded == 0)
    }

    @Test func aSourceOverItsLimitGets503WithRetryAfterAndTheUpstreamDoesNot() throws {
        var limits = RateLimitConfiguration()
        limits.requestsPerWindow = 3
        limits.retryAfterSeconds = 7
        let pipeline = try pipeline(rateLimit: limits)
        let sink = RecordingSink()
        for i in 0..<4 { handle(request(callID: "c\(i)"), pipeline, sink) }
        #expect(sink.sent.filter { $0.flow.address == core }.count == 3)
        let refusal = sink.sent.last
        #expect(refusal?.flow == .udp(phone))
        #expect(refusal?.text.hasPrefix("SIP/2.0 503") == true)
        #expect(refusal?.text.contains("Retry-After: 7\r\n") == true)
        // The upstream itself is never limited.
        for i in 0..<10 {
            handle(Array("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.10:40000;branch=z9hG4bKr\(i)\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:b@b>\r\nCall-ID: r\(i)\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n".utf8),
                   pipeline, sink, from: .udp(core))
        }
        #expect(pipeline.counters.violations[SecurityRule.rateLimited.ordinal] == 1)
    }

    @Test func duringABanOnlyAFlowWithItsOwnVerifiedTokenPassesAndTheAuditLogNamesTheStep() throws {
        var limits = RateLimitConfiguration()
        limits.requestsPerWindow = 3
        limits.banMultiplier = 2
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bans-audit-\(getpid()).jsonl").path
        try? FileManager.default.removeItem(atPath: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        var proxy = ProxyConfiguration(advertised: edge, upstreams: [core], flowKey: Array("pipeline test flow key".utf8))
        proxy.upstreamTransport = .udp
        let banning = MessagePipeline(parser: try SIPParser(), proxy: StatelessProxy(configuration: proxy),
                                      security: SecurityConfiguration(), rateLimit: limits,
                                      audit: try AuditLog(destination: .file(path), linesPerSecond: 100, worker: 0))
        let sink = RecordingSink()
        // A device behind the office NAT floods; the office's address is banned (first offence: step 1).
        let neighbour = Flow.udp(EndpointAddress.parse("192.0.2.10", port: 40_999)!)
        for i in 0..<20 { handle(request(callID: "flood\(i)"), banning, sink, from: neighbour) }
        #expect(banning.counters.violations[SecurityRule.banned.ordinal] > 0)
        func token(_ flow: Flow, key: String = "pipeline test flow key") -> String {
            var out: [UInt8] = []
            FlowTokenCodec(key: Array(key.utf8)).append(flow, to: &out)
            return String(decoding: out, as: UTF8.self)
        }
        // The route set of a dialog we Record-Routed: our public entry, then our internal one with the token.
        func inDialog(_ callID: String, token: String) -> [UInt8] {
            request("BYE", callID: callID,
                    extra: "Route: <sip:127.0.0.1:5060;lr>, <sip:127.0.0.1:5060;lr;ft=\(token)>, <sip:127.0.0.1:5070;lr>\r\n")
        }
        func forwarded(_ callID: String) -> Bool {
            sink.sent.contains { $0.flow.address == core && $0.text.contains("Call-ID: \(callID)\r\n") }
        }
        let phoneFlow = Flow.udp(phone)
        // The token is the one the edge Record-Routes the phone's dialogs with, so its in-dialog requests carry it.
        let unbanned = try pipeline()
        let invite = RecordingSink()
        handle(request("INVITE", callID: "call"), unbanned, invite, from: phoneFlow)
        #expect(invite.sent.first?.text.contains("Record-Route: <sip:127.0.0.1:5060;lr;ft=\(token(phoneFlow))>") == true,
                "\(invite.sent.map(\.text))")
        // A phone of the office in a call: its BYE carries its own flow's token, so it passes the ban.
        handle(inDialog("bye-own", token: token(phoneFlow)), banning, sink, from: phoneFlow)
        #expect(forwarded("bye-own"), "\(sink.sent.map(\.text))")
        // Without a token, or with one made without our key, or replayed from another flow: refused with the office.
        handle(request("BYE", callID: "bye-none"), banning, sink, from: phoneFlow)
        handle(inDialog("bye-forged", token: token(phoneFlow, key: "somebody else's key!")), banning, sink, from: phoneFlow)
        handle(inDialog("bye-replayed", token: token(phoneFlow)), banning, sink, from: neighbour)
        #expect(!forwarded("bye-none") && !forwarded("bye-forged") && !forwarded("bye-replayed"))
        // A stream client: the token names the connection, so another connection from the same address fails.
        let connection = Flow(transport: .tcp, worker: 0, connection: 7, address: phone)
        handle(inDialog("bye-tcp", token: token(connection)), banning, sink, from: connection)
        var otherConnection = connection
        otherConnection.connection = 8
        handle(inDialog("bye-tcp-other", token: token(connection)), banning, sink, from: otherConnection)
        #expect(forwarded("bye-tcp") && !forwarded("bye-tcp-other"))
        // A flow let through is counted on its own: flooding with its token gets it limited, then banned too.
        for i in 0..<10 { handle(inDialog("own-flood\(i)", token: token(phoneFlow)), banning, sink, from: phoneFlow) }
        // (bye-own and bye-tcp, from the same address and port, were the first two of its 3.)
        #expect((0..<10).filter { forwarded("own-flood\($0)") }.count == 1)
        #expect(!forwarded("own-flood9"))
        let log = try String(contentsOfFile: path, encoding: .utf8)
        #expect(log.contains("\"rule\":\"banned\",\"action\":\"drop\""), "\(log)")
        #expect(log.contains("\"ban_step\":1,\"ban_ms\":5000"), "\(log)")
    }

    @Test func noPooledConnectionToTheCoreGives503() throws {
        let pipeline = try pipeline(transport: .tcp)
        let sink = RecordingSink()
        sink.pooledUpstreams = [core]
        sink.gone = [core]
        handle(request(), pipeline, sink)
        #expect(sink.sent.count == 1)
        #expect(sink.sent.first?.flow == .udp(phone))
        #expect(sink.sent.first?.text.hasPrefix("SIP/2.0 503 Service Unavailable") == true)
        #expect(sink.sent.first?.text.contains("Retry-After: 1\r\n") == true)
    }

    @Test func aRequestForAGoneStreamFlowIsAnswered430() throws {
        let pipeline = try pipeline()
        let sink = RecordingSink()
        // A stream client's REGISTER gets a Path with its flow token; the core then sends a request down it.
        let client = Flow(transport: .tcp, worker: 0, connection: 0x0001_0002, address: phone)
        handle(request("REGISTER", uri: "sip:example.com"), pipeline, sink, from: client)
        let register = try #require(sink.sent.first?.text)
        let pathLine = try #require(register.split(separator: "\r\n").first { $0.hasPrefix("Path: ") })
        let route = pathLine.dropFirst("Path: ".count)
        sink.gone = [phone]
        let invite = "INVITE sip:alice@192.0.2.10:40000;transport=tcp SIP/2.0\r\n"
            + "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKcore1\r\nRoute: \(route)\r\nMax-Forwards: 69\r\n"
            + "From: <sip:bob@example.com>;tag=b1\r\nTo: <sip:alice@example.com>\r\nCall-ID: in1\r\n"
            + "CSeq: 1 INVITE\r\nContact: <sip:bob@127.0.0.1:5070>\r\nContent-Length: 0\r\n\r\n"
        handle(Array(invite.utf8), pipeline, sink, from: .udp(core))
        let answer = try #require(sink.sent.last)
        #expect(answer.flow == .udp(core))
        #expect(answer.text.hasPrefix("SIP/2.0 430 Flow Failed"))
        #expect(pipeline.counters.count(of: .flowGone) == 1)
    }
}
