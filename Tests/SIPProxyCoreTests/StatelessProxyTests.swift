import Foundation
import SIPBytes
import SIPParsing
import SIPProxyCore
import Testing

let edge = EndpointAddress.parse("127.0.0.1", port: 5060)!
let core = EndpointAddress.parse("127.0.0.1", port: 5070)!
let phone = EndpointAddress.parse("192.0.2.10", port: 40_000)!
/// Signs flow tokens in these tests (a real key is random or configured; none is built in).
let testFlowKey = Array("stateless proxy test key".utf8)

func lines(_ text: [String], body: String = "") -> [UInt8] {
    Array((text.joined(separator: "\r\n") + "\r\n\r\n" + body).utf8)
}

let invite = lines([
    "INVITE sip:bob@example.com SIP/2.0",
    "Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKclient1;rport",
    "Max-Forwards: 70",
    "From: <sip:alice@example.com>;tag=a1",
    "To: <sip:bob@example.com>",
    "Call-ID: call-1@10.0.0.5",
    "CSeq: 1 INVITE",
    "Content-Length: 4",
], body: "v=0\n")

/// Runs the proxy on `bytes` from `source`; returns the decision and the output as text.
func run(_ bytes: [UInt8], from source: EndpointAddress, recordRoute: Bool = true,
         upstreams: [EndpointAddress] = [core]) throws -> (ForwardDecision, String) {
    let parser = try SIPParser()
    let proxy = StatelessProxy(configuration: ProxyConfiguration(advertised: edge, upstreams: upstreams,
                                                                 recordRoute: recordRoute, flowKey: testFlowKey))
    return try bytes.withPacketBytes { packet in
        let message = try parser.parse(packet)
        let decision = proxy.process(message, source: source)
        return (decision, String(decoding: proxy.output.bytes, as: UTF8.self))
    }
}

func reparses(_ text: String) -> Bool {
    let parser = try! SIPParser()
    return Array(text.utf8).withPacketBytes { (try? parser.parse($0)) != nil }
}

@Suite struct StatelessProxyTests {
    @Test func clientRequestGoesUpstreamWithOurViaOnTop() throws {
        let (decision, output) = try run(invite, from: phone)
        #expect(decision == .forward(to: .udp(core)))
        let outLines = output.components(separatedBy: "\r\n")
        #expect(outLines[0] == "INVITE sip:bob@example.com SIP/2.0")
        #expect(outLines.contains { $0.hasPrefix("Via: SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bK") })
        let ourVia = outLines.firstIndex { $0.hasPrefix("Via: SIP/2.0/UDP 127.0.0.1") }!
        let clientVia = outLines.firstIndex { $0.contains("branch=z9hG4bKclient1") }!
        #expect(ourVia < clientVia)
        // RFC 3581: the client's Via learns where the request really came from.
        #expect(outLines[clientVia] == "Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKclient1;rport=40000;received=192.0.2.10")
        #expect(outLines.contains("Max-Forwards: 69"))
        #expect(outLines.contains { $0.hasPrefix("Record-Route: <sip:127.0.0.1:5060;lr;ft=") })
        #expect(output.hasSuffix("\r\n\r\nv=0\n"))
        #expect(reparses(output))
    }

    /// The editor keeps its inserted bytes from message to message and empties them only now and then: one proxy
    /// fed thousands of requests and responses (far past that limit) builds each exactly as a fresh proxy does.
    @Test func oneProxyBuildsEveryMessageAsAFreshOneDoes() throws {
        let parser = try SIPParser()
        let proxy = StatelessProxy(configuration: ProxyConfiguration(advertised: edge, upstreams: [core],
                                                                     flowKey: testFlowKey))
        let request = try run(invite, from: phone).1
        let response = lines([
            "SIP/2.0 180 Ringing", "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1",
            "Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKclient1;rport=40000;received=192.0.2.10",
            "From: <sip:alice@example.com>;tag=a1", "To: <sip:bob@example.com>;tag=b1", "Call-ID: call-1@10.0.0.5",
            "CSeq: 1 INVITE", "Content-Length: 0",
        ])
        let forwardedResponse = try run(response, from: core).1
        #expect(!request.isEmpty && !forwardedResponse.isEmpty)
        var mismatches = 0
        for _ in 0..<3_000 {
            for (bytes, source, expected) in [(invite, phone, request), (response, core, forwardedResponse)] {
                let output = try bytes.withPacketBytes { packet in
                    _ = proxy.process(try parser.parse(packet), source: source)
                    return String(decoding: proxy.output.bytes, as: UTF8.self)
                }
                if output != expected { mismatches += 1 }
            }
        }
        #expect(mismatches == 0)
    }

    @Test func retransmissionsAndCancelGetTheSameBranch() throws {
        func branch(_ output: String) -> Substring? {
            output.components(separatedBy: "\r\n").first { $0.hasPrefix("Via: SIP/2.0/UDP 127.0.0.1") }?
                .split(separator: "=").last
        }
        let first = try run(invite, from: phone).1
        let again = try run(invite, from: phone).1
        let cancel = lines([
            "CANCEL sip:bob@example.com SIP/2.0", "Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKclient1;rport",
            "Max-Forwards: 70", "From: <sip:alice@example.com>;tag=a1", "To: <sip:bob@example.com>",
            "Call-ID: call-1@10.0.0.5", "CSeq: 1 CANCEL", "Content-Length: 0",
        ])
        let other = String(decoding: invite, as: UTF8.self).replacingOccurrences(of: "client1", with: "client2")
        #expect(branch(first) != nil)
        #expect(branch(first) == branch(again))
        #expect(branch(first) == branch(try run(cancel, from: phone).1))
        #expect(branch(first) != branch(try run(Array(other.utf8), from: phone).1))
    }

    @Test func maxForwardsZeroIsAnswered483AndNeverForwarded() throws {
        let text = String(decoding: invite, as: UTF8.self).replacingOccurrences(of: "Max-Forwards: 70", with: "Max-Forwards: 0")
        let (decision, output) = try run(Array(text.utf8), from: phone)
        #expect(decision == .reply(status: 483, to: .udp(phone)))
        #expect(output.hasPrefix("SIP/2.0 483 Too Many Hops\r\n"))
        #expect(output.contains("To: <sip:bob@example.com>;tag="))
        #expect(output.contains("Call-ID: call-1@10.0.0.5\r\n"))
        #expect(reparses(output))
        let ack = text.replacingOccurrences(of: "INVITE", with: "ACK")
        #expect(try run(Array(ack.utf8), from: phone).0 == .drop(.unanswerableAck))
    }

    @Test func missingMaxForwardsIsAdded() throws {
        let text = String(decoding: invite, as: UTF8.self).replacingOccurrences(of: "Max-Forwards: 70\r\n", with: "")
        let output = try run(Array(text.utf8), from: phone).1
        #expect(output.contains("Max-Forwards: 69\r\n"))
        #expect(reparses(output))
    }

    @Test func recordRouteIsConfigurableAndOnlyForDialogCreatingRequests() throws {
        #expect(!(try run(invite, from: phone, recordRoute: false).1.contains("Record-Route")))
        let options = String(decoding: invite, as: UTF8.self).replacingOccurrences(of: "INVITE", with: "OPTIONS")
        #expect(!(try run(Array(options.utf8), from: phone).1.contains("Record-Route")))
    }

    @Test func responseFromUpstreamPopsOurViaAndGoesToReceivedAndRport() throws {
        let response = lines([
            "SIP/2.0 200 OK",
            "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKedge",
            "Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKclient1;rport=40000;received=192.0.2.10",
            "From: <sip:alice@example.com>;tag=a1", "To: <sip:bob@example.com>;tag=b2",
            "Call-ID: call-1@10.0.0.5", "CSeq: 1 INVITE", "Content-Length: 0",
        ])
        let (decision, output) = try run(response, from: core)
        #expect(decision == .forward(to: .udp(phone)))
        #expect(!output.contains("127.0.0.1:5060"))
        #expect(output.hasPrefix("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKclient1"))
        #expect(reparses(output))
    }

    @Test func viaElementsInOneLineArePoppedOneAtATime() throws {
        let response = lines([
            "SIP/2.0 180 Ringing",
            "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKedge, SIP/2.0/UDP 192.0.2.44:5080;branch=z9hG4bKc",
            "From: <sip:a@x>;tag=a1", "To: <sip:b@x>;tag=b2", "Call-ID: c", "CSeq: 1 INVITE", "Content-Length: 0",
        ])
        let (decision, output) = try run(response, from: core)
        #expect(decision == .forward(to: .udp(EndpointAddress.parse("192.0.2.44", port: 5080)!)))
        #expect(output.contains("\r\nVia: SIP/2.0/UDP 192.0.2.44:5080;branch=z9hG4bKc\r\n"))
    }

    @Test func responsesNotViaUsAreDropped() throws {
        let response = lines([
            "SIP/2.0 200 OK", "Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKother",
            "From: <sip:a@x>;tag=a1", "To: <sip:b@x>;tag=b2", "Call-ID: c", "CSeq: 1 INVITE", "Content-Length: 0",
        ])
        #expect(try run(response, from: phone).0 == .drop(.responseNotForUs))
    }

    @Test func inDialogRequestFromUpstreamFollowsRouteAfterPoppingOurs() throws {
        let bye = lines([
            "BYE sip:alice@192.0.2.10:40000 SIP/2.0",
            "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKcore",
            "Route: <sip:127.0.0.1:5060;lr>, <sip:198.51.100.7:5099;lr>",
            "Max-Forwards: 69", "From: <sip:bob@example.com>;tag=b2", "To: <sip:alice@example.com>;tag=a1",
            "Call-ID: call-1@10.0.0.5", "CSeq: 2 BYE", "Content-Length: 0",
        ])
        let (decision, output) = try run(bye, from: core)
        #expect(decision == .forward(to: .udp(EndpointAddress.parse("198.51.100.7", port: 5099)!)))
        #expect(output.contains("\r\nRoute: <sip:198.51.100.7:5099;lr>\r\n"))
        #expect(reparses(output))

        let direct = String(decoding: bye, as: UTF8.self)
            .replacingOccurrences(of: ", <sip:198.51.100.7:5099;lr>", with: "")
        let (decision2, output2) = try run(Array(direct.utf8), from: core)
        #expect(decision2 == .forward(to: .udp(phone)))
        #expect(!output2.contains("Route:"))
        // No Record-Route on in-dialog requests.
        #expect(!output2.contains("Record-Route"))
    }

    @Test func upstreamRequestsToNamesAreRefusedNotResolved() throws {
        let invite = lines([
            "INVITE sip:alice@phone.example.com SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKcore",
            "Max-Forwards: 69", "From: <sip:bob@example.com>;tag=b2", "To: <sip:alice@example.com>",
            "Call-ID: c2", "CSeq: 1 INVITE", "Content-Length: 0",
        ])
        let (decision, output) = try run(invite, from: core)
        #expect(decision == .reply(status: 502, to: .udp(core)))
        #expect(output.hasPrefix("SIP/2.0 502 Bad Gateway\r\n"))
    }

    @Test func callIDHashingSpreadsCallsAndKeepsEachCallOnOneUpstream() throws {
        let upstreams = (0..<3).map { EndpointAddress.parse("127.0.0.\($0 + 2)", port: 5070)! }
        var used = Set<EndpointAddress>()
        for call in 0..<60 {
            let text = String(decoding: invite, as: UTF8.self).replacingOccurrences(of: "call-1@", with: "call-\(call)@")
            let first = try run(Array(text.utf8), from: phone, upstreams: upstreams).0
            let cancel = text.replacingOccurrences(of: "1 INVITE", with: "1 CANCEL")
                .replacingOccurrences(of: "INVITE sip", with: "CANCEL sip")
            #expect(first == (try run(Array(cancel.utf8), from: phone, upstreams: upstreams).0))
            if case .forward(let to) = first { used.insert(to.address) }
        }
        #expect(used.count == 3)
    }

    /// A core that Record-Routed a dialog keeps its in-dialog requests while it is up, draining or not, whatever
    /// the Call-ID hashes to now; a Route naming anything else (or a down upstream) is not obeyed.
    @Test func anInDialogRequestFollowsItsRouteToAnUpstreamThatIsUp() throws {
        let a = EndpointAddress.parse("127.0.0.2", port: 5070)!
        let b = EndpointAddress.parse("127.0.0.3", port: 5070)!
        let parser = try SIPParser()
        let proxy = StatelessProxy(configuration: ProxyConfiguration(advertised: edge, upstreams: [a, b],
                                                                     flowKey: testFlowKey))
        func destination(route: String, callID: String) throws -> ForwardDecision {
            let bye = lines(["BYE sip:bob@10.0.0.9 SIP/2.0", "Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKbye;rport",
                             "Route: <sip:127.0.0.1:5060;lr>, <\(route);lr>", "Max-Forwards: 70",
                             "From: <sip:alice@example.com>;tag=a1", "To: <sip:bob@example.com>;tag=b1",
                             "Call-ID: \(callID)", "CSeq: 2 BYE", "Content-Length: 0"])
            return try bye.withPacketBytes { proxy.process(try parser.parse($0), source: phone) }
        }
        // Find a Call-ID that hashes to a, then route its dialog through b.
        var callID = ""
        for n in 0..<100 where try destination(route: "sip:192.0.2.99", callID: "d\(n)") == .forward(to: .udp(a)) {
            callID = "d\(n)"
            break
        }
        #expect(!callID.isEmpty)
        #expect(try destination(route: "sip:127.0.0.3:5070", callID: callID) == .forward(to: .udp(b)))
        proxy.upstreams = UpstreamSet([UpstreamSet.Member(a), UpstreamSet.Member(b, isDraining: true)])
        #expect(try destination(route: "sip:127.0.0.3:5070", callID: callID) == .forward(to: .udp(b)), "draining")
        proxy.upstreams.setUp(false, at: 1)
        #expect(try destination(route: "sip:127.0.0.3:5070", callID: callID) == .forward(to: .udp(a)), "b is down")
    }

    /// A transaction failing over: the next try skips the upstreams tried, has its own branch, and a CANCEL sent
    /// with the same try reaches the same upstream on the same branch (RFC 3261 §16.10).
    @Test func aFailoverTryGoesElsewhereOnItsOwnBranchAndItsCancelFollowsIt() throws {
        let upstreams = (0..<3).map { EndpointAddress.parse("127.0.0.\($0 + 2)", port: 5070)! }
        let parser = try SIPParser()
        let proxy = StatelessProxy(configuration: ProxyConfiguration(advertised: edge, upstreams: upstreams,
                                                                     flowKey: testFlowKey))
        func forward(_ bytes: [UInt8], _ attempt: ForwardAttempt) throws -> (EndpointAddress?, String) {
            try bytes.withPacketBytes { packet in
                let decision = proxy.process(try parser.parse(packet), from: .udp(phone), attempt: attempt)
                let output = String(decoding: proxy.output.bytes, as: UTF8.self)
                let branch = output.split(separator: "\r\n")[1].split(separator: ";").first { $0.hasPrefix("branch=") }
                guard case .forward(let flow) = decision else { return (nil, "") }
                return (flow.address, String(branch ?? ""))
            }
        }
        let (first, firstBranch) = try forward(invite, ForwardAttempt())
        let firstIndex = try #require(upstreams.firstIndex { $0 == first })
        let (second, secondBranch) = try forward(invite, ForwardAttempt(number: 1, excluded: 1 << UInt64(firstIndex)))
        #expect(second != nil && second != first)
        #expect(secondBranch != firstBranch)
        let secondIndex = try #require(upstreams.firstIndex { $0 == second })
        let (third, _) = try forward(invite, ForwardAttempt(number: 2,
                                                            excluded: 1 << UInt64(firstIndex) | 1 << UInt64(secondIndex)))
        #expect(third != nil && third != first && third != second)
        let (none, _) = try forward(invite, ForwardAttempt(number: 3, excluded: 0b111))
        #expect(none == nil, "every upstream tried: 503 from the proxy")
        let cancel = String(decoding: invite, as: UTF8.self).replacingOccurrences(of: "1 INVITE", with: "1 CANCEL")
            .replacingOccurrences(of: "INVITE sip", with: "CANCEL sip")
        let (cancelled, cancelBranch) = try forward(Array(cancel.utf8), ForwardAttempt(number: 1, upstream: second))
        #expect(cancelled == second)
        #expect(cancelBranch == secondBranch)
    }

    @Test func loopsAreAnswered482ButASpiralThroughTheCoreIsForwarded() throws {
        func request(vias: [String]) -> [UInt8] {
            lines(["INVITE sip:alice@192.0.2.10:40000 SIP/2.0"] + vias.map { "Via: \($0)" } + [
                "Max-Forwards: 60", "From: <sip:bob@example.com>;tag=b2", "To: <sip:alice@example.com>",
                "Call-ID: loop-1", "CSeq: 1 INVITE", "Content-Length: 0",
            ])
        }
        let ours = "SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bKedge1"
        let core1 = "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKcore1"
        let phoneVia = "SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bKphone"
        // Phone -> edge -> core -> edge -> phone: one Via of ours on the way back out is a spiral.
        let spiral = try run(request(vias: [core1, ours, phoneVia]), from: core)
        #expect(spiral.0 == .forward(to: .udp(phone)))
        // Twice through us: a loop.
        let loop = try run(request(vias: [core1, ours, "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKcore0", ours, phoneVia]),
                           from: core)
        #expect(loop.0 == .reply(status: 482, to: .udp(core)))
        #expect(loop.1.hasPrefix("SIP/2.0 482 Loop Detected\r\n"))
        // From the public side, any Via of ours is a loop (or a forgery).
        #expect(try run(request(vias: [phoneVia, ours]), from: phone).0 == .reply(status: 482, to: .udp(phone)))
        // A compact multi-hop Via line is read hop by hop.
        #expect(try run(request(vias: ["\(core1), \(ours), \(ours)"]), from: core).0 == .reply(status: 482, to: .udp(core)))
    }

    /// A Via is ours only with the port we are reached at over its own transport: a TCP client on the edge's host
    /// whose ephemeral port happens to be the number of our upstream-facing UDP socket (or of our TLS port) is a
    /// client, not a loop; the same port over the transport we use there is a loop. Responses likewise.
    @Test func ownViaNeedsTheTransportAndPortWeWrite() throws {
        let internalPort: UInt16 = 41_000
        let parser = try SIPParser()
        let proxy = StatelessProxy(configuration: ProxyConfiguration(
            advertised: edge, upstreams: [core], flowKey: testFlowKey, advertisedTLSPort: 5061,
            internalPort: internalPort))
        let tcpClient = Flow(transport: .tcp, address: EndpointAddress.parse("127.0.0.1", port: internalPort)!)
        func requestDecision(via: String, from source: Flow) throws -> ForwardDecision {
            let bytes = lines(["OPTIONS sip:core@127.0.0.1:5070 SIP/2.0", "Via: \(via)", "Max-Forwards: 70",
                               "From: <sip:load@example.com>;tag=l1", "To: <sip:core@127.0.0.1>", "Call-ID: via-1",
                               "CSeq: 1 OPTIONS", "Content-Length: 0"])
            return try bytes.withPacketBytes { proxy.process(try parser.parse($0), from: source) }
        }
        // The client's own address in its TCP Via: forwarded, whatever the number.
        #expect(try requestDecision(via: "SIP/2.0/TCP 127.0.0.1:\(internalPort);branch=z9hG4bKt1", from: tcpClient)
                == .forward(to: .udp(core)))
        #expect(try requestDecision(via: "SIP/2.0/TCP 127.0.0.1:5061;branch=z9hG4bKt2", from: tcpClient)
                == .forward(to: .udp(core)))
        // Our host with the port of the Via's own transport, from the public side: ours, so a loop.
        #expect(try requestDecision(via: "SIP/2.0/UDP 127.0.0.1:\(internalPort);branch=z9hG4bKt3", from: tcpClient)
                == .reply(status: 482, to: tcpClient))
        #expect(try requestDecision(via: "SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKt4", from: tcpClient)
                == .reply(status: 482, to: tcpClient))
        #expect(try requestDecision(via: "SIP/2.0/tls 127.0.0.1:5061;branch=z9hG4bKt5", from: tcpClient)
                == .reply(status: 482, to: tcpClient))

        func responseDecision(topVia: String) throws -> ForwardDecision {
            let bytes = lines(["SIP/2.0 200 OK", "Via: \(topVia)",
                               "Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKclient1;rport=40000;received=192.0.2.10",
                               "From: <sip:alice@example.com>;tag=a1", "To: <sip:bob@example.com>;tag=b1",
                               "Call-ID: call-1@10.0.0.5", "CSeq: 1 INVITE", "Content-Length: 0"])
            return try bytes.withPacketBytes { proxy.process(try parser.parse($0), source: core) }
        }
        #expect(try responseDecision(topVia: "SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bK1") == .forward(to: .udp(phone)))
        // TLS is reached at 5061 here, so a TLS Via naming 5060 is not one we wrote.
        #expect(try responseDecision(topVia: "SIP/2.0/TLS 127.0.0.1:5060;rport;branch=z9hG4bK1") == .drop(.responseNotForUs))
    }
}

@Suite struct StatelessProxyIPv6Tests {
    @Test func ipv6ClientsGetReceivedAndResponsesFindThemAgain() throws {
        let edge6 = EndpointAddress.parse("::1", port: 5060)!
        let core6 = EndpointAddress.parse("::1", port: 5070)!
        let client6 = EndpointAddress.parse("2001:db8::10", port: 40_000)!
        let parser = try SIPParser()
        let proxy = StatelessProxy(configuration: ProxyConfiguration(advertised: edge6, upstreams: [core6],
                                                                     flowKey: testFlowKey))
        let request = lines([
            "OPTIONS sip:bob@example.com SIP/2.0", "Via: SIP/2.0/UDP [2001:db8::10]:5062;branch=z9hG4bKv6;rport",
            "Max-Forwards: 70", "From: <sip:a@example.com>;tag=1", "To: <sip:bob@example.com>", "Call-ID: v6",
            "CSeq: 1 OPTIONS", "Content-Length: 0",
        ])
        let forwarded: String = try request.withPacketBytes { packet in
            let message = try parser.parse(packet)
            #expect(proxy.process(message, source: client6) == .forward(to: .udp(core6)))
            return String(decoding: proxy.output.bytes, as: UTF8.self)
        }
        #expect(forwarded.contains("Via: SIP/2.0/UDP [::1]:5060;rport;branch=z9hG4bK"))
        #expect(forwarded.contains(";rport=40000;received=2001:db8::10"))

        // The core answers through us: the response goes to the received address and rport.
        let ourVia = forwarded.split(separator: "\r\n").first { $0.hasPrefix("Via: SIP/2.0/UDP [::1]") }!
        let clientVia = forwarded.split(separator: "\r\n").first { $0.contains("z9hG4bKv6") }!
        let response = lines(["SIP/2.0 200 OK", String(ourVia), String(clientVia), "From: <sip:a@example.com>;tag=1",
                              "To: <sip:bob@example.com>;tag=2", "Call-ID: v6", "CSeq: 1 OPTIONS", "Content-Length: 0"])
        try response.withPacketBytes { packet in
            let message = try parser.parse(packet)
            #expect(proxy.process(message, source: core6) == .forward(to: .udp(client6)))
        }
    }
}
